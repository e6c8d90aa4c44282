// QUIC steering (bpf/progs/quic_reuseport.bpf.c, ramjet/abi/quic.h): the SK_REUSEPORT
// program of one QUIC listener's socket group. Each worker has a socket in the group;
// the program sends every packet that carries one of our connection ids to the socket of
// the worker the id names (byte 1), so a connection stays on the worker that owns it even
// when the client's address changes (migration, NAT rebinding), where the kernel's 4-tuple
// hash would pick any socket. Initials, 0-RTT and whatever it cannot read keep the hash.
// One object per listener (its socket array is the group's); nothing is pinned: the group
// and the program go with the sockets.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>

#include "ramjet/abi/quic.h"
#include "ramjet/result.h"

struct quic_reuseport;

namespace ramjet::datapath {

class QuicSteering {
 public:
  // Needs CAP_BPF (and CAP_NET_ADMIN for the socket array).
  static Result<std::unique_ptr<QuicSteering>> load();
  ~QuicSteering();
  QuicSteering(const QuicSteering&) = delete;
  QuicSteering& operator=(const QuicSteering&) = delete;

  // Steers the group of `sockets`: sockets[w] is worker w's, bound, with SO_REUSEPORT.
  Result<void> attach(std::span<const int> sockets);

  // Packets by enum ramjet_quic_stat, summed over CPUs.
  std::array<std::uint64_t, RAMJET_QUIC_STAT_COUNT> stats() const;

 private:
  QuicSteering() = default;
  ::quic_reuseport* skel_ = nullptr;
};

}  // namespace ramjet::datapath
