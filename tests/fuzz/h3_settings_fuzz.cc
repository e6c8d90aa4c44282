// Untrusted bytes a peer's HTTP/3 unidirectional streams and DATAGRAM frames carry, as read
// outside nghttp3 (http/h3/settings.h, http/h3/datagram.h): the control stream's SETTINGS
// prefix, fed whole and in pieces the input chooses, and the Quarter Stream ID. Beyond
// ASan: what PeerSettings reads does not depend on how the stream was cut; a prefix that
// parses is re-encoded and parses back to the same settings; the rewrite of our own
// control stream never makes nghttp3's offsets run ahead of QUIC's; a datagram that
// parses re-encodes to a frame that parses back equal.
//
// Input layout: byte 0 seeds the split points, the rest is the stream (and the frame).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "http/h3/datagram.h"
#include "http/h3/settings.h"

namespace {

using namespace ramjet::http::h3;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t seed = data[0];
  const std::span<const std::uint8_t> input(data + 1, size - 1);

  const ControlPrefix whole = parse_control_prefix(input);
  if (whole.status == ControlPrefix::Status::kSettings) {
    check(whole.size <= input.size());
    const ControlPrefix again = parse_control_prefix(encode_control_prefix(whole.settings));
    check(again.status == ControlPrefix::Status::kSettings && again.settings == whole.settings);
  }

  // The peer's stream in pieces of 1..8 bytes, chosen by the seed.
  PeerSettings one;
  PeerSettings cut;
  one.on_stream_data(2, input);
  std::size_t at = 0;
  unsigned state = seed;
  while (at < input.size()) {
    state = state * 1103515245u + 12345u;
    const std::size_t n = std::min<std::size_t>(1 + (state >> 16) % 8, input.size() - at);
    cut.on_stream_data(2, input.subspan(at, n));
    at += n;
  }
  check(one.settings() == cut.settings());
  check(one.h3_datagram() == cut.h3_datagram());

  // Our control stream, as nghttp3 would offer it, written and acknowledged in pieces.
  ControlStreamRewrite rw({kSettingsH3Datagram, 1});
  std::size_t h3_written = 0;
  std::size_t quic_written = 0;
  for (int round = 0; round < 64 && h3_written < input.size(); ++round) {
    const std::vector<std::span<const std::uint8_t>> out = rw.rewrite({input.subspan(h3_written)});
    std::size_t offered = 0;
    for (auto p : out) offered += p.size();
    if (offered == 0) break;
    state = state * 1103515245u + 12345u;
    const std::size_t n = 1 + (state >> 16) % offered;
    quic_written += n;
    h3_written += rw.written(n);
    check(h3_written <= input.size());
  }
  check(rw.acked(quic_written) == h3_written);

  const ParsedDatagram d = parse_datagram(input);
  if (d.ok) {
    const std::vector<std::uint8_t> frame = encode_datagram(d.stream, d.payload);
    const ParsedDatagram back = parse_datagram(frame);
    check(back.ok && back.stream == d.stream &&
          std::equal(back.payload.begin(), back.payload.end(), d.payload.begin(), d.payload.end()));
  }
  return 0;
}
