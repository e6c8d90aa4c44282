#include "admin/policy_view.h"

#include <net/if.h>

#include <cctype>
#include <string>

#include "ramjet/abi/ramjet.h"

namespace ramjet::admin {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

nlohmann::json cidr_or_null(const std::optional<Cidr>& c) {
  if (!c || c->prefix_len() == 0) return nullptr;  // "any" is stored as a /0
  return c->to_string();
}

template <typename T>
nlohmann::json or_null(const T* p) {
  return p ? nlohmann::json(*p) : nlohmann::json();
}

// The interface's name in this network namespace (rules store the ifindex).
nlohmann::json interface_name(std::uint32_t ifindex) {
  char name[IF_NAMESIZE];
  if (ifindex == 0 || ::if_indextoname(ifindex, name) == nullptr) return nullptr;
  return std::string(name);
}

}  // namespace

nlohmann::json rule_json(const datapath::RuleSlot& s, const NameTable& names) {
  nlohmann::json port = nullptr;
  if (s.dst_port_min != 0 || s.dst_port_max != 65535)
    port = s.dst_port_min == s.dst_port_max
               ? std::to_string(s.dst_port_min)
               : std::to_string(s.dst_port_min) + "-" + std::to_string(s.dst_port_max);
  bool ratelimit = s.action == RAMJET_ACTION_RATELIMIT;
  return {{"slot", s.slot},
          {"rule_id", s.rule_id},
          {"name", or_null(names.rule(s.rule_id))},
          {"action", lower(datapath::action_name(s.action))},
          {"proto", s.proto ? nlohmann::json(datapath::proto_name(s.proto)) : nlohmann::json()},
          {"src", cidr_or_null(s.src)},
          {"dst", cidr_or_null(s.dst)},
          {"dst_port", port},
          {"interface", interface_name(s.ifindex)},
          {"ifindex", s.ifindex ? nlohmann::json(s.ifindex) : nlohmann::json()},
          {"endpoint", s.endpoint_id ? or_null(names.endpoint(s.endpoint_id)) : nlohmann::json()},
          {"rate_pps", ratelimit ? nlohmann::json(s.rate_pps) : nlohmann::json()},
          {"burst", ratelimit ? nlohmann::json(s.burst) : nlohmann::json()}};
}

nlohmann::json rules_listing(const std::vector<datapath::RuleSlot>& rules,
                             const datapath::RuntimeState& runtime, const NameTable& names,
                             std::string_view source) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& s : rules) list.push_back(rule_json(s, names));
  return {{"source", source},
          {"default_action", lower(datapath::action_name(runtime.default_action))},
          {"generation", runtime.policy_generation},
          {"rules", list}};
}

nlohmann::json block_json(const datapath::BlockEntry& b, std::uint64_t now_ns) {
  nlohmann::json expires = nullptr;
  if (b.expires_ns) expires = b.expires_ns > now_ns ? (b.expires_ns - now_ns) / 1'000'000 : 0;
  return {{"prefix", b.prefix.to_string()},
          {"expires_in_ms", expires},
          {"set_by", datapath::block_tag_name(b.tag)}};
}

}  // namespace ramjet::admin
