#include "proxy/connect_udp_tunnel.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>

#include "proxy/egress_chain.h"

namespace ramjet::proxy {

using http::ConnectUdpReader;
using telemetry::Counter;

namespace {

// The counters connect_udp_malformed_<reason> follow connect_udp_malformed in CapsuleError
// order.
constexpr Counter counter_of(http::CapsuleError e) {
  return telemetry::counter_after(Counter::connect_udp_malformed, static_cast<std::size_t>(e));
}
static_assert(telemetry::counters_follow(Counter::connect_udp_malformed, "connect_udp_malformed_",
                                         http::kCapsuleErrorNames),
              "telemetry/stats.h: connect_udp_malformed_<reason> counters out of step with "
              "http/capsule.h");

constexpr std::size_t kReadChunk = 64 * 1024;
// Datagrams already queued on the UDP socket go to the client in the write of the first,
// up to this many and about this many bytes (one TLS record's worth is 16 KiB; a plain
// socket takes it in one send).
constexpr std::size_t kMaxBatch = 16;
constexpr std::size_t kMaxBatchBytes = 64 * 1024;
// The buffer of capsules for the client is kept between batches up to this size.
constexpr std::size_t kKeptBuffer = 128 * 1024;
// Every buffer of the worker's ring holds data not yet sent on: look again shortly.
constexpr auto kNoBufferBackoff = std::chrono::milliseconds(1);

bool transient_udp_error(int err) {
  // An ICMP error about an earlier datagram: the target may come back, as any UDP peer.
  return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH;
}

// Appends the DATAGRAM capsule of the next datagram queued on `fd` (context 0) to `out`,
// received straight into place; false when none is queued.
bool append_queued_datagram(int fd, std::string& out, std::uint64_t& bytes) {
  // MSG_TRUNC with MSG_PEEK gives the datagram's real size without taking it.
  const ssize_t size = ::recv(fd, nullptr, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
  if (size < 0) return false;
  const std::size_t len = static_cast<std::size_t>(size);
  const std::size_t before = out.size();
  http::append_capsule_header(out, http::kCapsuleDatagram,
                              http::varint_size(http::kContextIdPayload) + len);
  http::append_varint(out, http::kContextIdPayload);
  const std::size_t at = out.size();
  out.resize(at + len);
  const ssize_t n = ::recv(fd, out.data() + at, len, MSG_DONTWAIT);
  if (n != size) {
    out.resize(before);
    return false;
  }
  bytes += len;
  return true;
}

}  // namespace

ConnectUdpTunnel::ConnectUdpTunnel(runtime::Worker& w, FlowId flow, runtime::Stream& client,
                                   std::function<void()> stop_client, int udp_fd,
                                   runtime::BufferRing& buffers, telemetry::CounterRow& counters,
                                   ConnectionStats& stats, std::chrono::milliseconds idle_timeout)
    : worker_(w),
      flow_(flow),
      client_(client),
      stop_client_(std::move(stop_client)),
      udp_fd_(udp_fd),
      buffers_(buffers),
      counters_(counters),
      stats_(stats),
      idle_timeout_(idle_timeout) {}

Task<void> ConnectUdpTunnel::run(std::string& early) {
  touch();
  counters_.add(Counter::connect_udp_tunnels_active);
  runtime::JoinSet pumps;
  pumps.start(from_client(std::move(early)));
  early.clear();
  pumps.start(to_client());
  runtime::JoinSet timers;
  timers.start(watchdog());
  co_await pumps.wait();
  end(std::nullopt);  // the watchdog too
  co_await timers.wait();
  counters_.add(Counter::connect_udp_tunnels_active, -1);
}

void ConnectUdpTunnel::force_close(CloseReason why) {
  end(why);
}

void ConnectUdpTunnel::end(std::optional<CloseReason> why) {
  if (why && !reason_) reason_ = why;
  if (closing_) return;
  closing_ = true;
  // The client's pending read or write ends; the UDP receive is cancelled.
  stop_client_();
  worker_.cancel_fd(udp_fd_);
  watchdog_slot_.cancel();
}

Task<void> ConnectUdpTunnel::watchdog() {
  while (!closing_) {
    const auto now = runtime::Clock::now();
    const auto deadline = last_activity_ + idle_timeout_;
    if (now >= deadline) {
      counters_.add(Counter::connect_udp_idle_closed);
      end(CloseReason::kIdleTimeout);
      break;
    }
    if (co_await worker_.sleep(deadline - now, &watchdog_slot_) == -ECANCELED) break;
  }
}

void ConnectUdpTunnel::malformed(const ConnectUdpReader::Result& r) {
  counters_.add(Counter::connect_udp_malformed);
  counters_.add(counter_of(r.error));
  spdlog::info(
      "flow {}: connect-udp tunnel closed: malformed capsule stream: {} (capsule at "
      "byte {})",
      flow_, http::to_string(r.error), r.offset);
  end(CloseReason::kDownstreamError);
}

bool ConnectUdpTunnel::consume(std::span<const std::uint8_t> input) {
  touch();
  std::int64_t sent = 0;
  std::int64_t dropped = 0;
  bool ok = true;
  while (ok) {
    ConnectUdpReader::Result r = reader_.next(input);
    input = input.subspan(r.consumed);
    if (r.status == ConnectUdpReader::Status::kNeedMore) break;
    if (r.status == ConnectUdpReader::Status::kError) {
      malformed(r);
      ok = false;
      break;
    }
    if (send_udp_datagram(udp_fd_, r.payload.data(), r.payload.size())) {
      ++sent;
      stats_.bytes_from_client += r.payload.size();
    } else {
      ++dropped;
    }
  }
  if (sent > 0) counters_.add(Counter::connect_udp_datagrams_from_client, sent);
  if (dropped > 0) counters_.add(Counter::connect_udp_dropped_send_error, dropped);
  const auto skipped_capsules = reader_.skipped_capsules() - skipped_capsules_seen_;
  const auto skipped_datagrams = reader_.skipped_datagrams() - skipped_datagrams_seen_;
  if (skipped_capsules > 0)
    counters_.add(Counter::connect_udp_skipped_capsules,
                  static_cast<std::int64_t>(skipped_capsules));
  if (skipped_datagrams > 0)
    counters_.add(Counter::connect_udp_skipped_datagrams,
                  static_cast<std::int64_t>(skipped_datagrams));
  skipped_capsules_seen_ = reader_.skipped_capsules();
  skipped_datagrams_seen_ = reader_.skipped_datagrams();
  return ok;
}

Task<void> ConnectUdpTunnel::from_client(std::string buf) {
  for (;;) {
    if (!buf.empty()) {
      if (!consume(http::as_bytes(buf))) co_return;
      buf.clear();
    }
    if (closing_) co_return;
    const int n = co_await client_.read(buf, kReadChunk, std::chrono::milliseconds(0));
    if (closing_) co_return;
    if (n == 0) {
      // The client's end of the stream: a clean close between capsules (RFC 9297 3.3).
      ConnectUdpReader::Result r = reader_.finish();
      if (r.status == ConnectUdpReader::Status::kError)
        malformed(r);
      else
        end(std::nullopt);
      co_return;
    }
    if (n < 0) {
      end(CloseReason::kDownstreamError);
      co_return;
    }
  }
}

void ConnectUdpTunnel::from_datagram(std::span<const std::uint8_t> payload) {
  if (closing_) return;
  std::uint64_t context = 0;
  const std::size_t n = http::decode_varint(payload, context);
  if (n == 0) {
    counters_.add(Counter::quic_h3_datagrams_dropped_malformed);
    return;
  }
  if (context != http::kContextIdPayload) {
    // RFC 9298 4: no other context is registered; unknown ones are dropped.
    counters_.add(Counter::quic_h3_datagrams_dropped_unknown_context);
    return;
  }
  touch();
  payload = payload.subspan(n);
  if (send_udp_datagram(udp_fd_, payload.data(), payload.size())) {
    counters_.add(Counter::connect_udp_quic_datagrams_from_client);
    stats_.bytes_from_client += payload.size();
    frame_stats_->bytes_from_client += payload.size();
  } else {
    counters_.add(Counter::connect_udp_dropped_send_error);
  }
}

bool ConnectUdpTunnel::datagram_to_client(std::span<const std::uint8_t> udp_payload) {
  datagram_.clear();
  http::append_varint(datagram_, http::kContextIdPayload);
  http::append_bytes(datagram_, udp_payload);
  switch (datagrams_->send_datagram(stream_, datagram_)) {
    case quic::DatagramQueued::kQueued:
      counters_.add(Counter::connect_udp_quic_datagrams_to_client);
      return true;
    case quic::DatagramQueued::kTooLarge:
      counters_.add(Counter::connect_udp_quic_datagrams_dropped_too_large);
      return false;
    case quic::DatagramQueued::kQueueFull:
    // Agreed when the tunnel checked; no longer only when the connection is ending: lost
    // with it, counted with those the connection could not take.
    case quic::DatagramQueued::kNotNegotiated:
      counters_.add(Counter::connect_udp_quic_datagrams_dropped_queue_full);
      return false;
  }
  return false;
}

std::int64_t ConnectUdpTunnel::queued_datagrams_to_client(std::uint64_t& bytes) {
  std::int64_t count = 0;
  std::vector<std::uint8_t> buf;
  while (count < static_cast<std::int64_t>(kMaxBatch)) {
    const ssize_t size = ::recv(udp_fd_, nullptr, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
    if (size < 0) break;
    buf.resize(static_cast<std::size_t>(size));
    const ssize_t n = ::recv(udp_fd_, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n != size) break;
    bytes += buf.size();
    datagram_to_client(buf);
    ++count;
  }
  return count;
}

Task<void> ConnectUdpTunnel::to_client() {
  std::string out;
  while (!closing_) {
    auto op = worker_.recv_select(udp_fd_, buffers_.group(), buffers_.buffer_size());
    const int n = co_await op;
    // A datagram (even an empty one) arrives in a buffer of the worker's ring, which goes
    // back to it whatever happens next.
    const bool in_ring = n >= 0 && (op.op.flags & IORING_CQE_F_BUFFER) != 0;
    const unsigned id = op.op.flags >> IORING_CQE_BUFFER_SHIFT;
    if (closing_) {
      if (in_ring) buffers_.recycle(id);
      break;
    }
    if (n == -ENOBUFS) {
      co_await worker_.sleep(kNoBufferBackoff);
      continue;
    }
    if (n < 0 && transient_udp_error(-n)) {
      counters_.add(Counter::connect_udp_dropped_send_error);
      continue;
    }
    if (n < 0) {
      end(CloseReason::kUpstreamError);
      break;
    }
    std::uint64_t bytes = static_cast<std::uint64_t>(n);
    if (datagrams_ != nullptr && datagrams_->datagrams_enabled()) {
      // HTTP/3 with datagrams: each in its own QUIC DATAGRAM frame, no stream bytes.
      if (in_ring) {
        datagram_to_client({buffers_.buffer(id), static_cast<std::size_t>(n)});
        buffers_.recycle(id);
      } else {
        datagram_to_client({});
      }
      queued_datagrams_to_client(bytes);
      touch();
      stats_.bytes_to_client += bytes;
      frame_stats_->bytes_to_client += bytes;
      continue;
    }
    out.clear();
    std::span<const std::uint8_t> first;
    if (in_ring) first = {buffers_.buffer(id), static_cast<std::size_t>(n)};
    http::append_datagram_capsule(out, http::kContextIdPayload, first);
    if (in_ring) buffers_.recycle(id);
    std::int64_t count = 1;
    while (count < static_cast<std::int64_t>(kMaxBatch) && out.size() < kMaxBatchBytes &&
           append_queued_datagram(udp_fd_, out, bytes))
      ++count;
    touch();
    counters_.add(Counter::connect_udp_datagrams_to_client, count);
    stats_.bytes_to_client += bytes;
    if (!co_await client_.write_all(out)) {
      end(CloseReason::kDownstreamError);
      break;
    }
    if (out.capacity() > kKeptBuffer) std::string().swap(out);
  }
}

}  // namespace ramjet::proxy
