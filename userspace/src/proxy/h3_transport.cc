#include "proxy/h3_transport.h"

#include <nghttp3/nghttp3.h>
#include <spdlog/spdlog.h>

namespace ramjet::proxy {

void H3Transport::on_write_shut(std::int64_t stream) {
  h3_.shutdown_stream(stream);
  quic_.shutdown_stream(stream, NGHTTP3_H3_REQUEST_CANCELLED);
}

void H3Transport::on_handshake_completed() {
  // RFC 9114 6.2.1 and RFC 9204 4.2: each side opens one control stream and one QPACK
  // encoder and decoder stream; the client allows them with initial_max_streams_uni.
  const std::int64_t control = quic_.open_uni_stream();
  const std::int64_t encoder = quic_.open_uni_stream();
  const std::int64_t decoder = quic_.open_uni_stream();
  if (control < 0 || encoder < 0 || decoder < 0 || !h3_.bind_streams(control, encoder, decoder))
    failed_ = true;
}

std::int64_t H3Transport::on_stream_data(std::int64_t stream, std::span<const std::uint8_t> data,
                                         bool fin) {
  const std::int64_t n = h3_.recv(stream, data, fin);
  if (n < 0) {
    failed_ = true;
    spdlog::debug("HTTP/3 refused stream {} data: {}", stream,
                  nghttp3_strerror(static_cast<int>(n)));
  }
  return n;
}

quic::StreamOutput H3Transport::next_output() {
  http::h3::Output o = h3_.next_output();
  quic::StreamOutput out;
  out.stream = o.stream;
  out.pieces = std::move(o.pieces);
  out.fin = o.fin;
  return out;
}

}  // namespace ramjet::proxy
