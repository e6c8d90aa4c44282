#include "proxy/session.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "datapath/json.h"
#include "proxy/egress_chain.h"
#include "telemetry/access_log.h"

namespace ramjet::proxy {

using telemetry::Counter;

void Session::close_epilogue(int client_fd, const ConnectionInfo& info, ConnectionStats& stats,
                             std::optional<CloseReason> reason, runtime::Clock::time_point started,
                             void* ctx) {
  tcp_info ti{};
  socklen_t len = sizeof ti;
  if (::getsockopt(client_fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0) {
    stats.rtt = std::chrono::microseconds(ti.tcpi_rtt);
    stats.retransmits = ti.tcpi_total_retrans;
  }
  ::close(client_fd);
  stats.reason = reason.value_or(CloseReason::kCompleted);
  stats.duration =
      std::chrono::duration_cast<std::chrono::microseconds>(runtime::Clock::now() - started);
  counters_.add(Counter::bytes_from_client, static_cast<std::int64_t>(stats.bytes_from_client));
  counters_.add(Counter::bytes_to_client, static_cast<std::int64_t>(stats.bytes_to_client));
  switch (stats.reason) {
    case CloseReason::kIdleTimeout:
      counters_.add(Counter::idle_timeouts);
      break;
    case CloseReason::kMaxLifetime:
      counters_.add(Counter::max_lifetime_closes);
      break;
    case CloseReason::kShutdown:
      counters_.add(Counter::drain_forced_closes);
      break;
    default:
      break;
  }
  auto t0 = runtime::Clock::now();
  wc_.hooks.ingress_handle_connection_close(info, stats, ctx);
  trace_hook(info, "ingress.handle_connection_close", to_string(stats.reason), "", t0);
  wc_.access_log.record(info, stats);
  if (wc_.audit_log != nullptr && audit_.kind) {
    telemetry::AuditRecord r;
    r.kind = *audit_.kind;
    r.flow = info.id;
    r.endpoint = info.endpoint;
    r.client = info.client;
    r.local = info.local;
    r.target = audit_.target;
    r.upstream = stats.upstream;
    r.bytes_from_client = stats.bytes_from_client;
    r.bytes_to_client = stats.bytes_to_client;
    r.start = audit_.start;
    r.duration = stats.duration;
    r.reason = stats.reason;
    r.decisions = &audit_.decisions;
    nlohmann::json kernel = datapath::connection_flow_json(wc_.datapath, info);
    r.kernel = &kernel;
    wc_.audit_log->write(telemetry::encode_audit_line(r));
  }
}

}  // namespace ramjet::proxy
