#include "http/masque_template.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace ramjet::http {
namespace {

MasqueTemplate must_parse(std::string_view text) {
  MasqueTemplateResult r = parse_masque_template(text);
  EXPECT_TRUE(r.value.has_value()) << text << ": " << to_string(r.error) << " at " << r.offset;
  return r.value ? *r.value : *parse_masque_template(kDefaultMasqueUdpTemplate).value;
}

TEST(MasqueTemplate, MatchesTheDefaultTemplateWithAnIpv4Target) {
  const MasqueTemplate t = must_parse(kDefaultMasqueUdpTemplate);
  EXPECT_TRUE(t.authority().empty());
  const TemplateMatch m = t.match("/.well-known/masque/udp/192.0.2.6/443/");
  ASSERT_TRUE(m.ok) << to_string(m.error);
  EXPECT_EQ(m.target_host, "192.0.2.6");
  EXPECT_EQ(m.target_port, 443);
  ASSERT_TRUE(m.target_ip.has_value());
  EXPECT_TRUE(m.target_ip->is_v4());
}

TEST(MasqueTemplate, DecodesPercentEncodedIpv6Literals) {
  const MasqueTemplate t = must_parse(kDefaultMasqueUdpTemplate);
  // RFC 9298 3: "2001:db8::42" is sent as "2001%3Adb8%3A%3A42"; hex case is free.
  for (std::string_view path : {"/.well-known/masque/udp/2001%3Adb8%3A%3A42/53/",
                                "/.well-known/masque/udp/2001%3adb8%3a%3a42/53/",
                                "/.well-known/masque/udp/%5B2001%3Adb8%3A%3A42%5D/53/"}) {
    const TemplateMatch m = t.match(path);
    ASSERT_TRUE(m.ok) << path << ": " << to_string(m.error);
    EXPECT_EQ(m.target_host, "2001:db8::42") << "brackets are dropped";
    EXPECT_EQ(m.target_port, 53);
    ASSERT_TRUE(m.target_ip.has_value());
    EXPECT_EQ(*m.target_ip, *IpAddress::parse("2001:db8::42"));
  }
}

TEST(MasqueTemplate, MatchesDnsNamesWithoutAnIp) {
  const MasqueTemplate t = must_parse(kDefaultMasqueUdpTemplate);
  const TemplateMatch m = t.match("/.well-known/masque/udp/dns.example.com/853/");
  ASSERT_TRUE(m.ok);
  EXPECT_EQ(m.target_host, "dns.example.com");
  EXPECT_FALSE(m.target_ip.has_value());
}

TEST(MasqueTemplate, RefusesBadTargetsWithTheirReason) {
  const MasqueTemplate t = must_parse(kDefaultMasqueUdpTemplate);
  constexpr std::string_view kPrefix = "/.well-known/masque/udp/";
  const struct {
    std::string_view rest;
    TemplateError error;
    std::size_t offset;  // from the end of kPrefix
  } cases[] = {
      {"2001:db8::42/443/", TemplateError::kPathMismatch, 4},  // colons not encoded
      {"/443/", TemplateError::kEmptyTargetHost, 0},
      {"a..b/443/", TemplateError::kBadTargetHost, 0},
      {"1.2.3.256/443/", TemplateError::kBadTargetHost, 0},
      {"fe80%3A%3A1%25eth0/443/", TemplateError::kBadTargetHost, 0},  // zone IDs: no
      {"a%2Fb/443/", TemplateError::kBadTargetHost, 0},
      {"%5B192.0.2.1%5D/443/", TemplateError::kBadTargetHost, 0},  // brackets: IPv6 only
      {"%ZZ/443/", TemplateError::kBadPercentEncoding, 0},
      {"example.com/0/", TemplateError::kBadTargetPort, 12},
      {"example.com/65536/", TemplateError::kBadTargetPort, 12},
      {"example.com/044300/", TemplateError::kBadTargetPort, 12},
      {"example.com/http/", TemplateError::kBadTargetPort, 12},
      {"example.com//", TemplateError::kBadTargetPort, 12},
      {"example.com/443", TemplateError::kPathMismatch, 15},
      {"example.com/443/x", TemplateError::kPathMismatch, 16},
      {"example.com/443/?q", TemplateError::kPathMismatch, 16},
  };
  for (const auto& c : cases) {
    const std::string path = std::string(kPrefix) + std::string(c.rest);
    const TemplateMatch m = t.match(path);
    ASSERT_FALSE(m.ok) << path;
    EXPECT_EQ(to_string(m.error), to_string(c.error)) << path;
    EXPECT_EQ(m.offset, kPrefix.size() + c.offset) << path;
    EXPECT_TRUE(m.target_host.empty());
  }
  EXPECT_EQ(t.match("/other").error, TemplateError::kPathMismatch);
  EXPECT_EQ(t.match("").error, TemplateError::kPathMismatch);
}

TEST(MasqueTemplate, AcceptsPortsAtTheEdgesOfTheRange) {
  const MasqueTemplate t = must_parse(kDefaultMasqueUdpTemplate);
  EXPECT_EQ(t.match("/.well-known/masque/udp/h/1/").target_port, 1);
  EXPECT_EQ(t.match("/.well-known/masque/udp/h/65535/").target_port, 65535);
}

TEST(MasqueTemplate, MatchesAnAbsoluteTemplateWithAQuery) {
  const MasqueTemplate t =
      must_parse("https://proxy.example.org:4443/masque?h={target_host}&p={target_port}");
  EXPECT_EQ(t.authority(), "proxy.example.org:4443");
  const TemplateMatch m = t.match("/masque?h=proxied.example&p=443");
  ASSERT_TRUE(m.ok) << to_string(m.error) << " at " << m.offset;
  EXPECT_EQ(m.target_host, "proxied.example");
  EXPECT_EQ(m.target_port, 443);
  EXPECT_FALSE(t.match("/masque?p=443&h=proxied.example").ok);
}

TEST(MasqueTemplate, ExpandsForAClient) {
  const MasqueTemplate t = must_parse(kDefaultMasqueUdpTemplate);
  TemplateExpansion x = t.expand("2001:db8::42", 443);
  ASSERT_TRUE(x.ok);
  EXPECT_EQ(x.path, "/.well-known/masque/udp/2001%3Adb8%3A%3A42/443/");
  EXPECT_EQ(x.uri, x.path);
  x = t.expand("[2001:db8::42]", 443);
  EXPECT_EQ(x.path, "/.well-known/masque/udp/2001%3Adb8%3A%3A42/443/");

  const MasqueTemplate abs =
      must_parse("https://masque.example.org/.well-known/masque/udp/{target_host}/{target_port}/");
  x = abs.expand("192.0.2.42", 443);
  ASSERT_TRUE(x.ok);
  EXPECT_EQ(x.uri, "https://masque.example.org/.well-known/masque/udp/192.0.2.42/443/");
  EXPECT_EQ(x.path, "/.well-known/masque/udp/192.0.2.42/443/");

  EXPECT_EQ(t.expand("", 443).error, TemplateError::kEmptyTargetHost);
  EXPECT_EQ(t.expand("bad host", 443).error, TemplateError::kBadTargetHost);
  EXPECT_EQ(t.expand("example.com", 0).error, TemplateError::kBadTargetPort);
}

TEST(MasqueTemplate, ExpansionAndMatchRoundTrip) {
  const MasqueTemplate t = must_parse("/proxy/{target_host}/x/{target_port}/{tenant}");
  for (std::string_view host : {"::1", "fe80::1:2", "192.0.2.1", "a-b_c.example.", "x"}) {
    const TemplateExpansion x = t.expand(host, 8443);
    ASSERT_TRUE(x.ok) << host;
    const TemplateMatch m = t.match(x.path);
    ASSERT_TRUE(m.ok) << x.path << ": " << to_string(m.error);
    EXPECT_EQ(m.target_host, host);
    EXPECT_EQ(m.target_port, 8443);
  }
  // Other variables are undefined when expanding and ignored when matching.
  EXPECT_EQ(t.expand("x", 1).path, "/proxy/x/x/1/");
  EXPECT_TRUE(t.match("/proxy/x/x/1/acme").ok);
}

struct BadTemplate {
  std::string_view text;
  TemplateError error;
  std::size_t offset;
};

void PrintTo(const BadTemplate& c, std::ostream* os) {
  *os << c.text;
}

class MasqueTemplateBad : public testing::TestWithParam<BadTemplate> {};

TEST_P(MasqueTemplateBad, IsRefusedWithItsReason) {
  const BadTemplate& c = GetParam();
  const MasqueTemplateResult r = parse_masque_template(c.text);
  ASSERT_FALSE(r.value.has_value());
  EXPECT_EQ(to_string(r.error), to_string(c.error));
  EXPECT_EQ(r.offset, c.offset);
}

INSTANTIATE_TEST_SUITE_P(
    Table, MasqueTemplateBad,
    testing::Values(
        BadTemplate{"", TemplateError::kEmptyTemplate, 0},
        BadTemplate{"/a b/{target_host}/{target_port}", TemplateError::kBadCharacter, 2},
        BadTemplate{"/\xc3\xa9/{target_host}/{target_port}", TemplateError::kBadCharacter, 1},
        BadTemplate{"/a|b/{target_host}/{target_port}", TemplateError::kBadCharacter, 2},
        BadTemplate{"http://p/{target_host}/{target_port}", TemplateError::kNotPathOrHttps, 0},
        BadTemplate{"masque/{target_host}/{target_port}", TemplateError::kNotPathOrHttps, 0},
        BadTemplate{"https:///{target_host}/{target_port}", TemplateError::kEmptyAuthority, 8},
        BadTemplate{"https://proxy.example", TemplateError::kMissingPath, 21},
        BadTemplate{"https://p?{target_host}", TemplateError::kMissingPath, 9},
        BadTemplate{"https://{target_host}/{target_port}", TemplateError::kVariableInAuthority, 8},
        BadTemplate{"/{target_host}/{target_port}/#top", TemplateError::kFragment, 29},
        BadTemplate{"/{target_host/{target_port}", TemplateError::kMalformedExpression, 1},
        BadTemplate{"/{target_host}/{target_port", TemplateError::kMalformedExpression, 15},
        BadTemplate{"/x}/{target_host}/{target_port}", TemplateError::kMalformedExpression, 2},
        BadTemplate{"/{+target_host}/{target_port}", TemplateError::kUnsupportedOperator, 2},
        BadTemplate{"/masque{?target_host,target_port}", TemplateError::kUnsupportedOperator, 8},
        BadTemplate{"/{/target_host}/{target_port}", TemplateError::kUnsupportedOperator, 2},
        BadTemplate{"/{target_host,target_port}", TemplateError::kMultipleVariables, 1},
        BadTemplate{"/{target_host:3}/{target_port}", TemplateError::kUnsupportedModifier, 1},
        BadTemplate{"/{target_host*}/{target_port}", TemplateError::kUnsupportedModifier, 1},
        BadTemplate{"/{}/{target_host}/{target_port}", TemplateError::kBadVariableName, 2},
        BadTemplate{"/{a-b}/{target_host}/{target_port}", TemplateError::kBadVariableName, 2},
        BadTemplate{"/{target_host}/{target_host}/{target_port}", TemplateError::kDuplicateVariable,
                    15},
        BadTemplate{"/{target_port}/", TemplateError::kMissingTargetHost, 15},
        BadTemplate{"/{target_host}/", TemplateError::kMissingTargetPort, 15},
        BadTemplate{"/{target_host}{target_port}", TemplateError::kAmbiguousVariableEnd, 14},
        BadTemplate{"/{target_host}.{target_port}", TemplateError::kAmbiguousVariableEnd, 14},
        BadTemplate{"/{target_host}%2F{target_port}", TemplateError::kAmbiguousVariableEnd, 14},
        BadTemplate{"/%zz/{target_host}/{target_port}", TemplateError::kBadPercentEncoding, 1}));

}  // namespace
}  // namespace ramjet::http
