// The admin API: HTTP/1.1 + JSON on a unix socket (mode 0600), served by an
// HttpResponder (its own thread and io_uring), so it answers even when workers are
// busy. It serves the routes it is given; the daemon's are all registered in one
// place, app/admin_routes.cc (docs/admin-api.md).
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "admin/http_responder.h"
#include "ramjet/result.h"
#include "telemetry/hook_trace.h"

namespace ramjet::admin {

// One hook trace event as /v1/hooks/trace and /v1/flows/{id} show it.
nlohmann::json hook_event_json(const telemetry::HookEvent& e);

class AdminServer {
 public:
  AdminServer() = default;
  ~AdminServer();

  // Adds a route: `path` exactly, or every path under it when it ends in '/'
  // (Router::add). The handler sees the path and the query string. Call before start().
  void route(std::string method, std::string path, HttpHandler handler);

  Result<void> start(const std::string& path);
  void stop();

 private:
  Router router_;
  std::unique_ptr<HttpResponder> responder_;
  std::string path_;
};

}  // namespace ramjet::admin
