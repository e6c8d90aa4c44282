#include "datapath/policy.h"

#include <netinet/in.h>

#include <cstring>
#include <map>

namespace ramjet::datapath {

namespace {

using config::RuleProto;

std::uint8_t proto_number(RuleProto p) {
  switch (p) {
    case RuleProto::kTcp:
      return IPPROTO_TCP;
    case RuleProto::kUdp:
      return IPPROTO_UDP;
    case RuleProto::kIcmp:
      return IPPROTO_ICMP;
    case RuleProto::kIcmpv6:
      return IPPROTO_ICMPV6;
    case RuleProto::kAny:
      return 0;
  }
  return 0;
}

Cidr any_of(IpAddress::Family f) {
  return f == IpAddress::Family::kV4 ? *Cidr::parse("0.0.0.0/0") : *Cidr::parse("::/0");
}

// The CIDRs one side of a rule matches: the given one, or "any" of each family the
// rule can apply to.
std::vector<Cidr> side_cidrs(const std::optional<Cidr>& mine, const std::optional<Cidr>& other,
                             RuleProto proto) {
  if (mine) return {*mine};
  if (other) return {any_of(other->base().family())};
  if (proto == RuleProto::kIcmp) return {any_of(IpAddress::Family::kV4)};
  if (proto == RuleProto::kIcmpv6) return {any_of(IpAddress::Family::kV6)};
  return {any_of(IpAddress::Family::kV4), any_of(IpAddress::Family::kV6)};
}

struct CidrLess {
  bool operator()(const Cidr& a, const Cidr& b) const {
    if (a.base().family() != b.base().family()) return a.base().family() < b.base().family();
    int c = std::memcmp(a.base().data(), b.base().data(), a.base().size());
    if (c != 0) return c < 0;
    return a.prefix_len() < b.prefix_len();
  }
};

bool contains(const Cidr& outer, const Cidr& inner) {
  return outer.base().family() == inner.base().family() &&
         outer.prefix_len() <= inner.prefix_len() && outer.contains(inner.base());
}

std::vector<std::pair<ramjet_lpm_key, ramjet_rule_set>> build_trie(
    const std::vector<std::vector<Cidr>>& per_rule) {
  std::map<Cidr, ramjet_rule_set, CidrLess> sets;
  for (const auto& cidrs : per_rule)
    for (const auto& c : cidrs) sets.emplace(c, ramjet_rule_set{});
  for (auto& [prefix, set] : sets)
    for (std::size_t i = 0; i < per_rule.size(); ++i)
      for (const auto& c : per_rule[i])
        if (contains(c, prefix)) set.words[i / 64] |= std::uint64_t{1} << (i % 64);
  std::vector<std::pair<ramjet_lpm_key, ramjet_rule_set>> out;
  for (auto& [prefix, set] : sets) out.emplace_back(lpm_key(prefix), set);
  return out;
}

}  // namespace

std::uint8_t to_abi(config::EngineFallback f) {
  switch (f) {
    case config::EngineFallback::kPass:
      return RAMJET_FALLBACK_PASS;
    case config::EngineFallback::kReject:
      return RAMJET_FALLBACK_REJECT;
    case config::EngineFallback::kDrop:
      return RAMJET_FALLBACK_DROP;
  }
  return RAMJET_FALLBACK_REJECT;
}

std::uint8_t to_abi(config::DatapathAction a) {
  switch (a) {
    case config::DatapathAction::kPass:
      return RAMJET_ACTION_PASS;
    case config::DatapathAction::kDrop:
      return RAMJET_ACTION_DROP;
    case config::DatapathAction::kFastpath:
      return RAMJET_ACTION_FASTPATH;
    case config::DatapathAction::kEscalate:
      return RAMJET_ACTION_ESCALATE;
    case config::DatapathAction::kRatelimit:
      return RAMJET_ACTION_RATELIMIT;
  }
  return RAMJET_ACTION_PASS;
}

ramjet_lpm_key lpm_key(const Cidr& cidr) {
  ramjet_lpm_key k{};
  k.prefixlen = RAMJET_LPM_PREFIXLEN(cidr.prefix_len());
  k.family = cidr.base().is_v4() ? RAMJET_FAMILY_IPV4 : RAMJET_FAMILY_IPV6;
  std::memcpy(k.addr, cidr.base().data(), cidr.base().size());
  return k;
}

std::optional<Cidr> cidr_of(const ramjet_lpm_key& key) {
  if (key.family != RAMJET_FAMILY_IPV4 && key.family != RAMJET_FAMILY_IPV6) return std::nullopt;
  bool v4 = key.family == RAMJET_FAMILY_IPV4;
  unsigned max = v4 ? 32 : 128;
  if (key.prefixlen < RAMJET_LPM_PREFIXLEN(0) || key.prefixlen > RAMJET_LPM_PREFIXLEN(max))
    return std::nullopt;
  auto ip = IpAddress::from_bytes(v4 ? IpAddress::Family::kV4 : IpAddress::Family::kV6, key.addr);
  return Cidr(ip, static_cast<std::uint8_t>(key.prefixlen - RAMJET_LPM_PREFIXLEN(0)));
}

std::uint32_t rule_id_for(const std::string& name) {
  // FNV-1a: stable across runs and reloads, no registry needed.
  std::uint32_t h = 2166136261u;
  for (unsigned char c : name) h = (h ^ c) * 16777619u;
  return h == 0 ? 1 : h;
}

Result<CompiledPolicy> compile(const config::DatapathSettings& settings, const PolicyNames& names) {
  if (settings.rules.size() > RAMJET_MAX_RULES)
    return Error::config("datapath.rules: at most " + std::to_string(RAMJET_MAX_RULES) + " rules");
  CompiledPolicy out;
  out.default_action = to_abi(settings.default_action);
  out.default_fallback = to_abi(settings.on_engine_unavailable);
  std::vector<std::vector<Cidr>> srcs, dsts;
  for (const auto& r : settings.rules) {
    ramjet_rule rule{};
    auto s = side_cidrs(r.src, r.dst, r.proto);
    auto d = side_cidrs(r.dst, r.src, r.proto);
    rule.src = lpm_key(s.front());
    rule.dst = lpm_key(d.front());
    rule.rule_id = rule_id_for(r.name);
    if (r.action == config::DatapathAction::kEscalate) {
      rule.endpoint_id = names.endpoint_id(r.endpoint);
      if (rule.endpoint_id == 0)
        return Error::config("datapath rule " + r.name + ": no endpoint " + r.endpoint);
      rule.fallback = to_abi(r.on_engine_unavailable.value_or(settings.on_engine_unavailable));
    }
    if (!r.interface.empty()) {
      rule.ifindex = names.ifindex(r.interface);
      if (rule.ifindex == 0)
        return Error::config("datapath rule " + r.name + ": no interface " + r.interface);
    }
    rule.rate_pps = r.rate_pps;
    rule.rate_burst = r.burst ? r.burst : r.rate_pps;
    rule.dst_port_min_host = r.dst_port.min;
    rule.dst_port_max_host = r.dst_port.max;
    rule.proto = proto_number(r.proto);
    rule.action = to_abi(r.action);
    out.rules.push_back(rule);
    srcs.push_back(std::move(s));
    dsts.push_back(std::move(d));
  }
  out.filters.assign(RAMJET_RULE_FILTERS, ramjet_rule_set{});
  for (std::size_t i = 0; i < out.rules.size(); ++i)
    ramjet_rule_filters_add(out.filters.data(), static_cast<__u32>(i), &out.rules[i]);
  out.src_prefixes = build_trie(srcs);
  out.dst_prefixes = build_trie(dsts);
  return out;
}

}  // namespace ramjet::datapath
