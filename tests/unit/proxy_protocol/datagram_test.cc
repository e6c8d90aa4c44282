#include "proxy_protocol/datagram.h"

#include <gtest/gtest.h>

#include <string>

namespace ramjet::proxy_protocol {
namespace {

using namespace std::string_literals;

ProxyHeader udp4_header() {
  ProxyHeader h;
  h.family = ProxyHeader::Family::kInet;
  h.transport = ProxyHeader::Transport::kDgram;
  h.source = *SocketAddress::parse("192.0.2.7:5353");
  h.destination = *SocketAddress::parse("198.51.100.1:53");
  return h;
}

std::span<const std::uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

DatagramPolicy trusted(bool required = true) {
  return {required, true};
}

TEST(ProxyProtocolDatagram, HeaderThenPayload) {
  const std::string d = encode_v2(udp4_header()) + "payload";
  ProxyHeader h;
  const DatagramResult r = parse_datagram(bytes(d), h, trusted());
  ASSERT_EQ(r.verdict, DatagramVerdict::kHeader);
  EXPECT_EQ(d.substr(r.payload_offset), "payload");
  EXPECT_EQ(h.client(), SocketAddress::parse("192.0.2.7:5353"));
  EXPECT_EQ(h.transport, ProxyHeader::Transport::kDgram);
}

TEST(ProxyProtocolDatagram, Udp6AndEmptyPayload) {
  ProxyHeader in;
  in.family = ProxyHeader::Family::kInet6;
  in.transport = ProxyHeader::Transport::kDgram;
  in.source = *SocketAddress::parse("[2001:db8::7]:4000");
  in.destination = *SocketAddress::parse("[2001:db8::1]:53");
  const std::string d = encode_v2(in, true);
  ProxyHeader h;
  const DatagramResult r = parse_datagram(bytes(d), h, trusted());
  ASSERT_EQ(r.verdict, DatagramVerdict::kHeader);
  EXPECT_EQ(r.payload_offset, d.size());
  EXPECT_TRUE(h.crc32c_checked);
}

TEST(ProxyProtocolDatagram, LocalKeepsTheSender) {
  ProxyHeader in;
  in.command = ProxyHeader::Command::kLocal;
  const std::string d = encode_v2(in) + "ping";
  ProxyHeader h;
  const DatagramResult r = parse_datagram(bytes(d), h, trusted());
  ASSERT_EQ(r.verdict, DatagramVerdict::kHeader);
  EXPECT_FALSE(h.client());
  EXPECT_EQ(d.substr(r.payload_offset), "ping");
}

TEST(ProxyProtocolDatagram, StreamTransportIsABadFamily) {
  ProxyHeader in = udp4_header();
  in.transport = ProxyHeader::Transport::kStream;
  const std::string d = encode_v2(in) + "x";
  ProxyHeader h;
  const DatagramResult r = parse_datagram(bytes(d), h, trusted());
  ASSERT_EQ(r.verdict, DatagramVerdict::kDrop);
  EXPECT_EQ(r.reason, Reason::kV2BadFamily);
}

TEST(ProxyProtocolDatagram, UntrustedSenderIsDropped) {
  const std::string d = encode_v2(udp4_header()) + "x";
  ProxyHeader h;
  EXPECT_EQ(parse_datagram(bytes(d), h, {true, false}).reason, Reason::kUntrustedPeer);
  // Optional mode: a header from an untrusted sender is refused, plain datagrams pass.
  EXPECT_EQ(parse_datagram(bytes(d), h, {false, false}).reason, Reason::kUntrustedPeer);
  const std::string plain = "hello";
  EXPECT_EQ(parse_datagram(bytes(plain), h, {false, false}).verdict, DatagramVerdict::kNoHeader);
}

TEST(ProxyProtocolDatagram, RequiredModeWantsTheSignature) {
  ProxyHeader h;
  const std::string plain = "hello, no header";
  const DatagramResult r = parse_datagram(bytes(plain), h, trusted());
  EXPECT_EQ(r.verdict, DatagramVerdict::kDrop);
  EXPECT_EQ(r.reason, Reason::kBadSignature);
  // An empty datagram is a prefix of every signature: in required mode it is cut short.
  EXPECT_EQ(parse_datagram({}, h, trusted()).reason, Reason::kTruncated);
  EXPECT_EQ(parse_datagram({}, h, trusted(false)).verdict, DatagramVerdict::kNoHeader);
}

TEST(ProxyProtocolDatagram, CutHeaderIsTruncatedNotNeedMore) {
  const std::string d = encode_v2(udp4_header());
  for (std::size_t n = 12; n < d.size(); ++n) {
    ProxyHeader h;
    const DatagramResult r = parse_datagram(bytes(d.substr(0, n)), h, trusted());
    ASSERT_EQ(r.verdict, DatagramVerdict::kDrop) << n;
    EXPECT_EQ(r.reason, Reason::kTruncated) << n;
  }
}

TEST(ProxyProtocolDatagram, VersionOneIsNotSpokenOverUdp) {
  const std::string d = "PROXY UDP4 192.0.2.7 198.51.100.1 5353 53\r\nx";
  ProxyHeader h;
  EXPECT_EQ(parse_datagram(bytes(d), h, trusted()).reason, Reason::kVersionNotAllowed);
}

TEST(ProxyProtocolDatagram, BadChecksumIsCounted) {
  std::string d = encode_v2(udp4_header(), true);
  d[20] ^= 0x01;  // an address byte: the CRC32C no longer matches
  ProxyHeader h;
  EXPECT_EQ(parse_datagram(bytes(d), h, trusted()).reason, Reason::kV2BadChecksum);
}

}  // namespace
}  // namespace ramjet::proxy_protocol
