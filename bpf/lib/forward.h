/* SPDX-License-Identifier: Apache-2.0 */
/*
 * In-kernel forwarding for FASTPATH flows: bpf_fib_lookup, TTL / hop-limit
 * decrement with an RFC 1624 checksum patch, MAC rewrite, bpf_redirect.
 * Whenever the kernel stack must act (ICMP errors, neighbour resolution, MTU),
 * the packet is passed up unchanged with the reason counted.
 */
#ifndef RAMJET_LIB_FORWARD_H
#define RAMJET_LIB_FORWARD_H

#include "csum.h"
#include "defs.h"
#include "parse.h"

static __always_inline enum ramjet_stat ramjet_fib_reason(long rc) {
  switch (rc) {
    case BPF_FIB_LKUP_RET_NO_NEIGH:
      return RAMJET_STAT_FIB_NO_NEIGH;
    case BPF_FIB_LKUP_RET_FRAG_NEEDED:
      return RAMJET_STAT_FIB_FRAG_NEEDED;
    case BPF_FIB_LKUP_RET_FWD_DISABLED:
      return RAMJET_STAT_FIB_FWD_DISABLED;
    case BPF_FIB_LKUP_RET_BLACKHOLE:
    case BPF_FIB_LKUP_RET_UNREACHABLE:
    case BPF_FIB_LKUP_RET_PROHIBIT:
    case BPF_FIB_LKUP_RET_NOT_FWDED:
      return RAMJET_STAT_FIB_NO_ROUTE;
    default:
      return RAMJET_STAT_FIB_OTHER;
  }
}

/*
 * Forwards a parsed packet. Returns RAMJET_STAT_FASTPATH_REDIRECT with *xdp_action
 * set to bpf_redirect()'s result, or a PASS reason (packet untouched).
 *
 * `nh` is the flow's cached next hop for this direction (NULL without a flow):
 * used instead of bpf_fib_lookup while fresh (see struct ramjet_flow_nexthop),
 * refreshed by every lookup. The lookup is most of the fast path's cost.
 */
static __always_inline enum ramjet_stat ramjet_forward(struct xdp_md* ctx,
                                                       const struct ramjet_pkt* pkt,
                                                       struct ramjet_flow_nexthop* nh,
                                                       __u64 now_ns, int* xdp_action) {
  *xdp_action = XDP_PASS;
  /* Egress VLAN (re)tagging needs the egress device's VLAN layout: leave to TC. */
  if (pkt->vlan_depth) return RAMJET_STAT_FASTPATH_VLAN;
  if (pkt->ttl <= 1) return RAMJET_STAT_FIB_TTL_EXPIRED;

  struct bpf_fib_lookup fib;
  __u32 out_ifindex;
  const __u8* dmac;
  const __u8* smac;
  if (nh && nh->checked_ns && now_ns - nh->checked_ns < RAMJET_NEXTHOP_TTL_NS &&
      pkt->l3_len <= nh->max_len) {
    out_ifindex = nh->ifindex;
    dmac = nh->dmac;
    smac = nh->smac;
  } else {
    __builtin_memset(&fib, 0, sizeof(fib));
    fib.l4_protocol = pkt->proto;
    fib.sport = pkt->sport;
    fib.dport = pkt->dport;
    fib.tot_len = pkt->l3_len;
    fib.ifindex = ctx->ingress_ifindex;
    if (pkt->family == RAMJET_FAMILY_IPV4) {
      fib.family = AF_INET;
      fib.tos = pkt->tos;
      fib.ipv4_src = pkt->saddr[0];
      fib.ipv4_dst = pkt->daddr[0];
    } else {
      fib.family = AF_INET6;
      fib.flowinfo = pkt->flowinfo;
      __builtin_memcpy(fib.ipv6_src, pkt->saddr, 16);
      __builtin_memcpy(fib.ipv6_dst, pkt->daddr, 16);
    }
    long rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
    if (rc != BPF_FIB_LKUP_RET_SUCCESS) return ramjet_fib_reason(rc);
    if (nh) {
      int fresh = nh->checked_ns && now_ns - nh->checked_ns < RAMJET_NEXTHOP_TTL_NS;
      nh->max_len = fresh && nh->max_len > pkt->l3_len ? nh->max_len : pkt->l3_len;
      nh->ifindex = fib.ifindex;
      __builtin_memcpy(nh->dmac, fib.dmac, ETH_ALEN);
      __builtin_memcpy(nh->smac, fib.smac, ETH_ALEN);
      if (!fresh) nh->checked_ns = now_ns;
    }
    out_ifindex = fib.ifindex;
    dmac = fib.dmac;
    smac = fib.smac;
  }

  /* Untagged (checked above), so L3 follows Ethernet directly. */
  void* data = (void*)(long)ctx->data;
  void* data_end = (void*)(long)ctx->data_end;
  struct ethhdr* eth = data;
  *xdp_action = XDP_DROP; /* only if the frame shrank under us: count it as a drop */
  if ((void*)(eth + 1) > data_end) return RAMJET_STAT_TRUNCATED_ETH;

  if (pkt->family == RAMJET_FAMILY_IPV4) {
    struct iphdr* ip = (void*)(eth + 1);
    if ((void*)(ip + 1) > data_end) return RAMJET_STAT_TRUNCATED_IP;
    /* TTL is the high byte of the 16-bit word {ttl, protocol} the checksum
     * covers; patch the checksum for that word (RFC 1624). */
    __u16 old_word = bpf_htons((__u16)(ip->ttl << 8 | ip->protocol));
    __u16 new_word = bpf_htons((__u16)((ip->ttl - 1) << 8 | ip->protocol));
    ip->ttl--;
    ip->check = ramjet_csum_replace16(ip->check, old_word, new_word);
  } else {
    struct ipv6hdr* ip6 = (void*)(eth + 1);
    if ((void*)(ip6 + 1) > data_end) return RAMJET_STAT_TRUNCATED_IP;
    ip6->hop_limit--;
  }
  __builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
  __builtin_memcpy(eth->h_source, smac, ETH_ALEN);
  *xdp_action = (int)bpf_redirect(out_ifindex, 0);
  return RAMJET_STAT_FASTPATH_REDIRECT;
}

#endif /* RAMJET_LIB_FORWARD_H */
