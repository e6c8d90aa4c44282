// One view of a flow across both halves of ramjet: the kernel flow-table entry and
// the engine connection that share its flow id (either may be missing: a fast-path
// flow never reaches the engine, a connection to an explicit-proxy endpoint never
// had a kernel entry). The admin API (GET /v1/flows) and ramjetctl build, filter,
// sort and print flows with this one vocabulary, so they cannot disagree.
//
// The JSON shape of one flow (docs/admin-api.md, tools/ramjetctl/schemas/flow.json):
//   {"id", "proto", "src", "dst", "verdict", "endpoint", "rule",
//    "packets", "bytes", "age_ms", "idle_ms", "rate_bps",
//    "kernel": {...} | null, "engine": {...} | null}
// Top-level fields summarise (kernel counters when there is a kernel entry, else
// the engine's); the nested objects carry each half's own detail.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "datapath/kernel_flow.h"
#include "ramjet/config/config.h"
#include "ramjet/hooks/connection.h"
#include "ramjet/net.h"
#include "ramjet/result.h"
#include "telemetry/engine_connection.h"

namespace ramjet::admin {

// An engine connection (GET /v1/connections), as the proxy layer describes it.
using telemetry::EngineConnection;

nlohmann::json connection_json(const EngineConnection& c);
Result<EngineConnection> connection_from_json(const nlohmann::json& j);

// Rule and endpoint ids -> names (ids as the kernel stores them).
struct NameTable {
  // In the order of Config::endpoints (config::endpoint_id maps an index to its id).
  std::vector<std::string> endpoints;
  std::unordered_map<std::uint32_t, std::string> rules;
  // nullptr when unknown.
  const std::string* endpoint(std::uint32_t id) const;
  const std::string* rule(std::uint32_t rule_id) const;
  // Names endpoint `id` as another process reported it (ids past kMaxEndpointId,
  // which no config can hold, are ignored rather than allocated).
  void set_endpoint(std::uint32_t id, std::string name);
  static constexpr std::uint32_t kMaxEndpointId = 4096;
};

struct FlowView {
  FlowId id = 0;
  std::optional<datapath::KernelFlow> kernel;
  std::shared_ptr<const EngineConnection> engine;
  double rate_bps = 0;  // bytes per second: average over the age, or measured (flows top)

  // Summaries across both halves (kernel first).
  std::string_view verdict() const;  // the kernel verdict, or "ENGINE"
  std::uint8_t proto() const;
  SocketAddress src() const;
  SocketAddress dst() const;
  std::uint64_t bytes() const;
  std::uint64_t packets() const;  // 0 without a kernel entry
  std::uint64_t age_ms(std::uint64_t now_ns) const;
  std::uint64_t idle_ms(std::uint64_t now_ns) const;  // 0 without a kernel entry
  // The endpoint: the engine's, else the one the kernel escalates to; nullptr if none.
  const std::string* endpoint(const NameTable& names) const;
  const std::string* rule(const NameTable& names) const;
};

// bytes / age: what `flows list` reports as the rate.
double average_rate_bps(const FlowView& f, std::uint64_t now_ns);

// Filters of `ramjetctl flows list/kill` and GET /v1/flows (query parameters of
// the same names). Every set field must match.
struct FlowFilter {
  std::optional<FlowId> id;
  std::optional<Cidr> src, dst;
  std::optional<std::uint16_t> port;   // either side's port
  std::optional<std::uint8_t> proto;   // IPPROTO_*
  std::optional<std::string> verdict;  // "FASTPATH", ..., or "ENGINE" (upper case)
  std::optional<std::string> endpoint;

  bool empty() const;
  bool only_id() const;  // an id and nothing else
  bool matches(const FlowView& f, const NameTable& names) const;

  // Each setter validates its text; the error names the field and the value.
  Result<void> set(std::string_view field, std::string_view value);
  // "src=10.0.0.0/8&port=80"; unknown fields are errors.
  static Result<FlowFilter> from_query(std::string_view query);
  std::string to_query() const;
};

enum class FlowSort : std::uint8_t { kNone, kId, kBytes, kPackets, kAge, kIdle, kRate };
std::optional<FlowSort> flow_sort_from_name(std::string_view name);
const char* flow_sort_name(FlowSort s);
// true when `a` goes before `b`: ids ascending; everything else largest first.
bool flow_before(FlowSort s, const FlowView& a, const FlowView& b, std::uint64_t now_ns);

// Appends one flow as a JSON object (no newline). Hand-written for the flow list's
// sake (a million flows must print in well under a second); the output is the
// shape nlohmann would produce for flow_json below.
void append_flow_json(std::string& out, const FlowView& f, const NameTable& names,
                      std::uint64_t now_ns);
nlohmann::json flow_json(const FlowView& f, const NameTable& names, std::uint64_t now_ns);
// The inverse (for flows read from the admin API); names are interned in `names`.
Result<FlowView> flow_from_json(const nlohmann::json& j, NameTable& names, std::uint64_t now_ns);

// Percent-decoding for query values ("10.0.0.0%2F8").
std::string url_decode(std::string_view s);
std::string url_encode(std::string_view s);

}  // namespace ramjet::admin
