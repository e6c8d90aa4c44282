#include "admin/flow_join.h"

#include <unordered_set>

#include "datapath/pinned_maps.h"

namespace ramjet::admin {

EngineConnections by_flow_id(std::vector<EngineConnection> connections) {
  EngineConnections out;
  for (auto& c : connections) {
    FlowId id = c.id;
    out.emplace(id, std::make_shared<const EngineConnection>(std::move(c)));
  }
  return out;
}

Result<void> join_flows(datapath::PinnedMaps* maps, const EngineConnections& engine,
                        const std::function<bool(FlowView&&)>& emit) {
  std::unordered_set<FlowId> joined;
  if (maps != nullptr) {
    bool stopped = false;
    auto r = maps->for_each_flow([&](std::span<const datapath::KernelFlow> batch) {
      for (const auto& k : batch) {
        FlowView v;
        v.id = k.id;
        v.kernel = k;
        if (auto it = engine.find(k.id); it != engine.end()) {
          v.engine = it->second;
          joined.insert(k.id);
        }
        if (!emit(std::move(v))) {
          stopped = true;
          return false;
        }
      }
      return true;
    });
    if (!r.ok() || stopped) return r;
  }
  for (const auto& [id, c] : engine) {
    if (joined.count(id)) continue;
    FlowView v;
    v.id = id;
    v.engine = c;
    if (!emit(std::move(v))) break;
  }
  return {};
}

}  // namespace ramjet::admin
