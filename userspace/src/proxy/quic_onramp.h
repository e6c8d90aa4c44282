// QuicOnramp: one worker's share of an endpoint's `quic:` listener - its SO_REUSEPORT UDP
// socket, the receive loop on the worker's ring, and the table from our connection ids to
// the connections this worker owns (ids name the worker: abi/quic.h, so the kernel's
// steering program can send every packet of a connection here). Each connection has a
// coroutine that sleeps until its ngtcp2 expiry (on the worker's timers) and owns it.
// Each connection speaks HTTP/3 on its streams (H3Transport) to an H3Session, which
// serves its requests as the HTTP/2 on-ramp does. Drain sends GOAWAY on every connection
// and closes each once its requests are done (or the drain deadline ends them).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>

#include "proxy/h3_session.h"
#include "proxy/worker_context.h"
#include "quic/server_connection.h"
#include "ramjet/task.h"

namespace ramjet::proxy {

class QuicOnramp final : private quic::ServerConnection::Events {
 public:
  using NextFlowId = FlowId (*)();
  // `fd` is this worker's bound UDP socket (closed by run()); `open_connections` counts
  // the endpoint's connections over all workers (quic.max_connections).
  QuicOnramp(WorkerContext& wc, std::size_t endpoint_index, int fd,
             std::shared_ptr<const quic::ServerCredentials> credentials,
             const quic::ServerIdentity& identity, std::atomic<std::uint32_t>* open_connections,
             NextFlowId next_id);
  ~QuicOnramp() override;
  QuicOnramp(const QuicOnramp&) = delete;
  QuicOnramp& operator=(const QuicOnramp&) = delete;

  Task<void> run();
  // Drain: no new connection; GOAWAY on each, which closes once its requests are done.
  void drain();
  // Ends the receive loop and every connection left.
  void stop();

  static constexpr std::size_t kMaxDatagram = 65536;

 private:
  struct Connection;
  void on_datagram(const sockaddr_storage& peer, socklen_t peer_len,
                   std::span<const std::uint8_t> data);
  // Sends what the connection has to send; ends it when it is done.
  void flush(Connection& c);
  void send(const sockaddr_storage& to, socklen_t to_len, std::span<const std::uint8_t> d);
  // The connection is over: its ids go, its session learns why.
  void end(Connection& c, CloseReason why = CloseReason::kCompleted);
  // Whether a new client must prove its address with a Retry first (quic.retry).
  bool retry_first(quic::Timestamp now);
  // After a datagram was processed: the handshake's news, the requests' wake-ups.
  void after_input(Connection& c);
  Task<void> drive(std::unique_ptr<Connection> c);
  void on_connection_id(quic::ServerConnection& c, std::span<const std::uint8_t> cid,
                        bool added) override;

  WorkerContext& wc_;
  const config::Endpoint& ep_;
  telemetry::CounterRow& counters_;
  int fd_;
  sockaddr_storage local_{};
  socklen_t local_len_ = 0;
  std::shared_ptr<const quic::ServerCredentials> credentials_;
  quic::ServerIdentity identity_;
  std::atomic<std::uint32_t>* open_connections_;
  NextFlowId next_id_;
  bool stopping_ = false;
  bool draining_ = false;
  quic::Timestamp window_start_ = 0;  // retry: auto counts new connections per second
  unsigned window_connections_ = 0;
  // Our ids (and each client's first destination id) -> the connection they name.
  std::unordered_map<std::string, Connection*> by_id_;
  std::unordered_map<quic::ServerConnection*, Connection*> by_core_;
  Connection* pending_accept_ = nullptr;  // the one accept() is building
  std::size_t live_ = 0;
  std::unique_ptr<runtime::Event> all_closed_;
};

}  // namespace ramjet::proxy
