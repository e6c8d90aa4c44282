// The client side of the admin API (ramjetctl's): HTTP/1.1 over the daemon's unix
// socket, one request per connection. Answers are read with the proxy's strict h1
// parser (http/h1/parser.h): bodies framed by Content-Length, chunked encoding or
// the end of the connection are all understood, so streamed answers (the event
// stream, the flow list) can be consumed line by line as they arrive.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "ramjet/result.h"

namespace ramjet::admin {

struct AdminReply {
  int status = 0;
  std::string body;
};

class AdminClient {
 public:
  explicit AdminClient(std::string socket_path) : path_(std::move(socket_path)) {}
  const std::string& socket_path() const { return path_; }

  // Error::code: ENOENT or ECONNREFUSED when no daemon listens (the message says
  // "ramjetd is not running"), EACCES/EPERM when this user may not connect (the
  // message names the socket, its mode and owner), else what failed.
  Result<AdminReply> request(std::string_view method, std::string_view target,
                             const std::string& body = {});
  // Calls `on_line` for each line of the body as it arrives (the newline removed);
  // `on_line` returns false to stop reading. The body of a non-2xx answer is not
  // split: it is returned in `error_body` with the status.
  Result<int> stream_lines(std::string_view method, std::string_view target,
                           const std::function<bool(std::string_view)>& on_line,
                           std::string* error_body = nullptr);

  // A receive timeout for request() (stream_lines waits forever).
  void set_timeout_ms(int ms) { timeout_ms_ = ms; }

 private:
  Result<int> open_and_send(std::string_view method, std::string_view target,
                            const std::string& body, int timeout_ms);

  std::string path_;
  int timeout_ms_ = 30'000;
};

// True when `e` says no daemon listens on the socket.
bool daemon_not_running(const Error& e);
bool permission_denied(const Error& e);

// The "error" member of a JSON error body, else the body itself, trimmed.
std::string error_text(const AdminReply& reply);

}  // namespace ramjet::admin
