// ConnectUdpTunnel: a connect-udp tunnel (RFC 9298) once it is open (HTTP/1.1: its 101 is
// out; HTTP/2: its 200): the client's capsule stream on one side, a connected UDP socket to
// the target on the other. The client side is a runtime::Stream: the HTTP/1.1 connection,
// or an HTTP/2 stream (H2Session's, whose flow control is then the backpressure).
//
//   client bytes -> http::ConnectUdpReader -> one send() per DATAGRAM capsule of context 0
//   (other capsule types and context IDs skipped and counted; a malformed stream ends the
//   tunnel, counted by reason as connect_udp_malformed_<reason>)
//   UDP socket -> one DATAGRAM capsule (context 0) per datagram, those already queued on the
//   socket written together
//
// On HTTP/3, once both sides agreed to HTTP datagrams (proxy/http_datagrams.h), datagrams
// also travel outside the stream, in QUIC DATAGRAM frames (RFC 9297 2.1): the session hands
// those of the tunnel's stream to from_datagram(), and the target's datagrams go out as
// such frames instead of capsules (capsules from the client are still taken: RFC 9297
// allows both). What the connection cannot take (too large, its bounded queue full) is
// dropped and counted: datagrams are unreliable, and never wait without bound.
//
// It ends when the client ends its stream (between capsules: a clean close), either side
// fails, the stream is malformed, connect_udp.idle_timeout passes without a datagram either
// way, or force_close (either way the client side is stopped). UDP sends never wait: what the
// kernel refuses is dropped and counted, as the udp on-ramp does. The client side has backpressure:
// while a write to the client waits, datagrams queue in the UDP socket (and the kernel drops what
// does not fit).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "http/connect_udp.h"
#include "proxy/http_datagrams.h"
#include "ramjet/hooks/connection.h"
#include "ramjet/task.h"
#include "runtime/stream.h"
#include "runtime/worker.h"
#include "telemetry/stats.h"

namespace ramjet::proxy {

class ConnectUdpTunnel {
 public:
  // `stop_client` makes the client side's pending read and write return (an HTTP/1.1
  // socket shut down, an HTTP/2 stream reset); `udp_fd` is connected to the target and
  // stays the caller's to close; `stats` receives the payload bytes as they pass (what GET
  // /v1/connections shows).
  ConnectUdpTunnel(runtime::Worker& w, FlowId flow, runtime::Stream& client,
                   std::function<void()> stop_client, int udp_fd, runtime::BufferRing& buffers,
                   telemetry::CounterRow& counters, ConnectionStats& stats,
                   std::chrono::milliseconds idle_timeout);

  // Runs until the tunnel ends. `early`: client bytes that arrived behind the request head
  // (the first capsules); taken (left empty) before the first suspension.
  Task<void> run(std::string& early);

  // Ends the tunnel early (drain deadline, an operator's kill). Safe at any time; the
  // first reason wins.
  void force_close(CloseReason why);

  // HTTP/3: the tunnel is request stream `stream` of a connection with HTTP datagrams;
  // `frame_stats` receives the payload bytes that travel in DATAGRAM frames (the session
  // counts its stream bytes itself, capsules included).
  void use_datagrams(HttpDatagrams* datagrams, std::int64_t stream, ConnectionStats& frame_stats) {
    datagrams_ = datagrams;
    stream_ = stream;
    frame_stats_ = &frame_stats;
  }
  // An HTTP datagram of the tunnel's stream from a QUIC DATAGRAM frame (Context ID, then
  // the UDP payload for context 0): sent to the target, or dropped and counted.
  void from_datagram(std::span<const std::uint8_t> payload);

  // Why it ended, when not by the client's clean close.
  std::optional<CloseReason> reason() const { return reason_; }

 private:
  Task<void> from_client(std::string early);
  Task<void> to_client();
  Task<void> watchdog();
  // Sends the payloads in `input`; false when the stream is malformed (the tunnel ends).
  bool consume(std::span<const std::uint8_t> input);
  void malformed(const http::ConnectUdpReader::Result& r);
  // Stops both directions; `why` unset for a clean close.
  void end(std::optional<CloseReason> why);
  void touch() { last_activity_ = runtime::Clock::now(); }
  // One UDP payload to the client in a QUIC DATAGRAM frame (context 0); false when dropped.
  bool datagram_to_client(std::span<const std::uint8_t> udp_payload);
  // Datagrams still queued on the socket, as QUIC DATAGRAM frames; how many went.
  std::int64_t queued_datagrams_to_client(std::uint64_t& bytes);

  runtime::Worker& worker_;
  FlowId flow_;
  runtime::Stream& client_;
  std::function<void()> stop_client_;
  int udp_fd_;
  runtime::BufferRing& buffers_;
  telemetry::CounterRow& counters_;
  ConnectionStats& stats_;
  std::chrono::milliseconds idle_timeout_;
  http::ConnectUdpReader reader_;
  std::uint64_t skipped_capsules_seen_ = 0;
  std::uint64_t skipped_datagrams_seen_ = 0;
  std::optional<CloseReason> reason_;
  bool closing_ = false;
  runtime::Clock::time_point last_activity_;
  runtime::CancelSlot watchdog_slot_;
  HttpDatagrams* datagrams_ = nullptr;
  std::int64_t stream_ = -1;
  ConnectionStats* frame_stats_ = nullptr;
  std::vector<std::uint8_t> datagram_;  // Context ID + payload being sent (reused)
};

}  // namespace ramjet::proxy
