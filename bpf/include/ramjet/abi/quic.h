/* SPDX-License-Identifier: Apache-2.0 */
/*
 * QUIC steering (bpf/progs/quic_reuseport.bpf.c): an SO_REUSEPORT group holds one UDP
 * socket per worker, and its BPF_PROG_TYPE_SK_REUSEPORT program sends every packet of
 * a QUIC connection to the worker that owns it, by the connection id the server chose,
 * so a client whose address changes (NAT rebinding, migration) still reaches it.
 *
 * Server-chosen connection ids are RAMJET_QUIC_CID_LEN bytes:
 *
 *   byte 0   bits 7-6: generation (which daemon of a graceful restart issued it);
 *            bits 5-0: random
 *   byte 1   the worker's index (0..RAMJET_QUIC_MAX_WORKERS-1)
 *   2..7     random
 *
 * Packets the program routes by that id: short-header (1-RTT) packets, whose
 * destination id starts at byte 1, and long-header Handshake packets, whose
 * destination id is the server's once the client has seen it. Initial and 0-RTT
 * packets carry an id the client chose: they go by the kernel's 4-tuple hash, so a
 * client's handshake stays on one worker, which then issues ids naming itself. So do
 * packets too short to carry an id and ids naming a worker without a socket (counted).
 *
 *   quic_sockets  BPF_MAP_TYPE_REUSEPORT_SOCKARRAY  worker index -> its socket
 *   quic_stats    BPF_MAP_TYPE_PERCPU_ARRAY  enum ramjet_quic_stat -> packets
 */
#ifndef RAMJET_ABI_QUIC_H
#define RAMJET_ABI_QUIC_H

#define RAMJET_QUIC_CID_LEN 8
#define RAMJET_QUIC_CID_WORKER_BYTE 1
#define RAMJET_QUIC_CID_GENERATION_SHIFT 6
#define RAMJET_QUIC_MAX_WORKERS 256

/* What the steering program did with a packet. */
#define RAMJET_QUIC_STATS(X)                                                              \
  X(BY_CID, 0)      /* sent to the worker its destination connection id names */          \
  X(HASHED, 1)      /* Initial, 0-RTT, Retry or version negotiation: the 4-tuple hash */  \
  X(NO_SOCKET, 2)   /* the id names a worker without a socket: the hash instead */        \
  X(TOO_SHORT, 3)   /* too short for a QUIC header with our id: the hash */               \
  X(OTHER_CID, 4)   /* a long header whose id is not of our length: the hash */

enum ramjet_quic_stat {
#define RAMJET_X_ENUM(name, value) RAMJET_QUIC_##name = value,
  RAMJET_QUIC_STATS(RAMJET_X_ENUM)
#undef RAMJET_X_ENUM
      RAMJET_QUIC_STAT_COUNT
};

#endif
