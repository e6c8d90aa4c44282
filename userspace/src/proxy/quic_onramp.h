// QuicOnramp: one worker's share of an endpoint's `quic:` listener - its SO_REUSEPORT UDP
// socket, the receive loop on the worker's ring, and the table from our connection ids to
// the connections this worker owns (ids name the worker: abi/quic.h, so the kernel's
// steering program can send every packet of a connection here). Each connection has a
// coroutine that sleeps until its ngtcp2 expiry (on the worker's timers) and owns it.
// Each connection speaks HTTP/3 on its streams (H3Transport); requests do not enter the
// proxy pipeline yet and are answered 501 (docs/quic.md).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>

#include "proxy/worker_context.h"
#include "quic/server_connection.h"
#include "ramjet/task.h"

namespace ramjet::proxy {

class QuicOnramp final : private quic::ServerConnection::Events {
 public:
  // `fd` is this worker's bound UDP socket (closed by run()); `open_connections` counts
  // the endpoint's connections over all workers (quic.max_connections).
  QuicOnramp(WorkerContext& wc, std::size_t endpoint_index, int fd,
             std::shared_ptr<const quic::ServerCredentials> credentials,
             const quic::ServerIdentity& identity, std::atomic<std::uint32_t>* open_connections);
  ~QuicOnramp() override;
  QuicOnramp(const QuicOnramp&) = delete;
  QuicOnramp& operator=(const QuicOnramp&) = delete;

  Task<void> run();
  void stop();

  static constexpr std::size_t kMaxDatagram = 65536;

 private:
  struct Connection;
  void on_datagram(const sockaddr_storage& peer, socklen_t peer_len,
                   std::span<const std::uint8_t> data);
  // Sends what the connection has to send; ends it when it is done.
  void flush(Connection& c);
  void send(const sockaddr_storage& to, socklen_t to_len, std::span<const std::uint8_t> d);
  void end(Connection& c);
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
  bool stopping_ = false;
  // Our ids (and each client's first destination id) -> the connection they name.
  std::unordered_map<std::string, Connection*> by_id_;
  std::unordered_map<quic::ServerConnection*, Connection*> by_core_;
  Connection* pending_accept_ = nullptr;  // the one accept() is building
  std::size_t live_ = 0;
  std::unique_ptr<runtime::Event> all_closed_;
};

}  // namespace ramjet::proxy
