/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TUN hand-off (bpf/progs/tun_handoff.bpf.c): packets of IP flows that an
 * IpFlowHook decapsulated are written back into the ip endpoint's TUN device, and
 * its tcx ingress program hands them to the host's TCP or UDP stack, to the socket of
 * the transparent endpoint the decision named (docs/ip_onramp.md, "Decapsulation").
 *
 *   handoff_flows    BPF_MAP_TYPE_HASH  struct ramjet_handoff_key ->
 *                    struct ramjet_handoff_target; written by the IP on-ramp when a
 *                    flow is decapsulated, removed when the flow ends; the accepting
 *                    endpoint reads the IP flow's id from it (the hand-off chain)
 *   handoff_sockets  BPF_MAP_TYPE_SOCKMAP  slot -> the endpoint's socket (a listener,
 *                    or a udp endpoint's bound socket),
 *                    slot = RAMJET_LISTENER_SLOT(endpoint id, family) (meta.h)
 *   handoff_stats    BPF_MAP_TYPE_PERCPU_ARRAY  enum ramjet_handoff_stat -> packets
 */
#ifndef RAMJET_ABI_HANDOFF_H
#define RAMJET_ABI_HANDOFF_H

#include "ramjet/abi/common.h"

/* One direction of a flow as the client sent it: source is the client. */
struct ramjet_handoff_key {
  __u32 saddr[RAMJET_ADDR_WORDS]; /* network order; IPv4 in word 0, the rest zero */
  __u32 daddr[RAMJET_ADDR_WORDS]; /* network order */
  __u16 sport;                    /* network order */
  __u16 dport;                    /* network order */
  __u8 family;                    /* enum ramjet_family */
  __u8 proto;                     /* IPPROTO_TCP or IPPROTO_UDP */
  __u8 pad[2];                    /* must be zero: part of the hash */
};
RAMJET_ABI_SIZE(struct ramjet_handoff_key, 40);

struct ramjet_handoff_target {
  __u32 slot; /* RAMJET_LISTENER_SLOT(endpoint id, family): a handoff_sockets index */
  __u32 pad;
  __u64 flow_id; /* the IP flow's id (IpFlow::id) */
};
RAMJET_ABI_SIZE(struct ramjet_handoff_target, 16);

#define RAMJET_HANDOFF_MAX_FLOWS 65536

/* What the hand-off program did with a packet. */
#define RAMJET_HANDOFF_STATS(X)                                                          \
  X(ASSIGNED, 0)      /* a new connection's or a UDP packet given to the endpoint */      \
  X(OWN_SOCKET, 1)    /* a packet of a connection the host already has: left to it */     \
  X(NO_FLOW, 2)       /* dropped: not a decapsulated flow (no handoff_flows entry) */     \
  X(NO_SOCKET, 3)     /* dropped: the endpoint has no socket in handoff_sockets */        \
  X(ASSIGN_FAILED, 4) /* dropped: bpf_sk_assign refused the socket */                     \
  X(UNSUPPORTED, 5)   /* dropped: not TCP or UDP, a fragment, IPv6 extension headers */   \
  X(MALFORMED, 6)     /* dropped: truncated or bad IP header */

enum ramjet_handoff_stat {
#define RAMJET_X_ENUM(name, value) RAMJET_HANDOFF_##name = value,
  RAMJET_HANDOFF_STATS(RAMJET_X_ENUM)
#undef RAMJET_X_ENUM
      RAMJET_HANDOFF_STAT_COUNT
};

#endif
