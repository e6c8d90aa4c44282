// StreamSession's connect-udp streams (proxy/stream_session.h): RFC 9298 over HTTP/2 and
// HTTP/3, an extended CONNECT (RFC 8441, RFC 9220) with :protocol connect-udp. The request gets the same hooks, egress
// chain and answers as on HTTP/1.1 (http_session.cc); once the 200 is out, the stream is
// the client side of a ConnectUdpTunnel, as the connection is on HTTP/1.1.
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "http/connect_udp.h"
#include "proxy/connect_udp_tunnel.h"
#include "proxy/egress_chain.h"
#include "proxy/http_datagrams.h"
#include "proxy/http_forwarding.h"
#include "proxy/stream_session.h"

namespace ramjet::proxy {

using http::h2::Field;
using telemetry::Counter;

// The request body (DATA) of an exchange as what it reads, its response body as what it
// writes. Read bytes are given back to the client's window as they are taken, and writes
// wait while the client's window keeps the stream's queue full: the connection's flow
// control is the backpressure both ways. Reads have no timeout (the tunnel keeps its own).
class StreamSession::ExchangeStream final : public runtime::Stream {
 public:
  ExchangeStream(StreamSession& session, Exchange& x) : Stream(-1), session_(session), x_(x) {}

  bool plain() const override { return false; }

  Task<int> read(std::string& out, std::size_t max, std::chrono::milliseconds) override {
    while (x_.body.empty() && !x_.ended && !x_.closed && !stopped_) co_await x_.input.wait();
    if (stopped_) co_return -ECANCELED;
    if (!x_.body.empty()) {
      const std::size_t n = std::min(max, x_.body.size());
      out.append(x_.body, 0, n);
      x_.body.erase(0, n);
      session_.conn_.consume(x_.id, n);
      session_.kick();  // a WINDOW_UPDATE
      co_return static_cast<int>(n);
    }
    // END_STREAM, or a reset (or the connection's end) without it.
    co_return x_.ended ? 0 : -ECONNRESET;
  }

  Task<bool> write_all(std::string_view data) override {
    if (!x_.closed && !stopped_) session_.stats_.bytes_to_client += data.size();
    co_return co_await session_.queue_to_client(x_, data, stopped_);
  }

  Task<void> shutdown_write() override {
    if (!x_.closed && !stopped_) {
      session_.conn_.end_data(x_.id);
      session_.kick();
    }
    co_return;
  }

  // Ends the pending read and write (from outside them: they resume later, not inside).
  void stop() {
    stopped_ = true;
    x_.input.notify_later(session_.wc_.worker);
    x_.window.notify_later(session_.wc_.worker);
  }

 private:
  StreamSession& session_;
  Exchange& x_;
  bool stopped_ = false;
};

const http::MasqueTemplate* StreamSession::udp_template() {
  if (!udp_template_) {
    // Checked when the config was loaded (http::check_connect_udp_templates).
    http::MasqueTemplateResult parsed = http::parse_masque_template(ep_.connect_udp.uri_template);
    if (!parsed.value) return nullptr;
    udp_template_ = std::move(parsed.value);
  }
  return &*udp_template_;
}

Task<void> StreamSession::connect_udp(Exchange& x, HttpRequestHead req) {
  // One audit record per connection: it names the first tunnel the connection opened.
  audit_.kind = telemetry::FlowKind::kConnectUdp;
  const http::MasqueTemplate* tmpl = udp_template();
  if (tmpl == nullptr) {
    answer(x, {500, "proxy_internal_error", "the endpoint's connect-udp template is invalid"});
    co_return;
  }
  http::ConnectUdpRequest request =
      http::classify_connect_udp_request(x.head, *tmpl, info_.tls.has_value());
  if (request.verdict != http::ConnectUdpVerdict::kTunnel) {
    if (wc_.audit_log != nullptr && audit_.target.empty()) audit_.target = x.head.path;
    answer(x, {400, "http_request_error", std::move(request.reason)});
    co_return;
  }
  const HostPort target{std::move(request.target.target_host), request.target.target_port};
  if (wc_.audit_log != nullptr && audit_.target.empty()) audit_.target = target.to_string();
  // Hooks see the request as they see it on HTTP/1.1: a GET upgraded to connect-udp, with
  // the UDP target as the authority.
  req.method = "GET";
  req.authority = target;
  req.path = request.path;
  req.target = std::move(request.path);
  req.headers.add("Upgrade", std::string(http::kConnectUdpUpgradeToken));
  if (!co_await connect_allowed(x, req, "udp " + target.to_string())) co_return;

  EgressChain chain(wc_, counters_, info_, ctx_.get(), ep_, audited_decisions());
  auto opened = co_await chain.connect_udp(target);
  if (auto* e = std::get_if<EgressError>(&opened)) {
    answer(x, {status_for(*e), e->proxy_status(), e->message});
    co_return;
  }
  const int udp_fd = std::get<UdpUpstream>(opened).fd;
  stats_.upstream = std::get<UdpUpstream>(opened).address.to_string();

  // The status is 200 whatever the hook made it, as it is 101 on HTTP/1.1.
  const HttpResponseHead resp = connect_response();
  std::vector<Field> fields;
  for (const auto& f : resp.headers.fields())
    if (!HttpHeaders::iequals(f.name, "capsule-protocol") &&
        !HttpHeaders::iequals(f.name, "content-length"))
      fields.push_back({f.name, f.value});
  fields.push_back({"capsule-protocol", "?1"});  // RFC 9298 3.5
  if (closing_ || x.closed || !submit_head(x, 200, fields, false)) {
    ::close(udp_fd);
    co_return;
  }
  kick();
  counters_.add(Counter::connect_udp_tunnels);

  ExchangeStream stream(*this, x);
  // The session counts the stream's bytes as they pass (capsules, as for any stream); the
  // tunnel's own payload count would count them twice.
  ConnectionStats payload_bytes;
  ConnectUdpTunnel tunnel(
      wc_.worker, info_.id, stream, [&stream] { stream.stop(); }, udp_fd, *wc_.buffers, counters_,
      payload_bytes, ep_.connect_udp.idle_timeout);
  if (HttpDatagrams* datagrams = http_datagrams()) {
    // HTTP/3: datagrams in QUIC DATAGRAM frames too, from now on (RFC 9297 2.1).
    tunnel.use_datagrams(datagrams, x.id, stats_);
    x.udp_tunnel = &tunnel;
  }
  std::string early;  // what came before the 200 is still in x.body: the stream reads it
  co_await tunnel.run(early);
  x.udp_tunnel = nullptr;
  ::close(udp_fd);

  if (x.closed) co_return;  // reset by the client, or the connection ended
  const std::optional<CloseReason> why = tunnel.reason();
  if (!why) {
    // The client ended its side between capsules: end ours.
    conn_.end_data(x.id);
  } else {
    // RFC 9297 3.3: a malformed capsule stream is a malformed message; a target gone is a
    // CONNECT_ERROR (RFC 9113 8.5); the idle timeout cancels the stream. (A kill or a drain
    // deadline ends the whole connection: x.closed above.)
    const StreamError code = *why == CloseReason::kDownstreamError ? StreamError::kProtocol
                             : *why == CloseReason::kUpstreamError ? StreamError::kConnect
                                                                   : StreamError::kCancel;
    conn_.reset(x.id, code);
  }
  x.response_done = true;
  kick();
}

}  // namespace ramjet::proxy
