// The kernel+engine flow join: a kernel flow-table entry and the engine connection
// with the same flow id become one FlowView (admin/flow_view.h). The daemon's
// GET /v1/flows and flow kills, and ramjetctl reading the pins itself, all join here.
#pragma once

#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "admin/flow_view.h"
#include "ramjet/result.h"

namespace ramjet::datapath {
class PinnedMaps;
}

namespace ramjet::admin {

// Engine connections by flow id (shared: the views point at them).
using EngineConnections = std::unordered_map<FlowId, std::shared_ptr<const EngineConnection>>;
EngineConnections by_flow_id(std::vector<EngineConnection> connections);

// Hands `emit` every kernel flow of `maps` (none when null), each with the engine
// connection of its id if there is one, then the engine connections no kernel flow
// matched. `emit` returns false to stop (the join then returns success). An error is
// the flow table's: nothing of the engine half is emitted after it.
Result<void> join_flows(datapath::PinnedMaps* maps, const EngineConnections& engine,
                        const std::function<bool(FlowView&&)>& emit);

}  // namespace ramjet::admin
