// The message parts both sides of an HTTP/2 connection (server_connection.h,
// client_connection.h) exchange with their owners.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ramjet::http::h2 {

struct Field {
  std::string name;  // lowercase, as HTTP/2 requires
  std::string value;
};

// A request head (RFC 9113 8.3): as nghttp2 validated it on the server side, as the
// owner submits it on the client side.
struct RequestHead {
  std::string method;         // :method
  std::string scheme;         // :scheme; empty for CONNECT
  std::string authority;      // :authority, else the host field
  std::string path;           // :path; empty for CONNECT
  std::string protocol;       // :protocol of an extended CONNECT (RFC 8441), else empty
  std::vector<Field> fields;  // regular fields in order; cookie crumbs stay separate
  bool end_stream = false;    // no body follows
};

// A response head as nghttp2 validated it (RFC 9113 8.3.2).
struct ResponseHead {
  int status = 0;             // :status
  std::vector<Field> fields;  // regular fields in order
  bool end_stream = false;    // no body follows
};

// RFC 9113 7 error codes the owners use.
enum ErrorCode : std::uint32_t {
  kNoError = 0x0,
  kProtocolError = 0x1,
  kInternalError = 0x2,
  kRefusedStream = 0x7,
  kCancel = 0x8,
  kConnectError = 0xa,
};

}  // namespace ramjet::http::h2
