// HTTP/3 datagrams in QUIC DATAGRAM frames (http/h3/datagram.h): the Quarter Stream ID.
#include "http/h3/datagram.h"

#include <gtest/gtest.h>

#include <vector>

namespace ramjet::http::h3 {
namespace {

using Bytes = std::vector<std::uint8_t>;

TEST(H3Datagram, TheQuarterStreamIdNamesTheRequestStream) {
  const Bytes frame = {0x01, 0x00, 'h', 'i'};  // stream 4, context 0, "hi"
  const ParsedDatagram d = parse_datagram(frame);
  ASSERT_TRUE(d.ok);
  EXPECT_EQ(d.stream, 4);
  EXPECT_EQ(Bytes(d.payload.begin(), d.payload.end()), (Bytes{0x00, 'h', 'i'}));
}

TEST(H3Datagram, EncodeIsWhatParseReads) {
  const Bytes payload = {0x00, 1, 2, 3};
  for (std::int64_t stream : {0, 4, 252, 256, 1 << 20}) {
    const Bytes frame = encode_datagram(stream, payload);
    const ParsedDatagram d = parse_datagram(frame);
    ASSERT_TRUE(d.ok) << stream;
    EXPECT_EQ(d.stream, stream);
    EXPECT_EQ(Bytes(d.payload.begin(), d.payload.end()), payload);
  }
}

TEST(H3Datagram, ATruncatedOrTooLargeQuarterStreamIdIsMalformed) {
  EXPECT_FALSE(parse_datagram(Bytes{}).ok);
  EXPECT_FALSE(parse_datagram(Bytes{0x40}).ok) << "a 2-byte varint cut after one";
  // 2^60: an 8-byte varint 0xd0 00..00, past the largest Quarter Stream ID.
  EXPECT_FALSE(parse_datagram(Bytes{0xd0, 0, 0, 0, 0, 0, 0, 0}).ok);
  const ParsedDatagram max = parse_datagram(Bytes{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
  ASSERT_TRUE(max.ok);
  EXPECT_TRUE(max.payload.empty()) << "an empty HTTP datagram is the owner's to judge";
}

}  // namespace
}  // namespace ramjet::http::h3
