// H3Transport: HTTP/3 (http::h3::ServerConnection) on the streams of one QUIC connection
// (quic::ServerConnection) - the glue between the two sans-I/O cores. Once the handshake
// is done it opens the server's control and QPACK streams; client stream bytes go to
// HTTP/3, HTTP/3's output goes into QUIC packets, acknowledgements and windows go back.
// What the requests become is the owner's (the http::h3::Events it gave the HTTP/3 core);
// the owner calls consumed() for body bytes it passed on, so QUIC's windows follow.
#pragma once

#include <cstdint>
#include <span>

#include "http/h3/server_connection.h"
#include "quic/server_connection.h"

namespace ramjet::proxy {

class H3Transport final : public quic::StreamHandler {
 public:
  H3Transport(quic::ServerConnection& quic, http::h3::ServerConnection& h3) : quic_(quic), h3_(h3) {
    quic_.set_stream_handler(this);
  }
  ~H3Transport() override { quic_.set_stream_handler(nullptr); }
  H3Transport(const H3Transport&) = delete;
  H3Transport& operator=(const H3Transport&) = delete;

  // Bytes of a client stream HTTP/3 consumed after the fact (http::h3::Events::on_consumed).
  void consumed(std::int64_t stream, std::size_t n) { quic_.consumed(stream, n); }
  // HTTP/3 failed on the connection (a negative recv()): the QUIC connection closes.
  bool failed() const { return failed_; }

  void on_handshake_completed() override;
  void on_client_bidi_streams(std::uint64_t max) override { h3_.set_max_client_streams_bidi(max); }
  std::int64_t on_stream_data(std::int64_t stream, std::span<const std::uint8_t> data,
                              bool fin) override;
  void on_stream_acked(std::int64_t stream, std::uint64_t n) override { h3_.acked(stream, n); }
  void on_stream_close(std::int64_t stream, std::uint64_t code) override {
    h3_.stream_closed(stream, code);
  }
  void on_stream_window(std::int64_t stream) override { h3_.unblock(stream); }
  quic::StreamOutput next_output() override;
  void on_written(std::int64_t stream, std::size_t n) override { h3_.written(stream, n); }
  void on_blocked(std::int64_t stream) override { h3_.block(stream); }
  // The client sent STOP_SENDING: it cancels the request (RFC 9114 4.1.1). HTTP/3 writes
  // and reads no more of the stream, QUIC stops reading it too (H3_REQUEST_CANCELLED),
  // and once QUIC is done with both sides on_stream_close ends the exchange.
  void on_write_shut(std::int64_t stream) override;
  // A DATAGRAM frame: an HTTP/3 datagram (RFC 9297 2.1) for HTTP/3 to route.
  void on_datagram(std::span<const std::uint8_t> payload) override { h3_.recv_datagram(payload); }

 private:
  quic::ServerConnection& quic_;
  http::h3::ServerConnection& h3_;
  bool failed_ = false;
};

}  // namespace ramjet::proxy
