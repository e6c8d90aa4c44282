/* SPDX-License-Identifier: Apache-2.0 */
/* Normalized flow keys: both directions of a connection build the same key. */
#ifndef RAMJET_LIB_FLOW_KEY_H
#define RAMJET_LIB_FLOW_KEY_H

#include "defs.h"
#include "parse.h"

/*
 * 1 when the packet's destination endpoint sorts before its source: bytewise on
 * the network-order address, then on the network-order port (the order userspace
 * gets with memcmp on the key fields). Compares the addresses as two big-endian
 * 64-bit words; an IPv4 address fills the top half of the first word and the
 * rest is zero on both sides, so one family-blind path serves both.
 */
static __always_inline __u8 ramjet_dst_sorts_first(const struct ramjet_pkt* pkt) {
  __u64 s = bpf_be64_to_cpu(pkt->saddr64[0]);
  __u64 d = bpf_be64_to_cpu(pkt->daddr64[0]);
  if (s != d) return d < s;
  s = bpf_be64_to_cpu(pkt->saddr64[1]);
  d = bpf_be64_to_cpu(pkt->daddr64[1]);
  if (s != d) return d < s;
  return bpf_ntohs(pkt->dport) < bpf_ntohs(pkt->sport);
}

/*
 * Fills every byte of `key` for a parsed IP packet; returns the packet's side:
 * 0 if its source is key.lo, 1 if it is key.hi.
 */
static __always_inline __u8 ramjet_flow_key_build(const struct ramjet_pkt* pkt,
                                                  struct ramjet_flow_key* key) {
  __u8 side = ramjet_dst_sorts_first(pkt);
  const __u32* lo = side ? pkt->daddr : pkt->saddr;
  const __u32* hi = side ? pkt->saddr : pkt->daddr;
#pragma unroll
  for (int i = 0; i < RAMJET_ADDR_WORDS; i++) {
    key->addr_lo[i] = lo[i];
    key->addr_hi[i] = hi[i];
  }
  key->port_lo = side ? pkt->dport : pkt->sport;
  key->port_hi = side ? pkt->sport : pkt->dport;
  key->family = pkt->family;
  key->proto = pkt->proto;
  key->pad[0] = 0;
  key->pad[1] = 0;
  return side;
}

#endif /* RAMJET_LIB_FLOW_KEY_H */
