// ClientStreams: what the request streams of a multiplexed HTTP session (proxy/
// stream_session.h) need from the connection that carries them, whatever its version:
// HTTP/2 (nghttp2 over TCP or TLS, H2Session) or HTTP/3 (nghttp3 over QUIC, H3Session).
// Stream ids are 64-bit (QUIC's); HTTP/2's fit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "http/h2/message.h"

namespace ramjet::proxy {

// Why the proxy resets a client stream, in words both versions map to their own codes
// (RFC 9113 7, RFC 9114 8.1).
enum class StreamError : std::uint8_t {
  kInternal,  // INTERNAL_ERROR / H3_INTERNAL_ERROR: the response broke off
  kConnect,   // CONNECT_ERROR / H3_CONNECT_ERROR: a tunnel's target failed
  kCancel,    // CANCEL / H3_REQUEST_CANCELLED: the proxy gave up (idle, shutdown)
  kProtocol,  // PROTOCOL_ERROR / H3_MESSAGE_ERROR: the client sent a malformed message
};

class ClientStreams {
 public:
  // The response head; with end_stream nothing follows, else send_data()/end_data().
  // false when the stream is gone.
  virtual bool submit_response(std::int64_t stream, int status,
                               const std::vector<http::h2::Field>& fields, bool end_stream) = 0;
  // An interim (1xx) response ahead of the final one.
  virtual void submit_interim(std::int64_t stream, int status,
                              const std::vector<http::h2::Field>& fields) = 0;
  virtual void send_data(std::int64_t stream, std::string_view data) = 0;
  // The body is complete; `trailers`, if any, follow it.
  virtual void end_data(std::int64_t stream, std::vector<http::h2::Field> trailers = {}) = 0;
  // Response bytes queued for the stream that the connection has not taken yet (the
  // client's window is shut): a stream waits while this is high.
  virtual std::size_t buffered(std::int64_t stream) const = 0;
  virtual void reset(std::int64_t stream, StreamError why) = 0;
  // `n` request body bytes of the stream were passed on: the client may send as many more.
  virtual void consume(std::int64_t stream, std::size_t n) = 0;

 protected:
  ~ClientStreams() = default;
};

}  // namespace ramjet::proxy
