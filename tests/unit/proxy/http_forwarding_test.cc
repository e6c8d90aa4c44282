#include "proxy/http_forwarding.h"

#include <gtest/gtest.h>

#include "proxy/session.h"

namespace ramjet::proxy {
namespace {

TEST(ParseAuthority, TheSchemesPortWhenNoneIsGiven) {
  auto a = parse_authority("elsewhere.example", 80);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "elsewhere.example");
  EXPECT_EQ(a->port, 80);
  a = parse_authority("elsewhere.example:8080", 80);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->port, 8080);
  a = parse_authority("[fd00:10:2::2]", 443);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "fd00:10:2::2");
  EXPECT_EQ(a->port, 443);
}

TEST(ParseAuthority, RefusesUserinfoAndWhatIsNoHost) {
  EXPECT_FALSE(parse_authority("user@elsewhere.example", 80));
  EXPECT_FALSE(parse_authority("", 80));
  EXPECT_FALSE(parse_authority("bad host", 80));
  EXPECT_FALSE(parse_authority("[]", 80));
  EXPECT_FALSE(parse_authority("elsewhere.example:99999", 80));
}

TEST(AuthorityValue, LeavesOutTheDefaultPortAndKeepsIpv6Brackets) {
  EXPECT_EQ(authority_value({"elsewhere.example", 80}, 80), "elsewhere.example");
  EXPECT_EQ(authority_value({"elsewhere.example", 8080}, 80), "elsewhere.example:8080");
  EXPECT_EQ(authority_value({"elsewhere.example", 443}, 80), "elsewhere.example:443");
  // Host: fd00:10:2::2 would be a host with a port; RFC 3986 3.2.2 wants the brackets.
  EXPECT_EQ(authority_value({"fd00:10:2::2", 80}, 80), "[fd00:10:2::2]");
  EXPECT_EQ(authority_value({"fd00:10:2::2", 8080}, 80), "[fd00:10:2::2]:8080");
  EXPECT_EQ(authority_value({"10.10.2.2", 443}, 443), "10.10.2.2");
}

// What an intercepted request's authority becomes when it has no Host.
TEST(OriginalDestination, IsTheLocalAddressAsAnIpLiteral) {
  ConnectionInfo info;
  info.local = *SocketAddress::parse("[::ffff:10.10.2.2]:80");
  EXPECT_EQ(original_destination(info).to_string(), "10.10.2.2:80");
  info.local = *SocketAddress::parse("[fd00:10:2::2]:8080");
  EXPECT_EQ(original_destination(info).to_string(), "[fd00:10:2::2]:8080");
}

}  // namespace
}  // namespace ramjet::proxy
