/* SPDX-License-Identifier: Apache-2.0 */
/*
 * XDP classification, the first stage of the datapath:
 *
 *   parse -> denylist -> fragments -> flow table (cached verdict) or
 *   hook-issued class -> policy lookup -> token bucket (RATELIMIT) -> verdict:
 *     DROP      XDP_DROP, reason counted (and sampled to the ring buffer)
 *     PASS      XDP_PASS
 *     ESCALATE  XDP_PASS with ramjet_xdp_meta; TC ingress delivers it to the engine
 *     FASTPATH  bpf_fib_lookup + TTL-1 + MAC rewrite + bpf_redirect, or XDP_PASS
 *               with the reason the stack has to handle it (with metadata asking TC
 *               to redirect_neigh when only the neighbour was missing)
 *
 * Every packet increments exactly one verdict-class stat (see ramjet/abi/stats.h).
 * Needs maps.h (included by the program file before this header).
 */
#ifndef RAMJET_LIB_CLASSIFY_H
#define RAMJET_LIB_CLASSIFY_H

#include "defs.h"
#include "flow_key.h"
#include "forward.h"
#include "maps.h"
#include "parse.h"
#include "policy.h"
#include "ratelimit.h"

static __always_inline void sample_drop(struct xdp_md* ctx, const struct ramjet_pkt* pkt,
                                        enum ramjet_stat reason) {
  if (!drop_sample_rate || bpf_get_prandom_u32() % drop_sample_rate) return;
  struct ramjet_event_drop* ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
  if (!ev) {
    count(RAMJET_STAT_EVENT_LOST, 0);
    return;
  }
  event_header(&ev->hdr, ctx->ingress_ifindex, RAMJET_EVENT_DROP_SAMPLE, reason, flow_clock_ns());
  __u32 cap = pkt->len < RAMJET_DROP_SAMPLE_BYTES ? pkt->len : RAMJET_DROP_SAMPLE_BYTES;
  ev->packet_len = pkt->len;
  ev->capture_len = 0;
  if (cap > 0 && cap <= RAMJET_DROP_SAMPLE_BYTES && bpf_xdp_load_bytes(ctx, 0, ev->data, cap) == 0)
    ev->capture_len = cap;
  bpf_ringbuf_submit(ev, 0);
}

static __always_inline int verdict_drop(struct xdp_md* ctx, const struct ramjet_pkt* pkt,
                                        enum ramjet_stat reason) {
  count(reason, pkt->len);
  sample_drop(ctx, pkt, reason);
  return XDP_DROP;
}

static __always_inline int verdict_pass(const struct ramjet_pkt* pkt, enum ramjet_stat reason) {
  count(reason, pkt->len);
  return XDP_PASS;
}

/* Attaches a note for TC ingress; the caller passes the packet up. Returns 0, or
 * -1 when the metadata cannot be added (a driver without headroom for it): TC
 * would then see no record, so an escalated packet must not pass. */
static __always_inline int pass_to_tc(struct xdp_md* ctx, __u8 verdict, __u8 reason,
                                      __u32 endpoint_id, __u64 flow_id) {
  if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct ramjet_xdp_meta))) return -1;
  struct ramjet_xdp_meta* meta = (void*)(long)ctx->data_meta;
  if ((void*)(meta + 1) > (void*)(long)ctx->data) return -1;
  meta->magic = RAMJET_META_MAGIC;
  meta->endpoint_id = endpoint_id;
  meta->flow_id = flow_id;
  meta->verdict = verdict;
  meta->reason = reason;
  __builtin_memset(meta->pad, 0, sizeof(meta->pad));
  return 0;
}

static __always_inline void flow_set_verdict(struct ramjet_flow* flow, __u8 action,
                                             enum ramjet_stat reason,
                                             const struct ramjet_policy_match* match, __u64 gen) {
  flow->verdict = action;
  flow->reason = reason;
  flow->policy_gen = gen;
  flow->rule_index = match->index;
  flow->rule_id = match->rule ? match->rule->rule_id : 0;
  flow->endpoint_id = match->rule ? match->rule->endpoint_id : 0;
}

/* Creates the flow, or returns the entry a racing CPU created first. */
static __always_inline struct ramjet_flow* flow_create(struct xdp_md* ctx,
                                                       const struct ramjet_flow_key* key, __u8 side,
                                                       __u8 action, enum ramjet_stat reason,
                                                       const struct ramjet_policy_match* match,
                                                       __u64 gen, __u64 now_ns) {
  struct ramjet_flow fresh;
  flow_init(&fresh, side, ctx->ingress_ifindex, now_ns);
  fresh.escalated = action == RAMJET_ACTION_ESCALATE;
  flow_set_verdict(&fresh, action, reason, match, gen);

  if (bpf_map_update_elem(&flows, key, &fresh, BPF_NOEXIST) == 0) {
    count(RAMJET_STAT_FLOW_NEW, 0);
    if (emit_flow_events)
      emit_flow_event(ctx->ingress_ifindex, key, &fresh, RAMJET_EVENT_FLOW_NEW, now_ns);
    /* Stamped precisely (once per escalated flow): the engine's hook trace is
     * lined up against it to measure escalation latency. */
    if (fresh.escalated)
      emit_flow_event(ctx->ingress_ifindex, key, &fresh, RAMJET_EVENT_ESCALATE, bpf_ktime_get_ns());
  }
  struct ramjet_flow* flow = bpf_map_lookup_elem(&flows, key);
  if (!flow) count(RAMJET_STAT_FLOW_UPDATE_FAILED, 0);
  return flow;
}

static __always_inline enum ramjet_stat reason_for(__u8 action, int have_rule) {
  switch (action) {
    case RAMJET_ACTION_DROP:
      return have_rule ? RAMJET_STAT_RULE_DROP : RAMJET_STAT_DEFAULT_DROP;
    case RAMJET_ACTION_ESCALATE:
      return RAMJET_STAT_ESCALATE;
    case RAMJET_ACTION_FASTPATH:
      return RAMJET_STAT_FASTPATH_REDIRECT;
    default:
      return have_rule ? RAMJET_STAT_PASS_RULE : RAMJET_STAT_PASS_DEFAULT;
  }
}

/* A verdict a hook issued for this (src, dst, proto, dst port) class, if live. */
static __always_inline int class_override(const struct ramjet_pkt* pkt, __u8* action) {
  struct ramjet_class_key key;
  __builtin_memset(&key, 0, sizeof(key));
  __builtin_memcpy(key.src, pkt->saddr, sizeof(key.src));
  __builtin_memcpy(key.dst, pkt->daddr, sizeof(key.dst));
  key.dst_port = pkt->dport;
  key.family = pkt->family;
  key.proto = pkt->proto;
  struct ramjet_class_entry* entry = bpf_map_lookup_elem(&classes, &key);
  if (!entry) return 0;
  if (entry->expires_ns && flow_clock_ns() >= entry->expires_ns) return 0;
  *action = entry->action;
  return 1;
}

/*
 * Global, not inlined, on purpose: the verifier checks a global function once,
 * against its BTF signature, instead of walking the rest of the program once per
 * parse path (VLAN depth x IPv6 extension chains x L4). ramjet_pkt holds only
 * scalars, so nothing packet-typed crosses the boundary.
 */
__noinline int classify_parse(struct xdp_md* ctx, struct ramjet_pkt* pkt) {
  if (!pkt) return RAMJET_STAT_TRUNCATED_ETH; /* unreachable: callers pass stack memory */
  return ramjet_parse(ctx, pkt);
}

static __always_inline int ramjet_xdp_classify(struct xdp_md* ctx) {
  struct ramjet_pkt pkt;
  enum ramjet_stat reason = RAMJET_STAT_NONE;
  if (!ramjet_parse_fast(ctx, &pkt)) reason = classify_parse(ctx, &pkt);
  if (reason != RAMJET_STAT_NONE) return verdict_drop(ctx, &pkt, reason);
  if (pkt.family == RAMJET_FAMILY_NONE) return verdict_pass(&pkt, RAMJET_STAT_PASS_NOT_IP);

  if (deny_count && ramjet_denylisted(&denylist, &pkt))
    return verdict_drop(ctx, &pkt, RAMJET_STAT_DENYLIST);
  if (pkt.fragment)
    return pass_fragments ? verdict_pass(&pkt, RAMJET_STAT_PASS_FRAGMENT)
                          : verdict_drop(ctx, &pkt, RAMJET_STAT_FRAGMENT);

  /* Multicast, broadcast and link-local traffic belongs to the hosts on the
   * link (neighbour discovery, MLD, DHCP): never forwarded, never a flow. */
  if (ramjet_dst_host_scope(&pkt)) return verdict_pass(&pkt, RAMJET_STAT_PASS_HOST_SCOPE);

  struct ramjet_flow_key key;
  __u8 side = ramjet_flow_key_build(&pkt, &key);
  __u64 gen = policy_generation;
  struct ramjet_flow* flow = bpf_map_lookup_elem(&flows, &key);
  __u8 action;
  __u32 rule_index;
  __u64 now_ns = 0; /* read only once a flow is involved */

  /* Local connections (created by TC egress) are not subject to policy. */
  if (flow && (flow->policy_gen == gen || flow->reason == RAMJET_STAT_PASS_LOCAL)) {
    now_ns = flow_clock_ns();
    count(RAMJET_STAT_FLOW_HIT, 0);
    action = flow->verdict;
    reason = flow->reason;
    rule_index = flow->rule_index;
  } else {
    struct ramjet_policy_match match = {.rule = NULL, .index = RAMJET_RULE_INDEX_NONE};
    int overridden = class_count && class_override(&pkt, &action);
    if (overridden) {
      count(RAMJET_STAT_CLASS_OVERRIDE, 0);
      reason = reason_for(action, 1);
    } else {
      if (rule_count)
        match = ramjet_policy_lookup(&src_prefixes, &dst_prefixes, &rule_filters, &rules, &pkt,
                                     ctx->ingress_ifindex);
      action = match.rule ? match.rule->action : default_action;
      reason = reason_for(action, match.rule != NULL);
    }
    rule_index = match.index;
    if (flow) {
      /* Policy changed under a live flow: re-evaluated verdict replaces the cache. */
      now_ns = flow_clock_ns();
      if (action == RAMJET_ACTION_ESCALATE && flow->fallback != RAMJET_FALLBACK_NONE) {
        /* The flow took its engine-unavailable fallback (fallback.h): it keeps it. */
        flow->policy_gen = gen;
        action = flow->verdict;
        reason = flow->reason;
        rule_index = flow->rule_index;
      } else if (action == RAMJET_ACTION_ESCALATE && !flow->escalated) {
        flow->escalated = 1;
        flow_set_verdict(flow, action, reason, &match, gen);
        emit_flow_event(ctx->ingress_ifindex, &key, flow, RAMJET_EVENT_ESCALATE,
                        bpf_ktime_get_ns());
      } else {
        flow_set_verdict(flow, action, reason, &match, gen);
      }
    } else if (action == RAMJET_ACTION_DROP) {
      /* No flow state for traffic we drop: a flood must not churn the table. */
      return verdict_drop(ctx, &pkt, reason);
    } else if (!match.rule && !overridden && action == RAMJET_ACTION_PASS) {
      return verdict_pass(&pkt, reason); /* not ours */
    } else {
      now_ns = flow_clock_ns();
      flow = flow_create(ctx, &key, side, action, reason, &match, gen, now_ns);
    }
  }

  if (flow) flow_account(flow, side, pkt.len, pkt.tcp_flags, now_ns);

  switch (action) {
    case RAMJET_ACTION_DROP:
      return verdict_drop(ctx, &pkt, reason);
    case RAMJET_ACTION_RATELIMIT: {
      struct ramjet_rule* rule = bpf_map_lookup_elem(&rules, &rule_index);
      if (!rule || !ramjet_ratelimit_take(&ratelimit, rule_index, &pkt, rule->rate_pps,
                                          rule->rate_burst, bpf_ktime_get_ns()))
        return verdict_drop(ctx, &pkt, RAMJET_STAT_RATE_LIMITED);
      return verdict_pass(&pkt, RAMJET_STAT_PASS_RULE);
    }
    case RAMJET_ACTION_ESCALATE:
      /* Without its note TC would not deliver it: the stack would forward the
       * flow around the engine. */
      if (pass_to_tc(ctx, RAMJET_ACTION_ESCALATE, RAMJET_STAT_ESCALATE,
                     flow ? flow->endpoint_id : 0, flow ? flow->flow_id : 0))
        return verdict_drop(ctx, &pkt, RAMJET_STAT_ESCALATE_NO_META);
      count(RAMJET_STAT_ESCALATE, pkt.len);
      return XDP_PASS;
    case RAMJET_ACTION_FASTPATH: {
      int xdp_action;
      struct ramjet_flow_nexthop* nh = flow ? &flow->nexthop[(side ^ flow->origin_side) & 1] : NULL;
      reason = ramjet_forward(ctx, &pkt, nh, now_ns, &xdp_action);
      count(reason, pkt.len);
      /* Without the note the stack resolves the neighbour and forwards it. */
      if (reason == RAMJET_STAT_FIB_NO_NEIGH)
        pass_to_tc(ctx, RAMJET_ACTION_FASTPATH, reason, 0, flow ? flow->flow_id : 0);
      return xdp_action;
    }
    default:
      return verdict_pass(&pkt, reason);
  }
}

#endif /* RAMJET_LIB_CLASSIFY_H */
