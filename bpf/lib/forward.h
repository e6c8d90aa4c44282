/* SPDX-License-Identifier: Apache-2.0 */
/*
 * In-kernel forwarding for FASTPATH flows: bpf_fib_lookup (or the flow's cached
 * next hop), TTL / hop-limit decrement with an RFC 1624 checksum patch, MAC
 * rewrite, bpf_redirect. The next hop and the rewrite are shared by both hooks;
 * XDP redirects the xdp_frame here, TC redirects the skb (tc.h).
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

/* Where a fast-path packet goes next: egress device and MACs. */
struct ramjet_nexthop {
  __u32 ifindex;
  const __u8* dmac;
  const __u8* smac;
};

/*
 * Resolves the next hop of a parsed packet, for either hook (`ctx` is the
 * program's context: bpf_fib_lookup takes both). Returns RAMJET_STAT_NONE with
 * *out filled, or the PASS reason the stack has to handle (FIB_NO_NEIGH leaves
 * out->ifindex set: TC can still forward with redirect_neigh).
 *
 * `nh` is the flow's cached next hop for this direction (NULL without a flow):
 * used instead of bpf_fib_lookup while fresh (see struct ramjet_flow_nexthop),
 * refreshed by every lookup. The lookup is most of the fast path's cost. `gso`:
 * the packet is a GSO skb (TC), larger than the MTU by design; the lookup checks
 * it as the stack does (is_skb_forwardable) and its length is not a size the
 * cache may vouch for. `flags`: BPF_FIB_LOOKUP_*. `fib` is the caller's: `out`
 * points into it.
 */
static __always_inline enum ramjet_stat ramjet_nexthop_of(
    void* ctx, const struct ramjet_pkt* pkt, __u32 in_ifindex, struct ramjet_flow_nexthop* nh,
    __u64 now_ns, int gso, __u32 flags, struct bpf_fib_lookup* fib, struct ramjet_nexthop* out) {
  /* Egress VLAN (re)tagging needs the egress device's VLAN layout: leave to the stack. */
  if (pkt->vlan_depth) return RAMJET_STAT_FASTPATH_VLAN;
  if (pkt->ttl <= 1) return RAMJET_STAT_FIB_TTL_EXPIRED;

  if (nh && nh->checked_ns && now_ns - nh->checked_ns < RAMJET_NEXTHOP_TTL_NS &&
      (gso || pkt->l3_len <= nh->max_len)) {
    out->ifindex = nh->ifindex;
    out->dmac = nh->dmac;
    out->smac = nh->smac;
    return RAMJET_STAT_NONE;
  }
  __builtin_memset(fib, 0, sizeof(*fib));
  fib->l4_protocol = pkt->proto;
  fib->sport = pkt->sport;
  fib->dport = pkt->dport;
  fib->tot_len = pkt->l3_len;
  fib->ifindex = in_ifindex;
  if (pkt->family == RAMJET_FAMILY_IPV4) {
    fib->family = AF_INET;
    fib->tos = pkt->tos;
    fib->ipv4_src = pkt->saddr[0];
    fib->ipv4_dst = pkt->daddr[0];
  } else {
    fib->family = AF_INET6;
    fib->flowinfo = pkt->flowinfo;
    __builtin_memcpy(fib->ipv6_src, pkt->saddr, 16);
    __builtin_memcpy(fib->ipv6_dst, pkt->daddr, 16);
  }
  long rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), flags);
  out->ifindex = fib->ifindex;
  out->dmac = fib->dmac;
  out->smac = fib->smac;
  if (rc != BPF_FIB_LKUP_RET_SUCCESS) return ramjet_fib_reason(rc);
  if (nh) {
    int fresh = nh->checked_ns && now_ns - nh->checked_ns < RAMJET_NEXTHOP_TTL_NS;
    __u16 len = gso ? 0 : pkt->l3_len;
    nh->max_len = fresh && nh->max_len > len ? nh->max_len : len;
    nh->ifindex = fib->ifindex;
    __builtin_memcpy(nh->dmac, fib->dmac, ETH_ALEN);
    __builtin_memcpy(nh->smac, fib->smac, ETH_ALEN);
    if (!fresh) nh->checked_ns = now_ns;
  }
  return RAMJET_STAT_NONE;
}

/* The IPv4 checksum after TTL - 1: TTL is the high byte of the 16-bit word
 * {ttl, protocol} the checksum covers (RFC 1624). */
static __always_inline void ramjet_ipv4_ttl_dec(struct iphdr* ip) {
  __u16 old_word = bpf_htons((__u16)(ip->ttl << 8 | ip->protocol));
  __u16 new_word = bpf_htons((__u16)((ip->ttl - 1) << 8 | ip->protocol));
  ip->ttl--;
  ip->check = ramjet_csum_replace16(ip->check, old_word, new_word);
}

/* TTL / hop limit - 1, in place on an untagged frame whose L3 follows Ethernet.
 * Returns RAMJET_STAT_NONE, or a drop reason when the frame shrank under us. */
static __always_inline enum ramjet_stat ramjet_ttl_dec(void* data, void* data_end,
                                                       const struct ramjet_pkt* pkt) {
  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > data_end) return RAMJET_STAT_TRUNCATED_ETH;
  if (pkt->family == RAMJET_FAMILY_IPV4) {
    struct iphdr* ip = (void*)(eth + 1);
    if ((void*)(ip + 1) > data_end) return RAMJET_STAT_TRUNCATED_IP;
    ramjet_ipv4_ttl_dec(ip);
  } else {
    struct ipv6hdr* ip6 = (void*)(eth + 1);
    if ((void*)(ip6 + 1) > data_end) return RAMJET_STAT_TRUNCATED_IP;
    ip6->hop_limit--;
  }
  return RAMJET_STAT_NONE;
}

/* ramjet_ttl_dec, then the MACs of `hop`. */
static __always_inline enum ramjet_stat ramjet_rewrite(void* data, void* data_end,
                                                       const struct ramjet_pkt* pkt,
                                                       const struct ramjet_nexthop* hop) {
  enum ramjet_stat reason = ramjet_ttl_dec(data, data_end, pkt);
  if (reason != RAMJET_STAT_NONE) return reason;
  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > data_end) return RAMJET_STAT_TRUNCATED_ETH;
  __builtin_memcpy(eth->h_dest, hop->dmac, ETH_ALEN);
  __builtin_memcpy(eth->h_source, hop->smac, ETH_ALEN);
  return RAMJET_STAT_NONE;
}

/*
 * XDP: forwards a parsed packet as an xdp_frame. Returns
 * RAMJET_STAT_FASTPATH_REDIRECT with *xdp_action set to bpf_redirect()'s result,
 * or a PASS reason (packet untouched, *xdp_action XDP_PASS), or a drop reason
 * (*xdp_action XDP_DROP).
 */
static __always_inline enum ramjet_stat ramjet_forward_xdp(struct xdp_md* ctx,
                                                           const struct ramjet_pkt* pkt,
                                                           struct ramjet_flow_nexthop* nh,
                                                           __u64 now_ns, int* xdp_action) {
  struct bpf_fib_lookup fib;
  struct ramjet_nexthop hop;
  *xdp_action = XDP_PASS;
  enum ramjet_stat reason =
      ramjet_nexthop_of(ctx, pkt, ctx->ingress_ifindex, nh, now_ns, 0, 0, &fib, &hop);
  if (reason != RAMJET_STAT_NONE) return reason;
  *xdp_action = XDP_DROP; /* only if the frame shrank under us: count it as a drop */
  reason = ramjet_rewrite((void*)(long)ctx->data, (void*)(long)ctx->data_end, pkt, &hop);
  if (reason != RAMJET_STAT_NONE) return reason;
  *xdp_action = (int)bpf_redirect(hop.ifindex, 0);
  return RAMJET_STAT_FASTPATH_REDIRECT;
}

#endif /* RAMJET_LIB_FORWARD_H */
