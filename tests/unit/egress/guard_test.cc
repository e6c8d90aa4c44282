#include "egress/guard.h"

#include <gtest/gtest.h>

namespace ramjet::egress {
namespace {

IpAddress ip(const char* s) {
  return *IpAddress::parse(s);
}

TEST(EgressGuard, RefusesSpecialRangesByName) {
  EgressGuard g({});
  EXPECT_EQ(g.refusal(ip("127.0.0.1")), "loopback");
  EXPECT_EQ(g.refusal(ip("10.1.2.3")), "private");
  EXPECT_EQ(g.refusal(ip("172.31.255.255")), "private");
  EXPECT_EQ(g.refusal(ip("192.168.0.1")), "private");
  EXPECT_EQ(g.refusal(ip("169.254.169.254")), "link-local");
  EXPECT_EQ(g.refusal(ip("100.64.0.1")), "cgnat");
  EXPECT_EQ(g.refusal(ip("::1")), "loopback");
  EXPECT_EQ(g.refusal(ip("fd12::1")), "ula");
  EXPECT_EQ(g.refusal(ip("fe80::1")), "link-local");
  // v4-mapped v6 is judged as the v4 address it carries: no bypass through ::ffff:.
  EXPECT_EQ(g.refusal(ip("::ffff:127.0.0.1")), "loopback");
}

TEST(EgressGuard, AllowsPublicAddresses) {
  EgressGuard g({});
  EXPECT_FALSE(g.refusal(ip("1.1.1.1")));
  EXPECT_FALSE(g.refusal(ip("172.32.0.1")));
  EXPECT_FALSE(g.refusal(ip("2606:4700::1111")));
}

TEST(EgressGuard, AllowPrivateOpensOnlyTheNamedPrefixes) {
  EgressGuard g({*Cidr::parse("127.0.0.0/8"), *Cidr::parse("10.1.0.0/16")});
  EXPECT_FALSE(g.refusal(ip("127.0.0.1")));
  EXPECT_FALSE(g.refusal(ip("10.1.9.9")));
  EXPECT_EQ(g.refusal(ip("10.2.0.1")), "private");
  EXPECT_EQ(g.refusal(ip("::1")), "loopback");
}

}  // namespace
}  // namespace ramjet::egress
