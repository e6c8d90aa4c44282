// HttpSession: one client connection on an `onramp: http` endpoint - an HTTP/1.1
// forward proxy.
//
//  - CONNECT host:port: the egress chain connects, the client gets 200, then the
//    relay moves bytes both ways until either side is done.
//  - Absolute-form requests (GET http://host/path HTTP/1.1): forwarded in origin
//    form, hop-by-hop fields removed, Host taken from the target (RFC 9112 3.2.2),
//    Via added; bodies are streamed both ways chunk by chunk (never buffered whole)
//    and re-framed; the client connection is kept alive and pipelined requests are
//    served in order; the upstream connection is reused for the next request to the
//    same host:port.
//  - https:// targets (and an https:// upstream in reverse-proxy mode) go over TLS; an
//    origin that chooses h2 by ALPN gets the request as a stream on the worker's one
//    HTTP/2 connection to it (http_session_h2.cc, proxy/h2_upstream.h).
//  - Origin-form requests to the proxy itself: 400, unless the endpoint has an upstream
//    (reverse-proxy mode) or is transparent.
//  - Transparent endpoints take intercepted connections (escalated or decapsulated):
//    each request goes to the connection's original destination whatever its Host
//    names (Host goes on as sent, and is the authority hooks see); CONNECT gets 405.
// Every failure the proxy answers itself carries a Proxy-Status field (RFC 9209).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "http/connect_udp.h"
#include "http/h1/parser.h"
#include "proxy/connect_udp_tunnel.h"
#include "proxy/relay.h"
#include "proxy/session.h"
#include "runtime/stream.h"
#include "ramjet/hooks/http.h"
#include "ramjet/task.h"
#include "telemetry/tracing.h"

namespace ramjet::http::auth {
class Authenticator;
}

namespace ramjet::proxy {

class H2Request;
class H2Upstream;

class HttpSession final : public Session {
 public:
  // `client` is the connection's stream (TLS already terminated on a TLS endpoint).
  HttpSession(WorkerContext& wc, const config::Endpoint& ep, telemetry::CounterRow& counters,
              std::unique_ptr<runtime::Stream> client, ConnectionInfo info);

  Task<void> run();
  void force_close(CloseReason why) override;

 private:
  // What the proxy tells a client when it answers a request itself.
  struct ProxyError {
    int status;
    const char* type;  // RFC 9209 error type
    std::string details;
    std::string extra_fields = {};  // complete "Name: value\r\n" lines, e.g. a challenge
  };

  enum class Next : std::uint8_t { kKeepAlive, kClose };

  Task<std::optional<http::h1::HeadResult>> read_request_head();
  // nullopt: authenticated (or no auth configured); else the 407 to send.
  std::optional<ProxyError> authenticate();
  // The parsed request as hooks see it: owned strings, end-to-end fields only.
  HttpRequestHead owned_request(std::optional<HostPort> authority, std::string path) const;
  Task<Next> handle_connect();
  // HttpRequestHook::handle_proxy_connect_request (CONNECT and connect-udp) with its trace
  // (`traced`: the target it names) and audit record; a deny is answered here. True: go on.
  Task<bool> connect_allowed(const HttpRequestHead& req, const std::string& traced);
  // HttpRequestHook::handle_proxy_connect_response on the answer about to open a tunnel.
  void run_connect_response_hook(HttpResponseHead& resp);
  // A request that asks for a connect-udp tunnel (Upgrade: connect-udp) on an endpoint that
  // serves them, well-formed or not; nullopt for every other request.
  std::optional<http::ConnectUdpRequest> connect_udp_request();
  // RFC 9298 over HTTP/1.1: CONNECT's hooks and the UDP egress chain, a 101, then the
  // tunnel (proxy/connect_udp_tunnel.h) until it ends; a malformed request gets 400.
  // `request` is taken by reference (and consumed): no argument holding strings is built in
  // the co_await full-expression (see render_error on GCC 12).
  Task<Next> handle_connect_udp(http::ConnectUdpRequest& request);
  Task<Next> handle_forward();
  // After a 101 to a WebSocket upgrade: relay both ways until either side ends.
  Task<Next> tunnel();
  // Runs the egress decisions for `target`, then takes an idle pooled connection to
  // an allowed address (when `reuse`) or connects. A pooled connection is probed for a
  // close first only when `probe` (a request that could not be sent again).
  // `tls`: speak TLS to it (an https:// upstream).
  Task<bool> ensure_upstream(const HostPort& target, std::optional<ProxyError>& err, bool reuse,
                             bool probe, bool tls = false);
  // http_session_h2.cc: the request to an origin that speaks HTTP/2 (h2_upstream_).
  // nullopt: the origin did not process it, and it has no body: send it again.
  Task<std::optional<Next>> exchange_h2(const HttpRequestHead& req, void* req_ctx,
                                        BodyFilter* request_filter, bool client_http10,
                                        bool& keep_alive);
  Task<std::optional<ProxyError>> forward_response(const HttpRequestHead& req, void* req_ctx,
                                                   bool client_http10, bool& reusable,
                                                   bool& keep_alive);
  // Streams one body from `from_fd` (bytes already read are in `from_buf`) to `to_fd`,
  // through `filter` if any, chunk-framed when `chunk_out`.
  Task<bool> stream_body(runtime::Stream& src, std::string& from_buf, runtime::Stream& dst,
                         const http::h1::Head& head,
                         http::h1::MessageKind kind, std::uint64_t& counter, BodyFilter* filter,
                         bool chunk_out);
  // Validates the chunk framing received so far (reading at least one chunk line);
  // the reason if it is malformed.
  Task<std::optional<std::string_view>> check_chunked_prefix();
  Task<bool> emit(runtime::Stream& dst, std::string_view data, BodyFilter* filter, bool chunked,
                  std::string& scratch);
  Task<bool> finish_body(runtime::Stream& dst, BodyFilter* filter, bool chunked,
                         const std::vector<http::h1::Field>& trailers);
  std::string render_reply(const HttpReply& reply, bool keep_alive) const;
  Task<bool> fill(runtime::Stream& s, std::string& buf);
  Task<bool> send_all(runtime::Stream& s, std::string_view data);
  // One read of at most `limit` body bytes from `from_fd`, sent to `to_fd` straight
  // from the ring buffer; bytes past `limit` go to `rest`. Returns the body bytes
  // moved (0: nothing moved, read again), or -1.
  Task<int> pass_through(runtime::Stream& src, runtime::Stream& dst, std::uint64_t limit,
                         std::string& rest);
  // The whole reply for an error the proxy answers itself (counted and logged here).
  // Callers keep it in a named local while sending: GCC 12 destroys temporaries of a
  // co_await full-expression twice when they hold a std::string.
  std::string render_error(const ProxyError& e);
  void close_upstream();
  void finish();

  const config::Endpoint& ep_;
  std::optional<std::string> alt_svc_;  // added to responses (proxy/http_forwarding.h)
  int client_fd_;
  std::unique_ptr<runtime::Stream> client_;  // the client's socket, or TLS over it
  ConnectionInfo info_;
  std::shared_ptr<void> ctx_;
  ConnectionStats stats_;
  std::optional<CloseReason> close_reason_;
  runtime::Clock::time_point started_;

  std::string in_;  // bytes from the client not yet consumed
  std::string up_;  // bytes from the upstream not yet consumed
  http::h1::Head head_;
  std::size_t head_len_ = 0;  // bytes of in_ that head_ was parsed from
  http::h1::Head response_;
  int upstream_fd_ = -1;
  std::unique_ptr<runtime::Stream> upstream_;  // upstream_fd_, or TLS over it
  std::string upstream_reuse_key_;  // UpstreamLink::reuse_key
  SocketAddress upstream_address_;  // what upstream_fd_ is connected to
  std::shared_ptr<H2Upstream> h2_upstream_;  // the origin speaks HTTP/2: requests go here
  std::unique_ptr<H2Request> h2_request_;    // the request on it now
  std::unique_ptr<Relay> relay_;
  std::unique_ptr<ConnectUdpTunnel> udp_tunnel_;   // after a 101 to connect-udp
  std::optional<http::MasqueTemplate> udp_template_;  // connect_udp.template, parsed once
  std::shared_ptr<const http::auth::Authenticator> auth_;  // kept for the session's life
  bool closing_ = false;
  bool websocket_ = false;  // the current request asks for a WebSocket upgrade
  bool upgraded_ = false;   // ... and the upstream switched protocols
  bool reused_upstream_ = false;  // upstream_fd_ came from the pool
  // Set by handle_forward when the request may be sent again on a new connection; set by
  // forward_response when it should be: a pooled connection that closed without a byte
  // of answer, or answered 408 (it had timed the idle connection out).
  bool may_retry_ = false;
  bool retry_now_ = false;
  // The span of the request or tunnel being served (tracing on), for its hooks and
  // the status sent to the client; null otherwise.
  telemetry::Span* span_ = nullptr;
  std::optional<std::string_view> request_body_error_;  // static parser text
};

}  // namespace ramjet::proxy
