// Small pieces of the HTTP/1 wire that the forward proxy's session logic
// (http_session.cc) and its body streaming (http_body.cc) share.
#pragma once

#include <sys/socket.h>

#include <string>
#include <string_view>

namespace ramjet::proxy::http_wire {

// Makes the next close of `fd` a reset (RST) instead of a FIN: a receiver that already got
// a message head must not mistake a truncated body for a complete one.
inline void reset_on_close(int fd) {
  const linger abort{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
}

inline void append_field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

// The status of an HTTP/1.x status line at the start of `data` ("HTTP/1.1 200 OK..."),
// or 0 when `data` does not start with one or the status is informational (1xx).
inline int final_status(std::string_view data) {
  if (data.size() < 12 || data.substr(0, 7) != "HTTP/1." || data[8] != ' ') return 0;
  int status = 0;
  for (std::size_t i = 9; i < 12; ++i) {
    if (data[i] < '0' || data[i] > '9') return 0;
    status = status * 10 + (data[i] - '0');
  }
  return status >= 200 ? status : 0;
}

}  // namespace ramjet::proxy::http_wire
