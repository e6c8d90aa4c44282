/* SPDX-License-Identifier: Apache-2.0 */
/* Normalized flow keys: both directions of a connection build the same key. */
#ifndef RAMJET_LIB_FLOW_KEY_H
#define RAMJET_LIB_FLOW_KEY_H

#include "defs.h"
#include "parse.h"

/*
 * Returns 1 when (a, pa) sorts before (b, pb): bytewise on the network-order
 * address, then on the network-order port (same order userspace gets with
 * memcmp on the key fields).
 */
static __always_inline int ramjet_endpoint_less(const __u32* a, __be16 pa, const __u32* b,
                                                __be16 pb) {
#pragma unroll
  for (int i = 0; i < RAMJET_ADDR_WORDS; i++) {
    __u32 x = bpf_ntohl(a[i]);
    __u32 y = bpf_ntohl(b[i]);
    if (x != y) return x < y;
  }
  return bpf_ntohs(pa) < bpf_ntohs(pb);
}

/*
 * Fills `key` for a parsed IP packet; returns the packet's side: 0 if its source
 * is key.lo, 1 if it is key.hi.
 */
static __always_inline __u8 ramjet_flow_key_build(const struct ramjet_pkt* pkt,
                                                  struct ramjet_flow_key* key) {
  __builtin_memset(key, 0, sizeof(*key));
  key->family = pkt->family;
  key->proto = pkt->proto;
  __u8 side = ramjet_endpoint_less(pkt->daddr, pkt->dport, pkt->saddr, pkt->sport);
  if (side == 0) {
    __builtin_memcpy(key->addr_lo, pkt->saddr, sizeof(key->addr_lo));
    __builtin_memcpy(key->addr_hi, pkt->daddr, sizeof(key->addr_hi));
    key->port_lo = pkt->sport;
    key->port_hi = pkt->dport;
  } else {
    __builtin_memcpy(key->addr_lo, pkt->daddr, sizeof(key->addr_lo));
    __builtin_memcpy(key->addr_hi, pkt->saddr, sizeof(key->addr_hi));
    key->port_lo = pkt->dport;
    key->port_hi = pkt->sport;
  }
  return side;
}

#endif /* RAMJET_LIB_FLOW_KEY_H */
