// Server connection ids carry the worker where the kernel's steering program
// (bpf/progs/quic_reuseport.bpf.c) looks for it.
#include "datapath/quic_cid.h"

#include <gtest/gtest.h>

namespace ramjet::datapath {
namespace {

TEST(QuicCid, WorkerIsByteOneAndGenerationTheTopBitsOfByteZero) {
  const std::array<std::uint8_t, kQuicCidLength> random{0xff, 0xff, 1, 2, 3, 4, 5, 6};
  QuicCid cid = make_quic_cid(7, 2, random);
  EXPECT_EQ(cid[0], 0xbf);  // 10 111111: generation 2, the random bits kept
  EXPECT_EQ(cid[1], 7);
  EXPECT_EQ(cid[7], 6);
  EXPECT_EQ(quic_cid_worker(cid), 7u);
  EXPECT_EQ(quic_cid_generation(cid), 2u);
}

TEST(QuicCid, EveryWorkerIndexRoundTrips) {
  const std::array<std::uint8_t, kQuicCidLength> random{};
  for (unsigned w = 0; w < kQuicMaxWorkers; ++w)
    EXPECT_EQ(quic_cid_worker(make_quic_cid(w, 0, random)), w);
}

TEST(QuicCid, IdsOfAnotherLengthNameNoWorker) {
  const std::uint8_t client_chosen[20] = {};
  EXPECT_EQ(quic_cid_worker(client_chosen), std::nullopt);
  EXPECT_EQ(quic_cid_generation(std::span<const std::uint8_t>(client_chosen, 4)), std::nullopt);
}

}  // namespace
}  // namespace ramjet::datapath
