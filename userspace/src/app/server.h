// Server: the listeners and the worker threads, from bind to graceful drain.
//
// Each endpoint gets one SO_REUSEPORT listening socket per worker, so the kernel
// spreads connections across workers and no accept lock exists. Port 0 binds an
// ephemeral port once and the other workers join it.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "admin/flow_view.h"
#include "datapath/metrics.h"
#include "datapath/quic_steering.h"
#include "datapath/tun_handoff.h"
#include "proxy/tun_device.h"
#include "http/auth/auth_table.h"
#include "quic/server_credentials.h"
#include "tls/endpoint_table.h"
#include "ramjet/config/config.h"
#include "ramjet/engine/hook_set.h"
#include "ramjet/result.h"

namespace ramjet::telemetry {
class AccessLog;
class AuditLog;
}  // namespace ramjet::telemetry

namespace ramjet::datapath {
class Datapath;
}

namespace ramjet::proxy {
struct WorkerContext;
}

namespace ramjet::app {

class Server {
 public:
  // `audit_log` may be null (telemetry.audit_log.path unset); it must outlive wait().
  Server(const config::Config& config, engine::HookSet& hooks, telemetry::AccessLog& access_log,
         telemetry::AuditLog* audit_log);
  ~Server();

  // Binds every endpoint for every worker (ip endpoints: creates their TUN devices and
  // the hand-off of decapsulated flows). The error names the endpoint.
  Result<void> bind_listeners();
  // Loads each http endpoint's credentials (htpasswd files, keys). Errors name the file.
  Result<void> load_auth();
  // Loads each endpoint's certificates and keys into its TLS contexts (kept for the
  // process: a reload keeps them, and their session-ticket keys).
  Result<void> load_tls();
  // The engine's part of a reload to `next`: re-reads the htpasswd files with the auth
  // settings the running endpoints have there, and takes its egress settings (all but
  // happy_eyeballs.resolution_delay). Returns what puts them in place on every worker for
  // the requests that start afterwards; on an error nothing changes.
  Result<std::function<void()>> prepare_engine_reload(const config::Config& next);
  // endpoint name -> the address actually bound (port 0 resolved).
  const std::map<std::string, SocketAddress>& bound() const { return bound_; }

  // Puts the transparent endpoints' listeners into the datapath's escalation
  // sockmap and gives workers the datapath (kernel verdicts, flow ids). Call after
  // bind_listeners and before start.
  Result<void> attach_datapath(datapath::Datapath& dp);

  // Creates the workers (and their resolvers) and starts their threads.
  Result<void> start();
  // Thread-safe: stop accepting; close connections left after server.drain_timeout.
  void drain();
  // Returns when every worker has finished.
  void wait();

  unsigned worker_count() const { return workers_; }
  // The TUN hand-off of decapsulated flows, when bind_listeners loaded it (its per-packet
  // counters are thread-safe to read); null otherwise.
  const datapath::TunHandoff* tun_handoff() const { return tun_handoff_.get(); }
  // The QUIC listeners steered by connection id (with more than one worker), by endpoint.
  std::vector<datapath::QuicSteeringStats> quic_steering_stats() const;

  // Thread-safe. Every engine connection, as each worker describes its own on its
  // thread; a worker that has not answered within `timeout` is left out.
  std::vector<admin::EngineConnection> connections(
      std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));
  // Thread-safe. The heartbeat behind systemd's watchdog: true when every running worker's
  // loop ran a posted task within `timeout` (a worker stuck in a hook or a busy loop does
  // not).
  bool workers_answer(std::chrono::milliseconds timeout);
  // Thread-safe. Force-closes (CloseReason::kKilled) the connections `match`
  // selects, on their workers; returns how many.
  std::size_t kill(const std::function<bool(const admin::EngineConnection&)>& match,
                   std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));

 private:
  struct WorkerSlot;
  // Runs `fn` on every running worker's thread and returns what each returned.
  template <typename T>
  // `all_answered`, when given, tells whether every running worker answered in time.
  std::vector<T> on_each_worker(std::function<T(proxy::WorkerContext&)> fn,
                                std::chrono::milliseconds timeout,
                                bool* all_answered = nullptr);
  void worker_thread(unsigned index);
  Result<void> set_up_tun_handoff();
  // Attaches the steering program to endpoint e's QUIC sockets; without it (no CAP_BPF)
  // the listener works with the kernel's hash, and a warning says what that costs.
  void steer_quic(const std::string& endpoint, std::size_t e);
  Result<void> open_quic_sockets();

  const config::Config& config_;
  engine::HookSet& hooks_;
  telemetry::AccessLog& access_log_;
  telemetry::AuditLog* audit_log_;
  unsigned workers_;
  // listen_fds_[worker][endpoint index]
  std::vector<std::vector<int>> listen_fds_;
  // twin_fds_[worker][endpoint]: transparent endpoints' other-family listener, or -1
  std::vector<std::vector<int>> twin_fds_;
  // tun_fds_[worker][endpoint]: ip endpoints' TUN queue for that worker, or -1; the
  // devices themselves (their policy rules go with them).
  std::vector<std::vector<int>> tun_fds_;
  // quic_fds_[worker][endpoint]: http endpoints' `quic:` UDP socket, or -1; their GnuTLS
  // credentials (from the endpoint's tls certificates) and connection counts; the
  // stateless-reset secret all workers share.
  std::vector<std::vector<int>> quic_fds_;
  std::vector<std::shared_ptr<const quic::ServerCredentials>> quic_credentials_;
  std::unique_ptr<std::atomic<std::uint32_t>[]> quic_connections_;
  std::array<std::uint8_t, 32> quic_reset_secret_{};
  std::array<std::uint8_t, 32> quic_token_secret_{};
  std::vector<std::unique_ptr<proxy::TunDevice>> tuns_;
  // Loaded when an ip endpoint and a transparent tcp or udp endpoint exist: decapsulated
  // flows to those endpoints.
  std::unique_ptr<datapath::TunHandoff> tun_handoff_;
  std::vector<std::pair<std::string, std::unique_ptr<datapath::QuicSteering>>> quic_steering_;
  std::uint32_t upstream_mark_ = 0;  // the ip endpoints' bypass marks (WorkerContext)
  datapath::Datapath* datapath_ = nullptr;
  std::map<std::string, SocketAddress> bound_;
  http::auth::AuthTable authenticators_;
  tls::TlsTable tls_;
  std::vector<std::unique_ptr<WorkerSlot>> slots_;
  // Shared by every worker: server.max_connections is a limit for the daemon.
  std::atomic<std::uint32_t> open_connections_{0};
  // udp_sessions_[endpoint]: sessions open on a udp endpoint, all workers (udp.max_sessions).
  std::unique_ptr<std::atomic<std::uint32_t>[]> udp_sessions_;
  std::vector<std::thread> threads_;
};

}  // namespace ramjet::app
