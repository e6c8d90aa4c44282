// JSON views of the datapath for the admin API (GET /v1/datapath, /v1/datapath/flows).
#pragma once

#include <nlohmann/json.hpp>

#include "datapath/datapath.h"

namespace ramjet::datapath {

nlohmann::json status_json(const Datapath& dp);
nlohmann::json flow_json(const Datapath& dp, const FlowEntry& e, std::uint64_t now_ns);
nlohmann::json flows_json(const Datapath& dp);

}  // namespace ramjet::datapath
