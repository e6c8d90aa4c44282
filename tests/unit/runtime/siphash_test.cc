#include "runtime/siphash.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <set>

namespace ramjet::runtime {
namespace {

// The reference key of the SipHash paper: bytes 00 01 .. 0f, little-endian.
constexpr SipKey kPaperKey{0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};

std::array<std::uint8_t, 64> counting_bytes() {
  std::array<std::uint8_t, 64> a{};
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<std::uint8_t>(i);
  return a;
}

TEST(SipHash24, MatchesTheReference128BitVectors) {
  // vectors_sip128 of the reference implementation: messages 00, 00 01 .. 00..0e.
  const auto msg = counting_bytes();
  const SipDigest128 empty = siphash24_128(kPaperKey, {msg.data(), 0});
  EXPECT_EQ(empty.lo, 0xe6a825ba047f81a3ULL);
  EXPECT_EQ(empty.hi, 0x930255c71472f66dULL);
  const SipDigest128 fifteen = siphash24_128(kPaperKey, {msg.data(), 15});
  EXPECT_NE(fifteen, empty);
}

TEST(SipHash13, DependsOnTheKeyEveryByteAndTheLength) {
  const auto msg = counting_bytes();
  const std::uint64_t base = siphash13(kPaperKey, {msg.data(), 37});
  EXPECT_EQ(base, siphash13(kPaperKey, {msg.data(), 37}));
  EXPECT_NE(base, siphash13(SipKey{kPaperKey.k0 ^ 1, kPaperKey.k1}, {msg.data(), 37}));
  EXPECT_NE(base, siphash13(kPaperKey, {msg.data(), 36}));
  std::set<std::uint64_t> seen{base};
  for (std::size_t i = 0; i < 37; ++i) {
    auto changed = msg;
    changed[i] ^= 0x80;
    seen.insert(siphash13(kPaperKey, {changed.data(), 37}));
  }
  EXPECT_EQ(seen.size(), 38u);
}

TEST(TableHashKey, IsRandomAndStableWithinTheProcess) {
  const SipKey& a = table_hash_key();
  EXPECT_EQ(&a, &table_hash_key());
  EXPECT_FALSE(a.k0 == 0 && a.k1 == 0);
}

}  // namespace
}  // namespace ramjet::runtime
