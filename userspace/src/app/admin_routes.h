// The admin API's routes (docs/admin-api.md), every one registered here, in
// add_admin_routes: status, stats, the hook trace, endpoints, engine connections,
// the merged flow view, kill, blocks, rules, the datapath, the audit log, reload,
// drain and the event feed. admin::AdminServer only serves them.
//
// Handlers run on the admin responder's thread. Engine state is asked of the
// workers on their own threads (Server::connections / kill); kernel state is read
// from the datapath's pinned maps, the same code ramjetctl uses with ramjetd down.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>

#include "admin/admin_server.h"
#include "app/runtime_policy.h"
#include "ramjet/config/config.h"

namespace ramjet::datapath {
class Datapath;
}

namespace ramjet::telemetry {
class AuditLog;
}

namespace ramjet::app {

class Server;

struct AdminRoutes {
  Server& server;
  const config::Config& config;
  datapath::Datapath* datapath;    // null when the datapath is off
  telemetry::AuditLog* audit_log;  // null when the audit log is off
  // GET /v1/status: the daemon's identity, workers and listeners.
  std::function<nlohmann::json()> status;
  RuntimePolicy& policy;
  // POST /v1/reload: what SIGHUP does (reopen the logs, re-read the config file).
  std::function<Result<ReloadReport>()> reload;
  // POST /v1/drain: what SIGTERM does.
  std::function<void()> drain;
};

// Adds the routes to `admin`; `routes` must outlive it.
void add_admin_routes(admin::AdminServer& admin, const AdminRoutes& routes);

}  // namespace ramjet::app
