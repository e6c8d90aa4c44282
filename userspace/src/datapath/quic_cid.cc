#include "datapath/quic_cid.h"

#include "ramjet/abi/quic.h"

namespace ramjet::datapath {

static_assert(kQuicCidLength == RAMJET_QUIC_CID_LEN);
static_assert(kQuicMaxWorkers == RAMJET_QUIC_MAX_WORKERS);
static_assert(RAMJET_QUIC_CID_WORKER_BYTE == 1);
static_assert(kQuicGenerations == 1u << (8 - RAMJET_QUIC_CID_GENERATION_SHIFT));

QuicCid make_quic_cid(unsigned worker, unsigned generation,
                      std::span<const std::uint8_t, kQuicCidLength> random) {
  QuicCid cid;
  for (std::size_t i = 0; i < cid.size(); ++i) cid[i] = random[i];
  constexpr std::uint8_t kRandomBits = (1u << RAMJET_QUIC_CID_GENERATION_SHIFT) - 1;
  cid[0] = static_cast<std::uint8_t>(
      ((generation % kQuicGenerations) << RAMJET_QUIC_CID_GENERATION_SHIFT) |
      (cid[0] & kRandomBits));
  cid[RAMJET_QUIC_CID_WORKER_BYTE] = static_cast<std::uint8_t>(worker % kQuicMaxWorkers);
  return cid;
}

std::optional<unsigned> quic_cid_worker(std::span<const std::uint8_t> cid) {
  if (cid.size() != kQuicCidLength) return std::nullopt;
  return cid[RAMJET_QUIC_CID_WORKER_BYTE];
}

std::optional<unsigned> quic_cid_generation(std::span<const std::uint8_t> cid) {
  if (cid.size() != kQuicCidLength) return std::nullopt;
  return cid[0] >> RAMJET_QUIC_CID_GENERATION_SHIFT;
}

}  // namespace ramjet::datapath
