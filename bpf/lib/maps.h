/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The datapath's maps and runtime globals, plus the small helpers every program
 * uses on them (stats, ring-buffer events). Defines objects: include it from
 * exactly one program file (bpf/progs/datapath.bpf.c), so XDP and TC programs
 * share one set of maps.
 *
 * Userspace (userspace/src/datapath) pins every map under
 * /sys/fs/bpf/ramjet/<instance>/<map name> and reuses the pins on restart.
 */
#ifndef RAMJET_LIB_MAPS_H
#define RAMJET_LIB_MAPS_H

#include "defs.h"

/* Load-time knobs: set in the skeleton's rodata before load. */
const volatile __u8 pass_fragments = 0;    /* 0: drop (FRAGMENT), 1: pass (PASS_FRAGMENT) */
const volatile __u8 emit_flow_events = 1;  /* FLOW_NEW records to `events` */
const volatile __u32 drop_sample_rate = 0; /* 1 in N drops to `events`; 0: off */
const volatile __u32 escalate_mark = 0;    /* skb->mark for escalated packets (policy route) */
/* 0 on a kernel that refuses bpf_xdp_adjust_meta to XDP programs (ramjetd probes): the
 * call is then dead code the verifier never visits, and XDP cannot leave TC a note. */
const volatile __u8 xdp_metadata = 1;

/*
 * Runtime state, all in .data (one internal map, mmapped by userspace and pinned
 * with the others, so a restarted ramjetd keeps flow ids unique and sees the same
 * generation).
 *   policy_generation: bumped after a rule change; cached verdicts re-evaluate.
 *   default_action: verdict when no rule matches (reloadable).
 *   class_count: live entries in `classes` (0 skips the lookup).
 *   rule_count: non-empty slots in `rules` (0 skips both prefix tries: no rule
 *     can match). Userspace stores it after writing the rules and tries and
 *     before bumping policy_generation. Only zero versus non-zero matters.
 *   deny_count: entries in `denylist` (0 skips the lookup). Userspace adds 1
 *     before inserting a prefix that is not in the trie yet and subtracts 1
 *     after deleting one that was (the sweeper too), atomically, so it is never
 *     0 while an entry exists; a count above the truth only costs a lookup.
 *   clock_jiffies, clock_ns: the datapath's own tick clock cache (see
 *     flow_clock_ns); userspace leaves them alone.
 */
__u64 policy_generation SEC(".data") = 0;
__u64 next_flow_id SEC(".data") = 0;
__u64 clock_jiffies SEC(".data") = 0;
__u64 clock_ns SEC(".data") = 0;
__u32 class_count SEC(".data") = 0;
__u32 rule_count SEC(".data") = 0;
__u32 deny_count SEC(".data") = 0;
__u8 default_action SEC(".data") = RAMJET_ACTION_PASS;
/* Fallback of escalate rules whose ramjet_rule.fallback is NONE, and of flows a
 * hook class escalated (datapath.on_engine_unavailable). */
__u8 default_fallback SEC(".data") = RAMJET_FALLBACK_REJECT;
/* Rules whose health is "falling back" (rule_health): 0 lets an escalated SYN
 * that reached the engine skip the recovery check. Last in .data: ramjetctl
 * (userspace/src/datapath/pinned_maps.cc) checks the pinned section's size by it. */
__u64 unhealthy_rules SEC(".data") = 0;

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

/* Per protocol / destination port rule sets (ramjet/abi/policy.h). */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, RAMJET_RULE_FILTERS);
  __type(key, __u32);
  __type(value, struct ramjet_rule_set);
} rule_filters SEC(".maps");

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
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct ramjet_class_key);
  __type(value, struct ramjet_class_entry);
} classes SEC(".maps");

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

/* The engine's listening sockets, by RAMJET_LISTENER_SLOT(endpoint, family). */
struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, RAMJET_MAX_ENDPOINTS * 2);
  __type(key, __u32);
  __type(value, __u64);
} listeners SEC(".maps");

/* Per endpoint id: RAMJET_ENGINE_* flags (ramjet/abi/fallback.h). */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, RAMJET_MAX_ENDPOINTS);
  __type(key, __u32);
  __type(value, __u32);
} engine_state SEC(".maps");

/* rule_id -> new flows that fell back, by mode and cause. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
  __uint(max_entries, RAMJET_MAX_RULES + 1);
  __type(key, __u32);
  __type(value, struct ramjet_fallback_count);
} fallback_counts SEC(".maps");

/* rule_id -> whether its last new flow fell back. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, RAMJET_MAX_RULES + 1);
  __type(key, __u32);
  __type(value, struct ramjet_rule_health);
} rule_health SEC(".maps");

/* Ring buffer records and the XDP metadata are only built through pointers;
 * these keep their types in the object's BTF for tools and the ABI layout test. */
struct ramjet_event_flow* const abi_event_flow __attribute__((unused)) = 0;
struct ramjet_event_drop* const abi_event_drop __attribute__((unused)) = 0;
struct ramjet_xdp_meta* const abi_xdp_meta __attribute__((unused)) = 0;
struct ramjet_class_key* const abi_class_key __attribute__((unused)) = 0;
struct ramjet_event_fallback* const abi_event_fallback __attribute__((unused)) = 0;

static __always_inline void count(enum ramjet_stat stat, __u32 bytes) {
  __u32 index = stat;
  struct ramjet_stat_value* value = bpf_map_lookup_elem(&stats, &index);
  if (value) {
    value->packets++;
    value->bytes += bytes;
  }
}

static __always_inline void event_header(struct ramjet_event_header* hdr, __u32 ifindex,
                                         __u16 type, __u16 reason, __u64 now_ns) {
  hdr->ts_ns = now_ns;
  hdr->ifindex = ifindex;
  hdr->type = type;
  hdr->reason = reason;
}

static __always_inline void emit_flow_event(__u32 ifindex, const struct ramjet_flow_key* key,
                                            const struct ramjet_flow* flow, __u16 type,
                                            __u64 now_ns) {
  struct ramjet_event_flow* ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
  if (!ev) {
    count(RAMJET_STAT_EVENT_LOST, 0);
    return;
  }
  event_header(&ev->hdr, ifindex, type, flow->reason, now_ns);
  __builtin_memcpy(&ev->key, key, sizeof(*key));
  ev->flow_id = flow->flow_id;
  ev->rule_id = flow->rule_id;
  ev->endpoint_id = flow->endpoint_id;
  ev->verdict = flow->verdict;
  ev->origin_side = flow->origin_side;
  __builtin_memset(ev->pad, 0, sizeof(ev->pad));
  bpf_ringbuf_submit(ev, 0);
}

/*
 * The clock of flow timestamps, flow and drop events, and denylist / class
 * expiry: CLOCK_MONOTONIC at tick resolution. Idle timeouts and block durations
 * are seconds; a stamp up to two ticks (2-20 ms) behind is fine. Token buckets
 * keep bpf_ktime_get_ns (a tick-resolution clock would cap a small burst at
 * burst/tick).
 *
 * bpf_ktime_get_coarse_ns is three kernel calls (~10 ns on this datapath's test
 * machine, as much as the rest of a flow hit's bookkeeping); bpf_jiffies64 is
 * inlined by the verifier into one load. So the coarse clock is read once per
 * tick and cached with the jiffies value it was read at. The cache is shared
 * by all CPUs: written once per tick, read by every packet of a flow. Two CPUs
 * refreshing it together, or a reader seeing the new jiffies before the new
 * time, only leave a stamp a tick behind, and flow_account never moves
 * last_seen_ns back.
 */
static __always_inline __u64 flow_clock_ns(void) {
  __u64 jiffies = bpf_jiffies64();
  if (jiffies == clock_jiffies) return clock_ns;
  __u64 now_ns = bpf_ktime_get_coarse_ns();
  clock_ns = now_ns;
  clock_jiffies = jiffies;
  return now_ns;
}

/*
 * Per-packet flow accounting. Plain adds, not atomics: a locked add on the
 * shared entry cost 7-8 ns of a ~40 ns flow hit (two per packet). A direction's
 * counters are written by the CPU that receives that direction (RSS / RPS and a
 * veth's NAPI keep a 5-tuple on one CPU), and the two directions are separate
 * words, so concurrent packets of opposite directions lose nothing. An update
 * can be lost only when two CPUs handle packets of the same direction at the
 * same instant (e.g. generic XDP fed from several sending CPUs): the counters
 * are then a lower bound. Verdicts and expiry never depend on them.
 * last_seen_ns only moves forward: TC egress stamps with the precise clock, XDP
 * with the coarse one, which can lag it by up to a tick.
 */
static __always_inline void flow_account(struct ramjet_flow* flow, __u8 side, __u32 len,
                                         __u8 tcp_flags, __u64 now_ns) {
  __u32 dir = (side ^ flow->origin_side) & 1;
  flow->dir[dir].packets += 1;
  flow->dir[dir].bytes += len;
  if (now_ns > flow->last_seen_ns) flow->last_seen_ns = now_ns;
  if ((flow->tcp_flags[dir] | tcp_flags) != flow->tcp_flags[dir]) flow->tcp_flags[dir] |= tcp_flags;
}

static __always_inline __u64 flow_next_id(void) {
  return __sync_fetch_and_add(&next_flow_id, 1) + 1;
}

/* A new flow entry opened at now_ns by a packet from `side` on `ifindex`. */
static __always_inline void flow_init(struct ramjet_flow* f, __u8 side, __u32 ifindex,
                                      __u64 now_ns) {
  __builtin_memset(f, 0, sizeof(*f));
  f->flow_id = flow_next_id();
  f->first_seen_ns = now_ns;
  f->last_seen_ns = now_ns;
  f->origin_side = side;
  f->ifindex = ifindex;
}

#endif /* RAMJET_LIB_MAPS_H */
