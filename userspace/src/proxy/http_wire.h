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

}  // namespace ramjet::proxy::http_wire
