// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * QUIC steering: the SK_REUSEPORT program of a QUIC listener's socket group, one
 * socket per worker (ramjet/abi/quic.h). The kernel runs it for each datagram that
 * matches the group; it picks the socket of the worker that the destination
 * connection id names, or leaves the choice to the kernel's hash of the 4-tuple.
 *
 * ctx->data is the UDP header, and the QUIC packet follows it (RFC 9000 s.17):
 *   long header   0b1TTxxxxx, version (4), DCID length (1), DCID, ...
 *   short header  0b01xxxxxx, DCID (our length: the receiver knows it), ...
 */
// clang-format off: vmlinux.h must come first (it provides the kernel types).
#include "vmlinux.h"
// clang-format on

#include <bpf/bpf_helpers.h>

#include "ramjet/abi/quic.h"

#define UDP_HEADER_LEN 8
/* Long header: first byte, version, DCID length, DCID. */
#define LONG_DCID_OFFSET 6
#define QUIC_LONG_TYPE_HANDSHAKE 2

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
  __uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
  __uint(max_entries, RAMJET_QUIC_MAX_WORKERS);
  __type(key, __u32);
  __type(value, __u64);
} quic_sockets SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, RAMJET_QUIC_STAT_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} quic_stats SEC(".maps");

static __always_inline void count(__u32 stat) {
  __u64 *n = bpf_map_lookup_elem(&quic_stats, &stat);
  if (n) *n += 1;
}

SEC("sk_reuseport")
int quic_select(struct sk_reuseport_md *ctx) {
  /* Enough for a long header up to the end of an id of our length. */
  __u8 h[LONG_DCID_OFFSET + RAMJET_QUIC_CID_LEN];
  __u8 worker;
  if (bpf_skb_load_bytes(ctx, UDP_HEADER_LEN, h, 1 + RAMJET_QUIC_CID_LEN) < 0) {
    count(RAMJET_QUIC_TOO_SHORT);
    return SK_PASS;
  }
  if (h[0] & 0x80) {
    /* Long header. Only Handshake packets carry an id we chose for sure: an Initial's
     * or 0-RTT's is the client's (or a Retry's we handed out statelessly), and a
     * version negotiation or Retry is ours to send, not to receive. */
    if (((h[0] >> 4) & 0x3) != QUIC_LONG_TYPE_HANDSHAKE) {
      count(RAMJET_QUIC_HASHED);
      return SK_PASS;
    }
    if (bpf_skb_load_bytes(ctx, UDP_HEADER_LEN, h, sizeof h) < 0) {
      count(RAMJET_QUIC_TOO_SHORT);
      return SK_PASS;
    }
    if (h[5] != RAMJET_QUIC_CID_LEN) {
      count(RAMJET_QUIC_OTHER_CID);
      return SK_PASS;
    }
    worker = h[LONG_DCID_OFFSET + RAMJET_QUIC_CID_WORKER_BYTE];
  } else {
    worker = h[1 + RAMJET_QUIC_CID_WORKER_BYTE];
  }
  __u32 key = worker;
  if (bpf_sk_select_reuseport(ctx, &quic_sockets, &key, 0) != 0) {
    count(RAMJET_QUIC_NO_SOCKET);
    return SK_PASS;
  }
  count(RAMJET_QUIC_BY_CID);
  return SK_PASS;
}
