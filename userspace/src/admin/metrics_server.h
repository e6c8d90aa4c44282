// GET /metrics on telemetry.metrics.listen: the Prometheus text exposition
// (format 0.0.4) of every source in a MetricsRegistry, served by an HttpResponder.
#pragma once

#include <memory>

#include "admin/http_responder.h"
#include "ramjet/net.h"
#include "ramjet/result.h"
#include "telemetry/metrics.h"

namespace ramjet::admin {

class MetricsServer {
 public:
  explicit MetricsServer(const telemetry::MetricsRegistry& registry);
  ~MetricsServer();

  // Binds `listen` (port 0 picks a free port; see bound()) and starts serving.
  Result<void> start(const SocketAddress& listen);
  // The address actually bound, once started.
  const SocketAddress& bound() const { return bound_; }
  void stop();

 private:
  const telemetry::MetricsRegistry& registry_;
  Router router_;
  std::unique_ptr<HttpResponder> responder_;
  SocketAddress bound_;
};

}  // namespace ramjet::admin
