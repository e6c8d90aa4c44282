#include "proxy/udp_flow_key.h"

#include <gtest/gtest.h>

#include <unordered_set>

namespace ramjet::proxy {
namespace {

UdpFlowKey key(const char* client, const char* local) {
  return {*SocketAddress::parse(client), *SocketAddress::parse(local)};
}

TEST(UdpFlowKey, ClientPortAndLocalAllCount) {
  std::unordered_set<UdpFlowKey, UdpFlowKeyHash> table;
  EXPECT_TRUE(table.insert(key("192.0.2.7:5000", "127.0.0.1:53")).second);
  EXPECT_FALSE(table.insert(key("192.0.2.7:5000", "127.0.0.1:53")).second);
  EXPECT_TRUE(table.insert(key("192.0.2.7:5001", "127.0.0.1:53")).second);
  EXPECT_TRUE(table.insert(key("192.0.2.8:5000", "127.0.0.1:53")).second);
  // An escalated flow's original destination keys a session of its own.
  EXPECT_TRUE(table.insert(key("192.0.2.7:5000", "198.51.100.1:53")).second);
  EXPECT_TRUE(table.insert(key("[2001:db8::7]:5000", "[::1]:53")).second);
  EXPECT_EQ(table.size(), 5u);
}

TEST(UdpFlowKey, HashSpreadsPorts) {
  UdpFlowKeyHash h;
  std::unordered_set<std::size_t> seen;
  for (unsigned p = 1; p <= 1000; ++p)
    seen.insert(h({SocketAddress(*IpAddress::parse("10.0.0.1"), static_cast<std::uint16_t>(p)),
                   *SocketAddress::parse("127.0.0.1:53")}));
  EXPECT_EQ(seen.size(), 1000u);
}

}  // namespace
}  // namespace ramjet::proxy
