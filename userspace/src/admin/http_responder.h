// A small HTTP/1.1 server for the control plane: the admin API (unix socket) and
// the Prometheus endpoint (TCP) share it. One request per connection, answered
// with Connection: close, on a thread of its own with its own io_uring worker, so
// it answers while the proxy workers are busy and never runs on their rings.
//
// Requests are parsed by the proxy's strict HTTP/1.1 parser (http/h1); bodies are
// read only when framed by Content-Length and at most ResponderLimits::max_body.
// Every connection has one deadline for reading the request and sending the answer.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>

#include "ramjet/result.h"
#include "ramjet/task.h"
#include "runtime/worker.h"

namespace ramjet::admin {

struct HttpRequest {
  std::string method;
  std::string path;   // the origin-form target without its query
  std::string query;  // after '?', without it; "" when absent
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::string extra_fields = {};  // complete "Name: value\r\n" lines
  // A streamed body (the event feed, the flow list): when set, `body` goes first,
  // then every piece stream() returns, without Content-Length (the end of the
  // connection ends the body). It runs on the responder's thread and must not
  // block: it returns a piece, "" when it has nothing yet (asked again after
  // ResponderLimits::stream_poll; a client that went away meanwhile ends the
  // stream), or nullopt at the end.
  std::function<std::optional<std::string>()> stream = {};
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// {"error": message} with `status`.
HttpResponse json_error(int status, std::string_view message);
// The whole response: status line, Content-Type, Content-Length, Connection: close.
std::string render_response(const HttpResponse& r);

// Routes by path, then method: an unknown path is 404, a known path asked with
// another method 405 with an Allow field. A path ending in '/' is a prefix route:
// it takes every path under it (e.g. "/v1/flows/" takes "/v1/flows/42"); an exact
// route wins over a prefix, and a longer prefix over a shorter one.
class Router {
 public:
  void add(std::string method, std::string path, HttpHandler handler);
  HttpResponse dispatch(const HttpRequest& req) const;

 private:
  using Methods = std::map<std::string, HttpHandler>;
  const Methods* find(const std::string& path) const;

  std::map<std::string, Methods> routes_;  // path -> method
};

struct ResponderLimits {
  std::size_t max_head = 8 * 1024;
  std::size_t max_body = 64 * 1024;
  std::chrono::milliseconds deadline{2000};  // read the request and send the answer
  // Streams: the pause when stream() has nothing, and how long one piece may take
  // to send (a reader that stops reading is cut off).
  std::chrono::milliseconds stream_poll{100};
  std::chrono::milliseconds stream_send{10'000};
};

class HttpResponder {
 public:
  // `name` appears in logs ("admin", "metrics"). The handler runs on the
  // responder's thread; an exception it throws becomes a 500.
  HttpResponder(std::string name, HttpHandler handler, ResponderLimits limits = {});
  ~HttpResponder();
  HttpResponder(const HttpResponder&) = delete;
  HttpResponder& operator=(const HttpResponder&) = delete;

  // Takes ownership of a listening socket and serves it on a new thread. Fails
  // (closing the socket) when the thread's io_uring cannot be created.
  Result<void> start(int listen_fd);
  // Stops accepting, cancels requests in progress, joins the thread and closes the
  // listening socket. Idempotent.
  void stop();

 private:
  Task<void> accept_loop();
  Task<void> serve(int fd);
  // Appends what arrives before `deadline` to `buf`; false on EOF, error or timeout.
  Task<bool> read_some(int fd, std::string& buf, runtime::Clock::time_point deadline);
  HttpResponse handle(const HttpRequest& req) const;
  // Sends all of `data` before `deadline`; false when the client is gone or slow.
  Task<bool> send_all(int fd, std::string_view data, runtime::Clock::time_point deadline);
  // The pieces of a streamed body, until it ends, the client goes or stop().
  Task<void> send_stream(int fd, const HttpResponse& r);

  std::string name_;
  HttpHandler handler_;
  ResponderLimits limits_;
  int listen_fd_ = -1;
  std::atomic<bool> stopping_{false};
  runtime::Worker worker_;
  runtime::MultishotAccept* accept_ = nullptr;  // the responder thread's, while it accepts
  std::unordered_set<int> live_;                // connections being served
  std::thread thread_;
};

}  // namespace ramjet::admin
