// The admin API: HTTP/1.1 + JSON on a unix socket (mode 0600), served by an
// HttpResponder (its own thread and io_uring), so it answers even when workers are
// busy. Routes (v1): GET /v1/status, GET /v1/stats, GET /v1/hooks/trace, and what
// the daemon adds with route() (GET /v1/datapath, POST /v1/audit/reopen, ...).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "admin/http_responder.h"
#include "ramjet/result.h"
#include "telemetry/hook_trace.h"

namespace ramjet::admin {

// One hook trace event as /v1/hooks/trace and /v1/flows/{id} show it.
nlohmann::json hook_event_json(const telemetry::HookEvent& e);

class AdminServer {
 public:
  // status() supplies the body of /v1/status (JSON text).
  explicit AdminServer(std::function<std::string()> status);
  ~AdminServer();

  // Adds a route: `path` exactly, or every path under it when it ends in '/'
  // (Router::add). The handler sees the path and the query string. Call before start().
  void route(std::string method, std::string path, HttpHandler handler);

  Result<void> start(const std::string& path);
  void stop();

 private:
  std::function<std::string()> status_;
  Router router_;
  std::unique_ptr<HttpResponder> responder_;
  std::string path_;
};

}  // namespace ramjet::admin
