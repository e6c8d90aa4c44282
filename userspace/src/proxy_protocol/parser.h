// Sans-I/O PROXY protocol parser (HAProxy's proxy-protocol.txt, v1 and v2) and v2 encoder.
//
// The header is small and bounded (v1: 107 bytes, v2: 16 + Limits::max_v2_length), so the
// parser is stateless: call parse() with every byte received so far, from the connection's
// first byte; it looks only at the header's bytes and never past them. Return codes:
//   kDone      `header` is filled; `consumed` bytes belong to the header, the rest of the
//              buffer is the next layer's (TLS, HTTP, relayed TCP) and must be handed on.
//   kNeedMore  the buffer is a valid prefix of a header; call again with more bytes.
//   kError     `reason` says why and `offset` where; close the connection.
// Errors are reported as soon as the prefix can no longer become a valid header, so a
// peer that sends garbage is refused on its first bytes, not after the timeout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "proxy_protocol/reason.h"
#include "ramjet/hooks/proxy_protocol.h"

namespace ramjet::proxy_protocol {

// v1: the spec's worst case, "PROXY UNKNOWN" + two full IPv6 addresses + two ports + CRLF.
inline constexpr std::size_t kV1MaxLength = 107;
inline constexpr std::size_t kV2HeaderLength = 16;  // signature, ver/cmd, fam, length
inline constexpr std::string_view kV2Signature{"\r\n\r\n\0\r\nQUIT\n", 12};

struct Limits {
  bool accept_v1 = true;
  bool accept_v2 = true;
  // Bytes after the 16-byte v2 header (addresses + TLVs). The format allows 65535; the
  // largest real header (inet6 + SSL TLVs with a long CN + AUTHORITY + UNIQUE_ID) is well
  // under 1 KiB, so 4 KiB leaves room for custom TLVs while bounding what a peer can make
  // us buffer before we decide.
  std::size_t max_v2_length = 4096;
};

enum class Status : std::uint8_t { kDone, kNeedMore, kError };

struct Result {
  Status status = Status::kNeedMore;
  std::size_t consumed = 0;               // kDone: the header's length
  Reason reason = Reason::kBadSignature;  // kError only
  std::size_t offset = 0;                 // kError: where the fault is
};

// What the first bytes of a connection are, for `mode: optional`.
enum class Detected : std::uint8_t {
  kNeedMore,  // a prefix of a signature so far: wait for more bytes
  kV1,        // starts with "PROXY "
  kV2,        // starts with the 12-byte v2 signature
  kNone,      // not a PROXY header: the bytes are the next layer's
};
Detected detect(std::span<const std::uint8_t> buffer);

// Parses the header at the start of `buffer` into `header` (overwritten on kDone).
[[nodiscard]] Result parse(std::span<const std::uint8_t> buffer, ProxyHeader& header,
                           const Limits& limits = {});
inline Result parse(std::string_view buffer, ProxyHeader& header, const Limits& limits = {}) {
  return parse(std::span(reinterpret_cast<const std::uint8_t*>(buffer.data()), buffer.size()),
               header, limits);
}

// One line for logs and the hook trace, e.g. "v2 proxy stream 192.0.2.7:51000 ->
// 198.51.100.1:443 alpn=h2 unique_id crc32c tlvs=0xe0". Of the peer's free text only ALPN
// and AUTHORITY are shown, and only when short printable ASCII; the rest is named.
std::string describe(const ProxyHeader& header);

// CRC32C (Castagnoli, reflected 0x82F63B78), as PP2_TYPE_CRC32C uses it.
std::uint32_t crc32c(std::span<const std::uint8_t> data, std::uint32_t crc = 0);

// Encodes `header` as v2 (addresses from source/destination or the unix paths, then the
// TLVs: ALPN, AUTHORITY, UNIQUE_ID, SSL, NETNS, the raw ones, and last a CRC32C when
// `with_crc32c`). Sizes beyond the format (a TLV over 65535 bytes) are the caller's bug.
std::string encode_v2(const ProxyHeader& header, bool with_crc32c = false);
// Encodes the v1 line ("PROXY TCP4 ..." or "PROXY UNKNOWN\r\n" without inet addresses).
std::string encode_v1(const ProxyHeader& header);

}  // namespace ramjet::proxy_protocol
