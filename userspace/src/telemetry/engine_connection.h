// What an engine connection reports of itself (GET /v1/connections, the engine half
// of a flow in admin/flow_view.h). Defined here, below both the proxy sessions that
// fill it in and the admin views that print it, so neither depends on the other.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "ramjet/hooks/connection.h"
#include "ramjet/net.h"

namespace ramjet::telemetry {

struct EngineConnection {
  FlowId id = 0;
  std::string endpoint;
  unsigned worker = 0;
  SocketAddress client;  // the PROXY header's source when the endpoint reads one
  std::optional<SocketAddress> proxied_by;  // then the real peer (the load balancer)
  SocketAddress local;  // the original destination when escalated
  std::optional<SocketAddress> upstream;
  std::string state;  // "hooks", "connecting", "relaying", "closing", ...
  bool escalated = false;
  std::uint8_t proto = 6;  // IPPROTO_TCP, or IPPROTO_UDP for a udp endpoint's session
  std::uint64_t age_ms = 0;
  std::uint64_t bytes_from_client = 0;
  std::uint64_t bytes_to_client = 0;
  // telemetry.tracing on: the trace and span of the connection's last request or
  // tunnel (hex); empty otherwise.
  std::string trace_id;
  std::string span_id;
};

}  // namespace ramjet::telemetry
