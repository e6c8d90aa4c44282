// The decisions a worker takes before any connection sees a datagram, on packets built
// byte by byte from RFC 9000 17.
#include "quic/packets.h"

#include <gtest/gtest.h>

#include <vector>

namespace ramjet::quic {
namespace {

const std::vector<std::uint8_t> kClientDcid{1, 2, 3, 4, 5, 6, 7, 8, 9};
const std::vector<std::uint8_t> kClientScid{0xa, 0xb, 0xc, 0xd};

// A long-header packet of `version` (type Initial for v1) padded to `size` bytes.
std::vector<std::uint8_t> long_packet(std::uint32_t version, std::size_t size) {
  std::vector<std::uint8_t> p{0xc0, static_cast<std::uint8_t>(version >> 24),
                              static_cast<std::uint8_t>(version >> 16),
                              static_cast<std::uint8_t>(version >> 8),
                              static_cast<std::uint8_t>(version)};
  p.push_back(static_cast<std::uint8_t>(kClientDcid.size()));
  p.insert(p.end(), kClientDcid.begin(), kClientDcid.end());
  p.push_back(static_cast<std::uint8_t>(kClientScid.size()));
  p.insert(p.end(), kClientScid.begin(), kClientScid.end());
  p.push_back(0);  // token length
  std::size_t rest = size - p.size() - 2;  // after the 2-byte length field
  p.push_back(static_cast<std::uint8_t>(0x40 | (rest >> 8)));
  p.push_back(static_cast<std::uint8_t>(rest));
  p.resize(size, 0);
  return p;
}

std::vector<std::uint8_t> short_packet(std::uint8_t first_id_byte, std::size_t size) {
  std::vector<std::uint8_t> p(size, 0x55);
  p[0] = 0x40;  // short header, fixed bit
  p[1] = first_id_byte;
  return p;
}

const auto kNobody = [](std::span<const std::uint8_t>) { return false; };

TEST(QuicPackets, AKnownIdGoesToItsConnection) {
  auto p = short_packet(0x42, 60);
  std::vector<std::uint8_t> looked_up;
  Decision d = decide(p, 8, [&](std::span<const std::uint8_t> id) {
    looked_up.assign(id.begin(), id.end());
    return true;
  });
  EXPECT_EQ(d.action, Action::kToConnection);
  EXPECT_EQ(looked_up, (std::vector<std::uint8_t>{0x42, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55}));
}

TEST(QuicPackets, AnInitialOfVersion1OpensAConnection) {
  auto p = long_packet(1, 1200);
  Decision d = decide(p, 8, kNobody);
  EXPECT_EQ(d.action, Action::kAccept);
  EXPECT_EQ(std::vector<std::uint8_t>(d.header.dcid().begin(), d.header.dcid().end()), kClientDcid);
  EXPECT_EQ(std::vector<std::uint8_t>(d.header.scid().begin(), d.header.scid().end()), kClientScid);
}

TEST(QuicPackets, AnUnknownVersionGetsVersionNegotiationListingVersion1) {
  auto p = long_packet(0x1a2a3a4a, 1200);
  Decision d = decide(p, 8, kNobody);
  ASSERT_EQ(d.action, Action::kVersionNegotiation);
  std::uint8_t out[256];
  std::size_t n = write_version_negotiation(out, d.header, 0x33);
  // RFC 9000 17.2.1: long form, version 0, the client's ids swapped, then our versions.
  std::vector<std::uint8_t> expect{0x80 | 0x33, 0, 0, 0, 0, 4, 0xa, 0xb, 0xc, 0xd, 9};
  expect.insert(expect.end(), kClientDcid.begin(), kClientDcid.end());
  std::vector<std::uint8_t> got(out, out + n);
  ASSERT_GE(got.size(), expect.size() + 4);
  EXPECT_EQ(got[0] & 0x80, 0x80);
  EXPECT_EQ(std::vector<std::uint8_t>(got.begin() + 1, got.begin() + expect.size()),
            std::vector<std::uint8_t>(expect.begin() + 1, expect.end()));
  bool lists_v1 = false;
  for (std::size_t i = expect.size(); i + 4 <= got.size(); i += 4)
    lists_v1 |= got[i] == 0 && got[i + 1] == 0 && got[i + 2] == 0 && got[i + 3] == 1;
  EXPECT_TRUE(lists_v1);
}

TEST(QuicPackets, AShortHeaderForNoConnectionGetsAStatelessReset) {
  EXPECT_EQ(decide(short_packet(1, 60), 8, kNobody).action, Action::kStatelessReset);
}

TEST(QuicPackets, DropsAreNamed) {
  const std::uint8_t garbage[] = {0xc0, 0, 0};
  const struct {
    const char* what;
    std::vector<std::uint8_t> datagram;
    const char* reason;
  } cases[] = {
      {"an Initial in a datagram under 1200 bytes", long_packet(1, 1000), "short_initial"},
      // ngtcp2 reads no header of an unknown version under 1200 bytes.
      {"an unknown version under 1200 bytes", long_packet(0x1a2a3a4a, 200), "malformed"},
      {"a Version Negotiation packet (servers ignore them)", long_packet(0, 1200),
       "version_negotiation"},
      {"an unknown short header of 21 bytes", short_packet(1, 21), "too_small_for_reset"},
      {"three bytes", {garbage, garbage + sizeof garbage}, "malformed"},
      {"nothing", {}, "malformed"},
  };
  for (const auto& c : cases) {
    Decision d = decide(c.datagram, 8, kNobody);
    EXPECT_EQ(d.action, Action::kDrop) << c.what;
    EXPECT_STREQ(to_string(d.drop), c.reason) << c.what;
  }
}

TEST(QuicPackets, AStatelessResetIsSmallerThanItsTriggerAndEndsWithTheToken) {
  std::array<std::uint8_t, 16> token;
  for (std::size_t i = 0; i < token.size(); ++i) token[i] = static_cast<std::uint8_t>(0xe0 + i);
  std::vector<std::uint8_t> random(64, 0xff);
  std::uint8_t out[1500];
  for (std::size_t received : {1200u, 60u, 30u, 22u}) {
    std::size_t n = write_stateless_reset(out, received, token, random);
    EXPECT_EQ(n, std::min<std::size_t>(received - 1, 43)) << received;
    EXPECT_EQ(out[0] & 0xc0, 0x40) << "short header, fixed bit";
    EXPECT_TRUE(std::equal(token.begin(), token.end(), out + n - 16));
  }
  EXPECT_EQ(write_stateless_reset(out, 21, token, random), 0u);
}

}  // namespace
}  // namespace ramjet::quic
