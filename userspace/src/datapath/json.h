// JSON views of the datapath for the admin API (GET /v1/datapath, /v1/datapath/flows).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "datapath/datapath.h"
#include "datapath/kernel_flow.h"

namespace ramjet::datapath {

nlohmann::json status_json(const Datapath& dp);
nlohmann::json flow_json(const Datapath& dp, const FlowEntry& e, std::uint64_t now_ns);
nlohmann::json flows_json(const Datapath& dp);
// [{"rule", "rule_id", "verdict", "cause", "flows"}]: new flows that took an
// engine-unavailable fallback (also in status_json as "fallbacks"; ramjetctl stats).
nlohmann::json fallbacks_json(const std::vector<FallbackCount>& counts,
                              const std::function<std::string(std::uint32_t)>& rule_name);
// A kernel flow's fallback, {"verdict", "cause"}, or null when it took none.
nlohmann::json fallback_json(const KernelFlow& f);
// One ring-buffer event as a line of the event feed (GET /v1/events; the schema is
// tools/ramjetctl/schemas/event.json). `now_ns` (CLOCK_MONOTONIC) and `now` (the
// wall clock) taken together date it.
nlohmann::json event_json(const Datapath& dp, const Event& ev, std::uint64_t now_ns,
                          std::chrono::system_clock::time_point now);

// What the kernel saw of an engine connection, for the audit log: null unless the
// datapath escalated it (info.escalated); else its flow entry as flow_json() shows
// it, read now, or {"flow_id": id} alone when `dp` is null or the entry is gone.
nlohmann::json connection_flow_json(const Datapath* dp, const ConnectionInfo& info);

}  // namespace ramjet::datapath
