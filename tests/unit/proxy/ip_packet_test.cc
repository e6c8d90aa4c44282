#include "proxy/ip_packet.h"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cstdint>
#include <variant>
#include <vector>

namespace ramjet::proxy {
namespace {

using Bytes = std::vector<std::uint8_t>;

// IPv4 + UDP 10.0.0.1:1000 -> 10.0.0.2:53, payload "hi", checksums as scapy writes them.
Bytes udp4() {
  return {0x45, 0x00, 0x00, 0x1e, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x66, 0xcc,
          0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02, 0x03, 0xe8, 0x00, 0x35,
          0x00, 0x0a, 0x7f, 0x51, 0x68, 0x69};
}

// IPv6 + hop-by-hop (8 bytes) + TCP SYN [fd00::1]:1234 -> [fd00::2]:443.
Bytes tcp6_with_hbh() {
  Bytes p = {0x60, 0, 0, 0, 0x00, 0x1c, 0x00, 0x40};  // payload 28, next HBH, hop 64
  Bytes src(16, 0), dst(16, 0);
  src[0] = dst[0] = 0xfd;
  src[15] = 1;
  dst[15] = 2;
  p.insert(p.end(), src.begin(), src.end());
  p.insert(p.end(), dst.begin(), dst.end());
  Bytes hbh = {0x06, 0x00, 0x01, 0x04, 0, 0, 0, 0};  // next TCP, len 0, PadN
  p.insert(p.end(), hbh.begin(), hbh.end());
  Bytes tcp = {0x04, 0xd2, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0};
  p.insert(p.end(), tcp.begin(), tcp.end());
  return p;
}

TEST(IpPacket, ParsesTheFiveTupleOfUdpOverIpv4) {
  Bytes p = udp4();
  auto r = parse_ip(p);
  ASSERT_TRUE(std::holds_alternative<ParsedIp>(r));
  const auto& ip = std::get<ParsedIp>(r);
  EXPECT_EQ(ip.key.src.to_string(), "10.0.0.1");
  EXPECT_EQ(ip.key.dst.to_string(), "10.0.0.2");
  EXPECT_EQ(ip.key.protocol, IPPROTO_UDP);
  EXPECT_EQ(ip.key.src_port, 1000);
  EXPECT_EQ(ip.key.dst_port, 53);
  EXPECT_EQ(ip.l4_offset, 20u);
  EXPECT_EQ(ip.length, 30u);
}

TEST(IpPacket, WalksIpv6ExtensionHeadersToTheTransport) {
  Bytes p = tcp6_with_hbh();
  auto r = parse_ip(p);
  ASSERT_TRUE(std::holds_alternative<ParsedIp>(r));
  const auto& ip = std::get<ParsedIp>(r);
  EXPECT_EQ(ip.key.protocol, IPPROTO_TCP);
  EXPECT_EQ(ip.key.src.to_string(), "fd00::1");
  EXPECT_EQ(ip.key.dst_port, 443);
  EXPECT_EQ(ip.l4_offset, 48u);
}

TEST(IpPacket, LaterFragmentsAreKeyedWithoutPorts) {
  Bytes p = udp4();
  p[6] = 0x00;
  p[7] = 0x10;  // offset 16 * 8: no UDP header in this fragment
  auto r = parse_ip(p);
  ASSERT_TRUE(std::holds_alternative<ParsedIp>(r));
  EXPECT_TRUE(std::get<ParsedIp>(r).fragment);
  EXPECT_EQ(std::get<ParsedIp>(r).key.src_port, 0);
  EXPECT_EQ(std::get<ParsedIp>(r).key.dst_port, 0);
}

// An ICMP error (`type`) from 10.0.0.2 to 10.0.0.<last_byte_of_to> quoting udp4()
// (10.0.0.1:1000 -> 10.0.0.2:53): read as a session's reply from the original
// destination 10.0.0.1:1000 to the client 10.0.0.2, whose port 53 is closed.
// Checksums are not checked by the parser.
Bytes icmp4_unreachable(std::uint8_t type, std::uint8_t last_byte_of_to) {
  Bytes quoted = udp4();
  Bytes p = {0x45, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x40, 0x01, 0x00, 0x00,
             0x0a, 0x00, 0x00, 0x02, 0x0a, 0x00, 0x00, last_byte_of_to};
  Bytes icmp = {type, 3, 0, 0, 0, 0, 0, 0};
  p.insert(p.end(), icmp.begin(), icmp.end());
  p.insert(p.end(), quoted.begin(), quoted.end());
  p[3] = static_cast<std::uint8_t>(p.size());
  return p;
}

TEST(IpPacket, AnIcmpErrorNamesTheUdpFlowItAnswers) {
  auto about = [](const Bytes& p) {
    return icmp_error_about_udp(p, std::get<ParsedIp>(parse_ip(p)));
  };
  auto key = about(icmp4_unreachable(3, 1));
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(key->src.to_string(), "10.0.0.2");  // the client, who sent the error
  EXPECT_EQ(key->dst.to_string(), "10.0.0.1");  // the original destination
  EXPECT_EQ(key->protocol, IPPROTO_UDP);
  EXPECT_EQ(key->src_port, 53);
  EXPECT_EQ(key->dst_port, 1000);
  EXPECT_FALSE(about(icmp4_unreachable(3, 9)).has_value());  // not to the quoted source
  EXPECT_FALSE(about(icmp4_unreachable(8, 1)).has_value());  // an echo request
  Bytes later = icmp4_unreachable(3, 1);
  later[20 + 8 + 7] = 0x10;  // the quoted datagram is a later fragment
  EXPECT_FALSE(about(later).has_value());
}

TEST(IpPacket, TellsAConnectionOpeningSyn) {
  Bytes syn = tcp6_with_hbh();  // SYN, through an IPv6 extension header
  EXPECT_TRUE(is_tcp_syn(syn));
  Bytes syn_ack = syn;
  syn_ack[40 + 8 + 13] = 0x12;
  EXPECT_FALSE(is_tcp_syn(syn_ack));
  EXPECT_FALSE(is_tcp_syn(udp4()));
  Bytes cut(syn.begin(), syn.end() - 7);  // the flags byte gone
  EXPECT_FALSE(is_tcp_syn(cut));
}

TEST(IpPacket, RefusesMalformedPacketsByName) {
  auto reason = [](Bytes p) { return std::get<IpDropReason>(parse_ip(p)); };
  EXPECT_EQ(reason({}), IpDropReason::too_short);
  EXPECT_EQ(reason(Bytes(10, 0x45)), IpDropReason::too_short);
  Bytes v = udp4();
  v[0] = 0x55;
  EXPECT_EQ(reason(v), IpDropReason::bad_version);
  Bytes ihl = udp4();
  ihl[0] = 0x44;
  EXPECT_EQ(reason(ihl), IpDropReason::bad_header_length);
  Bytes total = udp4();
  total[3] = 0x40;
  EXPECT_EQ(reason(total), IpDropReason::bad_total_length);
  Bytes cut = udp4();
  cut.resize(24);
  cut[3] = 24;
  EXPECT_EQ(reason(cut), IpDropReason::truncated_l4_header);
  Bytes ext = tcp6_with_hbh();
  ext[41] = 0xff;  // the hop-by-hop header claims 2 KiB
  EXPECT_EQ(reason(ext), IpDropReason::bad_extension_header);
  EXPECT_STREQ(to_string(IpDropReason::bad_extension_header), "bad_extension_header");
  Bytes mcast = udp4();
  mcast[16] = 224;  // 224.0.0.2
  EXPECT_EQ(reason(mcast), IpDropReason::not_routable);
  Bytes ll6 = tcp6_with_hbh();
  ll6[24] = 0xfe;
  ll6[25] = 0x80;  // fe80::2
  EXPECT_EQ(reason(ll6), IpDropReason::not_routable);
}

TEST(IpPacket, FixChecksumsRestoresWhatARewriteBroke) {
  const Bytes original = udp4();
  Bytes p = original;
  p[10] = p[11] = 0;   // IP checksum
  p[26] = 0x12;        // UDP checksum (0 would mean "none", which is kept)
  p[27] = 0x34;
  ASSERT_TRUE(fix_checksums(p));
  EXPECT_EQ(p, original);
  // A rewrite (TOS and a payload byte) gets both sums recomputed.
  p[1] = 0xb8;
  p[28] = 'H';
  ASSERT_TRUE(fix_checksums(p));
  Bytes again = p;
  ASSERT_TRUE(fix_checksums(again));
  EXPECT_EQ(again, p);
  EXPECT_NE(p[10] << 8 | p[11], original[10] << 8 | original[11]);
  EXPECT_NE(p[26] << 8 | p[27], original[26] << 8 | original[27]);
}

TEST(IpPacket, FixChecksumsFollowsATruncation) {
  Bytes p = udp4();
  p.resize(29);  // the hook cut the last payload byte
  ASSERT_TRUE(fix_checksums(p));
  EXPECT_EQ(p[3], 29);  // IPv4 total length
  auto r = parse_ip(p);
  ASSERT_TRUE(std::holds_alternative<ParsedIp>(r));
  EXPECT_EQ(std::get<ParsedIp>(r).length, 29u);
}

TEST(IpPacket, FlowKeysHashAndCompareByAllFiveFields) {
  auto a = std::get<ParsedIp>(parse_ip(udp4())).key;
  auto b = a;
  EXPECT_EQ(IpFlowKeyHash{}(a), IpFlowKeyHash{}(b));
  b.dst_port = 54;
  EXPECT_FALSE(a == b);
  EXPECT_NE(IpFlowKeyHash{}(a), IpFlowKeyHash{}(b));
}

}  // namespace
}  // namespace ramjet::proxy
