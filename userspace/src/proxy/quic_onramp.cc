#include "proxy/quic_onramp.h"

#include <gnutls/crypto.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "proxy/h3_transport.h"
#include "ramjet/hooks/connection.h"
#include "quic/packets.h"

namespace ramjet::proxy {

// One QUIC connection: ngtcp2 (core), HTTP/3 on its streams (transport) and the session
// that serves the requests. It carries the session's bytes (H3Session::Carrier) and sends
// what the session queued at the end of the loop's turn (Drainable).
struct QuicOnramp::Connection final : H3Session::Carrier, runtime::Drainable {
  explicit Connection(QuicOnramp& o) : onramp(o) {}
  ~Connection() { onramp.wc_.worker.forget_drained(this); }

  void wake() override {
    if (!ended) onramp.wc_.worker.when_drained(this);
  }
  void drained() override { onramp.flush(*this); }
  void consumed(std::int64_t stream, std::size_t n) override {
    if (!ended) core->consumed(stream, n);
  }
  void reset_stream(std::int64_t stream, std::uint64_t code) override {
    if (!ended) core->shutdown_stream(stream, code);
  }
  void close(std::uint64_t code, std::string_view reason) override {
    if (!ended) core->close(code, reason, quic::now_ns());
  }
  bool datagrams_negotiated() const override { return !ended && core->datagrams_negotiated(); }
  quic::DatagramQueued send_datagram(std::span<const std::uint8_t> payload) override {
    return ended ? quic::DatagramQueued::kNotNegotiated : core->queue_datagram(payload);
  }

  QuicOnramp& onramp;
  std::unique_ptr<quic::ServerConnection> core;
  std::unique_ptr<H3Session> session;
  // After core and session: destroyed first, it detaches from core while core exists.
  std::unique_ptr<H3Transport> transport;
  std::string original_dcid;
  runtime::CancelSlot timer;
  bool sleeping = false;
  quic::Timestamp armed_for = UINT64_MAX;
  bool handshake_reported = false;
  bool ended = false;
};

namespace {

using telemetry::Counter;

// The DATAGRAM frames we take (RFC 9221 3), offered only where connect-udp is served: an
// HTTP datagram of up to 64 KiB (a UDP payload of a jumbo path) fits.
constexpr std::uint64_t kMaxDatagramFrameSize = 65535;

// quic::DropReason -> its counter (the stat list keeps them in the same order).
Counter drop_counter(quic::DropReason r) {
  switch (r) {
    case quic::DropReason::kMalformed:
      return Counter::quic_dropped_malformed;
    case quic::DropReason::kShortInitial:
      return Counter::quic_dropped_short_initial;
    case quic::DropReason::kNotInitial:
      return Counter::quic_dropped_not_initial;
    case quic::DropReason::kTooSmallForReset:
      return Counter::quic_dropped_too_small_for_reset;
    case quic::DropReason::kVersionNegotiation:
      return Counter::quic_dropped_version_negotiation;
  }
  return Counter::quic_dropped_malformed;
}

std::string key_of(std::span<const std::uint8_t> id) {
  return std::string(reinterpret_cast<const char*>(id.data()), id.size());
}

}  // namespace

QuicOnramp::QuicOnramp(WorkerContext& wc, std::size_t endpoint_index, int fd,
                       std::shared_ptr<const quic::ServerCredentials> credentials,
                       const quic::ServerIdentity& identity,
                       std::atomic<std::uint32_t>* open_connections, NextFlowId next_id)
    : wc_(wc),
      ep_(wc.config.endpoints[endpoint_index]),
      counters_(wc.stats.endpoint(endpoint_index)),
      fd_(fd),
      credentials_(std::move(credentials)),
      identity_(identity),
      open_connections_(open_connections),
      next_id_(next_id) {
  local_len_ = sizeof local_;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local_), &local_len_) != 0) local_len_ = 0;
}

QuicOnramp::~QuicOnramp() = default;

void QuicOnramp::drain() {
  draining_ = true;
  std::vector<Connection*> all;
  for (auto& [core, c] : by_core_) all.push_back(c);
  for (Connection* c : all) flush(*c);  // flush() sends the GOAWAY, or closes an idle one
}

void QuicOnramp::stop() {
  stopping_ = true;
  wc_.worker.cancel_fd(fd_);
}

Task<void> QuicOnramp::run() {
  std::vector<std::uint8_t> buf(kMaxDatagram);
  while (!stopping_) {
    sockaddr_storage from{};
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    const int n = co_await wc_.worker.recvmsg(fd_, &msg);
    if (n < 0) {
      if (stopping_ || n == -ECANCELED) break;
      continue;
    }
    if (msg.msg_flags & MSG_TRUNC) continue;
    on_datagram(from, msg.msg_namelen, {buf.data(), static_cast<std::size_t>(n)});
  }
  // Connections end with the socket: their peers see the idle timeout (or a stateless
  // reset from the next daemon).
  std::vector<Connection*> left;
  for (auto& [core, c] : by_core_) left.push_back(c);
  for (Connection* c : left) end(*c, CloseReason::kShutdown);
  if (live_ > 0) {
    all_closed_ = std::make_unique<runtime::Event>();
    co_await all_closed_->wait();
  }
  ::close(fd_);
}

void QuicOnramp::on_datagram(const sockaddr_storage& peer, socklen_t peer_len,
                             std::span<const std::uint8_t> data) {
  Connection* found = nullptr;
  quic::Decision d = quic::decide(data, datapath::kQuicCidLength,
                                  [&](std::span<const std::uint8_t> id) {
                                    auto it = by_id_.find(key_of(id));
                                    if (it != by_id_.end()) found = it->second;
                                    return found != nullptr;
                                  });
  const quic::SocketPath path{reinterpret_cast<const sockaddr*>(&local_), local_len_,
                              reinterpret_cast<const sockaddr*>(&peer), peer_len};
  const quic::Timestamp now = quic::now_ns();
  switch (d.action) {
    case quic::Action::kToConnection: {
      if (found->core->receive(data, path, 0, now) == quic::ServerConnection::Status::kDrop) {
        // The client closed (CONNECTION_CLOSE without an error), or the connection failed.
        end(*found, found->core->peer_closed() ? CloseReason::kCompleted
                                               : CloseReason::kDownstreamError);
        return;
      }
      after_input(*found);
      flush(*found);
      return;
    }
    case quic::Action::kAccept: {
      if (stopping_ || wc_.draining) return;
      const quic::RetryCheck token = quic::check_retry_token(data, identity_, path, now);
      if (token.result == quic::RetryCheck::Result::kInvalid) {
        counters_.add(Counter::quic_invalid_tokens);
        return;
      }
      if (token.result == quic::RetryCheck::Result::kNoToken && retry_first(now)) {
        // Nothing is kept: the client comes back with the token, or not at all.
        std::uint8_t out[1500];
        if (std::size_t n = quic::write_retry(out, data, identity_, path, now)) {
          send(peer, peer_len, {out, n});
          counters_.add(Counter::quic_retries);
        }
        return;
      }
      if (open_connections_->fetch_add(1, std::memory_order_relaxed) >=
          ep_.quic->max_connections) {
        open_connections_->fetch_sub(1, std::memory_order_relaxed);
        counters_.add(Counter::quic_connections_refused);
        return;
      }
      auto c = std::make_unique<Connection>(*this);
      Connection* raw = c.get();
      std::string error;
      // The connection reports its first id from inside accept(): it must be findable.
      pending_accept_ = raw;
      // HTTP/3 datagrams (RFC 9297) are offered with connect-udp: the DATAGRAM frame
      // transport parameter here, SETTINGS_H3_DATAGRAM in the H3Session's settings.
      const bool datagrams = ep_.connect_udp.enabled;
      c->core =
          quic::ServerConnection::accept(credentials_, identity_, *ep_.quic, this, data, path, now,
                                         error, &token, datagrams ? kMaxDatagramFrameSize : 0);
      pending_accept_ = nullptr;
      if (!c->core) {
        for (auto it = by_id_.begin(); it != by_id_.end();)
          it = it->second == raw ? by_id_.erase(it) : std::next(it);
        open_connections_->fetch_sub(1, std::memory_order_relaxed);
        counters_.add(Counter::quic_connections_refused);
        spdlog::debug("endpoint {}: QUIC connection refused: {}", ep_.name, error);
        return;
      }
      counters_.add(Counter::quic_connections_accepted);
      ConnectionInfo info;
      info.id = next_id_();
      info.endpoint = ep_.name;
      info.transport = ConnectionInfo::Transport::kUdp;
      info.worker = wc_.worker.index();
      info.endpoint_app_settings = ep_.app.get();
      if (auto a = SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&peer), peer_len))
        info.client = *a;
      if (auto a = SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&local_),
                                                local_len_))
        info.local = *a;
      c->session = std::make_unique<H3Session>(
          wc_, ep_, counters_, std::move(info), *c,
          http::h3::Limits{ep_.http.max_head, ep_.http.max_fields, datagrams});
      c->transport = std::make_unique<H3Transport>(*c->core, c->session->h3());
      c->original_dcid = key_of(c->core->original_dcid());
      by_id_[c->original_dcid] = raw;
      by_core_[c->core.get()] = raw;
      ++live_;
      wc_.worker.spawn(drive(std::move(c)));
      flush(*raw);
      return;
    }
    case quic::Action::kVersionNegotiation: {
      std::uint8_t out[1500];
      std::uint8_t random = 0;
      gnutls_rnd(GNUTLS_RND_NONCE, &random, 1);
      if (std::size_t n = quic::write_version_negotiation(out, d.header, random)) {
        send(peer, peer_len, {out, n});
        counters_.add(Counter::quic_version_negotiations);
      }
      return;
    }
    case quic::Action::kStatelessReset: {
      std::array<std::uint8_t, quic::kStatelessResetTokenLength> token;
      if (!quic::reset_token(identity_, d.header.dcid(), token)) return;
      std::uint8_t random[64];
      gnutls_rnd(GNUTLS_RND_NONCE, random, sizeof random);
      std::uint8_t out[64];
      if (std::size_t n = quic::write_stateless_reset(out, data.size(), token, random)) {
        send(peer, peer_len, {out, n});
        counters_.add(Counter::quic_stateless_resets);
      }
      return;
    }
    case quic::Action::kDrop:
      counters_.add(drop_counter(d.drop));
      spdlog::trace("endpoint {}: QUIC datagram dropped: {}", ep_.name, quic::to_string(d.drop));
      return;
  }
}

void QuicOnramp::on_connection_id(quic::ServerConnection& core, std::span<const std::uint8_t> cid,
                                  bool added) {
  if (!added) {
    by_id_.erase(key_of(cid));
    return;
  }
  auto it = by_core_.find(&core);
  Connection* c = it != by_core_.end() ? it->second : pending_accept_;
  if (c != nullptr) by_id_[key_of(cid)] = c;
}

void QuicOnramp::send(const sockaddr_storage& to, socklen_t to_len,
                      std::span<const std::uint8_t> d) {
  // Non-blocking: what the socket buffer cannot take is lost, and QUIC retransmits.
  ::sendto(fd_, d.data(), d.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
           reinterpret_cast<const sockaddr*>(&to), to_len);
}

bool QuicOnramp::retry_first(quic::Timestamp now) {
  switch (ep_.quic->retry) {
    case config::QuicRetry::kAlways:
      return true;
    case config::QuicRetry::kNever:
      return false;
    case config::QuicRetry::kAuto:
      break;
  }
  // New connections in the current one-second window of this worker.
  if (now - window_start_ >= 1'000'000'000) {
    window_start_ = now;
    window_connections_ = 0;
  }
  return ++window_connections_ > ep_.quic->retry_rate;
}

void QuicOnramp::after_input(Connection& c) {
  if (!c.handshake_reported && c.core->handshake_completed()) {
    c.handshake_reported = true;
    TlsInfo tls;
    tls.sni = c.core->server_name();
    tls.alpn = c.core->alpn();
    tls.version = "TLSv1.3";
    tls.cipher = c.core->cipher_suite();
    c.session->handshake_completed(std::move(tls));
  }
  c.session->after_input();
}

void QuicOnramp::flush(Connection& c) {
  if (c.ended) return;
  // Draining: GOAWAY, then the close once no request is left.
  if (draining_ && c.session->drain()) c.core->close(0x100 /* H3_NO_ERROR */, "", quic::now_ns());
  if (c.transport->failed()) c.core->close(0x102 /* H3_INTERNAL_ERROR */, "", quic::now_ns());
  std::uint8_t out[1500];
  const quic::Timestamp now = quic::now_ns();
  for (int i = 0; i < 64; ++i) {
    sockaddr_storage to{};
    socklen_t to_len = 0;
    const std::size_t n = c.core->write(out, to, to_len, now);
    if (n == 0) break;
    send(to, to_len, {out, n});
  }
  c.session->after_output();
  if (c.core->closing()) {
    end(c);
    return;
  }
  // A sooner expiry than the one the timer sleeps for: wake it to sleep again.
  if (c.sleeping && c.core->expiry() < c.armed_for) c.timer.cancel();
}

void QuicOnramp::end(Connection& c, CloseReason why) {
  if (c.ended) return;
  c.ended = true;
  for (const auto& id : c.core->ids()) by_id_.erase(key_of(id));
  by_id_.erase(c.original_dcid);
  if (c.sleeping) c.timer.cancel();
  c.session->connection_gone(why);
}

Task<void> QuicOnramp::drive(std::unique_ptr<Connection> c) {
  runtime::JoinSet session;
  session.start(c->session->run());
  while (!c->ended) {
    const quic::Timestamp now = quic::now_ns();
    const quic::Timestamp at = c->core->expiry();
    if (at <= now) {
      if (c->core->on_expiry(now) == quic::ServerConnection::Status::kDrop) {
        // The idle timeout, or the end of a close's draining period.
        end(*c, c->core->closing() ? CloseReason::kCompleted : CloseReason::kIdleTimeout);
        break;
      }
      flush(*c);
      continue;
    }
    // Never more than a second at once, so a missed wake-up costs little.
    const std::uint64_t wait = std::min<std::uint64_t>(at - now, 1'000'000'000);
    c->timer = runtime::CancelSlot{};
    c->armed_for = at;
    c->sleeping = true;
    co_await wc_.worker.sleep(std::chrono::nanoseconds(wait), &c->timer);
    c->sleeping = false;
  }
  co_await session.wait();  // its streams end first: they use the connection
  by_core_.erase(c->core.get());
  c.reset();
  open_connections_->fetch_sub(1, std::memory_order_relaxed);
  if (--live_ == 0 && all_closed_) all_closed_->set();
}

}  // namespace ramjet::proxy
