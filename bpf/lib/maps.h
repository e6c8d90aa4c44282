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

/*
 * Runtime state, all in .data (one internal map, mmapped by userspace and pinned
 * with the others, so a restarted ramjetd keeps flow ids unique and sees the same
 * generation).
 *   policy_generation: bumped after a rule change; cached verdicts re-evaluate.
 *   default_action: verdict when no rule matches (reloadable).
 *   class_count: live entries in `classes` (0 skips the lookup).
 */
__u64 policy_generation SEC(".data") = 0;
__u64 next_flow_id SEC(".data") = 0;
__u32 class_count SEC(".data") = 0;
__u8 default_action SEC(".data") = RAMJET_ACTION_PASS;

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

/* Ring buffer records and the XDP metadata are only built through pointers;
 * these keep their types in the object's BTF for tools and the ABI layout test. */
struct ramjet_event_flow* const abi_event_flow __attribute__((unused)) = 0;
struct ramjet_event_drop* const abi_event_drop __attribute__((unused)) = 0;
struct ramjet_xdp_meta* const abi_xdp_meta __attribute__((unused)) = 0;
struct ramjet_class_key* const abi_class_key __attribute__((unused)) = 0;

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

/* Per-packet flow accounting; counters are shared by all CPUs, hence atomics. */
static __always_inline void flow_account(struct ramjet_flow* flow, __u8 side, __u32 len,
                                         __u8 tcp_flags, __u64 now_ns) {
  __u32 dir = (side ^ flow->origin_side) & 1;
  __sync_fetch_and_add(&flow->dir[dir].packets, 1);
  __sync_fetch_and_add(&flow->dir[dir].bytes, len);
  flow->last_seen_ns = now_ns;
  if ((flow->tcp_flags[dir] | tcp_flags) != flow->tcp_flags[dir]) flow->tcp_flags[dir] |= tcp_flags;
}

static __always_inline __u64 flow_next_id(void) {
  return __sync_fetch_and_add(&next_flow_id, 1) + 1;
}

#endif /* RAMJET_LIB_MAPS_H */
