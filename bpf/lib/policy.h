/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy lookup: denylist trie, then src/dst LPM tries and the protocol / port
 * filters -> rule-slot bitmaps, intersected, first matching slot wins (see
 * ramjet/abi/policy.h for the map contract). Map pointers are parameters so programs own their map definitions.
 */
#ifndef RAMJET_LIB_POLICY_H
#define RAMJET_LIB_POLICY_H

#include "defs.h"
#include "parse.h"

static __always_inline void ramjet_lpm_key_host(struct ramjet_lpm_key* key, __u8 family,
                                                const __u32* addr) {
  __builtin_memset(key, 0, sizeof(*key));
  key->family = family;
  if (family == RAMJET_FAMILY_IPV4) {
    key->prefixlen = RAMJET_LPM_PREFIXLEN(32);
    __builtin_memcpy(key->addr, addr, 4);
  } else {
    key->prefixlen = RAMJET_LPM_PREFIXLEN(128);
    __builtin_memcpy(key->addr, addr, 16);
  }
}

/* 1 if the source is denied right now. The clock is read only for entries
 * that expire, at tick resolution: an entry outlives its deadline by up to a
 * tick. */
static __always_inline int ramjet_denylisted(void* denylist, const struct ramjet_pkt* pkt) {
  struct ramjet_lpm_key key;
  ramjet_lpm_key_host(&key, pkt->family, pkt->saddr);
  struct ramjet_deny_entry* deny = bpf_map_lookup_elem(denylist, &key);
  if (!deny) return 0;
  return deny->expires_ns == 0 || bpf_ktime_get_coarse_ns() < deny->expires_ns;
}

/* Index of the lowest set bit of a non-zero word (BPF has no ctz instruction). */
static __always_inline __u32 ramjet_lowest_bit(__u64 x) {
  __u32 n = 0;
  x &= -x;
  if (x & 0xffffffff00000000ull) n += 32;
  if (x & 0xffff0000ffff0000ull) n += 16;
  if (x & 0xff00ff00ff00ff00ull) n += 8;
  if (x & 0xf0f0f0f0f0f0f0f0ull) n += 4;
  if (x & 0xccccccccccccccccull) n += 2;
  if (x & 0xaaaaaaaaaaaaaaaaull) n += 1;
  return n;
}

_Static_assert((RAMJET_RULE_SET_WORDS & (RAMJET_RULE_SET_WORDS - 1)) == 0,
               "the scan masks word indexes: RAMJET_RULE_SET_WORDS must be a power of 2");

/* What a rule is matched against, copied out of the packet for the scan loop. */
struct ramjet_policy_scan {
  __u64 candidates[RAMJET_RULE_SET_WORDS]; /* slots still to check */
  void* rules;                             /* the `rules` array map */
  __u32 ifindex;
  __u32 match; /* result: slot, or RAMJET_RULE_INDEX_NONE */
  __u16 dport_host;
  __u8 proto;
  __u8 has_ports;
};

static __always_inline int ramjet_rule_matches(const struct ramjet_rule* rule,
                                               const struct ramjet_policy_scan* scan) {
  if (rule->action == RAMJET_ACTION_NONE) return 0;
  if (rule->ifindex && rule->ifindex != scan->ifindex) return 0;
  if (rule->proto && rule->proto != scan->proto) return 0;
  if (rule->dst_port_min_host == RAMJET_RULE_ANY_PORT_MIN &&
      rule->dst_port_max_host == RAMJET_RULE_ANY_PORT_MAX)
    return 1;
  if (!scan->has_ports) return 0;
  return scan->dport_host >= rule->dst_port_min_host && scan->dport_host <= rule->dst_port_max_host;
}

/*
 * Checks the lowest-numbered remaining candidate and removes it from the set.
 * Returns 1 to stop (match found or no candidates left), 0 to continue.
 */
static __always_inline long ramjet_policy_scan_next(struct ramjet_policy_scan* scan) {
  __u32 word = 0;
  __u64 bits = 0;
#pragma unroll
  for (__u32 w = RAMJET_RULE_SET_WORDS; w-- > 0;) {
    if (scan->candidates[w]) {
      word = w;
      bits = scan->candidates[w];
    }
  }
  if (!bits) return 1;
  __u32 bit = ramjet_lowest_bit(bits);
  __u32 index = word * 64 + bit;
  scan->candidates[word & (RAMJET_RULE_SET_WORDS - 1)] = bits & (bits - 1);
  struct ramjet_rule* rule = bpf_map_lookup_elem(scan->rules, &index);
  if (rule && ramjet_rule_matches(rule, scan)) {
    scan->match = index;
    return 1;
  }
  return 0;
}

/*
 * One bpf_loop step. A plain loop over up to RAMJET_MAX_RULES candidates makes
 * the verifier walk every iteration (over its 1M instruction budget); bpf_loop
 * verifies the body once.
 */
static long ramjet_policy_scan_step(__u32 iteration __attribute__((unused)), void* ctx) {
  return ramjet_policy_scan_next(ctx);
}

struct ramjet_policy_match {
  struct ramjet_rule* rule; /* NULL: no rule matched */
  __u32 index;              /* slot, RAMJET_RULE_INDEX_NONE if no match */
};

/*
 * Rules speak of a connection's original direction (from its client to the
 * service's port). `reply` is 1 for a packet that travels the other way (its
 * flow's originator is the packet's destination): the lookup then swaps the
 * packet's ends. The ingress interface is the packet's own either way.
 */
static __always_inline struct ramjet_policy_match ramjet_policy_lookup(
    void* src_prefixes, void* dst_prefixes, void* rule_filters, void* rules,
    const struct ramjet_pkt* pkt, __u8 reply, __u32 ifindex) {
  struct ramjet_policy_match match = {.rule = NULL, .index = RAMJET_RULE_INDEX_NONE};
  struct ramjet_lpm_key key;
  __u16 dport_host = bpf_ntohs(reply ? pkt->sport : pkt->dport);

  ramjet_lpm_key_host(&key, pkt->family, reply ? pkt->daddr : pkt->saddr);
  struct ramjet_rule_set* src = bpf_map_lookup_elem(src_prefixes, &key);
  if (!src) return match;
  ramjet_lpm_key_host(&key, pkt->family, reply ? pkt->saddr : pkt->daddr);
  struct ramjet_rule_set* dst = bpf_map_lookup_elem(dst_prefixes, &key);
  if (!dst) return match;
  /* Narrowed by protocol and port: what is left almost always matches on its
   * first candidate (only the ingress interface is still unchecked). */
  __u32 filter = RAMJET_RULE_FILTER_PROTO(pkt->proto);
  struct ramjet_rule_set* by_proto = bpf_map_lookup_elem(rule_filters, &filter);
  filter = pkt->has_ports ? RAMJET_RULE_FILTER_PORT(dport_host) : RAMJET_RULE_FILTER_NO_PORTS;
  struct ramjet_rule_set* by_port = bpf_map_lookup_elem(rule_filters, &filter);
  if (!by_proto || !by_port) return match;

  struct ramjet_policy_scan scan = {
      .rules = rules,
      .ifindex = ifindex,
      .match = RAMJET_RULE_INDEX_NONE,
      .dport_host = dport_host,
      .proto = pkt->proto,
      .has_ports = pkt->has_ports,
  };
  __u64 any = 0;
#pragma unroll
  for (int w = 0; w < RAMJET_RULE_SET_WORDS; w++) {
    scan.candidates[w] = src->words[w] & dst->words[w] & by_proto->words[w] & by_port->words[w];
    any |= scan.candidates[w];
  }
  if (!any) return match;
  /* The first candidate inline: it is usually the match (or the only one), and
   * each bpf_loop step is a call. */
  if (!ramjet_policy_scan_next(&scan)) bpf_loop(RAMJET_MAX_RULES, ramjet_policy_scan_step, &scan, 0);
  if (scan.match == RAMJET_RULE_INDEX_NONE) return match;

  __u32 index = scan.match;
  match.rule = bpf_map_lookup_elem(rules, &index);
  if (match.rule) match.index = index;
  return match;
}

#endif /* RAMJET_LIB_POLICY_H */
