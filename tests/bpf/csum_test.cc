// bpf/lib/csum.h is value-only, so it is tested here directly: every
// incremental update (RFC 1624) must equal a full recomputation.
#include "csum.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "packet_builder.h"

namespace ramjet::test {
namespace {

uint16_t full_ipv4_checksum(Bytes hdr) {
  hdr[10] = hdr[11] = 0;
  return csum_finish(csum_add(hdr.data(), hdr.size()));
}
// Reads the 16-bit word at `at` in memory order, as BPF code loads it.
uint16_t load16(const Bytes& p, size_t at) {
  uint16_t v;
  std::memcpy(&v, &p[at], 2);
  return v;
}
void store16(Bytes& p, size_t at, uint16_t v) {
  std::memcpy(&p[at], &v, 2);
}

Bytes random_ipv4_header(std::mt19937& rng) {
  Bytes h(20);
  for (auto& b : h) b = uint8_t(rng());
  h[0] = 0x45;
  h[8] = uint8_t(2 + rng() % 254);  // TTL >= 2
  put16(&h[10], full_ipv4_checksum(h));
  return h;
}

TEST(Csum, TtlDecrementMatchesRecompute) {
  std::mt19937 rng(1);
  for (int i = 0; i < 100000; i++) {
    Bytes h = random_ipv4_header(rng);
    uint16_t old_word = load16(h, 8);
    h[8]--;
    store16(h, 10, ramjet_csum_replace16(load16(h, 10), old_word, load16(h, 8)));
    ASSERT_EQ(get16(&h[10]), full_ipv4_checksum(h)) << "iteration " << i;
    ASSERT_EQ(csum_finish(csum_add(h.data(), h.size())), 0);
  }
}

TEST(Csum, AddressRewriteMatchesRecompute) {
  std::mt19937 rng(2);
  for (int i = 0; i < 100000; i++) {
    Bytes h = random_ipv4_header(rng);
    uint32_t old_addr, new_addr = rng();
    std::memcpy(&old_addr, &h[12], 4);
    std::memcpy(&h[12], &new_addr, 4);
    store16(h, 10, ramjet_csum_replace32(load16(h, 10), old_addr, new_addr));
    ASSERT_EQ(get16(&h[10]), full_ipv4_checksum(h)) << "iteration " << i;
  }
}

TEST(Csum, Rfc1624ZeroAndAllOnesEdges) {
  // RFC 1624 section 3: eqn. 3 (unlike RFC 1141's eqn. 2) stays correct when a
  // field becomes all zeros; here TTL 1 -> 0.
  Bytes h = {0x45, 0, 0, 20, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  put16(&h[10], full_ipv4_checksum(h));
  uint16_t old_word = load16(h, 8);
  h[8] = 0;
  store16(h, 10, ramjet_csum_replace16(load16(h, 10), old_word, load16(h, 8)));
  EXPECT_EQ(csum_finish(csum_add(h.data(), h.size())), 0);
  EXPECT_EQ(ramjet_csum_fold(0x1ffffu), 0x0001);
  EXPECT_EQ(ramjet_csum_fold(0xffffu), 0xffff);
}

}  // namespace
}  // namespace ramjet::test
