// HTTP/3 datagrams in QUIC DATAGRAM frames (RFC 9297 2.1, RFC 9221): a frame's payload is
// the Quarter Stream ID (a varint, the request stream's id / 4) then the HTTP datagram
// payload, which for connect-udp (RFC 9298 4) is a Context ID then the UDP payload.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace ramjet::http::h3 {

// RFC 9297 2.1: a Quarter Stream ID above this names no possible client request stream.
inline constexpr std::uint64_t kMaxQuarterStreamId = (std::uint64_t{1} << 60) - 1;

struct ParsedDatagram {
  bool ok = false;           // false: no whole Quarter Stream ID, or one over the maximum
  std::int64_t stream = -1;  // the request stream (a client bidirectional stream)
  std::span<const std::uint8_t> payload;  // the HTTP datagram payload (a view of the input)
};

ParsedDatagram parse_datagram(std::span<const std::uint8_t> frame_payload);

// A DATAGRAM frame's payload for `stream`: its Quarter Stream ID, then `payload`.
std::vector<std::uint8_t> encode_datagram(std::int64_t stream,
                                          std::span<const std::uint8_t> payload);

}  // namespace ramjet::http::h3
