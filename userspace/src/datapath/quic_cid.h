// Server-chosen QUIC connection ids in the layout the kernel's steering program reads
// (bpf/include/ramjet/abi/quic.h): byte 0 carries the daemon generation in its top two
// bits, byte 1 the worker's index, the rest is random. The quic layer issues its ids
// through this, so the SK_REUSEPORT program can send each packet to its worker.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace ramjet::datapath {

inline constexpr std::size_t kQuicCidLength = 8;
inline constexpr unsigned kQuicMaxWorkers = 256;
inline constexpr unsigned kQuicGenerations = 4;

using QuicCid = std::array<std::uint8_t, kQuicCidLength>;

// An id naming `worker` and `generation` (0..3), its other bits from `random`
// (kQuicCidLength bytes; byte 1 and the top bits of byte 0 are overwritten).
QuicCid make_quic_cid(unsigned worker, unsigned generation,
                      std::span<const std::uint8_t, kQuicCidLength> random);

// The worker an id of ours names; nullopt when the id is not of our length.
std::optional<unsigned> quic_cid_worker(std::span<const std::uint8_t> cid);
std::optional<unsigned> quic_cid_generation(std::span<const std::uint8_t> cid);

}  // namespace ramjet::datapath
