/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What TC ingress does with an escalated packet the engine cannot take (the
 * contract is in ramjet/abi/fallback.h): find the cause, apply the flow's
 * fallback, record it in the flow entry the first time, count it per rule, and
 * emit an event when a rule's health changes.
 * Needs maps.h (included by the program file before this header).
 */
#ifndef RAMJET_LIB_FALLBACK_H
#define RAMJET_LIB_FALLBACK_H

#include "defs.h"
#include "flow_key.h"
#include "maps.h"
#include "parse.h"
#include "reject.h"

/* Why a listener from `listeners` cannot take a new connection now, or NONE.
 * The accept queue check is the one the stack makes on a SYN
 * (sk_acceptq_is_full): an assigned SYN it fails is dropped without a trace.
 * In a reuseport group the stack may pick another member than the one in the
 * map; the registered member stands for the group. */
static __always_inline __u8 ramjet_listener_cause(struct bpf_sock* sk) {
  if (sk->state != BPF_TCP_LISTEN) return RAMJET_FALLBACK_CAUSE_NO_LISTENER;
  struct tcp_sock* tp = bpf_skc_to_tcp_sock(sk);
  if (tp &&
      tp->inet_conn.icsk_inet.sk.sk_ack_backlog > tp->inet_conn.icsk_inet.sk.sk_max_ack_backlog)
    return RAMJET_FALLBACK_CAUSE_ACCEPT_QUEUE_FULL;
  return RAMJET_FALLBACK_CAUSE_NONE;
}

/* Why the udp endpoint's socket from `listeners` cannot take a datagram now, or
 * NONE. A full receive buffer is not a cause: the kernel drops the datagram and
 * counts it (UDP_MIB_RCVBUFERRORS), as it would for any UDP socket. */
static __always_inline __u8 ramjet_udp_socket_cause(struct bpf_sock* sk) {
  if (sk->protocol != IPPROTO_UDP) return RAMJET_FALLBACK_CAUSE_NO_LISTENER;
  return RAMJET_FALLBACK_CAUSE_NONE;
}

static __always_inline int ramjet_engine_draining(__u32 endpoint_id) {
  __u32* state = bpf_map_lookup_elem(&engine_state, &endpoint_id);
  return state && (*state & RAMJET_ENGINE_DRAINING);
}

/* The escalate rule's fallback, while the flow's rule still holds its slot. */
static __always_inline __u8 ramjet_fallback_mode_of(const struct ramjet_flow* flow) {
  if (flow && flow->rule_index != RAMJET_RULE_INDEX_NONE) {
    __u32 index = flow->rule_index;
    struct ramjet_rule* rule = bpf_map_lookup_elem(&rules, &index);
    if (rule && rule->rule_id == flow->rule_id && rule->fallback != RAMJET_FALLBACK_NONE)
      return rule->fallback;
  }
  return default_fallback;
}

static __always_inline void emit_fallback_event(__u32 ifindex, const struct ramjet_flow_key* key,
                                                const struct ramjet_flow* flow, __u16 type,
                                                __u16 reason) {
  struct ramjet_event_fallback* ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
  if (!ev) {
    count(RAMJET_STAT_EVENT_LOST, 0);
    return;
  }
  event_header(&ev->hdr, ifindex, type, reason, flow_clock_ns());
  __builtin_memcpy(&ev->key, key, sizeof(*key));
  ev->flow_id = flow->flow_id;
  ev->rule_id = flow->rule_id;
  ev->endpoint_id = flow->endpoint_id;
  ev->mode = type == RAMJET_EVENT_FALLBACK ? flow->fallback : RAMJET_FALLBACK_NONE;
  ev->cause = type == RAMJET_EVENT_FALLBACK ? flow->fallback_cause : RAMJET_FALLBACK_CAUSE_NONE;
  ev->origin_side = flow->origin_side;
  __builtin_memset(ev->pad, 0, sizeof(ev->pad));
  bpf_ringbuf_submit(ev, 0);
}

/* Inserted for a rule's first fallback (a map value can be an update's source). */
static const struct ramjet_fallback_count zero_fallback_count;
static const struct ramjet_rule_health healthy_rule;

/* Counts the flow's fallback for its rule; the rule's first after being healthy
 * emits RAMJET_EVENT_FALLBACK. */
static __always_inline void fallback_account(__u32 ifindex, const struct ramjet_flow_key* key,
                                             const struct ramjet_flow* flow, __u16 reason) {
  __u32 rule_id = flow->rule_id;
  struct ramjet_fallback_count* c = bpf_map_lookup_elem(&fallback_counts, &rule_id);
  if (!c) {
    bpf_map_update_elem(&fallback_counts, &rule_id, &zero_fallback_count, BPF_NOEXIST);
    c = bpf_map_lookup_elem(&fallback_counts, &rule_id);
  }
  __u32 mode = flow->fallback, cause = flow->fallback_cause;
  if (c && mode < RAMJET_FALLBACK__COUNT && cause < RAMJET_FALLBACK_CAUSE__COUNT)
    c->flows[mode][cause]++;

  struct ramjet_rule_health* h = bpf_map_lookup_elem(&rule_health, &rule_id);
  if (!h) {
    bpf_map_update_elem(&rule_health, &rule_id, &healthy_rule, BPF_NOEXIST);
    h = bpf_map_lookup_elem(&rule_health, &rule_id);
  }
  if (h && __sync_val_compare_and_swap(&h->falling_back, 0, 1) == 0) {
    __sync_fetch_and_add(&unhealthy_rules, 1);
    emit_fallback_event(ifindex, key, flow, RAMJET_EVENT_FALLBACK, reason);
  }
}

/* Global (verified once): the engine took a new flow of a rule that was falling
 * back; called only while unhealthy_rules is non-zero. */
__noinline int tc_rule_recovered(struct __sk_buff* skb, struct ramjet_pkt* pkt) {
  if (!skb || !pkt) return 0;
  struct ramjet_flow_key key;
  ramjet_flow_key_build(pkt, &key);
  struct ramjet_flow* flow = bpf_map_lookup_elem(&flows, &key);
  if (!flow) return 0;
  __u32 rule_id = flow->rule_id;
  struct ramjet_rule_health* h = bpf_map_lookup_elem(&rule_health, &rule_id);
  if (!h || __sync_val_compare_and_swap(&h->falling_back, 1, 0) != 1) return 0;
  __sync_fetch_and_sub(&unhealthy_rules, 1);
  emit_fallback_event(skb->ifindex, &key, flow, RAMJET_EVENT_RECOVERED,
                      RAMJET_STAT_TC_ESCALATE_ASSIGNED);
  return 1;
}

/*
 * Global (verified once): applies the fallback to a packet the engine cannot
 * take for `cause`. The flow entry keeps the first decision: later packets of a
 * pass or drop flow are handled by XDP from the entry's verdict, a reject flow's
 * come back here and are answered again.
 */
__noinline int tc_fallback(struct __sk_buff* skb, struct ramjet_pkt* pkt, __u32 cause) {
  if (!skb || !pkt) return TC_ACT_SHOT; /* unreachable: callers pass their own */
  struct ramjet_flow_key key;
  __u8 side = ramjet_flow_key_build(pkt, &key);
  struct ramjet_flow* flow = bpf_map_lookup_elem(&flows, &key);
  __u8 mode = flow ? flow->fallback : RAMJET_FALLBACK_NONE;
  if (mode == RAMJET_FALLBACK_NONE) {
    mode = ramjet_fallback_mode_of(flow);
    /* UDP has no RST to answer with, and no ICMP answer is built here yet: reject
     * drops (the client's resolver times out as for a lost datagram). */
    if (mode == RAMJET_FALLBACK_REJECT && pkt->proto != IPPROTO_TCP) mode = RAMJET_FALLBACK_DROP;
    if (flow) {
      __u16 reason = RAMJET_STAT_TC_FALLBACK_REJECT;
      flow->fallback = mode;
      flow->fallback_cause = (__u8)cause;
      if (mode == RAMJET_FALLBACK_PASS) {
        flow->verdict =
            default_action == RAMJET_ACTION_FASTPATH ? RAMJET_ACTION_FASTPATH : RAMJET_ACTION_PASS;
        flow->reason = RAMJET_STAT_FALLBACK_PASS;
        reason = RAMJET_STAT_TC_FALLBACK_PASS;
      } else if (mode == RAMJET_FALLBACK_DROP) {
        flow->verdict = RAMJET_ACTION_DROP;
        flow->reason = RAMJET_STAT_FALLBACK_DROP;
        reason = RAMJET_STAT_TC_FALLBACK_DROP;
      } else {
        flow->reason = RAMJET_STAT_TC_FALLBACK_REJECT; /* stays ESCALATE: TC answers */
      }
      fallback_account(skb->ifindex, &key, flow, reason);
    }
  }
  if (mode == RAMJET_FALLBACK_PASS) {
    count(RAMJET_STAT_TC_FALLBACK_PASS, skb->len);
    return TC_ACT_OK; /* no mark: the stack routes it to its destination */
  }
  if (mode == RAMJET_FALLBACK_DROP) {
    count(RAMJET_STAT_TC_FALLBACK_DROP, skb->len);
    return TC_ACT_SHOT;
  }
  __u32 len = skb->len;
  int built = ramjet_tcp_rst(skb, pkt);
  if (built == RAMJET_REJECT_FAILED) {
    count(RAMJET_STAT_TC_REJECT_FAILED, len);
    return TC_ACT_SHOT;
  }
  count(RAMJET_STAT_TC_FALLBACK_REJECT, len);
  if (built == RAMJET_REJECT_NOTHING) return TC_ACT_SHOT;
  /* The answer never passes XDP: record it, so the sweeper expires the flow as a
   * closed one (tcp_closed_timeout). A later SYN on the same ports still finds the
   * engine if it is back: TC checks it before every fallback. */
  if (flow) flow->tcp_flags[(side ^ flow->origin_side ^ 1) & 1] |= RAMJET_TCP_RST;
  return (int)bpf_redirect(skb->ifindex, 0);
}

#endif /* RAMJET_LIB_FALLBACK_H */
