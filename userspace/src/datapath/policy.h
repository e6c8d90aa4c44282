// Compiles datapath.rules into what the XDP program reads: the `rules` array
// (slot = priority) and the two prefix tries. An LPM lookup returns only the
// longest match, so each distinct prefix maps to the set of every rule whose CIDR
// contains it (see bpf/include/ramjet/abi/policy.h). Pure: no libbpf, unit-tested.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "datapath/kernel_flow.h"
#include "ramjet/abi/ramjet.h"
#include "ramjet/config/config.h"
#include "ramjet/result.h"

namespace ramjet::datapath {

struct CompiledPolicy {
  std::vector<ramjet_rule> rules;  // one per config rule, in order
  std::vector<std::pair<ramjet_lpm_key, ramjet_rule_set>> src_prefixes;
  std::vector<std::pair<ramjet_lpm_key, ramjet_rule_set>> dst_prefixes;
  // The `rule_filters` array, RAMJET_RULE_FILTERS sets (ramjet/abi/policy.h).
  std::vector<ramjet_rule_set> filters;
  std::uint8_t default_action = RAMJET_ACTION_PASS;
  std::uint8_t default_fallback = RAMJET_FALLBACK_REJECT;  // enum ramjet_fallback_mode
};

struct PolicyNames {
  // interface name -> ifindex (0 or missing: error); endpoint name -> endpoint id.
  std::function<std::uint32_t(const std::string&)> ifindex;
  std::function<std::uint32_t(const std::string&)> endpoint_id;
};

Result<CompiledPolicy> compile(const config::DatapathSettings& settings, const PolicyNames& names);

std::uint8_t to_abi(config::DatapathAction a);
std::uint8_t to_abi(config::EngineFallback f);
ramjet_lpm_key lpm_key(const Cidr& cidr);
// The prefix an LPM key holds (the inverse of lpm_key); nullopt for a malformed key.
std::optional<Cidr> cidr_of(const ramjet_lpm_key& key);

}  // namespace ramjet::datapath
