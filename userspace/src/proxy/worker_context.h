// Everything one worker thread owns: its ring, resolver, buffers, counters and
// the sessions it is running. Only that worker's thread touches it, except the
// atomics in stats and the posted drain/stop requests.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <unordered_set>

#include "egress/guard.h"
#include "ramjet/config/config.h"
#include "ramjet/engine/hook_set.h"
#include "runtime/worker.h"
#include "telemetry/flow_board.h"
#include "telemetry/stats.h"

namespace ramjet::dns {
class Resolver;
}

namespace ramjet::datapath {
class Datapath;
}

namespace ramjet::http::auth {
class AuthTable;
}

namespace ramjet::tls {
class TlsTable;
}

namespace ramjet::telemetry {
class AccessLog;
class AuditLog;
}  // namespace ramjet::telemetry

namespace ramjet::proxy {

class H2Upstreams;
class Session;
class UpstreamPool;

struct WorkerContext {
  runtime::Worker& worker;
  const config::Config& config;
  engine::HookSet& hooks;
  telemetry::WorkerStats stats;  // this worker's counter rows, one per endpoint
  telemetry::AccessLog& access_log;
  // This worker's egress settings and the guard built from them: a reload replaces
  // both (Server::prepare_engine_reload), so they are read here, never from `config`.
  config::EgressSettings egress;
  egress::EgressGuard guard;
  std::unique_ptr<dns::Resolver> resolver;
  std::unique_ptr<runtime::BufferRing> buffers;  // for `relay: buffer` endpoints
  std::unordered_set<Session*> sessions;
  // Per http endpoint with auth configured (by endpoint name); shared by all workers.
  const http::auth::AuthTable* authenticators = nullptr;
  bool draining = false;
  std::unique_ptr<UpstreamPool> pool;        // idle keep-alive upstream connections
  runtime::Event sessions_empty;             // set when draining and the last session ends
  telemetry::AuditLog* audit_log = nullptr;  // shared by all workers; null when off
  datapath::Datapath* datapath = nullptr;    // the eBPF datapath, when enabled
  const tls::TlsTable* tls = nullptr;        // the endpoints' TLS contexts
  // Open downstream connections of the whole daemon (server.max_connections).
  std::atomic<std::uint32_t>* open_connections = nullptr;
  std::unique_ptr<H2Upstreams> h2_upstreams;  // HTTP/2 connections to origins, shared
  // The TUN hand-off's flow table (datapath/tun_handoff.h), when an ip endpoint exists.
  int ip_handoff_flows_fd = -1;
  // SO_MARK for upstream sockets: the ip endpoints' bypass marks, so that the engine's own
  // connections never enter a TUN on-ramp (0: none).
  std::uint32_t upstream_mark = 0;
  // Where each endpoint's listener is bound (by endpoint name; `listen` with its port 0
  // replaced by the port the kernel chose): a transparent endpoint refuses to relay to it.
  const std::map<std::string, SocketAddress>* bound = nullptr;
  // The flow ids of `sessions`, readable by the crash report; null in unit tests.
  telemetry::FlowBoard* flow_board = nullptr;
};

}  // namespace ramjet::proxy
