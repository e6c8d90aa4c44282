#include "datapath/json.h"

#include <algorithm>
#include <string>

#include "datapath/abi_stamp.h"
#include "datapath/flow_table.h"
#include "telemetry/event_feed.h"

namespace ramjet::datapath {

nlohmann::json status_json(const Datapath& dp) {
  nlohmann::json ifs = nlohmann::json::array();
  for (const auto& i : dp.interfaces())
    ifs.push_back(
        {{"name", i.name},
         {"ifindex", i.ifindex},
         {"xdp_mode", i.xdp_mode.empty() ? nlohmann::json(nullptr) : nlohmann::json(i.xdp_mode)},
         {"fastpath_hook", i.fastpath_hook},
         {"fastpath_hook_reason", i.fastpath_hook_reason}});
  nlohmann::json stats = nlohmann::json::object();
  auto values = dp.stats();
  for (std::size_t i = 1; i < RAMJET_STAT__COUNT; ++i)
    stats[ramjet_stat_names[i]] = {{"packets", values[i].packets}, {"bytes", values[i].bytes}};
  return {{"enabled", true},
          {"pin_dir", dp.pin_dir()},
          {"adopted", dp.adopted()},
          {"recreated_because", dp.recreated_because().empty()
                                    ? nlohmann::json(nullptr)
                                    : nlohmann::json(dp.recreated_because())},
          {"abi_stamp", stamp_text(dp.abi_stamp())},
          {"interfaces", ifs},
          {"stats", stats},
          {"draining", dp.draining()},
          {"fallbacks", fallbacks_json(dp.fallback_counts(),
                                       [&](std::uint32_t id) { return dp.rule_name(id); })}};
}

nlohmann::json fallbacks_json(const std::vector<FallbackCount>& counts,
                              const std::function<std::string(std::uint32_t)>& rule_name) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : counts) {
    std::string rule = c.rule_id ? rule_name(c.rule_id) : "";
    out.push_back({{"rule", rule.empty() ? nlohmann::json(nullptr) : nlohmann::json(rule)},
                   {"rule_id", c.rule_id},
                   {"verdict", fallback_name(c.mode)},
                   {"cause", fallback_cause_name(c.cause)},
                   {"flows", c.flows}});
  }
  return out;
}

nlohmann::json fallback_json(const KernelFlow& f) {
  if (!f.fallback) return nullptr;
  return {{"verdict", fallback_name(f.fallback)}, {"cause", fallback_cause_name(f.fallback_cause)}};
}

nlohmann::json flow_json(const Datapath& dp, const FlowEntry& e, std::uint64_t now_ns) {
  KernelFlow f = decode_flow(e.key, e.flow);
  std::string rule = f.has_rule ? dp.rule_name(f.rule_id) : "";
  std::string endpoint = f.verdict == RAMJET_ACTION_ESCALATE ? dp.endpoint_name(f.endpoint_id) : "";
  auto ms = [&](std::uint64_t t) { return now_ns > t ? (now_ns - t) / 1'000'000 : 0; };
  return {{"flow_id", f.id},
          {"proto", proto_name(f.proto)},
          {"src", f.src.to_string()},
          {"dst", f.dst.to_string()},
          {"verdict", action_name(f.verdict)},
          {"reason", stat_name(f.reason)},
          {"rule", rule.empty() ? nlohmann::json(nullptr) : nlohmann::json(rule)},
          {"endpoint", endpoint.empty() ? nlohmann::json(nullptr) : nlohmann::json(endpoint)},
          {"packets", {f.packets[0], f.packets[1]}},
          {"bytes", {f.bytes[0], f.bytes[1]}},
          {"tcp_flags", {tcp_flags_text(f.tcp_flags[0]), tcp_flags_text(f.tcp_flags[1])}},
          {"fallback", fallback_json(f)},
          {"ifindex", f.ifindex},
          {"age_ms", ms(f.first_seen_ns)},
          {"idle_ms", ms(f.last_seen_ns)}};
}

nlohmann::json flows_json(const Datapath& dp) {
  std::uint64_t now = dp.monotonic_now_ns();
  nlohmann::json out = nlohmann::json::array();
  auto flows = dp.flows();
  std::sort(flows.begin(), flows.end(),
            [](const FlowEntry& a, const FlowEntry& b) { return a.flow.flow_id < b.flow.flow_id; });
  for (const auto& e : flows) out.push_back(flow_json(dp, e, now));
  return out;
}

nlohmann::json event_json(const Datapath& dp, const Event& ev, std::uint64_t now_ns,
                          std::chrono::system_clock::time_point now) {
  auto ago = std::chrono::nanoseconds(now_ns > ev.ts_ns ? now_ns - ev.ts_ns : 0);
  nlohmann::json j = {
      {"time", telemetry::rfc3339_ms(
                   now - std::chrono::duration_cast<std::chrono::system_clock::duration>(ago))},
      {"ifindex", ev.ifindex},
      {"ts_ns", ev.ts_ns},
      {"reason", stat_name(ev.reason)}};
  switch (ev.type) {
    case RAMJET_EVENT_FLOW_NEW:
      j["type"] = "flow_new";
      break;
    case RAMJET_EVENT_ESCALATE:
      j["type"] = "escalate";
      break;
    case RAMJET_EVENT_FALLBACK:
      j["type"] = "fallback";
      break;
    case RAMJET_EVENT_RECOVERED:
      j["type"] = "recovered";
      break;
    default:
      j["type"] = "drop_sample";
      j["packet_len"] = ev.packet_len;
      return j;
  }
  if (ev.flow) {
    KernelFlow f = decode_flow(ev.flow->key, ev.flow->flow);
    std::string rule = f.has_rule ? dp.rule_name(f.rule_id) : "";
    std::string endpoint =
        f.verdict == RAMJET_ACTION_ESCALATE ? dp.endpoint_name(f.endpoint_id) : "";
    j["flow_id"] = f.id;
    j["proto"] = proto_name(f.proto);
    j["src"] = f.src.to_string();
    j["dst"] = f.dst.to_string();
    j["verdict"] = action_name(f.verdict);
    j["rule"] = rule.empty() ? nlohmann::json(nullptr) : nlohmann::json(rule);
    j["endpoint"] = endpoint.empty() ? nlohmann::json(nullptr) : nlohmann::json(endpoint);
    if (ev.type == RAMJET_EVENT_FALLBACK) {
      j["fallback"] = fallback_name(f.fallback);
      j["cause"] = fallback_cause_name(f.fallback_cause);
    }
  }
  return j;
}

nlohmann::json connection_flow_json(const Datapath* dp, const ConnectionInfo& info) {
  if (!info.escalated) return nullptr;
  // Escalated connections are TCP: transparent endpoints take no other protocol.
  if (dp != nullptr)
    if (auto e = dp->lookup_flow(info.client, info.local, IPPROTO_TCP))
      return flow_json(*dp, *e, dp->monotonic_now_ns());
  return {{"flow_id", info.id}};
}

}  // namespace ramjet::datapath
