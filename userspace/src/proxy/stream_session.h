// StreamSession: one client connection whose requests arrive as streams - HTTP/2
// (H2Session: h2 chosen by ALPN on TLS, or h2c by prior knowledge) or HTTP/3 (H3Session,
// on a QUIC connection) - on an `onramp: http` endpoint; the HTTP/1.1 forward proxy's twin.
//
// The subclass owns the connection and its protocol core: it records the core's events
// with stream_opened/stream_data/stream_ended/stream_closed, calls deliver_wakeups()
// outside the core, and gives the streams a ClientStreams to answer through and a kick()
// that gets what they queued onto the wire. Each request stream runs its own coroutine
// (stream_exchange.cc) with the same hooks, heads and egress chain as HttpSession:
//  - requests with :scheme http or https and an :authority are forwarded (https over
//    TLS); in reverse-proxy mode (the endpoint has `upstream:`) every request goes to
//    that origin. HTTP/1.1 upstreams are pooled; an origin that chooses h2 gets the
//    request as a stream on the worker's one HTTP/2 connection to it
//    (proxy/h2_upstream.h). Bodies stream both ways through the hooks' body filters;
//  - CONNECT (RFC 9113 8.5, RFC 9114 4.4) opens one tunnel per stream; the client
//    connection's flow control is the tunnel's backpressure in both directions;
//  - extended CONNECT with :protocol websocket (RFC 8441) becomes an HTTP/1.1
//    WebSocket upgrade to the upstream, then a tunnel;
//  - extended CONNECT with :protocol connect-udp (RFC 9298, where connect_udp is enabled)
//    opens a UDP tunnel (proxy/connect_udp_tunnel.h) with the stream as its client side
//    (stream_connect_udp.cc).
// Errors the proxy answers itself carry Proxy-Status (RFC 9209).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "http/connect_udp.h"
#include "http/h1/parser.h"
#include "http/h2/message.h"
#include "http/masque_template.h"
#include "proxy/client_streams.h"
#include "proxy/session.h"
#include "ramjet/hooks/http.h"
#include "ramjet/task.h"
#include "runtime/stream.h"
#include "runtime/wakeup.h"
#include "runtime/worker.h"
#include "telemetry/tracing.h"

namespace ramjet::http::auth {
class Authenticator;
}

namespace ramjet::proxy {

class ConnectUdpTunnel;
class H2Request;
class H2Upstream;
class HttpDatagrams;
using runtime::Wakeup;

class StreamSession : public Session {
 public:
  ~StreamSession() override;

 protected:
  // `conn` answers the streams (the subclass, usually); `version` is what hooks see in
  // HttpRequestHead::version; `stream_counter` counts each request stream.
  StreamSession(WorkerContext& wc, const config::Endpoint& ep, telemetry::CounterRow& counters,
                ConnectionInfo info, ClientStreams& conn, HttpVersion version,
                telemetry::Counter stream_counter);

  // One request stream and its coroutine's state.
  struct Exchange {
    std::int64_t id = 0;
    http::h2::RequestHead head;
    std::vector<http::h2::Field> trailers;  // request trailers, for a chunked upstream body
    std::string body;                       // request body bytes received, not yet passed on
    bool ended = false;                     // the client's END_STREAM arrived
    bool closed = false;                    // the stream is gone
    std::uint32_t reset = 0;                // its error code, when it was reset
    std::optional<telemetry::Span> span;    // tracing on: the request's span
    // An HTTP/1.1 upstream connection of its own (a tunnel's, or a request's) ...
    int upstream_fd = -1;
    std::unique_ptr<runtime::Stream> upstream;  // TLS over upstream_fd, or it as it is
    SocketAddress upstream_address;
    std::string upstream_reuse_key;
    bool upstream_reused = false;  // an idle pooled connection
    // ... or a stream on the worker's HTTP/2 connection to the origin.
    std::shared_ptr<H2Upstream> h2_origin;  // chosen, no stream opened yet
    std::unique_ptr<H2Request> h2;
    bool response_done = false;                  // the response (or a reset) is submitted in full
    runtime::Clock::time_point client_active{};  // client bytes last went upstream
    Wakeup input;                                // body, END_STREAM or close arrived
    Wakeup window;                               // response bytes left the buffer, or close
    // An established connect-udp tunnel (its 200 is out) while it runs: HTTP/3 datagrams
    // of the stream go to it.
    ConnectUdpTunnel* udp_tunnel = nullptr;
  };
  // An exchange's stream as a runtime::Stream (stream_connect_udp.cc).
  class ExchangeStream;
  struct ProxyError {
    int status;
    const char* type;  // RFC 9209 error type
    std::string details;
    std::vector<http::h2::Field> extra = {};
  };


  // The core's events, recorded; deliver_wakeups() acts on them outside the core.
  void stream_opened(std::int64_t stream, http::h2::RequestHead head);
  // false: the stream has no exchange (it is over): the caller gives the bytes back.
  bool stream_data(std::int64_t stream, std::string_view data);
  void stream_trailers(std::int64_t stream, std::vector<http::h2::Field> fields);
  void stream_ended(std::int64_t stream);
  // `reset` is the client's error code (0: a normal close).
  void stream_closed(std::int64_t stream, std::uint32_t reset);
  // Starts the coroutines of new streams and wakes those events were recorded for.
  void deliver_wakeups();
  // No more client bytes will come: every stream still running is cancelled.
  void cancel_all_streams();
  // Gets what the streams queued onto the wire, soon (at the end of the loop's turn).
  virtual void kick() = 0;
  // HTTP datagrams outside the streams (HTTP/3's QUIC DATAGRAM frames), if the version has
  // them: connect-udp tunnels use them once datagrams_enabled().
  virtual HttpDatagrams* http_datagrams() { return nullptr; }
  // Wakes the streams waiting for the client's window: queued bytes left.
  void notify_windows();

  // stream_exchange.cc: one stream from request head to its end.
  Task<void> serve(Exchange& x);
  Task<void> forward(Exchange& x, HttpRequestHead req, bool origin_tls);
  // To an HTTP/1.1 upstream (x.upstream). True when the request is to go again on a new
  // connection: only with `may_retry` (no body, on a pooled connection) and nothing of
  // an answer came.
  Task<bool> forward_h1(Exchange& x, const HttpRequestHead& req, void* req_ctx,
                        BodyFilter* request_filter, bool origin_tls, bool may_retry);
  // To an origin that speaks HTTP/2 (x.h2_origin); a refused request without a body is
  // sent again, on any connection taking streams.
  Task<void> forward_h2(Exchange& x, const HttpRequestHead& req, void* req_ctx,
                        BodyFilter* request_filter);
  // HttpRequestHook::handle_request / handle_response with their traces; false when a
  // hook answered (the answer is sent), else `filter` is the hook's body filter, if any.
  Task<bool> request_hook(Exchange& x, HttpRequestHead& req, void* req_ctx,
                          std::unique_ptr<BodyFilter>& filter);
  Task<bool> response_hook(Exchange& x, const HttpRequestHead& req, HttpResponseHead& resp,
                           void* req_ctx, std::unique_ptr<BodyFilter>& filter);
  Task<void> connect(Exchange& x, HttpRequestHead req);
  // HttpRequestHook::handle_proxy_connect_request, traced (as `traced` when allowed) and
  // audited; false when denied (the denial is answered).
  Task<bool> connect_allowed(Exchange& x, const HttpRequestHead& req, const std::string& traced);
  // HttpRequestHook::handle_proxy_connect_response on a tunnel's 200, traced.
  HttpResponseHead connect_response();
  // stream_connect_udp.cc: an extended CONNECT with :protocol connect-udp, to the tunnel's end.
  Task<void> connect_udp(Exchange& x, HttpRequestHead req);
  // The endpoint's connect-udp template (parsed on first use; checked at config load).
  const http::MasqueTemplate* udp_template();
  Task<void> websocket(Exchange& x, HttpRequestHead req);
  // Relays an established tunnel both ways until both directions end.
  Task<void> tunnel(Exchange& x, std::string upstream_bytes);
  Task<void> upstream_to_client(Exchange& x, std::string pending);
  // Request body bytes to the upstream (chunk-framed when `chunked`), through `filter`.
  Task<bool> client_to_upstream(Exchange& x, bool chunked, BodyFilter* filter);
  // Queues response body bytes, waiting while the client's window keeps them buffered.
  Task<bool> send_to_client(Exchange& x, std::string_view data);
  // As send_to_client, without counting the bytes in stats_; also false once `stop` is set.
  Task<bool> queue_to_client(Exchange& x, std::string_view data, const bool& stop);
  // The egress decisions, then an upstream: x.h2_origin when the origin speaks HTTP/2
  // (only with `h2`), else x.upstream.
  // A pooled connection is probed for a close first only when `probe`.
  Task<std::optional<ProxyError>> open_upstream(Exchange& x, const HostPort& target, bool reuse,
                                                bool tls = false, bool h2 = false,
                                                bool probe = true);
  // Request bytes to the upstream (x.h2 or x.upstream); response bytes from x.upstream.
  Task<bool> upstream_send(Exchange& x, std::string_view data);
  Task<int> upstream_recv(Exchange& x, std::string& buf);
  // Ends the upstream side of `x` now: pending receives there end.
  static void abandon_upstream(Exchange& x);
  // Closes x.upstream (a connection that is not to be pooled).
  static void close_upstream(Exchange& x);
  // Reads a response head from the upstream into `head` (views into `buf`); an error to
  // answer, else nullopt with `consumed` set. With `retry` given (a request that may go
  // again on a new connection), it is set when the upstream closed without a byte of
  // answer or answered 408: a pooled connection the origin had given up.
  Task<std::optional<ProxyError>> read_response_head(Exchange& x, std::string& buf,
                                                     http::h1::Head& head, std::string_view method,
                                                     std::size_t& consumed,
                                                     bool* retry = nullptr);
  // The response body as the head frames it, through `filter`, to the client.
  Task<bool> relay_response_body(Exchange& x, std::string& buf, const http::h1::Head& head,
                                 BodyFilter* filter);
  std::optional<ProxyError> authenticate(const HttpRequestHead& req);
  void answer(Exchange& x, const ProxyError& e);
  void answer(Exchange& x, const HttpReply& reply);
  // conn_.submit_response, noting the status for the exchange's span.
  bool submit_head(Exchange& x, int status, const std::vector<http::h2::Field>& fields,
                   bool end_stream);
  void finish_exchange(Exchange& x);

  const config::Endpoint& ep_;
  ConnectionInfo info_;
  std::shared_ptr<void> ctx_;
  ConnectionStats stats_;
  SocketAddress last_upstream_address_;  // the one stats_.upstream names
  std::optional<CloseReason> close_reason_;
  runtime::Clock::time_point started_;
  std::unique_ptr<Relay> no_relay_;  // describe() reads one; tunnels here are per stream
  std::shared_ptr<const http::auth::Authenticator> auth_;
  std::optional<http::MasqueTemplate> udp_template_;
  std::optional<std::string> alt_svc_;  // added to responses (not on HTTP/3 itself)
  ClientStreams& conn_;
  const HttpVersion version_;
  const telemetry::Counter stream_counter_;

  std::map<std::int64_t, std::unique_ptr<Exchange>> exchanges_;
  std::vector<std::int64_t> to_wake_;
  std::vector<std::int64_t> started_streams_;
  runtime::JoinSet streams_;
  bool closing_ = false;  // stop reading; end when the streams are done
};

}  // namespace ramjet::proxy
