/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Flow table: BPF_MAP_TYPE_LRU_HASH, struct ramjet_flow_key -> struct ramjet_flow.
 *
 * The key is normalized so both directions of a connection map to one entry:
 * the endpoint (addr, port) that compares lower (bytewise on the network-order
 * address, then port) is stored as `lo`, the other as `hi`. The packet's side
 * (did its source equal `lo`?) is not part of the key; the entry remembers which
 * side opened the flow (`origin_side`) so counters can be kept per direction:
 * dir[RAMJET_DIR_ORIGINAL] counts packets sent by the originator.
 *
 * Ports: TCP/UDP ports; ICMP/ICMPv6 echo uses the identifier as both ports (so
 * request and reply share a flow); other protocols use 0.
 */
#ifndef RAMJET_ABI_FLOW_H
#define RAMJET_ABI_FLOW_H

#include "ramjet/abi/common.h"

struct ramjet_flow_key {
  __u32 addr_lo[RAMJET_ADDR_WORDS]; /* network order */
  __u32 addr_hi[RAMJET_ADDR_WORDS]; /* network order */
  __u16 port_lo;                    /* network order */
  __u16 port_hi;                    /* network order */
  __u8 family;                      /* enum ramjet_family */
  __u8 proto;                       /* IPPROTO_* */
  __u8 pad[2];                      /* must be zero: part of the hash */
};
RAMJET_ABI_SIZE(struct ramjet_flow_key, 40);
RAMJET_ABI_OFFSET(struct ramjet_flow_key, port_lo, 32);
RAMJET_ABI_OFFSET(struct ramjet_flow_key, family, 36);

enum ramjet_flow_dir {
  RAMJET_DIR_ORIGINAL = 0, /* from the endpoint that sent the first packet */
  RAMJET_DIR_REPLY = 1,
};

struct ramjet_flow_counters {
  __u64 packets;
  __u64 bytes; /* L2 frame bytes as seen by XDP */
};
RAMJET_ABI_SIZE(struct ramjet_flow_counters, 16);

/* TCP flags (the byte at offset 13 of the TCP header) OR-ed per direction. */
#define RAMJET_TCP_FIN 0x01
#define RAMJET_TCP_SYN 0x02
#define RAMJET_TCP_RST 0x04
#define RAMJET_TCP_PSH 0x08
#define RAMJET_TCP_ACK 0x10

#define RAMJET_RULE_INDEX_NONE 0xffffffffu

/*
 * Next hop of one direction of a FASTPATH flow, as bpf_fib_lookup last returned
 * it. A flow hit reuses it for RAMJET_NEXTHOP_TTL_NS after the lookup that
 * confirmed it, for packets no longer than max_len (the lookup checked the
 * egress MTU against those): route and neighbour changes reach established
 * fast-path flows within that time.
 */
#define RAMJET_NEXTHOP_TTL_NS 1000000000ull

struct ramjet_flow_nexthop {
  __u64 checked_ns; /* flow clock at the confirming lookup; 0 = none yet */
  __u32 ifindex;    /* egress device */
  __u16 max_len;    /* largest IP total length a lookup accepted since checked_ns */
  __u8 dmac[6];
  __u8 smac[6];
  __u8 pad[6];
};
RAMJET_ABI_SIZE(struct ramjet_flow_nexthop, 32);

struct ramjet_flow {
  __u64 flow_id;       /* unique per boot of the program, never 0 */
  __u64 first_seen_ns; /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
  __u64 last_seen_ns;
  __u64 policy_gen;                   /* policy generation the verdict was computed with */
  struct ramjet_flow_counters dir[2]; /* [enum ramjet_flow_dir] */
  __u32 rule_index;                   /* slot in `rules` or RAMJET_RULE_INDEX_NONE (default) */
  __u32 rule_id;                      /* ramjet_rule.rule_id at verdict time */
  __u32 endpoint_id;                  /* ramjet_rule.endpoint_id at verdict time */
  __u32 ifindex;                      /* ingress ifindex of the first packet */
  __u8 verdict;                       /* enum ramjet_action (cached) */
  __u8 reason;                        /* enum ramjet_stat of the last verdict */
  __u8 origin_side;                   /* 0: originator is key.lo, 1: key.hi */
  __u8 escalated;                     /* 1 once the flow was marked ESCALATE */
  __u8 tcp_flags[2];                  /* [enum ramjet_flow_dir]: RAMJET_TCP_* seen */
  __u8 fallback;                      /* enum ramjet_fallback_mode taken; NONE: engine took it */
  __u8 fallback_cause;                /* enum ramjet_fallback_cause, with `fallback` */
  struct ramjet_flow_nexthop nexthop[2]; /* [enum ramjet_flow_dir]; FASTPATH only */
};
RAMJET_ABI_SIZE(struct ramjet_flow, 152);
RAMJET_ABI_OFFSET(struct ramjet_flow, dir, 32);
RAMJET_ABI_OFFSET(struct ramjet_flow, verdict, 80);
RAMJET_ABI_OFFSET(struct ramjet_flow, nexthop, 88);

#endif /* RAMJET_ABI_FLOW_H */
