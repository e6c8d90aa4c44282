/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy maps.
 *
 * Rules live in `rules`, a BPF_MAP_TYPE_ARRAY of RAMJET_MAX_RULES slots; the slot
 * index is the priority (lower wins). Matching uses two LPM tries, `src_prefixes`
 * and `dst_prefixes` (struct ramjet_lpm_key -> struct ramjet_rule_set): the value
 * is the set of rule slots whose source (resp. destination) CIDR contains the
 * prefix. An LPM lookup returns only the longest match, so userspace must store,
 * for every prefix it inserts, the union of the rules of all CIDRs that contain
 * it (including the family's /0 if any rule uses "any"). The datapath then
 * intersects both sets and checks proto / port range / ifindex on the candidate
 * slots in priority order.
 *
 * `denylist` is a third trie (ramjet_lpm_key -> ramjet_deny_entry), consulted
 * for the source address before anything else.
 *
 * Token buckets for RATELIMIT live in an LRU hash keyed by (rule slot, source
 * address); each source /32 or /128 gets its own bucket.
 */
#ifndef RAMJET_ABI_POLICY_H
#define RAMJET_ABI_POLICY_H

#include "ramjet/abi/action.h"
#include "ramjet/abi/common.h"

#define RAMJET_MAX_RULES 256
#define RAMJET_RULE_SET_WORDS (RAMJET_MAX_RULES / 64)

/*
 * LPM trie key. The trie compares `prefixlen` bits starting at `family`, so the
 * family byte is part of the prefix: use RAMJET_LPM_PREFIXLEN(cidr_bits).
 * Key size is 24 (the kernel's data_size is 20; trailing pad is never compared).
 */
struct ramjet_lpm_key {
  __u32 prefixlen; /* 8 + CIDR length */
  __u8 family;     /* enum ramjet_family */
  __u8 addr[16];   /* network order; IPv4 in addr[0..3] */
  __u8 pad[3];
};
RAMJET_ABI_SIZE(struct ramjet_lpm_key, 24);
RAMJET_ABI_OFFSET(struct ramjet_lpm_key, addr, 5);

#define RAMJET_LPM_PREFIXLEN(cidr_bits) (8u + (cidr_bits))

/* Bitmap of rule slots: bit i of words[i / 64] is slot i. */
struct ramjet_rule_set {
  __u64 words[RAMJET_RULE_SET_WORDS];
};
RAMJET_ABI_SIZE(struct ramjet_rule_set, RAMJET_RULE_SET_WORDS * 8);

/*
 * Rule filters (map `rule_filters`, an array of struct ramjet_rule_set): for each
 * protocol and each destination port, the rule slots that can match it, so the
 * datapath narrows the src/dst candidates with two ANDs instead of walking them.
 *   [RAMJET_RULE_FILTER_PROTO(p)]   rules with proto 0 (any) or p
 *   [RAMJET_RULE_FILTER_PORT(port)] rules whose port range holds port (host order)
 *   [RAMJET_RULE_FILTER_NO_PORTS]   rules with the any-port range (they also
 *                                   match packets without ports, e.g. ICMP)
 * Empty slots are in no set. The filters may hold more than this (the datapath
 * still checks every field of the rule it picks), never less: userspace derives
 * them with ramjet_rule_filters_add() (below) and writes them with the rules.
 */
#define RAMJET_RULE_FILTER_PROTO(p) ((__u32)(p))
#define RAMJET_RULE_FILTER_PORT(port) (256u + (__u32)(port))
#define RAMJET_RULE_FILTER_NO_PORTS (256u + 65536u)
#define RAMJET_RULE_FILTERS (RAMJET_RULE_FILTER_NO_PORTS + 1)

#define RAMJET_RULE_ANY_PORT_MIN 0
#define RAMJET_RULE_ANY_PORT_MAX 65535

struct ramjet_rule {
  struct ramjet_lpm_key src; /* informational: the tries carry the match */
  struct ramjet_lpm_key dst; /* informational: the tries carry the match */
  __u32 rule_id;             /* stable id chosen by userspace, reported in flows */
  __u32 endpoint_id;         /* engine endpoint for ESCALATE */
  __u32 ifindex;             /* ingress ifindex; 0 = any */
  __u32 rate_pps;            /* RATELIMIT: sustained packets/s per source */
  __u32 rate_burst;          /* RATELIMIT: bucket depth in packets */
  __u16 dst_port_min_host;   /* host order, inclusive */
  __u16 dst_port_max_host;   /* host order, inclusive; a range other than
                                0..65535 matches only TCP/UDP */
  __u8 proto;                /* IPPROTO_*; 0 = any */
  __u8 action;               /* enum ramjet_action; NONE = empty slot */
  __u8 fallback;             /* ESCALATE: enum ramjet_fallback_mode when the engine
                                cannot take a flow; NONE = the default_fallback global */
  __u8 pad[5];
};
RAMJET_ABI_SIZE(struct ramjet_rule, 80);
RAMJET_ABI_OFFSET(struct ramjet_rule, rule_id, 48);
RAMJET_ABI_OFFSET(struct ramjet_rule, proto, 72);

struct ramjet_deny_entry {
  __u64 expires_ns; /* CLOCK_MONOTONIC; 0 = never expires */
  __u32 reason;     /* userspace-defined tag (which hook / operator blocked it) */
  __u32 pad;
};
RAMJET_ABI_SIZE(struct ramjet_deny_entry, 16);

struct ramjet_ratelimit_key {
  __u32 rule_index;
  __u8 family;
  __u8 pad[3];
  __u32 addr[RAMJET_ADDR_WORDS]; /* source, network order */
};
RAMJET_ABI_SIZE(struct ramjet_ratelimit_key, 24);

/*
 * Hook-issued flow classes (map `classes`, hash): (source, destination,
 * protocol, destination port) -> verdict until expires_ns. Consulted only when a
 * flow is new and `class_count` (in .bss) is non-zero, ahead of the rules.
 */
struct ramjet_class_key {
  __u32 src[RAMJET_ADDR_WORDS]; /* network order */
  __u32 dst[RAMJET_ADDR_WORDS]; /* network order */
  __u16 dst_port;               /* network order */
  __u8 family;                  /* enum ramjet_family */
  __u8 proto;                   /* IPPROTO_* */
};
RAMJET_ABI_SIZE(struct ramjet_class_key, 36);

struct ramjet_class_entry {
  __u64 expires_ns; /* CLOCK_MONOTONIC; 0 = never */
  __u32 tag;        /* userspace-defined (which hook issued it) */
  __u8 action;      /* enum ramjet_action */
  __u8 pad[3];
};
RAMJET_ABI_SIZE(struct ramjet_class_entry, 16);

/* Tokens are kept in nano-packets (1 packet = 1e9) so refill is integer math. */
#define RAMJET_TOKEN_SCALE 1000000000ull

struct ramjet_ratelimit_state {
  __u64 tokens;  /* nano-packets available */
  __u64 last_ns; /* last refill */
};
RAMJET_ABI_SIZE(struct ramjet_ratelimit_state, 16);

#if !defined(__bpf__)
/* Adds rule `slot` to `filters` (RAMJET_RULE_FILTERS sets, zeroed by the caller
 * before the first rule). The one definition of what the filters mean, shared
 * by ramjetd's policy compiler and the BPF tests. */
static inline void ramjet_rule_filters_add(struct ramjet_rule_set* filters, __u32 slot,
                                           const struct ramjet_rule* rule) {
  if (rule->action == RAMJET_ACTION_NONE || slot >= RAMJET_MAX_RULES) return;
  __u32 word = slot / 64;
  __u64 bit = (__u64)1 << (slot % 64);
  for (__u32 p = 0; p < 256; p++)
    if (rule->proto == 0 || rule->proto == p) filters[RAMJET_RULE_FILTER_PROTO(p)].words[word] |= bit;
  for (__u32 port = rule->dst_port_min_host; port <= rule->dst_port_max_host; port++)
    filters[RAMJET_RULE_FILTER_PORT(port)].words[word] |= bit;
  if (rule->dst_port_min_host == RAMJET_RULE_ANY_PORT_MIN &&
      rule->dst_port_max_host == RAMJET_RULE_ANY_PORT_MAX)
    filters[RAMJET_RULE_FILTER_NO_PORTS].words[word] |= bit;
}
#endif

#endif /* RAMJET_ABI_POLICY_H */
