// UdpOnramp: one worker's share of an `onramp: udp` endpoint - its SO_REUSEPORT socket
// (the kernel hashes each client's 4-tuple to one worker, so a client's datagrams always
// reach the same table), the receive loop and the table of sessions (docs/udp.md).
//
// Datagrams come in through multishot recvmsg with a provided-buffer ring (one SQE for
// many datagrams), or plain recvmsg where the kernel lacks it. Replies from upstreams go
// out in batches (recvmmsg from the upstream socket, sendmmsg to the client).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "proxy/udp_flow_key.h"
#include "proxy/worker_context.h"
#include "ramjet/hooks/connection.h"
#include "ramjet/task.h"

namespace ramjet::proxy {

class UdpSession;

class UdpOnramp final : private runtime::Drainable {
 public:
  using NextFlowId = FlowId (*)();

  // `fd` is this worker's bound socket of endpoint `endpoint_index` (closed by run());
  // `open_sessions` counts the endpoint's sessions over all workers (udp.max_sessions).
  UdpOnramp(WorkerContext& wc, std::size_t endpoint_index, int fd,
            std::atomic<std::uint32_t>* open_sessions, NextFlowId next_id);
  ~UdpOnramp();
  UdpOnramp(const UdpOnramp&) = delete;
  UdpOnramp& operator=(const UdpOnramp&) = delete;

  // Receives until stop(); then closes every session and the socket.
  Task<void> run();
  void stop();

  // For sessions.
  WorkerContext& context() { return wc_; }
  const config::Endpoint& endpoint() const { return ep_; }
  // Sends `datagrams` (payloads) to `to` from the endpoint's socket, or through `via`, a
  // socket connected to the client (an escalated session's reply socket), in one sendmmsg
  // when the kernel takes them; what it refuses is counted as udp_dropped_send_error.
  // Returns the datagrams and bytes sent.
  std::pair<std::size_t, std::size_t> send_to_client(
      const SocketAddress& to, std::span<const std::span<const std::uint8_t>> datagrams,
      int via = -1);
  void erase(UdpSession* s);
  // A session with datagrams gathered for its upstream: flushed at the end of the
  // current completion batch (or gone from the list when the session goes first).
  void mark_pending(UdpSession* s) {
    pending_.push_back(s);
    wc_.worker.when_drained(this);
  }
  void forget_pending(UdpSession* s);

  // Scratch space for a session's burst of upstream datagrams: used between two
  // suspensions only, so one per worker and endpoint serves every session.
  static constexpr std::size_t kBatch = 16;
  static constexpr std::size_t kMaxDatagram = 65536;
  std::uint8_t* scratch(std::size_t i) { return scratch_.data() + i * kMaxDatagram; }

 private:
  // `original_dst`: where the datagram was going, on a transparent endpoint (from
  // IP_ORIGDSTADDR); nullopt elsewhere.
  void on_datagram(const SocketAddress& peer, const std::optional<SocketAddress>& original_dst,
                   std::span<const std::uint8_t> data, bool truncated);
  // What one receive returned: one datagram, or with `segment` > 0 (UDP_GRO) several
  // of `segment` bytes each (the last maybe shorter), each passed to on_datagram.
  void on_received(const SocketAddress& peer, const std::optional<SocketAddress>& original_dst,
                   std::span<const std::uint8_t> data, int segment, bool truncated);
  Task<void> drive(std::unique_ptr<UdpSession> s);
  Task<void> receive_multishot(bool& unsupported);
  Task<void> receive_plain();

  WorkerContext& wc_;
  const config::Endpoint& ep_;
  telemetry::CounterRow& counters_;
  int fd_;
  SocketAddress local_;
  std::atomic<std::uint32_t>* open_sessions_;
  NextFlowId next_id_;
  bool stopping_ = false;
  std::unique_ptr<runtime::BufferRing> ring_;
  std::vector<std::uint8_t> scratch_;
  std::vector<UdpSession*> pending_;
  void flush_pending();
  void drained() override { flush_pending(); }
  std::unordered_map<UdpFlowKey, UdpSession*, UdpFlowKeyHash> sessions_;
  std::size_t live_ = 0;                        // sessions whose coroutines have not ended
  std::unique_ptr<runtime::Event> all_closed_;  // set by the last session once run() ends
};

}  // namespace ramjet::proxy
