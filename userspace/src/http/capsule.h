// QUIC variable-length integers (RFC 9000 16), the Capsule Protocol (RFC 9297 3.2) and the
// HTTP Datagram payload of CONNECT-UDP (RFC 9298 5): the byte-level codecs MASQUE needs on
// the request stream of every HTTP version. Pure library code: no sockets, no allocation on
// the data path beyond the one buffer a capsule split across reads needs.
//
// The capsule parser is push-style, because capsules arrive on a byte stream that the
// transport cuts anywhere (an HTTP/2 DATA frame, an HTTP/3 stream read, an HTTP/1.1 upgraded
// socket read). Return codes of CapsuleParser::next():
//   kCapsule   `capsule` is complete; `consumed` bytes of the input were used; call again
//              with the rest of the input.
//   kNeedMore  the whole input was consumed (a partial capsule is kept inside the parser);
//              call again when more bytes arrive.
//   kError     `error` says why and `offset` where in the stream. Errors are sticky: RFC 9297
//              3.3 makes every malformed capsule fatal to the stream.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "http/named_enum.h"
namespace ramjet::http {

// ----------------------------------------------------------------------------------------
// Variable-length integers (RFC 9000 16)
// ----------------------------------------------------------------------------------------

// 2^62 - 1: the two high bits of the first byte hold the length, so 62 bits remain.
inline constexpr std::uint64_t kMaxVarint = (std::uint64_t{1} << 62) - 1;
inline constexpr std::size_t kMaxVarintSize = 8;

// The smallest encoding of `value` (1, 2, 4 or 8 bytes), or 0 when it exceeds kMaxVarint.
constexpr std::size_t varint_size(std::uint64_t value) {
  if (value <= 63) return 1;
  if (value <= 16383) return 2;
  if (value <= 1073741823) return 4;
  if (value <= kMaxVarint) return 8;
  return 0;
}

// The length an encoding announces in its first byte.
constexpr std::size_t varint_size_from_first_byte(std::uint8_t first) {
  return std::size_t{1} << (first >> 6);
}

// Decodes the varint at the front of `input` into `value`. Returns its size in bytes, or 0
// when `input` ends before it does: on a stream that means "need more", never an error.
// Non-minimal encodings are accepted, as RFC 9000 16 allows everywhere but frame types.
std::size_t decode_varint(std::span<const std::uint8_t> input, std::uint64_t& value);

// Writes the smallest encoding of `value` into `out` (room for kMaxVarintSize bytes).
// Returns its size, or 0 (nothing written) when `value` exceeds kMaxVarint.
std::size_t encode_varint(std::uint64_t value, std::uint8_t* out);

// The two buffer types the encoders append to: what connections already send from.
template <typename Out>
concept ByteBuffer = std::same_as<Out, std::string> || std::same_as<Out, std::vector<std::uint8_t>>;

// Appends `bytes` to either buffer type.
template <ByteBuffer Out>
void append_bytes(Out& out, std::span<const std::uint8_t> bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}

// Appends the encoding of `value`; false (nothing appended) when it exceeds kMaxVarint.
template <ByteBuffer Out>
bool append_varint(Out& out, std::uint64_t value) {
  std::array<std::uint8_t, kMaxVarintSize> buf;
  const std::size_t n = encode_varint(value, buf.data());
  append_bytes(out, std::span(buf.data(), n));
  return n != 0;
}

// A view of a string's bytes, for callers that hold text.
inline std::span<const std::uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// ----------------------------------------------------------------------------------------
// Capsule types
// ----------------------------------------------------------------------------------------

inline constexpr std::uint64_t kCapsuleDatagram = 0x00;            // RFC 9297 3.5
inline constexpr std::uint64_t kCapsuleAddressAssign = 0x01;       // RFC 9484 4.7.1
inline constexpr std::uint64_t kCapsuleAddressRequest = 0x02;      // RFC 9484 4.7.2
inline constexpr std::uint64_t kCapsuleRouteAdvertisement = 0x03;  // RFC 9484 4.7.3

// True for the types above. Anything else is handed to the caller all the same: RFC 9297
// 3.2 has receivers skip unknown types, and only the caller knows what it implements.
constexpr bool is_known_capsule_type(std::uint64_t type) {
  return type <= kCapsuleRouteAdvertisement;
}

// RFC 9297 5.4 reserves 0x29 * N + 0x17 for greasing: peers send them to keep receivers
// honest about skipping unknown types, so seeing one is never a reason to fail.
constexpr bool is_grease_capsule_type(std::uint64_t type) {
  return type >= 0x17 && type <= kMaxVarint && (type - 0x17) % 0x29 == 0;
}

// ----------------------------------------------------------------------------------------
// Errors
// ----------------------------------------------------------------------------------------

#define RAMJET_CAPSULE_ERRORS(X)                                                           \
  X(kCapsuleTooLarge, "capsule_too_large")      /* Length above CapsuleLimits */           \
  X(kTruncatedCapsule, "truncated_capsule")     /* the stream ended inside a capsule */    \
  X(kDatagramTruncated, "datagram_truncated")   /* no complete Context ID in a datagram */ \
  X(kUdpPayloadTooLong, "udp_payload_too_long") /* context 0 payload over 65527 bytes */

RAMJET_DECLARE_NAMED_ENUM(CapsuleError, RAMJET_CAPSULE_ERRORS)

// ----------------------------------------------------------------------------------------
// Capsule parser
// ----------------------------------------------------------------------------------------

struct CapsuleLimits {
  // The largest capsule a tunnel needs is a DATAGRAM carrying a whole IPv4 packet (65535
  // bytes, CONNECT-IP) after a Context ID of up to 8 bytes. A peer announcing more would
  // make us buffer it before anything can be done with it.
  std::uint64_t max_payload = 65535 + kMaxVarintSize;
};

// One capsule. `payload` is a view either into the input given to next() (when the capsule
// arrived whole in it: no copy) or into the parser's own buffer (when it was split across
// calls); either way it stays valid until the next call to next(). Copy it to keep it.
struct Capsule {
  std::uint64_t type = 0;
  std::span<const std::uint8_t> payload;
};

enum class CapsuleStatus : std::uint8_t { kCapsule, kNeedMore, kError };

struct CapsuleResult {
  CapsuleStatus status = CapsuleStatus::kNeedMore;
  std::size_t consumed = 0;                             // bytes of this call's input used
  Capsule capsule;                                      // kCapsule
  CapsuleError error = CapsuleError::kCapsuleTooLarge;  // kError
  std::uint64_t offset = 0;  // kError: stream offset of the capsule at fault
};

class CapsuleParser {
 public:
  explicit CapsuleParser(const CapsuleLimits& limits = {}) : limits_(limits) {}

  // Parses from the front of `input` (the bytes that follow what earlier calls consumed).
  [[nodiscard]] CapsuleResult next(std::span<const std::uint8_t> input);
  [[nodiscard]] CapsuleResult next(std::string_view input) { return next(as_bytes(input)); }

  // The stream ended (FIN, END_STREAM, close): kNeedMore when it ended between capsules,
  // kError kTruncatedCapsule when inside one (RFC 9297 3.3: malformed).
  [[nodiscard]] CapsuleResult finish();

  // Stream bytes consumed so far.
  std::uint64_t position() const { return position_; }

 private:
  enum class State : std::uint8_t { kHeader, kPayload, kError };

  CapsuleResult fail(CapsuleError error);

  CapsuleLimits limits_;
  State state_ = State::kHeader;
  std::uint64_t position_ = 0;
  std::uint64_t capsule_start_ = 0;  // stream offset of the capsule being read
  // Type and Length, at most two 8-byte varints, gathered across calls.
  std::array<std::uint8_t, 2 * kMaxVarintSize> header_{};
  std::size_t header_size_ = 0;
  std::uint64_t type_ = 0;
  std::uint64_t length_ = 0;
  std::vector<std::uint8_t> payload_;  // a payload split across calls
  CapsuleResult error_;
};

// ----------------------------------------------------------------------------------------
// Capsule and HTTP Datagram encoders
// ----------------------------------------------------------------------------------------

// Appends the Type and Length of a capsule whose Value is `payload_size` bytes; false
// (nothing appended) when either exceeds kMaxVarint.
template <ByteBuffer Out>
bool append_capsule_header(Out& out, std::uint64_t type, std::uint64_t payload_size) {
  if (varint_size(type) == 0 || varint_size(payload_size) == 0) return false;
  append_varint(out, type);
  append_varint(out, payload_size);
  return true;
}

// Appends a whole capsule; false (nothing appended) when `type` exceeds kMaxVarint.
template <ByteBuffer Out>
bool append_capsule(Out& out, std::uint64_t type, std::span<const std::uint8_t> payload) {
  if (!append_capsule_header(out, type, payload.size())) return false;
  append_bytes(out, payload);
  return true;
}

// ----------------------------------------------------------------------------------------
// HTTP Datagram payload of CONNECT-UDP (RFC 9298 5) and CONNECT-IP (RFC 9484 6)
// ----------------------------------------------------------------------------------------

// Context ID 0 carries the proxied payload itself (a UDP payload, or an IP packet for
// CONNECT-IP); other IDs are extensions registered per request.
inline constexpr std::uint64_t kContextIdPayload = 0;
// RFC 9298 5: a UDP payload cannot exceed 65535 - 8 bytes of UDP header.
inline constexpr std::size_t kMaxUdpPayload = 65527;

struct HttpDatagram {
  std::uint64_t context_id = 0;
  std::span<const std::uint8_t> payload;  // a view into the parsed bytes; may be empty
};

struct DatagramResult {
  bool ok = false;
  HttpDatagram datagram;                                  // ok
  CapsuleError error = CapsuleError::kDatagramTruncated;  // !ok
};

// Splits an HTTP Datagram payload (a DATAGRAM capsule's Value, or what follows the Quarter
// Stream ID of an HTTP/3 datagram) into Context ID and payload. A datagram arrives whole, so
// a short Context ID is an error here, not "need more". Unknown context IDs are returned:
// RFC 9298 5 lets the receiver drop or buffer them, which is the caller's choice.
DatagramResult parse_http_datagram(std::span<const std::uint8_t> bytes);

// Same, and refuses what RFC 9298 5 makes fatal on a CONNECT-UDP stream: a context 0
// payload longer than kMaxUdpPayload.
DatagramResult parse_udp_proxying_datagram(std::span<const std::uint8_t> bytes);

// Appends an HTTP Datagram payload (Context ID, then payload); false (nothing appended) when
// `context_id` exceeds kMaxVarint.
template <ByteBuffer Out>
bool append_http_datagram(Out& out, std::uint64_t context_id,
                          std::span<const std::uint8_t> payload) {
  if (!append_varint(out, context_id)) return false;
  append_bytes(out, payload);
  return true;
}

// Appends a DATAGRAM capsule carrying `payload` under `context_id`, for HTTP/1.1 and
// HTTP/2 streams (and HTTP/3 peers without QUIC DATAGRAM frames); no intermediate copy.
template <ByteBuffer Out>
bool append_datagram_capsule(Out& out, std::uint64_t context_id,
                             std::span<const std::uint8_t> payload) {
  const std::size_t id_size = varint_size(context_id);
  if (id_size == 0) return false;
  if (!append_capsule_header(out, kCapsuleDatagram, id_size + payload.size())) return false;
  return append_http_datagram(out, context_id, payload);
}

}  // namespace ramjet::http
