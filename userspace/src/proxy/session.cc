#include "proxy/session.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

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
  wc_.stats.add(Counter::bytes_from_client, static_cast<std::int64_t>(stats.bytes_from_client));
  wc_.stats.add(Counter::bytes_to_client, static_cast<std::int64_t>(stats.bytes_to_client));
  switch (stats.reason) {
    case CloseReason::kIdleTimeout:
      wc_.stats.add(Counter::idle_timeouts);
      break;
    case CloseReason::kMaxLifetime:
      wc_.stats.add(Counter::max_lifetime_closes);
      break;
    case CloseReason::kShutdown:
      wc_.stats.add(Counter::drain_forced_closes);
      break;
    default:
      break;
  }
  auto t0 = runtime::Clock::now();
  wc_.hooks.ingress_handle_connection_close(info, stats, ctx);
  trace_hook(info, "ingress.handle_connection_close", to_string(stats.reason), "", t0);
  wc_.access_log.record(info, stats);
}

}  // namespace ramjet::proxy
