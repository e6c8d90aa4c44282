#include "proxy_protocol/parser.h"

#include <gtest/gtest.h>

#include <string>

namespace ramjet::proxy_protocol {
namespace {

using namespace std::string_literals;

SocketAddress addr(const char* s) {
  return *SocketAddress::parse(s);
}

Result parse_all(std::string_view bytes, ProxyHeader& h, const Limits& limits = {}) {
  return parse(bytes, h, limits);
}

void expect_error(std::string_view bytes, Reason reason, const Limits& limits = {}) {
  ProxyHeader h;
  Result r = parse(bytes, h, limits);
  EXPECT_EQ(r.status, Status::kError) << "for " << testing::PrintToString(std::string(bytes));
  EXPECT_EQ(to_string(r.reason), to_string(reason));
}

// Every strict prefix of a complete header is kNeedMore; the whole is kDone.
void expect_incremental(std::string_view bytes) {
  ProxyHeader h;
  for (std::size_t n = 0; n < bytes.size(); ++n)
    ASSERT_EQ(parse(bytes.substr(0, n), h).status, Status::kNeedMore) << "prefix " << n;
  Result r = parse(bytes, h);
  ASSERT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.consumed, bytes.size());
}

ProxyHeader inet_header() {
  ProxyHeader h;
  h.family = ProxyHeader::Family::kInet;
  h.transport = ProxyHeader::Transport::kStream;
  h.source = addr("192.0.2.7:51000");
  h.destination = addr("198.51.100.1:443");
  return h;
}

// ---------------------------------------------------------------------------------------
// CRC32C

TEST(ProxyProtocolCrc32c, MatchesTheCastagnoliCheckValue) {
  const std::string s = "123456789";
  EXPECT_EQ(crc32c(std::span(reinterpret_cast<const std::uint8_t*>(s.data()), s.size())),
            0xE3069283u);
}

TEST(ProxyProtocolCrc32c, ChainsAcrossPieces) {
  const std::string s = "123456789";
  auto* p = reinterpret_cast<const std::uint8_t*>(s.data());
  EXPECT_EQ(crc32c(std::span(p + 4, 5), crc32c(std::span(p, 4))), 0xE3069283u);
}

// ---------------------------------------------------------------------------------------
// Detection (mode: optional)

TEST(ProxyProtocolDetect, TellsHeadersFromOtherProtocols) {
  auto d = [](std::string_view s) {
    return detect(std::span(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
  };
  EXPECT_EQ(d(""), Detected::kNeedMore);
  EXPECT_EQ(d("PROX"), Detected::kNeedMore);
  EXPECT_EQ(d("PROXY "), Detected::kV1);
  EXPECT_EQ(d("\r\n\r\n\0\r\n"s), Detected::kNeedMore);
  EXPECT_EQ(d("\r\n\r\n\0\r\nQUIT\n"s), Detected::kV2);
  EXPECT_EQ(d("POST / HTTP/1.1\r\n"), Detected::kNone);
  EXPECT_EQ(d("PUT"), Detected::kNone);
  EXPECT_EQ(d("\x16\x03\x01"), Detected::kNone);  // a TLS ClientHello
  EXPECT_EQ(d("GET / HTTP/1.1\r\n"), Detected::kNone);
  EXPECT_EQ(d("\r\n\r\n\0\r\nQUIX"s), Detected::kNone);
}

// ---------------------------------------------------------------------------------------
// v1: the spec's examples

TEST(ProxyProtocolV1, Tcp4) {
  const std::string line = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
  expect_incremental(line);
  ProxyHeader h;
  ASSERT_EQ(parse_all(line + "GET / HTTP/1.1\r\n", h).consumed, line.size());
  EXPECT_EQ(h.version, ProxyHeader::Version::kV1);
  EXPECT_EQ(h.command, ProxyHeader::Command::kProxy);
  EXPECT_EQ(h.family, ProxyHeader::Family::kInet);
  EXPECT_EQ(h.transport, ProxyHeader::Transport::kStream);
  EXPECT_EQ(h.source, addr("192.168.0.1:56324"));
  EXPECT_EQ(h.destination, addr("192.168.0.11:443"));
  EXPECT_EQ(h.client(), addr("192.168.0.1:56324"));
}

TEST(ProxyProtocolV1, Tcp4Extremes) {
  ProxyHeader h;
  Result r = parse_all("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", h);
  ASSERT_EQ(r.status, Status::kDone);
  EXPECT_EQ(h.source, addr("255.255.255.255:65535"));
  r = parse_all("PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", h);
  ASSERT_EQ(r.status, Status::kDone);
}

TEST(ProxyProtocolV1, Tcp6LongestIs104Bytes) {
  const std::string ff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  const std::string line = "PROXY TCP6 " + ff + " " + ff + " 65535 65535\r\n";
  ASSERT_EQ(line.size(), 104u);
  expect_incremental(line);
  ProxyHeader h;
  ASSERT_EQ(parse_all(line, h).status, Status::kDone);
  EXPECT_EQ(h.family, ProxyHeader::Family::kInet6);
  EXPECT_EQ(h.source, addr(("[" + ff + "]:65535").c_str()));
}

TEST(ProxyProtocolV1, UnknownIgnoresTheRestOfTheLine) {
  const std::string ff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  const std::string longest = "PROXY UNKNOWN " + ff + " " + ff + " 65535 65535\r\n";
  ASSERT_EQ(longest.size(), kV1MaxLength);
  for (const std::string& line : {"PROXY UNKNOWN\r\n"s, longest}) {
    expect_incremental(line);
    ProxyHeader h;
    ASSERT_EQ(parse_all(line, h).status, Status::kDone);
    EXPECT_EQ(h.family, ProxyHeader::Family::kUnspec);
    EXPECT_FALSE(h.client());
  }
}

TEST(ProxyProtocolV1, TooLongWithoutCrlf) {
  std::string line = "PROXY UNKNOWN " + std::string(93, 'x');
  ASSERT_EQ(line.size(), kV1MaxLength);
  expect_error(line, Reason::kV1TooLong);
  // The CR must be at offset 105 at the latest: 106 bytes without one are refused.
  expect_error(line.substr(0, 106), Reason::kV1TooLong);
  expect_error(line.substr(0, 106) + "\r", Reason::kV1TooLong);
  ProxyHeader h;
  EXPECT_EQ(parse_all(line.substr(0, 105), h).status, Status::kNeedMore);
  EXPECT_EQ(parse_all(line.substr(0, 105) + "\r", h).status, Status::kNeedMore);
}

TEST(ProxyProtocolV1, MalformedLines) {
  for (const char* bad : {
           "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",      // protocol
           "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",     // two spaces
           "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",     // two spaces
           "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",     // trailing space
           "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",        // missing port
           "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",    // extra field
           "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",    // address
           "PROXY TCP4 ::1 ::1 1 2\r\n",              // family mismatch
           "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",      // family mismatch
           "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",  // port range
           "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",     // leading zero
           "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",     // sign
           "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",       // CR not followed by LF
           "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",        // bare LF
           "PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",     // control byte
           "PROXY \r\n",                              // nothing
           "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",      // case
       })
    expect_error(bad, Reason::kV1Malformed);
}

TEST(ProxyProtocolV1, MalformedIsReportedBeforeTheLineEnds) {
  expect_error("PROXY TCP4 1.2.3.4\x01", Reason::kV1Malformed);
}

TEST(ProxyProtocolV1, NotAllowed) {
  expect_error("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", Reason::kVersionNotAllowed,
               Limits{.accept_v1 = false});
}

TEST(ProxyProtocolV1, EncoderRoundTrips) {
  ProxyHeader h = inet_header();
  h.version = ProxyHeader::Version::kV1;
  const std::string line = encode_v1(h);
  EXPECT_EQ(line, "PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\r\n");
  ProxyHeader back;
  ASSERT_EQ(parse_all(line, back).status, Status::kDone);
  EXPECT_EQ(back, h);
  EXPECT_EQ(encode_v1(ProxyHeader{}), "PROXY UNKNOWN\r\n");
}

// ---------------------------------------------------------------------------------------
// Signatures

TEST(ProxyProtocol, BadSignature) {
  expect_error("GET / HTTP/1.1\r\n", Reason::kBadSignature);
  expect_error("PROXZ", Reason::kBadSignature);
  expect_error("\r\n\r\n\0\r\nQUIT\r"s, Reason::kBadSignature);
  expect_error("\x16\x03\x01\x02\x00", Reason::kBadSignature);
  ProxyHeader h;
  EXPECT_EQ(parse_all("PROXY", h).status, Status::kNeedMore);
  EXPECT_EQ(parse_all("", h).status, Status::kNeedMore);
}

// ---------------------------------------------------------------------------------------
// v2

// A hand-written v2 header: signature, ver/cmd, fam, then `body` with its length.
std::string v2(std::uint8_t ver_cmd, std::uint8_t fam, const std::string& body) {
  std::string out(kV2Signature);
  out.push_back(static_cast<char>(ver_cmd));
  out.push_back(static_cast<char>(fam));
  out.push_back(static_cast<char>(body.size() >> 8));
  out.push_back(static_cast<char>(body.size() & 0xff));
  return out + body;
}

std::string tlv(std::uint8_t type, const std::string& value) {
  std::string out(1, static_cast<char>(type));
  out.push_back(static_cast<char>(value.size() >> 8));
  out.push_back(static_cast<char>(value.size() & 0xff));
  return out + value;
}

// 192.0.2.7:51000 -> 198.51.100.1:443
const std::string kInetBlock = "\xc0\x00\x02\x07\xc6\x33\x64\x01\xc7\x38\x01\xbb"s;

TEST(ProxyProtocolV2, TcpOverIpv4ByHand) {
  const std::string bytes = v2(0x21, 0x11, kInetBlock);
  expect_incremental(bytes);
  ProxyHeader h;
  Result r = parse_all(bytes + "\x16\x03\x01", h);
  ASSERT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.consumed, 28u);
  EXPECT_EQ(h, inet_header());
}

TEST(ProxyProtocolV2, UdpOverIpv6) {
  ProxyHeader h = inet_header();
  h.family = ProxyHeader::Family::kInet6;
  h.transport = ProxyHeader::Transport::kDgram;
  h.source = addr("[2001:db8::7]:5353");
  h.destination = addr("[2001:db8::1]:53");
  const std::string bytes = encode_v2(h);
  ASSERT_EQ(bytes.size(), 16u + 36u);
  EXPECT_EQ(static_cast<std::uint8_t>(bytes[13]), 0x22);
  ProxyHeader back;
  ASSERT_EQ(parse_all(bytes, back).status, Status::kDone);
  EXPECT_EQ(back, h);
}

TEST(ProxyProtocolV2, Unix) {
  ProxyHeader h;
  h.family = ProxyHeader::Family::kUnix;
  h.transport = ProxyHeader::Transport::kStream;
  h.source_path = "/run/client.sock";
  h.destination_path = std::string(108, 'p');  // a path that fills the field: no NUL
  const std::string bytes = encode_v2(h);
  ASSERT_EQ(bytes.size(), 16u + 216u);
  ProxyHeader back;
  ASSERT_EQ(parse_all(bytes, back).status, Status::kDone);
  EXPECT_EQ(back, h);
  EXPECT_FALSE(back.client());
}

TEST(ProxyProtocolV2, LocalDiscardsTheAddressBlock) {
  // HAProxy's health checks: LOCAL, UNSPEC, no body. Any family is tolerated.
  for (std::uint8_t fam : {0x00, 0x11, 0xff}) {
    const std::string bytes = v2(0x20, fam, fam == 0x11 ? kInetBlock : "");
    expect_incremental(bytes);
    ProxyHeader h;
    ASSERT_EQ(parse_all(bytes, h).status, Status::kDone);
    EXPECT_EQ(h.command, ProxyHeader::Command::kLocal);
    EXPECT_FALSE(h.source);
    EXPECT_FALSE(h.client());
  }
}

TEST(ProxyProtocolV2, ProxyWithUnspecFamilyHasNoAddress) {
  ProxyHeader h;
  ASSERT_EQ(parse_all(v2(0x21, 0x00, ""), h).status, Status::kDone);
  EXPECT_EQ(h.command, ProxyHeader::Command::kProxy);
  EXPECT_FALSE(h.client());
}

TEST(ProxyProtocolV2, AddressBlockLongerThanItsFamilyHoldsTlvs) {
  ProxyHeader h;
  ASSERT_EQ(parse_all(v2(0x21, 0x11, kInetBlock + tlv(0x01, "h2")), h).status, Status::kDone);
  EXPECT_EQ(h.alpn, "h2");
}

TEST(ProxyProtocolV2, BadVersionCommandFamily) {
  expect_error(v2(0x11, 0x11, kInetBlock), Reason::kV2BadVersion);
  expect_error(v2(0x31, 0x11, kInetBlock), Reason::kV2BadVersion);
  expect_error(v2(0x22, 0x11, kInetBlock), Reason::kV2BadCommand);
  expect_error(v2(0x2f, 0x11, kInetBlock), Reason::kV2BadCommand);
  expect_error(v2(0x21, 0x41, kInetBlock), Reason::kV2BadFamily);
  expect_error(v2(0x21, 0x13, kInetBlock), Reason::kV2BadFamily);
  // Refused on the byte itself, before the rest arrives.
  expect_error(v2(0x11, 0x11, kInetBlock).substr(0, 13), Reason::kV2BadVersion);
  expect_error(v2(0x21, 0x41, kInetBlock).substr(0, 14), Reason::kV2BadFamily);
}

TEST(ProxyProtocolV2, AddressBlockTooShortForItsFamily) {
  expect_error(v2(0x21, 0x11, kInetBlock.substr(0, 11)), Reason::kV2BadAddressLength);
  expect_error(v2(0x21, 0x21, kInetBlock), Reason::kV2BadAddressLength);
  expect_error(v2(0x21, 0x31, std::string(215, 'a')), Reason::kV2BadAddressLength);
}

TEST(ProxyProtocolV2, Oversized) {
  const std::string bytes = v2(0x21, 0x11, kInetBlock + tlv(0xE0, std::string(5000, 'x')));
  expect_error(bytes.substr(0, 16), Reason::kV2Oversized);  // the length alone decides
  ProxyHeader h;
  EXPECT_EQ(parse_all(bytes, h, Limits{.max_v2_length = 65535}).status, Status::kDone);
  EXPECT_EQ(h.other.at(0).value.size(), 5000u);
}

TEST(ProxyProtocolV2, NotAllowed) {
  expect_error(v2(0x21, 0x11, kInetBlock), Reason::kVersionNotAllowed, Limits{.accept_v2 = false});
}

TEST(ProxyProtocolV2, AllTheTlvs) {
  ProxyHeader h = inet_header();
  h.alpn = "h2";
  h.authority = "example.com";
  h.unique_id = std::string(128, 'u');
  h.netns = "blue";
  h.ssl = ProxySslInfo{.client = ProxySslInfo::kClientSsl | ProxySslInfo::kClientCertConn,
                       .verify = 0,
                       .version = "TLSv1.3",
                       .cn = "alice",
                       .cipher = "TLS_AES_128_GCM_SHA256",
                       .sig_alg = "SHA256",
                       .key_alg = "RSA2048",
                       .other = {{0x2A, "sub"}}};
  h.other = {{0xE0, "custom"}, {0xE1, ""}, {0x10, "\x00\x01"s}};
  for (bool crc : {false, true}) {
    const std::string bytes = encode_v2(h, crc);
    expect_incremental(bytes);
    ProxyHeader back;
    ASSERT_EQ(parse_all(bytes, back).status, Status::kDone);
    EXPECT_EQ(back.crc32c_checked, crc);
    back.crc32c_checked = false;
    EXPECT_EQ(back, h);
    EXPECT_EQ(back.find(0xE0)->value, "custom");
    EXPECT_EQ(back.find(0xEF), nullptr);
  }
}

TEST(ProxyProtocolV2, NoopIsSkipped) {
  ProxyHeader h;
  ASSERT_EQ(parse_all(v2(0x21, 0x11, kInetBlock + tlv(0x04, "pad")), h).status, Status::kDone);
  EXPECT_TRUE(h.other.empty());
}

TEST(ProxyProtocolV2, Crc32cChecked) {
  ProxyHeader h = inet_header();
  h.authority = "example.com";
  std::string bytes = encode_v2(h, true);
  ProxyHeader back;
  ASSERT_EQ(parse_all(bytes, back).status, Status::kDone);
  EXPECT_TRUE(back.crc32c_checked);
  // Any flipped bit, in the addresses, a TLV or the checksum itself, is caught.
  for (std::size_t i : {std::size_t{17}, std::size_t{33}, bytes.size() - 1}) {
    std::string bad = bytes;
    bad[i] ^= 0x01;
    expect_error(bad, Reason::kV2BadChecksum);
  }
}

TEST(ProxyProtocolV2, Crc32cOfAKnownHeader) {
  // 0xefdb0cb4: computed bit by bit in Python over this header with the field zeroed.
  const std::string bytes = v2(0x21, 0x11, kInetBlock + tlv(0x03, "\xef\xdb\x0c\xb4"s));
  ProxyHeader h;
  ASSERT_EQ(parse_all(bytes, h).status, Status::kDone);
  EXPECT_TRUE(h.crc32c_checked);
  EXPECT_EQ(bytes, encode_v2(inet_header(), true));
}

TEST(ProxyProtocolV2, TruncatedTlvs) {
  expect_error(v2(0x21, 0x11, kInetBlock + "\x01\x00"s), Reason::kV2TlvTruncated);
  expect_error(v2(0x21, 0x11, kInetBlock + tlv(0x01, "h2").substr(0, 4)), Reason::kV2TlvTruncated);
  // A sub-TLV of SSL running past the SSL TLV (but not past the header).
  std::string ssl_value = "\x01\x00\x00\x00\x00"s + tlv(0x22, "alice");
  ssl_value.resize(ssl_value.size() - 1);
  expect_error(v2(0x21, 0x11, kInetBlock + tlv(0x20, ssl_value) + tlv(0x04, "x")),
               Reason::kV2TlvTruncated);
  expect_error(v2(0x21, 0x11, kInetBlock + tlv(0x20, "\x01\x00\x00\x00\x00\x22"s)),
               Reason::kV2TlvTruncated);
}

TEST(ProxyProtocolV2, BadTlvs) {
  expect_error(v2(0x21, 0x11, kInetBlock + tlv(0x03, "abc")), Reason::kV2BadTlv);
  expect_error(v2(0x21, 0x11, kInetBlock + tlv(0x05, std::string(129, 'u'))), Reason::kV2BadTlv);
  expect_error(v2(0x21, 0x11, kInetBlock + tlv(0x20, "\x01\x00\x00\x00"s)), Reason::kV2BadTlv);
  expect_error(v2(0x21, 0x11, kInetBlock + tlv(0x02, "a") + tlv(0x02, "b")), Reason::kV2BadTlv);
  expect_error(
      v2(0x21, 0x11,
         kInetBlock + tlv(0x20, "\x01\x00\x00\x00\x00"s + tlv(0x22, "a") + tlv(0x22, "b"))),
      Reason::kV2BadTlv);
}

TEST(ProxyProtocolV2, ChecksumIsCheckedAfterTheTlvsParse) {
  // A truncated TLV is reported as such even when a CRC32C would also mismatch.
  expect_error(v2(0x21, 0x11, kInetBlock + tlv(0x03, "\0\0\0\0"s) + "\xE0"),
               Reason::kV2TlvTruncated);
}

TEST(ProxyProtocol, Describe) {
  ProxyHeader h = inet_header();
  EXPECT_EQ(describe(h), "v2 proxy stream 192.0.2.7:51000 -> 198.51.100.1:443");
  h.alpn = "h2";
  h.authority = "bad name\n";
  h.unique_id = "id";
  h.crc32c_checked = true;
  h.ssl = ProxySslInfo{.client = ProxySslInfo::kClientSsl};
  h.other = {{0xE0, "x"}, {0x10, ""}};
  EXPECT_EQ(describe(h),
            "v2 proxy stream 192.0.2.7:51000 -> 198.51.100.1:443 alpn=h2 authority unique_id ssl "
            "crc32c tlvs=0xe0,0x10");
  EXPECT_EQ(describe(ProxyHeader{.version = ProxyHeader::Version::kV1}), "v1 proxy unspec unspec");
  EXPECT_EQ(describe(ProxyHeader{.command = ProxyHeader::Command::kLocal}), "v2 local");
}

TEST(ProxyProtocolReasons, EveryReasonHasAName) {
  for (std::size_t i = 0; i < kReasonCount; ++i) {
    const auto name = to_string(static_cast<Reason>(i));
    EXPECT_FALSE(name.empty());
    for (std::size_t j = 0; j < i; ++j) EXPECT_NE(name, to_string(static_cast<Reason>(j)));
  }
  EXPECT_EQ(to_string(Reason::kV2BadChecksum), "v2_bad_checksum");
  EXPECT_EQ(to_string(Reason::kBlockedByHook), "blocked_by_hook");
}

}  // namespace
}  // namespace ramjet::proxy_protocol
