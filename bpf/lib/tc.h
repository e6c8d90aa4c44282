/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TC programs, the second stage of the datapath.
 *
 * Ingress acts on packets XDP passed up with a ramjet_xdp_meta record:
 *   ESCALATE  deliver to the engine: the connection's own socket if it exists
 *             (bpf_skc_lookup_tcp), else the endpoint's listener from `listeners`
 *             (bpf_sk_assign; a reuseport group still picks the worker), and set
 *             skb->mark so ramjetd's policy route makes the destination local.
 *             The socket sees the original destination as its local address.
 *   FASTPATH  XDP found the route but no neighbour entry: forward with
 *             bpf_redirect_neigh, which resolves the neighbour itself.
 * Egress tracks connections this host opens (skb->sk set), so XDP passes their
 * replies straight up (PASS_LOCAL) and per-flow counters include both directions.
 * Needs maps.h (included by the program file before this header).
 */
#ifndef RAMJET_LIB_TC_H
#define RAMJET_LIB_TC_H

#include "classify.h"
#include "csum.h"
#include "defs.h"
#include "fallback.h"
#include "flow_key.h"
#include "forward.h"
#include "maps.h"
#include "parse.h"

/* Global for the same reason as classify_parse: verified once. */
__noinline int tc_parse(struct __sk_buff* skb, struct ramjet_pkt* pkt) {
  if (!skb || !pkt) return RAMJET_STAT_TRUNCATED_ETH;
  return ramjet_parse_frame(RAMJET_SKB_FRAME(skb), pkt);
}

/* Linear bytes TC makes sure of before it gives up on a header as truncated. */
#define RAMJET_TC_HEADER_BYTES 256

/*
 * tc_parse, and when a header seemed cut off only because it lies beyond the
 * skb's linear part (a driver that leaves headers in page fragments), the
 * headers pulled in and parsed again. Not done up front: a GSO skb from a local
 * socket has exactly its headers linear, and pulling payload in costs a copy.
 */
static __always_inline enum ramjet_stat tc_parse_pulled(struct __sk_buff* skb,
                                                        struct ramjet_pkt* pkt) {
  enum ramjet_stat reason = tc_parse(skb, pkt);
  if (reason == RAMJET_STAT_NONE || reason > RAMJET_STAT_BAD_L4_HEADER) return reason;
  __u32 linear = (__u32)(skb->data_end - skb->data);
  __u32 want = skb->len < RAMJET_TC_HEADER_BYTES ? skb->len : RAMJET_TC_HEADER_BYTES;
  if (linear >= want || bpf_skb_pull_data(skb, want)) return reason;
  return tc_parse(skb, pkt);
}

/*
 * Delivers an escalated packet to the engine, or applies the flow's fallback
 * (fallback.h) when the engine cannot take it: the target is draining, it has no
 * listener, the listener's accept queue is full, or bpf_sk_assign refuses it.
 * A connection the engine already has (its own socket) always goes to it.
 * Global (verified once, own stack frame): both ingress programs call it, and
 * tc_classify's classification needs the stack it would take.
 */
__noinline int tc_escalate(struct __sk_buff* skb, __u32 endpoint_id) {
  if (!skb) return TC_ACT_SHOT; /* unreachable: callers pass their context */
  struct ramjet_pkt pkt;
  if (tc_parse(skb, &pkt) != RAMJET_STAT_NONE || pkt.family == RAMJET_FAMILY_NONE ||
      (pkt.proto != IPPROTO_TCP && pkt.proto != IPPROTO_UDP) || !pkt.has_ports) {
    count(RAMJET_STAT_TC_ESCALATE_UNSUPPORTED, skb->len);
    return TC_ACT_SHOT;
  }
  int udp = pkt.proto == IPPROTO_UDP;
  int v6 = pkt.family == RAMJET_FAMILY_IPV6;
  struct bpf_sock_tuple tuple;
  __builtin_memset(&tuple, 0, sizeof(tuple));
  __u32 tuple_len;
  if (!v6) {
    tuple.ipv4.saddr = pkt.saddr[0];
    tuple.ipv4.daddr = pkt.daddr[0];
    tuple.ipv4.sport = pkt.sport;
    tuple.ipv4.dport = pkt.dport;
    tuple_len = sizeof(tuple.ipv4);
  } else {
    __builtin_memcpy(tuple.ipv6.saddr, pkt.saddr, 16);
    __builtin_memcpy(tuple.ipv6.daddr, pkt.daddr, 16);
    tuple.ipv6.sport = pkt.sport;
    tuple.ipv6.dport = pkt.dport;
    tuple_len = sizeof(tuple.ipv6);
  }

  __u32 cause = RAMJET_FALLBACK_CAUSE_NONE;
  int listener = 0;
  struct bpf_sock* sk = NULL;
  /* UDP: every datagram goes to the endpoint's socket, which keys the session by
   * (client, original destination). A session's reply socket (bound to the
   * original destination, connected to the client) is never looked up: it only
   * sends, and takes the ICMP errors about what it sent (docs/udp.md). */
  if (!udp) {
    sk = bpf_skc_lookup_tcp(skb, &tuple, tuple_len, BPF_F_CURRENT_NETNS, 0);
    if (sk) {
      if (sk->state != BPF_TCP_LISTEN) goto assign; /* the engine's own connection */
      bpf_sk_release(sk);
    }
  }
  if (ramjet_engine_draining(endpoint_id)) {
    cause = RAMJET_FALLBACK_CAUSE_DRAINING;
    goto fallback;
  }
  __u32 slot = RAMJET_LISTENER_SLOT(endpoint_id, v6);
  sk = bpf_map_lookup_elem(&listeners, &slot);
  if (!sk) {
    cause = RAMJET_FALLBACK_CAUSE_NO_LISTENER;
    goto fallback;
  }
  cause = udp ? ramjet_udp_socket_cause(sk) : ramjet_listener_cause(sk);
  if (cause != RAMJET_FALLBACK_CAUSE_NONE) {
    bpf_sk_release(sk);
    goto fallback;
  }
  listener = 1;
assign:;
  long err = bpf_sk_assign(skb, sk, 0);
  bpf_sk_release(sk);
  if (err) {
    cause = RAMJET_FALLBACK_CAUSE_ASSIGN_FAILED;
    goto fallback;
  }
  skb->mark = escalate_mark;
  count(RAMJET_STAT_TC_ESCALATE_ASSIGNED, skb->len);
  if (listener && unhealthy_rules) tc_rule_recovered(skb, &pkt);
  return TC_ACT_OK;
fallback:
  return tc_fallback(skb, &pkt, cause);
}

/* ICMP types that carry the head of the packet they answer (RFC 792, RFC 4443). */
#define RAMJET_ICMP_DEST_UNREACH 3
#define RAMJET_ICMP_TIME_EXCEEDED 11
#define RAMJET_ICMP_PARAMETERPROB 12
#define RAMJET_ICMPV6_DEST_UNREACH 1
#define RAMJET_ICMPV6_PARAMPROB 4

/*
 * An ICMP error about a datagram of an escalated UDP flow (the engine's reply,
 * sent from the original destination, answered by the client's kernel with a
 * port unreachable, say) is addressed to the original destination, which is not
 * this host's: forwarded, it would reach a server that never sent the datagram.
 * Marked, the policy route delivers it here, and the stack hands it to the
 * socket that sent the datagram (the session's reply socket, connected to the
 * client). Returns 1 when `pkt` was such an error and is marked.
 * Global (verified once, own stack frame).
 */
__noinline int tc_icmp_error_escalated(struct __sk_buff* skb, const struct ramjet_pkt* pkt) {
  if (!skb || !pkt || !pkt->has_l4) return 0;
  __u8 type;
  if (bpf_skb_load_bytes(skb, pkt->l4_off, &type, 1)) return 0;
  int v6 = pkt->family == RAMJET_FAMILY_IPV6;
  if (!v6 && (pkt->proto != IPPROTO_ICMP ||
              (type != RAMJET_ICMP_DEST_UNREACH && type != RAMJET_ICMP_TIME_EXCEEDED &&
               type != RAMJET_ICMP_PARAMETERPROB)))
    return 0;
  if (v6 && (pkt->proto != NEXTHDR_ICMP || type < RAMJET_ICMPV6_DEST_UNREACH ||
             type > RAMJET_ICMPV6_PARAMPROB))
    return 0;
  /* The quoted packet follows the 8-byte ICMP header: its IP header, then (for
   * UDP) the ports; IPv6 without extension headers. Read straight into the flow
   * key (this frame sits on top of tc_classify_fast's: it must stay small). */
  struct ramjet_flow_key key;
  __builtin_memset(&key, 0, sizeof(key));
  __u32 off = pkt->l4_off + 8;
  __u8 head[2]; /* version/IHL; IPv4 protocol or IPv6 next header */
  if (bpf_skb_load_bytes(skb, off, &head[0], 1) ||
      bpf_skb_load_bytes(skb, off + (v6 ? 6 : 9), &head[1], 1) || head[1] != IPPROTO_UDP)
    return 0;
  if (!v6) {
    __be16 frag;
    if ((head[0] >> 4) != 4 || bpf_skb_load_bytes(skb, off + 6, &frag, 2) ||
        bpf_skb_load_bytes(skb, off + 12, &key.addr_lo[0], 4) ||
        bpf_skb_load_bytes(skb, off + 16, &key.addr_hi[0], 4))
      return 0;
    /* A later fragment quotes no UDP header: what sits where the ports would be is
     * payload, and must not pick a flow. */
    if (bpf_ntohs(frag) & 0x1fff) return 0;
    off += (__u32)(head[0] & 0xf) * 4;
  } else {
    if ((head[0] >> 4) != 6 || bpf_skb_load_bytes(skb, off + 8, key.addr_lo, 16) ||
        bpf_skb_load_bytes(skb, off + 24, key.addr_hi, 16))
      return 0;
    off += 40;
  }
  if (bpf_skb_load_bytes(skb, off, &key.port_lo, 4)) return 0; /* sport, dport */
  /* An error goes back to the quoted packet's source: the original destination the
   * engine replied from. One addressed elsewhere is not about that reply. */
#pragma unroll
  for (int i = 0; i < RAMJET_ADDR_WORDS; i++)
    if (key.addr_lo[i] != pkt->daddr[i]) return 0;
  /* Ordered as ramjet_flow_key_build orders them: the same key both ways. */
  int swap = 0;
#pragma unroll
  for (int i = 0; i < RAMJET_ADDR_WORDS; i++) {
    __u32 a = bpf_ntohl(key.addr_lo[i]), b = bpf_ntohl(key.addr_hi[i]);
    if (a != b) {
      swap = b < a;
      break;
    }
    if (i == RAMJET_ADDR_WORDS - 1) swap = bpf_ntohs(key.port_hi) < bpf_ntohs(key.port_lo);
  }
  if (swap) {
#pragma unroll
    for (int i = 0; i < RAMJET_ADDR_WORDS; i++) {
      __u32 t = key.addr_lo[i];
      key.addr_lo[i] = key.addr_hi[i];
      key.addr_hi[i] = t;
    }
    __u16 t = key.port_lo;
    key.port_lo = key.port_hi;
    key.port_hi = t;
  }
  key.family = pkt->family;
  key.proto = IPPROTO_UDP;
  struct ramjet_flow* flow = bpf_map_lookup_elem(&flows, &key);
  if (!flow || !flow->escalated || flow->verdict != RAMJET_ACTION_ESCALATE ||
      flow->fallback != RAMJET_FALLBACK_NONE)
    return 0;
  skb->mark = escalate_mark;
  count(RAMJET_STAT_TC_ESCALATE_ICMP_ERROR, skb->len);
  return 1;
}

/* Hop limit - 1 as it changes the sum of a CHECKSUM_COMPLETE skb (a NIC's): the
 * IPv4 TTL change is balanced by its header checksum, the IPv6 one is not. */
static __always_inline void tc_hop_limit_csum(struct __sk_buff* skb, const struct ramjet_pkt* pkt) {
  if (pkt->family != RAMJET_FAMILY_IPV6) return;
  __be32 from = bpf_htons((__u16)(pkt->proto << 8 | pkt->ttl));
  __be32 to = bpf_htons((__u16)(pkt->proto << 8 | (pkt->ttl - 1)));
  /* Not CHECKSUM_COMPLETE (veth: PARTIAL or UNNECESSARY): nothing to update. */
  bpf_csum_update(skb, bpf_csum_diff(&from, sizeof(from), &to, sizeof(to), 0));
}

/* TTL - 1 and bpf_redirect_neigh, which resolves the neighbour itself. Returns
 * the TC action; counts TC_FASTPATH_NEIGH or the rewrite's failure. */
static __always_inline int tc_redirect_neigh(struct __sk_buff* skb, const struct ramjet_pkt* pkt,
                                             __u32 ifindex) {
  if (ramjet_ttl_dec((void*)(long)skb->data, (void*)(long)skb->data_end, pkt) != RAMJET_STAT_NONE) {
    count(RAMJET_STAT_TC_FORWARD_REWRITE_FAILED, skb->len);
    return TC_ACT_SHOT;
  }
  tc_hop_limit_csum(skb, pkt);
  count(RAMJET_STAT_TC_FASTPATH_NEIGH, skb->len);
  return (int)bpf_redirect_neigh(ifindex, NULL, 0, 0);
}

/* XDP found the route but no neighbour: forward with bpf_redirect_neigh. Global
 * (own stack frame) for the same reason as tc_escalate. */
__noinline int tc_forward_neigh(struct __sk_buff* skb) {
  if (!skb) return TC_ACT_OK;
  struct ramjet_pkt pkt;
  if (tc_parse(skb, &pkt) != RAMJET_STAT_NONE || pkt.family == RAMJET_FAMILY_NONE) return TC_ACT_OK;
  struct bpf_fib_lookup fib;
  struct ramjet_nexthop hop;
  if (ramjet_nexthop_of(skb, &pkt, skb->ingress_ifindex, NULL, 0, skb->gso_size != 0,
                        BPF_FIB_LOOKUP_SKIP_NEIGH, &fib, &hop) != RAMJET_STAT_NONE)
    return TC_ACT_OK;
  return tc_redirect_neigh(skb, &pkt, hop.ifindex);
}

/*
 * TC: forwards a parsed packet as the skb it is, which keeps its GSO and
 * checksum offload state (the reason the fast path runs here on veth and other
 * virtual devices). A known neighbour: TTL - 1, MACs rewritten, bpf_redirect to
 * the egress device. An unresolved one: bpf_redirect_neigh. Counts the outcome
 * and returns the TC action: the redirect, or TC_ACT_OK with the PASS reason the
 * stack has to handle counted.
 */
static __always_inline int ramjet_forward_tc(struct __sk_buff* skb, const struct ramjet_pkt* pkt,
                                             struct ramjet_flow_nexthop* nh, __u64 now_ns) {
  struct bpf_fib_lookup fib;
  struct ramjet_nexthop hop;
  enum ramjet_stat reason;
  /* An offloaded VLAN tag (not in the data): the egress side is the stack's. */
  if (skb->vlan_present)
    reason = RAMJET_STAT_FASTPATH_VLAN;
  else
    reason = ramjet_nexthop_of(skb, pkt, skb->ingress_ifindex, nh, now_ns, skb->gso_size != 0, 0,
                               &fib, &hop);
  if (reason == RAMJET_STAT_FIB_NO_NEIGH) return tc_redirect_neigh(skb, pkt, hop.ifindex);
  if (reason != RAMJET_STAT_NONE) {
    count(reason, pkt->len);
    return TC_ACT_OK;
  }
  reason = ramjet_rewrite((void*)(long)skb->data, (void*)(long)skb->data_end, pkt, &hop);
  if (reason != RAMJET_STAT_NONE) {
    count(RAMJET_STAT_TC_FORWARD_REWRITE_FAILED, pkt->len);
    return TC_ACT_SHOT;
  }
  tc_hop_limit_csum(skb, pkt);
  count(RAMJET_STAT_FASTPATH_REDIRECT, pkt->len);
  return (int)bpf_redirect(hop.ifindex, 0);
}

/* What TC ingress does with a packet XDP passed up with `verdict` attached (the
 * BPF tests call it directly: a test run cannot carry XDP metadata). */
static __always_inline int ramjet_tc_act(struct __sk_buff* skb, __u8 verdict, __u32 endpoint_id) {
  if (verdict == RAMJET_ACTION_ESCALATE) return tc_escalate(skb, endpoint_id);
  if (verdict == RAMJET_ACTION_FASTPATH) return tc_forward_neigh(skb);
  return TC_ACT_OK;
}

static __always_inline int ramjet_tc_ingress(struct __sk_buff* skb) {
  struct ramjet_xdp_meta* meta = (void*)(long)skb->data_meta;
  if ((void*)(meta + 1) > (void*)(long)skb->data) return TC_ACT_OK;
  if (meta->magic != RAMJET_META_MAGIC) return TC_ACT_OK;
  return ramjet_tc_act(skb, meta->verdict, meta->endpoint_id);
}

/* tc_classify_fast's answer when the packet is to be escalated (not a TC action). */
#define RAMJET_TC_ESCALATE 0x100

/*
 * The fast path in tcx ingress (datapath.fastpath_hook tc): the same parser and
 * ramjet_decide() as XDP, carried out on the skb. Returns the TC action, or
 * RAMJET_TC_ESCALATE with *endpoint_id set. Global (verified once, own stack
 * frame): with the escalation delivery inlined beside it, the program's stack
 * would not fit.
 */
__noinline int tc_classify_fast(struct __sk_buff* skb, __u32* endpoint_id) {
  if (!skb || !endpoint_id) return TC_ACT_OK; /* unreachable: the caller passes its own */
  struct ramjet_pkt pkt;
  enum ramjet_stat reason = RAMJET_STAT_NONE;
  if (!ramjet_parse_fast(RAMJET_SKB_FRAME(skb), &pkt)) reason = tc_parse_pulled(skb, &pkt);
  /* The stack took the outer VLAN tag out of the data before TC (skb_vlan_untag;
   * a frame whose tag is cut off never gets here): it counts towards the limit. */
  if (reason == RAMJET_STAT_NONE && skb->vlan_present && ++pkt.vlan_depth > RAMJET_MAX_VLAN_TAGS)
    reason = RAMJET_STAT_VLAN_TOO_DEEP;
  if (reason != RAMJET_STAT_NONE) {
    hook_drop(skb, RAMJET_HOOK_TC, &pkt, reason);
    return TC_ACT_SHOT;
  }
  if (pkt.family == RAMJET_FAMILY_NONE) {
    count(RAMJET_STAT_PASS_NOT_IP, pkt.len);
    return TC_ACT_OK;
  }

  if ((pkt.proto == IPPROTO_ICMP || pkt.proto == NEXTHDR_ICMP) &&
      tc_icmp_error_escalated(skb, &pkt))
    return TC_ACT_OK;

  struct ramjet_decision d;
  ramjet_decide(&pkt, skb->ingress_ifindex, &d);
  switch (d.action) {
    case RAMJET_ACTION_DROP:
      hook_drop(skb, RAMJET_HOOK_TC, &pkt, d.reason);
      return TC_ACT_SHOT;
    case RAMJET_ACTION_ESCALATE:
      count(RAMJET_STAT_ESCALATE, pkt.len);
      *endpoint_id = d.flow ? d.flow->endpoint_id : 0;
      return RAMJET_TC_ESCALATE;
    case RAMJET_ACTION_FASTPATH:
      return ramjet_forward_tc(skb, &pkt, decision_nexthop(&d), d.now_ns);
    default:
      count(d.reason, pkt.len);
      return TC_ACT_OK;
  }
}

/* Attached instead of ramjet_tc_ingress on interfaces without the XDP program:
 * escalated packets are delivered here at once. */
static __always_inline int ramjet_tc_classify(struct __sk_buff* skb) {
  __u32 endpoint_id = 0;
  int action = tc_classify_fast(skb, &endpoint_id);
  return action == RAMJET_TC_ESCALATE ? tc_escalate(skb, endpoint_id) : action;
}

static __always_inline int ramjet_tc_egress(struct __sk_buff* skb) {
  if (!skb->sk) return TC_ACT_OK; /* forwarded: XDP accounted it on the way in */
  struct ramjet_pkt pkt;
  if (tc_parse(skb, &pkt) != RAMJET_STAT_NONE || pkt.family == RAMJET_FAMILY_NONE || pkt.fragment)
    return TC_ACT_OK;
  struct ramjet_flow_key key;
  __u8 side = ramjet_flow_key_build(&pkt, &key);
  __u64 now_ns = bpf_ktime_get_ns();
  struct ramjet_flow* flow = bpf_map_lookup_elem(&flows, &key);
  if (flow) {
    flow_account(flow, side, skb->len, pkt.tcp_flags, now_ns);
    return TC_ACT_OK;
  }
  /* Only a connection's first packet opens a flow (a stray ACK or RST does not). */
  if (pkt.proto == IPPROTO_TCP &&
      (pkt.tcp_flags & (RAMJET_TCP_SYN | RAMJET_TCP_ACK)) != RAMJET_TCP_SYN)
    return TC_ACT_OK;
  struct ramjet_flow fresh;
  flow_init(&fresh, side, skb->ifindex, now_ns);
  fresh.verdict = RAMJET_ACTION_PASS;
  fresh.reason = RAMJET_STAT_PASS_LOCAL;
  fresh.rule_index = RAMJET_RULE_INDEX_NONE;
  fresh.dir[RAMJET_DIR_ORIGINAL].packets = 1;
  fresh.dir[RAMJET_DIR_ORIGINAL].bytes = skb->len;
  fresh.tcp_flags[RAMJET_DIR_ORIGINAL] = pkt.tcp_flags;
  if (bpf_map_update_elem(&flows, &key, &fresh, BPF_NOEXIST) == 0) {
    count(RAMJET_STAT_TC_LOCAL_FLOW, 0);
    if (emit_flow_events)
      emit_flow_event(skb->ifindex, &key, &fresh, RAMJET_EVENT_FLOW_NEW, now_ns);
  }
  return TC_ACT_OK;
}

#endif /* RAMJET_LIB_TC_H */
