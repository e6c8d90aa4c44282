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

#include "csum.h"
#include "defs.h"
#include "fallback.h"
#include "flow_key.h"
#include "maps.h"
#include "parse.h"

/* Global for the same reason as classify_parse: verified once. */
__noinline int tc_parse(struct __sk_buff* skb, struct ramjet_pkt* pkt) {
  if (!skb || !pkt) return RAMJET_STAT_TRUNCATED_ETH;
  return ramjet_parse_frame((void*)(long)skb->data, (void*)(long)skb->data_end, pkt);
}

/*
 * Delivers an escalated packet to the engine, or applies the flow's fallback
 * (fallback.h) when the engine cannot take it: the target is draining, it has no
 * listener, the listener's accept queue is full, or bpf_sk_assign refuses it.
 * A connection the engine already has (its own socket) always goes to it.
 */
static __always_inline int tc_escalate(struct __sk_buff* skb, __u32 endpoint_id) {
  struct ramjet_pkt pkt;
  if (tc_parse(skb, &pkt) != RAMJET_STAT_NONE || pkt.family == RAMJET_FAMILY_NONE ||
      pkt.proto != IPPROTO_TCP || !pkt.has_ports) {
    count(RAMJET_STAT_TC_ESCALATE_UNSUPPORTED, skb->len);
    return TC_ACT_SHOT;
  }
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
  struct bpf_sock* sk = bpf_skc_lookup_tcp(skb, &tuple, tuple_len, BPF_F_CURRENT_NETNS, 0);
  if (sk) {
    if (sk->state != BPF_TCP_LISTEN) goto assign; /* the engine's own connection */
    bpf_sk_release(sk);
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
  cause = ramjet_listener_cause(sk);
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

static __always_inline int tc_forward_neigh(struct __sk_buff* skb) {
  struct ramjet_pkt pkt;
  if (tc_parse(skb, &pkt) != RAMJET_STAT_NONE || pkt.family == RAMJET_FAMILY_NONE ||
      pkt.vlan_depth || pkt.ttl <= 1)
    return TC_ACT_OK;
  struct bpf_fib_lookup fib;
  __builtin_memset(&fib, 0, sizeof(fib));
  fib.l4_protocol = pkt.proto;
  fib.sport = pkt.sport;
  fib.dport = pkt.dport;
  fib.tot_len = pkt.l3_len;
  fib.ifindex = skb->ingress_ifindex;
  if (pkt.family == RAMJET_FAMILY_IPV4) {
    fib.family = AF_INET;
    fib.tos = pkt.tos;
    fib.ipv4_src = pkt.saddr[0];
    fib.ipv4_dst = pkt.daddr[0];
  } else {
    fib.family = AF_INET6;
    fib.flowinfo = pkt.flowinfo;
    __builtin_memcpy(fib.ipv6_src, pkt.saddr, 16);
    __builtin_memcpy(fib.ipv6_dst, pkt.daddr, 16);
  }
  if (bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_SKIP_NEIGH) !=
      BPF_FIB_LKUP_RET_SUCCESS)
    return TC_ACT_OK;

  __u32 off = pkt.l3_off;
  if (pkt.family == RAMJET_FAMILY_IPV4) {
    __u16 old_word = bpf_htons((__u16)(pkt.ttl << 8 | pkt.proto));
    __u16 new_word = bpf_htons((__u16)((pkt.ttl - 1) << 8 | pkt.proto));
    __u8 ttl = pkt.ttl - 1;
    if (bpf_l3_csum_replace(skb, off + 10, old_word, new_word, 2) ||
        bpf_skb_store_bytes(skb, off + 8, &ttl, 1, 0)) {
      count(RAMJET_STAT_TC_FORWARD_REWRITE_FAILED, skb->len);
      return TC_ACT_SHOT;
    }
  } else {
    __u8 hop = pkt.ttl - 1;
    if (bpf_skb_store_bytes(skb, off + 7, &hop, 1, 0)) {
      count(RAMJET_STAT_TC_FORWARD_REWRITE_FAILED, skb->len);
      return TC_ACT_SHOT;
    }
  }
  count(RAMJET_STAT_TC_FASTPATH_NEIGH, skb->len);
  return (int)bpf_redirect_neigh(fib.ifindex, NULL, 0, 0);
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

static __always_inline int ramjet_tc_egress(struct __sk_buff* skb) {
  if (!skb->sk) return TC_ACT_OK; /* forwarded: XDP accounted it on the way in */
  struct ramjet_pkt pkt;
  if (tc_parse(skb, &pkt) != RAMJET_STAT_NONE || pkt.family == RAMJET_FAMILY_NONE ||
      pkt.fragment)
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
  if (pkt.proto == IPPROTO_TCP && (pkt.tcp_flags & (RAMJET_TCP_SYN | RAMJET_TCP_ACK)) != RAMJET_TCP_SYN)
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
    if (emit_flow_events) emit_flow_event(skb->ifindex, &key, &fresh, RAMJET_EVENT_FLOW_NEW, now_ns);
  }
  return TC_ACT_OK;
}

#endif /* RAMJET_LIB_TC_H */
