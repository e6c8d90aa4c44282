#include "http/h3/datagram.h"

#include "http/capsule.h"  // QUIC varints

namespace ramjet::http::h3 {

ParsedDatagram parse_datagram(std::span<const std::uint8_t> frame_payload) {
  ParsedDatagram out;
  std::uint64_t quarter = 0;
  const std::size_t n = decode_varint(frame_payload, quarter);
  if (n == 0 || quarter > kMaxQuarterStreamId) return out;
  out.ok = true;
  out.stream = static_cast<std::int64_t>(quarter * 4);
  out.payload = frame_payload.subspan(n);
  return out;
}

std::vector<std::uint8_t> encode_datagram(std::int64_t stream,
                                          std::span<const std::uint8_t> payload) {
  std::vector<std::uint8_t> out;
  out.reserve(8 + payload.size());
  append_varint(out, static_cast<std::uint64_t>(stream) / 4);
  append_bytes(out, payload);
  return out;
}

}  // namespace ramjet::http::h3
