// Session: what every on-ramp's per-connection object shares - registration with
// its worker (so drain can find it), the connection counters, and force_close.
#pragma once

#include <optional>

#include "app/worker_context.h"
#include "ramjet/hooks/connection.h"

namespace ramjet::proxy {

class Session {
 public:
  explicit Session(app::WorkerContext& wc) : wc_(wc) {
    wc_.sessions.insert(this);
    wc_.stats.add(telemetry::Counter::connections_accepted);
    wc_.stats.add(telemetry::Counter::connections_active);
  }
  virtual ~Session() {
    wc_.stats.add(telemetry::Counter::connections_active, -1);
    wc_.stats.add(telemetry::Counter::connections_closed);
    wc_.sessions.erase(this);
    if (wc_.draining && wc_.sessions.empty()) wc_.sessions_empty.set();
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Ends the session early (drain deadline, an operator's kill). Safe at any time.
  virtual void force_close(CloseReason why) = 0;

 protected:
  // The close epilogue every on-ramp shares: TCP_INFO into `stats`, closing the
  // client socket, the counters, IngressHook::handle_connection_close and the access
  // log line. The on-ramp closes its upstream side first.
  void close_epilogue(int client_fd, const ConnectionInfo& info, ConnectionStats& stats,
                      std::optional<CloseReason> reason, runtime::Clock::time_point started,
                      void* ctx);

  app::WorkerContext& wc_;
};

}  // namespace ramjet::proxy
