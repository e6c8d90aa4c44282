// JSON views of the kernel's policy (rules, denylist) that the admin API and
// ramjetctl's pinned-map mode both print, so the two cannot disagree. Shapes:
// tools/ramjetctl/schemas/rules-list.json and blocks-list.json.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "admin/flow_view.h"
#include "datapath/pinned_maps.h"

namespace ramjet::admin {

nlohmann::json rule_json(const datapath::RuleSlot& s, const NameTable& names);
// {"source", "default_action", "generation", "rules": [...]}
nlohmann::json rules_listing(const std::vector<datapath::RuleSlot>& rules,
                             const datapath::RuntimeState& runtime, const NameTable& names,
                             std::string_view source);
// {"prefix", "expires_in_ms" (null = never), "set_by"}
nlohmann::json block_json(const datapath::BlockEntry& b, std::uint64_t now_ns);

}  // namespace ramjet::admin
