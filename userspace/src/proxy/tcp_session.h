// TcpSession: one downstream connection on a `onramp: tcp` endpoint, from accept to
// close: ingress hook, egress decision, DNS, egress guard, happy-eyeballs connect,
// relay, and the close epilogue (hook, access log, counters).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "proxy/relay.h"
#include "proxy/session.h"
#include "proxy/worker_context.h"
#include "runtime/stream.h"
#include "ramjet/hooks/connection.h"
#include "ramjet/task.h"

namespace ramjet::proxy {

class TcpSession final : public Session {
 public:
  // `client` is the connection's stream (TLS already terminated on a TLS endpoint).
  TcpSession(WorkerContext& wc, const config::Endpoint& ep, telemetry::CounterRow& counters,
             std::unique_ptr<runtime::Stream> client, ConnectionInfo info);

  // The whole life of the connection. Owns and closes both sockets.
  Task<void> run();

  // Ends the session early: relaying stops at once; a session still connecting
  // ends when its current step finishes.
  void force_close(CloseReason why) override;

  const ConnectionInfo& info() const { return info_; }

 private:
  // Establishes the upstream connection (with TLS when the endpoint has upstream_tls);
  // false with close_reason_ set when it failed.
  Task<bool> connect_upstream();
  // The endpoint's upstream, or for a transparent endpoint the original destination.
  HostPort upstream_target() const;
  void finish();

  const config::Endpoint& ep_;
  int client_fd_;
  std::unique_ptr<runtime::Stream> client_;
  int upstream_fd_ = -1;
  std::unique_ptr<runtime::Stream> upstream_;
  ConnectionInfo info_;
  std::shared_ptr<void> ctx_;
  ConnectionStats stats_;
  std::optional<CloseReason> close_reason_;
  std::unique_ptr<Relay> relay_;
  runtime::Clock::time_point started_;
};

}  // namespace ramjet::proxy
