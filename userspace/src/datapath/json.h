// JSON views of the datapath for the admin API (GET /v1/datapath, /v1/datapath/flows).
#pragma once

#include <nlohmann/json.hpp>

#include "datapath/datapath.h"

namespace ramjet::datapath {

nlohmann::json status_json(const Datapath& dp);
nlohmann::json flow_json(const Datapath& dp, const FlowEntry& e, std::uint64_t now_ns);
nlohmann::json flows_json(const Datapath& dp);
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
