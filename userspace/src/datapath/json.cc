#include "datapath/json.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <string>

namespace ramjet::datapath {

namespace {

std::string endpoint_text(std::uint8_t family, const std::uint32_t* addr, std::uint16_t port_be) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family == RAMJET_FAMILY_IPV4) {
    ::inet_ntop(AF_INET, addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(port_be));
  }
  ::inet_ntop(AF_INET6, addr, buf, sizeof buf);
  return "[" + std::string(buf) + "]:" + std::to_string(ntohs(port_be));
}

std::string proto_name(std::uint8_t p) {
  switch (p) {
    case IPPROTO_TCP:
      return "tcp";
    case IPPROTO_UDP:
      return "udp";
    case IPPROTO_ICMP:
      return "icmp";
    case IPPROTO_ICMPV6:
      return "icmpv6";
    default:
      return std::to_string(p);
  }
}

std::string tcp_flags_text(std::uint8_t f) {
  std::string s;
  if (f & RAMJET_TCP_SYN) s += 'S';
  if (f & RAMJET_TCP_ACK) s += 'A';
  if (f & RAMJET_TCP_PSH) s += 'P';
  if (f & RAMJET_TCP_FIN) s += 'F';
  if (f & RAMJET_TCP_RST) s += 'R';
  return s;
}

}  // namespace

nlohmann::json status_json(const Datapath& dp) {
  nlohmann::json ifs = nlohmann::json::array();
  for (const auto& i : dp.interfaces())
    ifs.push_back({{"name", i.name}, {"ifindex", i.ifindex}, {"xdp_mode", i.xdp_mode}});
  nlohmann::json stats = nlohmann::json::object();
  auto values = dp.stats();
  for (std::size_t i = 1; i < RAMJET_STAT__COUNT; ++i)
    stats[ramjet_stat_names[i]] = {{"packets", values[i].packets}, {"bytes", values[i].bytes}};
  return {{"enabled", true},
          {"pin_dir", dp.pin_dir()},
          {"adopted", dp.adopted()},
          {"interfaces", ifs},
          {"stats", stats}};
}

nlohmann::json flow_json(const Datapath& dp, const FlowEntry& e, std::uint64_t now_ns) {
  const auto& k = e.key;
  const auto& f = e.flow;
  std::string lo = endpoint_text(k.family, k.addr_lo, k.port_lo);
  std::string hi = endpoint_text(k.family, k.addr_hi, k.port_hi);
  bool lo_first = f.origin_side == 0;
  std::string rule = f.rule_index == RAMJET_RULE_INDEX_NONE ? "" : dp.rule_name(f.rule_id);
  std::string endpoint = f.verdict == RAMJET_ACTION_ESCALATE ? dp.endpoint_name(f.endpoint_id) : "";
  auto ms = [&](std::uint64_t t) { return now_ns > t ? (now_ns - t) / 1'000'000 : 0; };
  return {{"flow_id", f.flow_id},
          {"proto", proto_name(k.proto)},
          {"src", lo_first ? lo : hi},
          {"dst", lo_first ? hi : lo},
          {"verdict", f.verdict < RAMJET_ACTION__COUNT ? ramjet_action_names[f.verdict] : "?"},
          {"reason", f.reason < RAMJET_STAT__COUNT ? ramjet_stat_names[f.reason] : "?"},
          {"rule", rule.empty() ? nlohmann::json(nullptr) : nlohmann::json(rule)},
          {"endpoint", endpoint.empty() ? nlohmann::json(nullptr) : nlohmann::json(endpoint)},
          {"packets", {f.dir[0].packets, f.dir[1].packets}},
          {"bytes", {f.dir[0].bytes, f.dir[1].bytes}},
          {"tcp_flags", {tcp_flags_text(f.tcp_flags[0]), tcp_flags_text(f.tcp_flags[1])}},
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

nlohmann::json connection_flow_json(const Datapath* dp, const ConnectionInfo& info) {
  if (!info.escalated) return nullptr;
  // Escalated connections are TCP: transparent endpoints take no other protocol.
  if (dp != nullptr)
    if (auto e = dp->lookup_flow(info.client, info.local, IPPROTO_TCP))
      return flow_json(*dp, *e, dp->monotonic_now_ns());
  return {{"flow_id", info.id}};
}

}  // namespace ramjet::datapath
