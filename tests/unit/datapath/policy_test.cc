// datapath::compile: config rules -> rule slots + prefix tries with inherited sets.
#include "datapath/policy.h"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>

namespace ramjet::datapath {
namespace {

config::DatapathRule rule(std::string name, config::DatapathAction action) {
  config::DatapathRule r;
  r.name = std::move(name);
  r.action = action;
  return r;
}

PolicyNames names() {
  PolicyNames n;
  n.ifindex = [](const std::string& s) -> std::uint32_t { return s == "gw-c" ? 7 : 0; };
  n.endpoint_id = [](const std::string& s) -> std::uint32_t { return s == "web" ? 2 : 0; };
  return n;
}

// The rule set stored for a prefix ("10.0.0.0/8") in a compiled trie.
std::uint64_t set_of(const std::vector<std::pair<ramjet_lpm_key, ramjet_rule_set>>& trie,
                     const std::string& cidr) {
  ramjet_lpm_key want = lpm_key(*Cidr::parse(cidr));
  for (const auto& [k, v] : trie)
    if (std::memcmp(&k, &want, sizeof k) == 0) return v.words[0];
  ADD_FAILURE() << cidr << " is not in the trie";
  return 0;
}

TEST(DatapathPolicy, IssueExampleCompiles) {
  config::DatapathSettings s;
  s.default_action = config::DatapathAction::kFastpath;
  auto web = rule("web", config::DatapathAction::kEscalate);
  web.proto = config::RuleProto::kTcp;
  web.dst_port = {80, 80};
  web.endpoint = "web";
  auto bad = rule("bad-host", config::DatapathAction::kDrop);
  bad.src = Cidr::parse("10.10.1.66/32");
  s.rules = {web, bad};

  auto c = compile(s, names());
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->default_action, RAMJET_ACTION_FASTPATH);
  ASSERT_EQ(c->rules.size(), 2u);
  EXPECT_EQ(c->rules[0].action, RAMJET_ACTION_ESCALATE);
  EXPECT_EQ(c->rules[0].endpoint_id, 2u);
  EXPECT_EQ(c->rules[0].proto, IPPROTO_TCP);
  EXPECT_EQ(c->rules[0].dst_port_min_host, 80);
  EXPECT_EQ(c->rules[0].dst_port_max_host, 80);
  EXPECT_EQ(c->rules[0].rule_id, rule_id_for("web"));
  EXPECT_EQ(c->rules[1].action, RAMJET_ACTION_DROP);
  // "web" has no addresses: it sits under both families' /0. "bad-host" is IPv4 only,
  // and its /32 inherits the /0 rule, because an LPM lookup returns one prefix.
  EXPECT_EQ(set_of(c->src_prefixes, "0.0.0.0/0"), 0b01u);
  EXPECT_EQ(set_of(c->src_prefixes, "::/0"), 0b01u);
  EXPECT_EQ(set_of(c->src_prefixes, "10.10.1.66/32"), 0b11u);
  EXPECT_EQ(set_of(c->dst_prefixes, "0.0.0.0/0"), 0b11u);
  EXPECT_EQ(set_of(c->dst_prefixes, "::/0"), 0b01u);
}

TEST(DatapathPolicy, EscalateRulesCarryTheirFallbackOrTheDefault) {
  config::DatapathSettings s;
  s.on_engine_unavailable = config::EngineFallback::kDrop;
  auto own = rule("own", config::DatapathAction::kEscalate);
  own.endpoint = "web";
  own.on_engine_unavailable = config::EngineFallback::kPass;
  auto inherited = rule("inherited", config::DatapathAction::kEscalate);
  inherited.endpoint = "web";
  auto other = rule("other", config::DatapathAction::kFastpath);
  s.rules = {own, inherited, other};
  auto c = compile(s, names());
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->default_fallback, RAMJET_FALLBACK_DROP);
  EXPECT_EQ(c->rules[0].fallback, RAMJET_FALLBACK_PASS);
  EXPECT_EQ(c->rules[1].fallback, RAMJET_FALLBACK_DROP);
  EXPECT_EQ(c->rules[2].fallback, RAMJET_FALLBACK_NONE) << "only escalate rules fall back";
  EXPECT_EQ(compile(config::DatapathSettings{}, names())->default_fallback, RAMJET_FALLBACK_REJECT)
      << "reject is the default";
}

TEST(DatapathPolicy, NestedPrefixesInheritEveryContainingRule) {
  config::DatapathSettings s;
  auto a = rule("a", config::DatapathAction::kPass);
  a.src = Cidr::parse("10.0.0.0/8");
  auto b = rule("b", config::DatapathAction::kDrop);
  b.src = Cidr::parse("10.1.0.0/16");
  auto c6 = rule("c", config::DatapathAction::kDrop);
  c6.src = Cidr::parse("fd00::/8");
  s.rules = {a, b, c6};
  auto c = compile(s, names());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(set_of(c->src_prefixes, "10.0.0.0/8"), 0b001u);
  EXPECT_EQ(set_of(c->src_prefixes, "10.1.0.0/16"), 0b011u);
  EXPECT_EQ(set_of(c->src_prefixes, "fd00::/8"), 0b100u);
  EXPECT_EQ(c->src_prefixes.size(), 3u);
}

TEST(DatapathPolicy, InterfaceAndRateLimit) {
  config::DatapathSettings s;
  auto r = rule("rl", config::DatapathAction::kRatelimit);
  r.interface = "gw-c";
  r.rate_pps = 100;
  s.rules = {r};
  auto c = compile(s, names());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->rules[0].ifindex, 7u);
  EXPECT_EQ(c->rules[0].rate_pps, 100u);
  EXPECT_EQ(c->rules[0].rate_burst, 100u);  // burst 0 = one second of rate
}

TEST(DatapathPolicy, UnknownNamesAreErrors) {
  config::DatapathSettings s;
  auto r = rule("x", config::DatapathAction::kPass);
  r.interface = "nope0";
  s.rules = {r};
  auto c = compile(s, names());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("nope0"), std::string::npos);
}

TEST(DatapathPolicy, RuleIdsAreStableAndNonZero) {
  EXPECT_EQ(rule_id_for("web"), rule_id_for("web"));
  EXPECT_NE(rule_id_for("web"), rule_id_for("bad-host"));
  EXPECT_NE(rule_id_for(""), 0u);
}

}  // namespace
}  // namespace ramjet::datapath
