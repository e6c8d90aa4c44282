/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-source token buckets in an LRU hash (ramjet_ratelimit_key -> state).
 * Updates are not atomic across CPUs: two CPUs refilling the same bucket at the
 * same instant can let a packet or two more through. That is the accepted price
 * of not taking a lock per packet.
 */
#ifndef RAMJET_LIB_RATELIMIT_H
#define RAMJET_LIB_RATELIMIT_H

#include "defs.h"
#include "parse.h"

/* 1: conforming (a token was taken), 0: over the limit. */
static __always_inline int ramjet_ratelimit_take(void* buckets, __u32 rule_index,
                                                 const struct ramjet_pkt* pkt, __u32 rate_pps,
                                                 __u32 burst, __u64 now_ns) {
  struct ramjet_ratelimit_key key;
  __builtin_memset(&key, 0, sizeof(key));
  key.rule_index = rule_index;
  key.family = pkt->family;
  __builtin_memcpy(key.addr, pkt->saddr, sizeof(key.addr));

  __u64 capacity = (__u64)burst * RAMJET_TOKEN_SCALE;
  struct ramjet_ratelimit_state* state = bpf_map_lookup_elem(buckets, &key);
  if (!state) {
    if (burst == 0) return 0;
    struct ramjet_ratelimit_state fresh = {
        .tokens = capacity - RAMJET_TOKEN_SCALE,
        .last_ns = now_ns,
    };
    /* Failure (e.g. a racing insert) still lets this first packet through. */
    bpf_map_update_elem(buckets, &key, &fresh, BPF_ANY);
    return 1;
  }

  __u64 tokens = state->tokens;
  if (now_ns > state->last_ns && rate_pps) {
    __u64 elapsed = now_ns - state->last_ns;
    /* Time to fill an empty bucket; beyond it the bucket is full, and below it
     * elapsed * rate < capacity cannot overflow. */
    __u64 fill_ns = capacity / rate_pps;
    if (elapsed >= fill_ns)
      tokens = capacity;
    else
      tokens += elapsed * rate_pps;
    if (tokens > capacity) tokens = capacity;
  }
  state->last_ns = now_ns;
  if (tokens < RAMJET_TOKEN_SCALE) {
    state->tokens = tokens;
    return 0;
  }
  state->tokens = tokens - RAMJET_TOKEN_SCALE;
  return 1;
}

#endif /* RAMJET_LIB_RATELIMIT_H */
