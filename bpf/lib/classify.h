/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Classification, the datapath's first stage, shared by both fast-path hooks
 * (XDP on physical NICs, tcx ingress on veth and other virtual devices):
 *
 *   parse -> denylist -> fragments -> flow table (cached verdict) or
 *   hook-issued class -> policy lookup -> token bucket (RATELIMIT) -> verdict:
 *     DROP      with the reason counted (and sampled to the ring buffer)
 *     PASS      to the stack
 *     ESCALATE  to the engine (XDP: passed up with ramjet_xdp_meta for TC
 *               ingress; TC: delivered at once)
 *     FASTPATH  forwarded in the kernel (forward.h), or passed up with the
 *               reason the stack has to handle it
 *
 * ramjet_decide() is the hook-independent part: it works on a parsed packet and
 * the ingress ifindex only, and owns the flow table, policy and rate limits. The
 * hooks (ramjet_xdp_classify here, ramjet_tc_classify in tc.h) parse, call it,
 * and carry out its verdict in their own terms.
 *
 * Every packet a hook classifies increments exactly one verdict-class stat (see
 * ramjet/abi/stats.h). Needs maps.h (included by the program file first).
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

/* A drop-sample record for the packet (the hook copies the frame's first
 * `*cap` bytes into ev->data and submits it), or NULL when this drop is not
 * sampled or the ring buffer is full. */
static __always_inline struct ramjet_event_drop* drop_sample_begin(__u32 ifindex,
                                                                   const struct ramjet_pkt* pkt,
                                                                   enum ramjet_stat reason,
                                                                   __u32* cap) {
  if (!drop_sample_rate || bpf_get_prandom_u32() % drop_sample_rate) return NULL;
  struct ramjet_event_drop* ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
  if (!ev) {
    count(RAMJET_STAT_EVENT_LOST, 0);
    return NULL;
  }
  event_header(&ev->hdr, ifindex, RAMJET_EVENT_DROP_SAMPLE, reason, flow_clock_ns());
  *cap = pkt->len < RAMJET_DROP_SAMPLE_BYTES ? pkt->len : RAMJET_DROP_SAMPLE_BYTES;
  ev->packet_len = pkt->len;
  ev->capture_len = 0;
  return ev;
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

/* Creates the flow (`origin_side`: the key side of its client), or returns the
 * entry a racing CPU created first. */
static __always_inline struct ramjet_flow* flow_create(__u32 ifindex,
                                                       const struct ramjet_flow_key* key,
                                                       __u8 origin_side,
                                                       __u8 action, enum ramjet_stat reason,
                                                       const struct ramjet_policy_match* match,
                                                       __u64 gen, __u64 now_ns) {
  struct ramjet_flow fresh;
  flow_init(&fresh, origin_side, ifindex, now_ns);
  fresh.escalated = action == RAMJET_ACTION_ESCALATE;
  flow_set_verdict(&fresh, action, reason, match, gen);

  if (bpf_map_update_elem(&flows, key, &fresh, BPF_NOEXIST) == 0) {
    count(RAMJET_STAT_FLOW_NEW, 0);
    if (emit_flow_events) emit_flow_event(ifindex, key, &fresh, RAMJET_EVENT_FLOW_NEW, now_ns);
    /* Stamped precisely (once per escalated flow): the engine's hook trace is
     * lined up against it to measure escalation latency. */
    if (fresh.escalated)
      emit_flow_event(ifindex, key, &fresh, RAMJET_EVENT_ESCALATE, bpf_ktime_get_ns());
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

/* A verdict a hook issued for this (src, dst, proto, dst port) class, if live.
 * The class is the connection's original direction (`reply`: see policy.h). */
static __always_inline int class_override(const struct ramjet_pkt* pkt, __u8 reply,
                                          __u8* action) {
  struct ramjet_class_key key;
  __builtin_memset(&key, 0, sizeof(key));
  __builtin_memcpy(key.src, reply ? pkt->daddr : pkt->saddr, sizeof(key.src));
  __builtin_memcpy(key.dst, reply ? pkt->saddr : pkt->daddr, sizeof(key.dst));
  key.dst_port = reply ? pkt->sport : pkt->dport;
  key.family = pkt->family;
  key.proto = pkt->proto;
  struct ramjet_class_entry* entry = bpf_map_lookup_elem(&classes, &key);
  if (!entry) return 0;
  if (entry->expires_ns && flow_clock_ns() >= entry->expires_ns) return 0;
  *action = entry->action;
  return 1;
}

/*
 * 1 if the first packet seen of a connection travels in its reply direction, so
 * that the flow's originator is the packet's destination. A TCP SYN comes from
 * the client and a SYN-ACK goes to it. Any other TCP segment picks the
 * connection up mid-stream (its entry was killed or expired, or the datapath
 * started under live traffic): the end with the lower port is taken as the
 * service, as flow tools without a handshake to go by do (equal ports: the
 * packet's source). Other protocols: the first packet's source is the client.
 * Policy is then matched on the original direction, so a packet sent from a
 * service port cannot open a flow whose verdict the client's packets would
 * inherit past a rule on that port.
 */
static __always_inline __u8 first_packet_is_reply(const struct ramjet_pkt* pkt) {
  if (pkt->proto != IPPROTO_TCP || !pkt->has_ports) return 0;
  __u8 syn_ack = pkt->tcp_flags & (RAMJET_TCP_SYN | RAMJET_TCP_ACK);
  if (syn_ack == RAMJET_TCP_SYN) return 0;
  if (syn_ack == (RAMJET_TCP_SYN | RAMJET_TCP_ACK)) return 1;
  return bpf_ntohs(pkt->sport) < bpf_ntohs(pkt->dport);
}

/* What ramjet_decide() concluded, for the hook to carry out. */
struct ramjet_decision {
  struct ramjet_flow* flow; /* the packet's flow entry, if it has one */
  __u64 now_ns;             /* flow clock, read once a flow is involved (else 0) */
  enum ramjet_stat reason;  /* DROP / PASS: the reason to count */
  __u8 action;              /* RAMJET_ACTION_{DROP,PASS,ESCALATE,FASTPATH} */
  __u8 side;                /* the packet's side of the flow key */
};

/*
 * The verdict for a parsed IP packet that arrived on `ifindex` (parse errors and
 * non-IP are the hook's). Updates the flow table and the flow's counters, takes
 * rate-limit tokens; counts nothing the hook counts (the verdict's own stat).
 * RATELIMIT comes back as PASS or DROP.
 */
static __always_inline void ramjet_decide(const struct ramjet_pkt* pkt, __u32 ifindex,
                                          struct ramjet_decision* d) {
  d->flow = NULL;
  d->now_ns = 0;
  d->side = 0;
  if (deny_count && ramjet_denylisted(&denylist, pkt)) {
    d->action = RAMJET_ACTION_DROP;
    d->reason = RAMJET_STAT_DENYLIST;
    return;
  }
  if (pkt->fragment) {
    d->action = pass_fragments ? RAMJET_ACTION_PASS : RAMJET_ACTION_DROP;
    d->reason = pass_fragments ? RAMJET_STAT_PASS_FRAGMENT : RAMJET_STAT_FRAGMENT;
    return;
  }
  /* Multicast, broadcast and link-local traffic belongs to the hosts on the
   * link (neighbour discovery, MLD, DHCP): never forwarded, never a flow. */
  if (ramjet_dst_host_scope(pkt)) {
    d->action = RAMJET_ACTION_PASS;
    d->reason = RAMJET_STAT_PASS_HOST_SCOPE;
    return;
  }

  struct ramjet_flow_key key;
  __u8 side = ramjet_flow_key_build(pkt, &key);
  d->side = side;
  __u64 gen = policy_generation;
  struct ramjet_flow* flow = bpf_map_lookup_elem(&flows, &key);
  __u8 action;
  enum ramjet_stat reason;
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
    /* The packet's direction within its (existing or new) flow. */
    __u8 reply = flow ? side != flow->origin_side : first_packet_is_reply(pkt);
    struct ramjet_policy_match match = {.rule = NULL, .index = RAMJET_RULE_INDEX_NONE};
    int overridden = class_count && class_override(pkt, reply, &action);
    if (overridden) {
      count(RAMJET_STAT_CLASS_OVERRIDE, 0);
      reason = reason_for(action, 1);
    } else {
      if (rule_count)
        match =
            ramjet_policy_lookup(&src_prefixes, &dst_prefixes, &rule_filters, &rules, pkt, reply,
                                 ifindex);
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
        emit_flow_event(ifindex, &key, flow, RAMJET_EVENT_ESCALATE, bpf_ktime_get_ns());
      } else {
        flow_set_verdict(flow, action, reason, &match, gen);
      }
    } else if (action == RAMJET_ACTION_DROP) {
      /* No flow state for traffic we drop: a flood must not churn the table. */
      d->action = RAMJET_ACTION_DROP;
      d->reason = reason;
      return;
    } else if (!match.rule && !overridden && action == RAMJET_ACTION_PASS) {
      d->action = RAMJET_ACTION_PASS; /* not ours */
      d->reason = reason;
      return;
    } else {
      now_ns = flow_clock_ns();
      flow = flow_create(ifindex, &key, side ^ reply, action, reason, &match, gen, now_ns);
    }
  }

  if (flow) flow_account(flow, side, pkt->len, pkt->tcp_flags, now_ns);
  d->flow = flow;
  d->now_ns = now_ns;
  d->reason = reason;

  if (action == RAMJET_ACTION_RATELIMIT) {
    struct ramjet_rule* rule = bpf_map_lookup_elem(&rules, &rule_index);
    if (!rule || !ramjet_ratelimit_take(&ratelimit, rule_index, pkt, rule->rate_pps,
                                        rule->rate_burst, bpf_ktime_get_ns())) {
      d->action = RAMJET_ACTION_DROP;
      d->reason = RAMJET_STAT_RATE_LIMITED;
    } else {
      d->action = RAMJET_ACTION_PASS;
      d->reason = RAMJET_STAT_PASS_RULE;
    }
    return;
  }
  if (action == RAMJET_ACTION_DROP || action == RAMJET_ACTION_ESCALATE ||
      action == RAMJET_ACTION_FASTPATH)
    d->action = action;
  else
    d->action = RAMJET_ACTION_PASS;
}

/* The cached next hop of the decided flow for the packet's direction. */
static __always_inline struct ramjet_flow_nexthop* decision_nexthop(
    const struct ramjet_decision* d) {
  struct ramjet_flow* flow = d->flow;
  return flow ? &flow->nexthop[(d->side ^ flow->origin_side) & 1] : NULL;
}

/*
 * The context adaptor: what differs between the hooks' contexts, for code both
 * share. `hook` is a constant at every call site, so the compiler keeps one arm
 * and the verifier sees the context type it expects.
 */
enum ramjet_hook { RAMJET_HOOK_XDP, RAMJET_HOOK_TC };

static __always_inline __u32 hook_ingress_ifindex(void* ctx, enum ramjet_hook hook) {
  return hook == RAMJET_HOOK_XDP ? ((struct xdp_md*)ctx)->ingress_ifindex
                                 : ((struct __sk_buff*)ctx)->ingress_ifindex;
}

static __always_inline long hook_load_bytes(void* ctx, enum ramjet_hook hook, __u32 off, void* to,
                                            __u32 len) {
  return hook == RAMJET_HOOK_XDP ? bpf_xdp_load_bytes(ctx, off, to, len)
                                 : bpf_skb_load_bytes(ctx, off, to, len);
}

_Static_assert((RAMJET_DROP_SAMPLE_BYTES & (RAMJET_DROP_SAMPLE_BYTES - 1)) == 0,
               "hook_drop masks the capture length: RAMJET_DROP_SAMPLE_BYTES must be a power of 2");

/* Counts a dropped packet and samples it to the ring buffer; the caller drops it. */
static __always_inline void hook_drop(void* ctx, enum ramjet_hook hook,
                                      const struct ramjet_pkt* pkt, enum ramjet_stat reason) {
  count(reason, pkt->len);
  __u32 cap = 0;
  struct ramjet_event_drop* ev =
      drop_sample_begin(hook_ingress_ifindex(ctx, hook), pkt, reason, &cap);
  if (!ev) return;
  /* 1..RAMJET_DROP_SAMPLE_BYTES in a form the verifier can follow (a plain range
   * check compiles to one unsigned compare of cap - 1, which loses cap >= 1). */
  __u32 len = ((cap - 1) & (RAMJET_DROP_SAMPLE_BYTES - 1)) + 1;
  if (cap > 0 && hook_load_bytes(ctx, hook, 0, ev->data, len) == 0) ev->capture_len = len;
  bpf_ringbuf_submit(ev, 0);
}

/* ------------------------------------------------------------------ XDP hook */

static __always_inline int verdict_drop(struct xdp_md* ctx, const struct ramjet_pkt* pkt,
                                        enum ramjet_stat reason) {
  hook_drop(ctx, RAMJET_HOOK_XDP, pkt, reason);
  return XDP_DROP;
}

static __always_inline int verdict_pass(const struct ramjet_pkt* pkt, enum ramjet_stat reason) {
  count(reason, pkt->len);
  return XDP_PASS;
}

/* Attaches a note for TC ingress; the caller passes the packet up. Returns 0, or
 * -1 when the metadata cannot be added (a driver without headroom for it, a kernel
 * that refuses the helper): TC
 * would then see no record, so an escalated packet must not pass. */
static __always_inline int pass_to_tc(struct xdp_md* ctx, __u8 verdict, __u8 reason,
                                      __u32 endpoint_id, __u64 flow_id) {
  if (!xdp_metadata) return -1;
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

/*
 * Global, not inlined, on purpose: the verifier checks a global function once,
 * against its BTF signature, instead of walking the rest of the program once per
 * parse path (VLAN depth x IPv6 extension chains x L4). ramjet_pkt holds only
 * scalars, so nothing packet-typed crosses the boundary.
 */
__noinline int classify_parse(struct xdp_md* ctx, struct ramjet_pkt* pkt) {
  if (!ctx || !pkt) return RAMJET_STAT_TRUNCATED_ETH; /* unreachable: callers pass stack memory */
  return ramjet_parse_frame(RAMJET_XDP_FRAME(ctx), pkt);
}

static __always_inline int ramjet_xdp_classify(struct xdp_md* ctx) {
  struct ramjet_pkt pkt;
  enum ramjet_stat reason = RAMJET_STAT_NONE;
  if (!ramjet_parse_fast(RAMJET_XDP_FRAME(ctx), &pkt)) reason = classify_parse(ctx, &pkt);
  if (reason != RAMJET_STAT_NONE) return verdict_drop(ctx, &pkt, reason);
  if (pkt.family == RAMJET_FAMILY_NONE) return verdict_pass(&pkt, RAMJET_STAT_PASS_NOT_IP);

  struct ramjet_decision d;
  ramjet_decide(&pkt, ctx->ingress_ifindex, &d);
  switch (d.action) {
    case RAMJET_ACTION_DROP:
      return verdict_drop(ctx, &pkt, d.reason);
    case RAMJET_ACTION_ESCALATE:
      /* Without its note TC would not deliver it: the stack would forward the
       * flow around the engine. */
      if (pass_to_tc(ctx, RAMJET_ACTION_ESCALATE, RAMJET_STAT_ESCALATE,
                     d.flow ? d.flow->endpoint_id : 0, d.flow ? d.flow->flow_id : 0))
        return verdict_drop(ctx, &pkt, RAMJET_STAT_ESCALATE_NO_META);
      count(RAMJET_STAT_ESCALATE, pkt.len);
      return XDP_PASS;
    case RAMJET_ACTION_FASTPATH: {
      int xdp_action;
      reason = ramjet_forward_xdp(ctx, &pkt, decision_nexthop(&d), d.now_ns, &xdp_action);
      count(reason, pkt.len);
      /* Without the note the stack resolves the neighbour and forwards it. */
      if (reason == RAMJET_STAT_FIB_NO_NEIGH)
        pass_to_tc(ctx, RAMJET_ACTION_FASTPATH, reason, 0, d.flow ? d.flow->flow_id : 0);
      return xdp_action;
    }
    default:
      return verdict_pass(&pkt, d.reason);
  }
}

#endif /* RAMJET_LIB_CLASSIFY_H */
