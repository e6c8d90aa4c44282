#include "http/capsule.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ramjet::http {
namespace {

using Bytes = std::vector<std::uint8_t>;

// ---- Varints -----------------------------------------------------------------------------

struct VarintExample {
  Bytes bytes;
  std::uint64_t value;
};

// RFC 9000 appendix A.1, byte for byte.
const VarintExample kRfc9000Examples[] = {
    {{0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c}, 151288809941952652ull},
    {{0x9d, 0x7f, 0x3e, 0x7d}, 494878333},
    {{0x7b, 0xbd}, 15293},
    {{0x25}, 37},
};

TEST(Varint, DecodesTheRfc9000Examples) {
  for (const VarintExample& e : kRfc9000Examples) {
    std::uint64_t v = 0;
    EXPECT_EQ(decode_varint(e.bytes, v), e.bytes.size());
    EXPECT_EQ(v, e.value);
  }
}

TEST(Varint, EncodesTheRfc9000ExamplesByteForByte) {
  for (const VarintExample& e : kRfc9000Examples) {
    Bytes out;
    ASSERT_TRUE(append_varint(out, e.value));
    EXPECT_EQ(out, e.bytes) << e.value;
    std::string text;
    ASSERT_TRUE(append_varint(text, e.value));
    EXPECT_EQ(text, std::string(e.bytes.begin(), e.bytes.end()));
  }
}

TEST(Varint, AcceptsTheNonMinimalExampleOfRfc9000) {
  // A.1: "the two-byte sequence 0x40 0x25 also decodes to 37".
  const Bytes bytes{0x40, 0x25};
  std::uint64_t v = 0;
  EXPECT_EQ(decode_varint(bytes, v), 2u);
  EXPECT_EQ(v, 37u);
}

TEST(Varint, EveryStrictPrefixNeedsMore) {
  for (const VarintExample& e : kRfc9000Examples) {
    for (std::size_t n = 0; n < e.bytes.size(); ++n) {
      std::uint64_t v = 0xdead;
      EXPECT_EQ(decode_varint(std::span(e.bytes).first(n), v), 0u);
      EXPECT_EQ(v, 0xdeadu) << "a short input must not write the value";
    }
  }
}

TEST(Varint, SizesAtEveryBoundaryRoundTrip) {
  const std::pair<std::uint64_t, std::size_t> cases[] = {
      {0, 1},     {63, 1},         {64, 2},         {16383, 2},
      {16384, 4}, {1073741823, 4}, {1073741824, 8}, {kMaxVarint, 8},
  };
  for (const auto& [value, size] : cases) {
    EXPECT_EQ(varint_size(value), size) << value;
    Bytes out;
    ASSERT_TRUE(append_varint(out, value));
    ASSERT_EQ(out.size(), size);
    EXPECT_EQ(varint_size_from_first_byte(out[0]), size);
    std::uint64_t back = 0;
    EXPECT_EQ(decode_varint(out, back), size);
    EXPECT_EQ(back, value);
  }
}

TEST(Varint, RefusesToEncodeAbove62Bits) {
  EXPECT_EQ(varint_size(kMaxVarint + 1), 0u);
  std::uint8_t buf[kMaxVarintSize] = {};
  EXPECT_EQ(encode_varint(kMaxVarint + 1, buf), 0u);
  std::string out = "x";
  EXPECT_FALSE(append_varint(out, ~std::uint64_t{0}));
  EXPECT_EQ(out, "x");
}

// ---- Capsule parser ----------------------------------------------------------------------

struct Owned {
  std::uint64_t type;
  Bytes payload;
  bool operator==(const Owned&) const = default;
};

// Feeds `stream` cut at `cuts` (ascending offsets) and collects copies of every capsule.
// Returns the last non-capsule result (kNeedMore or kError).
CapsuleResult feed(CapsuleParser& p, std::span<const std::uint8_t> stream,
                   const std::vector<std::size_t>& cuts, std::vector<Owned>& out) {
  std::size_t from = 0;
  std::vector<std::size_t> ends = cuts;
  ends.push_back(stream.size());
  CapsuleResult last;
  for (std::size_t end : ends) {
    std::span<const std::uint8_t> chunk = stream.subspan(from, end - from);
    from = end;
    for (;;) {
      last = p.next(chunk);
      if (last.status == CapsuleStatus::kError) return last;
      EXPECT_LE(last.consumed, chunk.size());
      chunk = chunk.subspan(last.consumed);
      if (last.status == CapsuleStatus::kNeedMore) {
        EXPECT_TRUE(chunk.empty()) << "kNeedMore must take the whole input";
        break;
      }
      out.push_back(
          {last.capsule.type, {last.capsule.payload.begin(), last.capsule.payload.end()}});
    }
  }
  return last;
}

// Capsules of every header shape: empty payload, 1/2/8-byte types, a 2-byte length, a
// grease type, an unknown type.
std::vector<Owned> sample_capsules() {
  Bytes big(300);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::uint8_t>(i * 7);
  return {
      {kCapsuleDatagram, {0x00, 'h', 'i'}},        {kCapsuleAddressAssign, {}},
      {0x40 /* grease: 0x29 + 0x17 */, {1, 2, 3}}, {kMaxVarint, {0xff}},
      {kCapsuleRouteAdvertisement, big},           {0x1234, {9}},
  };
}

Bytes encode_all(const std::vector<Owned>& capsules) {
  Bytes stream;
  for (const Owned& c : capsules) EXPECT_TRUE(append_capsule(stream, c.type, c.payload));
  return stream;
}

TEST(Capsule, ParsesAWholeStreamWithoutCopying) {
  const std::vector<Owned> capsules = sample_capsules();
  const Bytes stream = encode_all(capsules);
  CapsuleParser p;
  std::span<const std::uint8_t> in(stream);
  for (const Owned& want : capsules) {
    const CapsuleResult r = p.next(in);
    ASSERT_EQ(r.status, CapsuleStatus::kCapsule);
    EXPECT_EQ(r.capsule.type, want.type);
    EXPECT_TRUE(std::equal(r.capsule.payload.begin(), r.capsule.payload.end(), want.payload.begin(),
                           want.payload.end()));
    if (!r.capsule.payload.empty()) {
      // Arrived whole, so the payload is a view into the input.
      EXPECT_GE(r.capsule.payload.data(), stream.data());
      EXPECT_LE(r.capsule.payload.data() + r.capsule.payload.size(), stream.data() + stream.size());
    }
    in = in.subspan(r.consumed);
  }
  EXPECT_TRUE(in.empty());
  EXPECT_EQ(p.next(in).status, CapsuleStatus::kNeedMore);
  EXPECT_EQ(p.finish().status, CapsuleStatus::kNeedMore);
  EXPECT_EQ(p.position(), stream.size());
}

TEST(Capsule, SplitAtEveryByteBoundaryGivesTheSameCapsules) {
  const std::vector<Owned> capsules = sample_capsules();
  const Bytes stream = encode_all(capsules);
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    CapsuleParser p;
    std::vector<Owned> got;
    const CapsuleResult r = feed(p, stream, {cut}, got);
    EXPECT_EQ(r.status, CapsuleStatus::kNeedMore) << "cut at " << cut;
    EXPECT_EQ(got, capsules) << "cut at " << cut;
    EXPECT_EQ(p.finish().status, CapsuleStatus::kNeedMore);
  }
}

TEST(Capsule, OneByteAtATimeGivesTheSameCapsules) {
  const std::vector<Owned> capsules = sample_capsules();
  const Bytes stream = encode_all(capsules);
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < stream.size(); ++i) cuts.push_back(i);
  CapsuleParser p;
  std::vector<Owned> got;
  EXPECT_EQ(feed(p, stream, cuts, got).status, CapsuleStatus::kNeedMore);
  EXPECT_EQ(got, capsules);
  EXPECT_EQ(p.position(), stream.size());
}

TEST(Capsule, RefusesAnOversizedCapsuleOnItsHeaderAlone) {
  CapsuleParser p(CapsuleLimits{.max_payload = 10});
  Bytes stream;
  append_capsule(stream, kCapsuleDatagram, Bytes(10, 0xaa));  // at the limit: fine
  const std::size_t second = stream.size();
  append_capsule_header(stream, kCapsuleDatagram, 11);  // no payload sent yet
  std::vector<Owned> got;
  const CapsuleResult r = feed(p, stream, {}, got);
  ASSERT_EQ(r.status, CapsuleStatus::kError);
  EXPECT_EQ(r.error, CapsuleError::kCapsuleTooLarge);
  EXPECT_EQ(r.offset, second);
  ASSERT_EQ(got.size(), 1u);
  // Sticky: more bytes, or the end of the stream, do not revive it.
  const Bytes more(20, 0);
  EXPECT_EQ(p.next(more).status, CapsuleStatus::kError);
  EXPECT_EQ(p.finish().error, CapsuleError::kCapsuleTooLarge);
}

TEST(Capsule, RefusesTheLargestLengthAVarintCanSay) {
  CapsuleParser p;
  Bytes stream{0x00};
  append_varint(stream, kMaxVarint);
  const CapsuleResult r = p.next(stream);
  ASSERT_EQ(r.status, CapsuleStatus::kError);
  EXPECT_EQ(r.error, CapsuleError::kCapsuleTooLarge);
  EXPECT_EQ(r.offset, 0u);
}

TEST(Capsule, AStreamEndingInsideACapsuleIsTruncated) {
  Bytes stream;
  append_capsule(stream, kCapsuleDatagram, Bytes{0, 1, 2, 3});
  append_capsule(stream, 0x4000 /* 4-byte type */, Bytes{5, 6});
  const std::size_t first_end = 6;
  for (std::size_t n = 0; n <= stream.size(); ++n) {
    CapsuleParser p;
    std::vector<Owned> got;
    ASSERT_EQ(feed(p, std::span(stream).first(n), {}, got).status, CapsuleStatus::kNeedMore);
    const CapsuleResult end = p.finish();
    if (n == 0 || n == first_end || n == stream.size()) {
      EXPECT_EQ(end.status, CapsuleStatus::kNeedMore) << n;
    } else {
      ASSERT_EQ(end.status, CapsuleStatus::kError) << n;
      EXPECT_EQ(end.error, CapsuleError::kTruncatedCapsule);
      EXPECT_EQ(end.offset, n < first_end ? 0u : first_end);
    }
  }
}

TEST(Capsule, RoundTripsThroughBothBufferTypes) {
  for (const Owned& c : sample_capsules()) {
    std::string text;
    Bytes bytes;
    ASSERT_TRUE(append_capsule(text, c.type, c.payload));
    ASSERT_TRUE(append_capsule(bytes, c.type, c.payload));
    EXPECT_EQ(text, std::string(bytes.begin(), bytes.end()));
    CapsuleParser p;
    const CapsuleResult r = p.next(text);
    ASSERT_EQ(r.status, CapsuleStatus::kCapsule);
    EXPECT_EQ(r.consumed, text.size());
    EXPECT_EQ(r.capsule.type, c.type);
    EXPECT_EQ(Bytes(r.capsule.payload.begin(), r.capsule.payload.end()), c.payload);
  }
}

TEST(Capsule, EncoderRefusesATypeAbove62Bits) {
  std::string out;
  EXPECT_FALSE(append_capsule(out, kMaxVarint + 1, as_bytes("x")));
  EXPECT_TRUE(out.empty());
}

TEST(Capsule, EncodesTheExactBytesOfADatagramCapsule) {
  // Type 0x00, Length 4 (Context ID 0 + "abc"), Context ID 0, payload.
  std::string out;
  ASSERT_TRUE(append_datagram_capsule(out, kContextIdPayload, as_bytes("abc")));
  EXPECT_EQ(out, std::string_view("\x00\x04\x00"
                                  "abc",
                                  6));
  // A context ID of 64 needs two bytes, and the Length counts them.
  out.clear();
  ASSERT_TRUE(append_datagram_capsule(out, 64, as_bytes("z")));
  EXPECT_EQ(out, std::string_view("\x00\x03\x40\x40z", 5));
}

TEST(Capsule, KnowsItsTypesAndTheGreaseOnes) {
  EXPECT_TRUE(is_known_capsule_type(kCapsuleDatagram));
  EXPECT_TRUE(is_known_capsule_type(kCapsuleRouteAdvertisement));
  EXPECT_FALSE(is_known_capsule_type(0x04));
  EXPECT_TRUE(is_grease_capsule_type(0x17));
  EXPECT_TRUE(is_grease_capsule_type(0x17 + 0x29 * 1000));
  EXPECT_FALSE(is_grease_capsule_type(0x18));
  EXPECT_FALSE(is_grease_capsule_type(0x16));
}

// ---- HTTP Datagram payloads --------------------------------------------------------------

TEST(CapsuleDatagram, SplitsContextIdAndPayload) {
  const Bytes bytes{0x00, 'u', 'd', 'p'};
  const DatagramResult r = parse_http_datagram(bytes);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.datagram.context_id, kContextIdPayload);
  EXPECT_EQ(r.datagram.payload.size(), 3u);
  EXPECT_EQ(r.datagram.payload.data(), bytes.data() + 1);

  // An extension's context (even: client-allocated) is handed over, not refused.
  const Bytes other{0x40, 0x02};
  const DatagramResult o = parse_http_datagram(other);
  ASSERT_TRUE(o.ok);
  EXPECT_EQ(o.datagram.context_id, 2u);
  EXPECT_TRUE(o.datagram.payload.empty());
}

TEST(CapsuleDatagram, AShortContextIdIsAnErrorNotNeedMore) {
  for (const Bytes& bytes : {Bytes{}, Bytes{0x40}, Bytes{0x80, 0, 0}, Bytes{0xc0, 1, 2}}) {
    const DatagramResult r = parse_http_datagram(bytes);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, CapsuleError::kDatagramTruncated);
  }
}

TEST(CapsuleDatagram, UdpPayloadsStopAt65527Bytes) {
  Bytes datagram{0x00};
  datagram.resize(1 + kMaxUdpPayload);
  EXPECT_TRUE(parse_udp_proxying_datagram(datagram).ok);
  datagram.push_back(0);
  const DatagramResult r = parse_udp_proxying_datagram(datagram);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, CapsuleError::kUdpPayloadTooLong);
  // The limit is that of UDP: another context's payload may be longer.
  datagram[0] = 0x02;
  EXPECT_TRUE(parse_udp_proxying_datagram(datagram).ok);
}

TEST(CapsuleDatagram, RoundTripsThroughADatagramCapsule) {
  Bytes stream;
  const Bytes payload{1, 2, 3, 4, 5};
  ASSERT_TRUE(append_datagram_capsule(stream, 0x3fff, payload));
  CapsuleParser p;
  const CapsuleResult c = p.next(stream);
  ASSERT_EQ(c.status, CapsuleStatus::kCapsule);
  ASSERT_EQ(c.capsule.type, kCapsuleDatagram);
  const DatagramResult d = parse_udp_proxying_datagram(c.capsule.payload);
  ASSERT_TRUE(d.ok);
  EXPECT_EQ(d.datagram.context_id, 0x3fffu);
  EXPECT_EQ(Bytes(d.datagram.payload.begin(), d.datagram.payload.end()), payload);

  Bytes plain;
  ASSERT_TRUE(append_http_datagram(plain, 7, payload));
  EXPECT_EQ(Bytes(c.capsule.payload.begin(), c.capsule.payload.end()).size(), 7u);
  EXPECT_EQ(plain.size(), 6u);
  EXPECT_FALSE(append_http_datagram(plain, kMaxVarint + 1, payload));
  EXPECT_EQ(plain.size(), 6u);
}

}  // namespace
}  // namespace ramjet::http
