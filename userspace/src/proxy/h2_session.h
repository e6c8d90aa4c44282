// H2Session: one HTTP/2 client connection on an `onramp: http` endpoint (h2 chosen by
// ALPN on TLS, or h2c by prior knowledge) - the HTTP/1.1 forward proxy's twin.
//
// One reading coroutine feeds the connection (http/h2/server_connection.h); one
// writing coroutine sends what it produces; each request stream runs its own
// coroutine (h2_exchange.cc) with the same hooks, heads and egress chain as
// HttpSession:
//  - requests with :scheme http and an :authority are forwarded to HTTP/1.1 upstreams
//    (pooled), bodies streamed both ways through the hooks' body filters;
//  - CONNECT (RFC 9113 8.5) opens one tunnel per stream; HTTP/2 flow control is the
//    tunnel's backpressure in both directions;
//  - extended CONNECT with :protocol websocket (RFC 8441) becomes an HTTP/1.1
//    WebSocket upgrade to the upstream, then a tunnel.
// Errors the proxy answers itself carry Proxy-Status (RFC 9209). Drain sends GOAWAY
// with the last stream id; open streams run to their end.
#pragma once

#include <coroutine>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "http/h1/parser.h"
#include "http/h2/server_connection.h"
#include "proxy/session.h"
#include "ramjet/hooks/http.h"
#include "ramjet/task.h"
#include "runtime/stream.h"
#include "runtime/worker.h"

namespace ramjet::http::auth {
class Authenticator;
}

namespace ramjet::proxy {

// A wake-up for one waiting coroutine that can be used again and again; a notify()
// with nobody waiting is kept for the next wait().
class Wakeup {
 public:
  void notify() {
    if (waiter_) {
      std::exchange(waiter_, {}).resume();
    } else {
      pending_ = true;
    }
  }
  auto wait() {
    struct Awaiter {
      Wakeup* w;
      bool await_ready() const noexcept { return std::exchange(w->pending_, false); }
      void await_suspend(std::coroutine_handle<> h) noexcept { w->waiter_ = h; }
      void await_resume() const noexcept {}
    };
    return Awaiter{this};
  }
  bool waiting() const { return static_cast<bool>(waiter_); }

 private:
  std::coroutine_handle<> waiter_;
  bool pending_ = false;
};

// h2c by prior knowledge (RFC 9113 3.3): whether the client's first bytes on `fd` are the
// HTTP/2 connection preface. Peeks only: the bytes stay for whichever session reads them.
// Gives up (false) after `timeout` or once `draining` is set.
Task<bool> client_preface_follows(runtime::Worker& worker, int fd,
                                  std::chrono::milliseconds timeout, const bool& draining);

class H2Session final : public Session, private http::h2::ServerEvents {
 public:
  // `client` carries the connection (PlainStream for h2c, a TLS stream for h2);
  // `received` holds bytes already read from it (the client preface, when sniffed).
  H2Session(WorkerContext& wc, const config::Endpoint& ep, telemetry::CounterRow& counters,
            runtime::Stream& client, ConnectionInfo info, std::string received = {});
  ~H2Session() override;

  Task<void> run();
  void force_close(CloseReason why) override;

 private:
  // One request stream and its coroutine's state.
  struct Exchange {
    std::int32_t id = 0;
    http::h2::RequestHead head;
    std::vector<http::h2::Field> trailers;  // request trailers, for a chunked upstream body
    std::string body;                       // request body bytes received, not yet passed on
    bool ended = false;                     // the client's END_STREAM arrived
    bool closed = false;                    // the stream is gone
    std::uint32_t reset = 0;                // its error code, when it was reset
    int upstream_fd = -1;
    SocketAddress upstream_address;
    bool response_done = false;                  // the response (or a reset) is submitted in full
    runtime::Clock::time_point client_active{};  // client bytes last went upstream
    Wakeup input;                                // body, END_STREAM or close arrived
    Wakeup window;                               // response bytes left the buffer, or close
  };
  struct ProxyError {
    int status;
    const char* type;  // RFC 9209 error type
    std::string details;
    std::vector<http::h2::Field> extra = {};
  };

  // ServerEvents: called inside nghttp2; they only record and schedule wake-ups.
  void on_request(std::int32_t stream, http::h2::RequestHead head) override;
  void on_data(std::int32_t stream, std::string_view data) override;
  void on_trailers(std::int32_t stream, std::vector<http::h2::Field> fields) override;
  void on_end_stream(std::int32_t stream) override;
  void on_stream_close(std::int32_t stream, std::uint32_t error_code) override;
  void on_defence(http::h2::Defence d) override;

  Task<void> writer();
  // Wakes the writer (frames are ready) and the streams events were recorded for.
  void kick();
  void deliver_wakeups();

  // h2_exchange.cc: one stream from request head to its end.
  Task<void> serve(Exchange& x);
  Task<void> forward(Exchange& x, HttpRequestHead req);
  // HttpRequestHook::handle_request / handle_response with their traces; false when a
  // hook answered (the answer is sent), else `filter` is the hook's body filter, if any.
  Task<bool> request_hook(Exchange& x, HttpRequestHead& req, void* req_ctx,
                          std::unique_ptr<BodyFilter>& filter);
  Task<bool> response_hook(Exchange& x, const HttpRequestHead& req, HttpResponseHead& resp,
                           void* req_ctx, std::unique_ptr<BodyFilter>& filter);
  Task<void> connect(Exchange& x, HttpRequestHead req);
  Task<void> websocket(Exchange& x, HttpRequestHead req);
  // Relays an established tunnel both ways until both directions end.
  Task<void> tunnel(Exchange& x, std::string upstream_bytes);
  Task<void> upstream_to_client(Exchange& x, std::string pending);
  // Request body bytes to the upstream (chunk-framed when `chunked`), through `filter`.
  Task<bool> client_to_upstream(Exchange& x, bool chunked, BodyFilter* filter);
  // Queues response body bytes, waiting while the client's window keeps them buffered.
  Task<bool> send_to_client(Exchange& x, std::string_view data);
  Task<std::optional<ProxyError>> open_upstream(Exchange& x, const HostPort& target, bool reuse);
  Task<bool> upstream_send(int fd, std::string_view data);
  Task<int> upstream_recv(int fd, std::string& buf);
  // Reads a response head from the upstream into `head` (views into `buf`); an error to
  // answer, else nullopt with `consumed` set.
  Task<std::optional<ProxyError>> read_response_head(Exchange& x, std::string& buf,
                                                     http::h1::Head& head, std::string_view method,
                                                     std::size_t& consumed);
  // The response body as the head frames it, through `filter`, to the client.
  Task<bool> relay_response_body(Exchange& x, std::string& buf, const http::h1::Head& head,
                                 BodyFilter* filter);
  std::optional<ProxyError> authenticate(const HttpRequestHead& req);
  void answer(Exchange& x, const ProxyError& e);
  void answer(Exchange& x, const HttpReply& reply);
  void finish_exchange(Exchange& x);

  const config::Endpoint& ep_;
  runtime::Stream& client_;
  ConnectionInfo info_;
  std::shared_ptr<void> ctx_;
  ConnectionStats stats_;
  std::optional<CloseReason> close_reason_;
  runtime::Clock::time_point started_;
  std::unique_ptr<Relay> no_relay_;  // describe() reads one; HTTP/2 tunnels are per stream
  std::shared_ptr<const http::auth::Authenticator> auth_;

  std::string received_;
  http::h2::ServerConnection conn_;
  std::map<std::int32_t, std::unique_ptr<Exchange>> exchanges_;
  std::vector<std::int32_t> to_wake_;
  std::vector<std::int32_t> started_streams_;
  runtime::JoinSet streams_;
  Wakeup writer_wake_;
  bool writer_busy_ = false;
  bool closing_ = false;  // stop reading; end when the streams are done
  bool write_failed_ = false;
  bool draining_sent_ = false;
  runtime::Event writer_done_;
};

}  // namespace ramjet::proxy
