// Session: what every on-ramp's per-connection object shares - registration with
// its worker (so drain can find it), the connection counters, and force_close.
#pragma once

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
  app::WorkerContext& wc_;
};

}  // namespace ramjet::proxy
