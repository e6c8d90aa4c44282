// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * xdp_classify: the first stage of the ramjet datapath.
 *
 *   parse -> denylist -> fragments -> flow table (cached verdict) or policy
 *   lookup -> token bucket (RATELIMIT) -> verdict:
 *     DROP      XDP_DROP, reason counted (and sampled to the ring buffer)
 *     PASS      XDP_PASS
 *     ESCALATE  XDP_PASS, flow marked; delivery to the engine is TC/sk_lookup's job
 *     FASTPATH  bpf_fib_lookup + TTL-1 + MAC rewrite + bpf_redirect, or XDP_PASS
 *               with the reason the stack has to handle it
 *
 * Every packet increments exactly one verdict-class stat (see ramjet/abi/stats.h).
 */
// clang-format off: vmlinux.h must come first (it provides the kernel types).
#include "vmlinux.h"
// clang-format on

#include "defs.h"
#include "flow_key.h"
#include "forward.h"
#include "parse.h"
#include "policy.h"
#include "ratelimit.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Load-time knobs: set in the skeleton's rodata before load. */
const volatile __u8 default_action = RAMJET_ACTION_PASS; /* no rule matched */
const volatile __u8 pass_fragments = 0;    /* 0: drop (FRAGMENT), 1: pass (PASS_FRAGMENT) */
const volatile __u8 emit_flow_events = 1;  /* FLOW_NEW records to `events` */
const volatile __u32 drop_sample_rate = 0; /* 1 in N drops to `events`; 0: off */

/* Runtime state, writable by userspace through the mmapped .bss. Bumping
 * policy_generation after a rule change makes cached flow verdicts re-evaluate. */
__u64 policy_generation = 0;
__u64 next_flow_id = 0;

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct ramjet_flow_key);
  __type(value, struct ramjet_flow);
} flows SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, RAMJET_MAX_RULES);
  __type(key, __u32);
  __type(value, struct ramjet_rule);
} rules SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, 16384);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct ramjet_lpm_key);
  __type(value, struct ramjet_rule_set);
} src_prefixes SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, 16384);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct ramjet_lpm_key);
  __type(value, struct ramjet_rule_set);
} dst_prefixes SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, 65536);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct ramjet_lpm_key);
  __type(value, struct ramjet_deny_entry);
} denylist SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct ramjet_ratelimit_key);
  __type(value, struct ramjet_ratelimit_state);
} ratelimit SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, RAMJET_STAT__COUNT);
  __type(key, __u32);
  __type(value, struct ramjet_stat_value);
} stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* Ring buffer records are only built through pointers; these keep their types
 * in the object's BTF so tools and the ABI layout test can see them. */
struct ramjet_event_flow* const abi_event_flow __attribute__((unused)) = 0;
struct ramjet_event_drop* const abi_event_drop __attribute__((unused)) = 0;

static __always_inline void count(enum ramjet_stat stat, __u32 bytes) {
  __u32 index = stat;
  struct ramjet_stat_value* value = bpf_map_lookup_elem(&stats, &index);
  if (value) {
    value->packets++;
    value->bytes += bytes;
  }
}

static __always_inline void event_header(struct ramjet_event_header* hdr, struct xdp_md* ctx,
                                         __u16 type, __u16 reason, __u64 now_ns) {
  hdr->ts_ns = now_ns;
  hdr->ifindex = ctx->ingress_ifindex;
  hdr->type = type;
  hdr->reason = reason;
}

static __always_inline void emit_flow_event(struct xdp_md* ctx, const struct ramjet_flow_key* key,
                                            const struct ramjet_flow* flow, __u16 type,
                                            __u64 now_ns) {
  struct ramjet_event_flow* ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
  if (!ev) {
    count(RAMJET_STAT_EVENT_LOST, 0);
    return;
  }
  event_header(&ev->hdr, ctx, type, flow->reason, now_ns);
  __builtin_memcpy(&ev->key, key, sizeof(*key));
  ev->flow_id = flow->flow_id;
  ev->rule_id = flow->rule_id;
  ev->endpoint_id = flow->endpoint_id;
  ev->verdict = flow->verdict;
  ev->origin_side = flow->origin_side;
  __builtin_memset(ev->pad, 0, sizeof(ev->pad));
  bpf_ringbuf_submit(ev, 0);
}

static __always_inline void sample_drop(struct xdp_md* ctx, const struct ramjet_pkt* pkt,
                                        enum ramjet_stat reason) {
  if (!drop_sample_rate || bpf_get_prandom_u32() % drop_sample_rate) return;
  struct ramjet_event_drop* ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
  if (!ev) {
    count(RAMJET_STAT_EVENT_LOST, 0);
    return;
  }
  event_header(&ev->hdr, ctx, RAMJET_EVENT_DROP_SAMPLE, reason, bpf_ktime_get_ns());
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

/* Per-packet flow accounting; counters are shared by all CPUs, hence atomics. */
static __always_inline void flow_account(struct ramjet_flow* flow, __u8 side,
                                         const struct ramjet_pkt* pkt, __u64 now_ns) {
  __u32 dir = (side ^ flow->origin_side) & 1;
  __sync_fetch_and_add(&flow->dir[dir].packets, 1);
  __sync_fetch_and_add(&flow->dir[dir].bytes, pkt->len);
  flow->last_seen_ns = now_ns;
  if ((flow->tcp_flags[dir] | pkt->tcp_flags) != flow->tcp_flags[dir])
    flow->tcp_flags[dir] |= pkt->tcp_flags;
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
  __builtin_memset(&fresh, 0, sizeof(fresh));
  fresh.flow_id = __sync_fetch_and_add(&next_flow_id, 1) + 1;
  fresh.first_seen_ns = now_ns;
  fresh.last_seen_ns = now_ns;
  fresh.origin_side = side;
  fresh.ifindex = ctx->ingress_ifindex;
  fresh.escalated = action == RAMJET_ACTION_ESCALATE;
  flow_set_verdict(&fresh, action, reason, match, gen);

  if (bpf_map_update_elem(&flows, key, &fresh, BPF_NOEXIST) == 0) {
    count(RAMJET_STAT_FLOW_NEW, 0);
    if (emit_flow_events) emit_flow_event(ctx, key, &fresh, RAMJET_EVENT_FLOW_NEW, now_ns);
    if (fresh.escalated) emit_flow_event(ctx, key, &fresh, RAMJET_EVENT_ESCALATE, now_ns);
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

SEC("xdp")
int xdp_classify(struct xdp_md* ctx) {
  struct ramjet_pkt pkt;
  enum ramjet_stat reason = classify_parse(ctx, &pkt);
  if (reason != RAMJET_STAT_NONE) return verdict_drop(ctx, &pkt, reason);
  if (pkt.family == RAMJET_FAMILY_NONE) return verdict_pass(&pkt, RAMJET_STAT_PASS_NOT_IP);

  if (ramjet_denylisted(&denylist, &pkt)) return verdict_drop(ctx, &pkt, RAMJET_STAT_DENYLIST);
  if (pkt.fragment)
    return pass_fragments ? verdict_pass(&pkt, RAMJET_STAT_PASS_FRAGMENT)
                          : verdict_drop(ctx, &pkt, RAMJET_STAT_FRAGMENT);

  struct ramjet_flow_key key;
  __u8 side = ramjet_flow_key_build(&pkt, &key);
  __u64 gen = policy_generation;
  struct ramjet_flow* flow = bpf_map_lookup_elem(&flows, &key);
  __u8 action;
  __u32 rule_index;
  __u64 now_ns = 0; /* read only once a flow is involved: not free on every machine */

  if (flow && flow->policy_gen == gen) {
    now_ns = bpf_ktime_get_ns();
    count(RAMJET_STAT_FLOW_HIT, 0);
    action = flow->verdict;
    reason = flow->reason;
    rule_index = flow->rule_index;
  } else {
    struct ramjet_policy_match match =
        ramjet_policy_lookup(&src_prefixes, &dst_prefixes, &rules, &pkt, ctx->ingress_ifindex);
    action = match.rule ? match.rule->action : default_action;
    reason = reason_for(action, match.rule != NULL);
    rule_index = match.index;
    if (flow || action != RAMJET_ACTION_DROP) now_ns = bpf_ktime_get_ns();
    if (flow) {
      /* Policy changed under a live flow: re-evaluated verdict replaces the cache. */
      if (action == RAMJET_ACTION_ESCALATE && !flow->escalated) {
        flow->escalated = 1;
        flow_set_verdict(flow, action, reason, &match, gen);
        emit_flow_event(ctx, &key, flow, RAMJET_EVENT_ESCALATE, now_ns);
      } else {
        flow_set_verdict(flow, action, reason, &match, gen);
      }
    } else if (action == RAMJET_ACTION_DROP) {
      /* No flow state for traffic we drop: a flood must not churn the table. */
      return verdict_drop(ctx, &pkt, reason);
    } else if (!match.rule && action == RAMJET_ACTION_PASS) {
      return verdict_pass(&pkt, reason); /* not ours */
    } else {
      flow = flow_create(ctx, &key, side, action, reason, &match, gen, now_ns);
    }
  }

  if (flow) flow_account(flow, side, &pkt, now_ns);

  switch (action) {
    case RAMJET_ACTION_DROP:
      return verdict_drop(ctx, &pkt, reason);
    case RAMJET_ACTION_RATELIMIT: {
      struct ramjet_rule* rule = bpf_map_lookup_elem(&rules, &rule_index);
      if (!rule || !ramjet_ratelimit_take(&ratelimit, rule_index, &pkt, rule->rate_pps,
                                          rule->rate_burst, now_ns))
        return verdict_drop(ctx, &pkt, RAMJET_STAT_RATE_LIMITED);
      return verdict_pass(&pkt, RAMJET_STAT_PASS_RULE);
    }
    case RAMJET_ACTION_ESCALATE:
      return verdict_pass(&pkt, RAMJET_STAT_ESCALATE);
    case RAMJET_ACTION_FASTPATH: {
      int xdp_action;
      reason = ramjet_forward(ctx, &pkt, &xdp_action);
      count(reason, pkt.len);
      return xdp_action;
    }
    default:
      return verdict_pass(&pkt, reason);
  }
}
