#include "proxy/h3_session.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "http/h3/datagram.h"
#include "proxy/connect_udp_tunnel.h"
#include "proxy/h2_upstream.h"  // an Exchange holds an H2Request

namespace ramjet::proxy {

using telemetry::Counter;

namespace {
// RFC 9114 8.1.
constexpr std::uint64_t kH3NoError = 0x100;
constexpr std::uint64_t kH3InternalError = 0x102;
constexpr std::uint64_t kH3RequestRejected = 0x10b;
constexpr std::uint64_t kH3RequestCancelled = 0x10c;
constexpr std::uint64_t kH3MessageError = 0x10e;
constexpr std::uint64_t kH3ConnectError = 0x10f;
}  // namespace

H3Session::H3Session(WorkerContext& wc, const config::Endpoint& ep, telemetry::CounterRow& counters,
                     ConnectionInfo info, Carrier& carrier, const http::h3::Limits& limits)
    : StreamSession(wc, ep, counters, std::move(info), *this, HttpVersion::kHttp3,
                    Counter::quic_h3_requests),
      carrier_(carrier),
      h3_(*this, limits) {}

H3Session::~H3Session() = default;

void H3Session::handshake_completed(TlsInfo tls) {
  if (handshake_done_ || gone_set_) return;
  handshake_done_ = true;
  info_.tls = std::move(tls);
  ready_.set();
}

void H3Session::connection_gone(CloseReason why) {
  if (gone_set_) return;
  gone_set_ = true;
  if (!close_reason_ && why != CloseReason::kCompleted) close_reason_ = why;
  if (!admitted_) {
    // Requests that came before IngressHook allowed the connection never start.
    exchanges_.clear();
    started_streams_.clear();
    to_wake_.clear();
  }
  // No byte moves any more: the streams still running cannot finish normally.
  cancel_all_streams();
  ready_.set();
  gone_.set();
}

void H3Session::force_close(CloseReason why) {
  if (!close_reason_) close_reason_ = why;
  carrier_.close(kH3NoError, to_string(why));
  kick();
}

void H3Session::after_input() {
  if (admitted_) deliver_wakeups();
}

bool H3Session::drain() {
  if (!draining_) {
    draining_ = true;
    h3_.goaway();
    kick();
  }
  // Done once every response is complete and acknowledged: closing sooner could lose
  // bytes QUIC would still have to send again.
  return exchanges_.empty() && h3_.open_streams() == 0;
}

// Two coroutines rather than one: written as one (admit() inline), GCC 12 built a run()
// whose body never ran past its first suspension - no request of any connection started.
Task<void> H3Session::run() {
  co_await ready_.wait();
  if (handshake_done_ && !gone_set_) co_await admit();
  co_await gone_.wait();
  co_await streams_.wait();
  set_state(SessionState::kClosing);
  close_epilogue(-1, info_, stats_, close_reason_, started_, ctx_.get());
}

Task<void> H3Session::admit() {
  ctx_ = wc_.hooks.make_connection_context();
  set_state(SessionState::kHooks);
  audit_.kind = telemetry::FlowKind::kHttp;  // CONNECT streams say otherwise
  const bool blocked = co_await ingress_blocks(info_, ctx_.get());
  if (blocked) {
    close_reason_ = CloseReason::kBlockedIngress;
    carrier_.close(kH3RequestRejected, "blocked");
    kick();
  } else if (!gone_set_) {
    set_state(SessionState::kRelaying);
    admitted_ = true;
    // The requests that came while the hook ran start now.
    deliver_wakeups();
    kick();
  }
}

void H3Session::on_request(std::int64_t stream, http::h3::RequestHead head) {
  if (closing_) return;
  stream_opened(stream, std::move(head));
}

void H3Session::on_data(std::int64_t stream, std::string_view data) {
  // An exchange that is over: the bytes go nowhere.
  if (!stream_data(stream, data)) carrier_.consumed(stream, data.size());
}

void H3Session::on_end_stream(std::int64_t stream) { stream_ended(stream); }

void H3Session::on_datagram(std::int64_t stream, std::span<const std::uint8_t> payload) {
  auto it = exchanges_.find(stream);
  // Only a connect-udp tunnel that is established (its 200 went out) takes datagrams;
  // RFC 9297 2.1 allows dropping those of any other stream.
  if (!admitted_ || it == exchanges_.end() || it->second->udp_tunnel == nullptr ||
      it->second->closed) {
    counters_.add(Counter::quic_h3_datagrams_dropped_unknown_stream);
    return;
  }
  it->second->udp_tunnel->from_datagram(payload);
}

void H3Session::on_malformed_datagram() {
  counters_.add(Counter::quic_h3_datagrams_dropped_malformed);
}

bool H3Session::datagrams_enabled() const {
  // RFC 9297 2.1.1: only with a peer that sent SETTINGS_H3_DATAGRAM = 1, and only when
  // the QUIC connection negotiated DATAGRAM frames (RFC 9221 3) - and we offered both.
  return h3_.sent_h3_datagram() && h3_.peer_h3_datagram() && carrier_.datagrams_negotiated();
}

quic::DatagramQueued H3Session::send_datagram(std::int64_t stream,
                                              std::span<const std::uint8_t> payload) {
  const quic::DatagramQueued r = carrier_.send_datagram(http::h3::encode_datagram(stream, payload));
  if (r == quic::DatagramQueued::kQueued) kick();
  return r;
}

void H3Session::on_stream_close(std::int64_t stream, std::uint64_t app_error_code) {
  stream_closed(stream,
                app_error_code == kH3NoError ? 0 : static_cast<std::uint32_t>(app_error_code));
}

bool H3Session::submit_response(std::int64_t stream, int status,
                                const std::vector<http::h2::Field>& fields, bool end_stream) {
  return h3_.submit_response(stream, status, fields, end_stream);
}

void H3Session::submit_interim(std::int64_t stream, int status,
                               const std::vector<http::h2::Field>& fields) {
  h3_.submit_interim(stream, status, fields);
}

void H3Session::send_data(std::int64_t stream, std::string_view data) {
  h3_.send_data(stream, data);
}

void H3Session::end_data(std::int64_t stream, std::vector<http::h2::Field> trailers) {
  h3_.end_data(stream, std::move(trailers));
}

void H3Session::reset(std::int64_t stream, StreamError why) {
  std::uint64_t code = kH3InternalError;
  switch (why) {
    case StreamError::kInternal:
      code = kH3InternalError;
      break;
    case StreamError::kConnect:
      code = kH3ConnectError;
      break;
    case StreamError::kCancel:
      code = kH3RequestCancelled;
      break;
    case StreamError::kProtocol:
      code = kH3MessageError;
      break;
  }
  h3_.shutdown_stream(stream);
  carrier_.reset_stream(stream, code);
}

}  // namespace ramjet::proxy
