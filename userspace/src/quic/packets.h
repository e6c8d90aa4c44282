// What a QUIC server does with a datagram before any connection sees it (RFC 9000 5.2.2,
// 6, 10.3): route it by destination connection id, accept a new connection from an
// Initial, answer an unknown version with Version Negotiation, answer a short-header
// packet for a connection we do not know with a Stateless Reset, or drop it (counted).
// The wire formats are ngtcp2's; the decisions and their limits are here, I/O-free.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>


namespace ramjet::quic {

inline constexpr std::size_t kMaxCidLength = 20;            // RFC 9000 17.2 (v1)
inline constexpr std::size_t kMinInitialDatagram = 1200;     // RFC 9000 14.1
inline constexpr std::size_t kStatelessResetTokenLength = 16;
// A Stateless Reset must be hard to tell from a short-header packet and smaller than
// the packet it answers, so two servers never loop (RFC 9000 10.3, 10.3.3): at least
// 21 bytes (1 + 4 unpredictable + 16 token) and one less than the trigger.
inline constexpr std::size_t kMinStatelessReset = 21;

// Why a datagram was dropped before reaching a connection; counted as quic_dropped_<name>.
#define RAMJET_QUIC_DROP_REASONS(X)                                                        \
  X(kMalformed, "malformed")              /* no QUIC header can be read */                  \
  X(kShortInitial, "short_initial")       /* an Initial in a datagram under 1200 bytes */   \
  X(kNotInitial, "not_initial")           /* a long header of a connection we do not know */ \
  X(kTooSmallForReset, "too_small_for_reset") /* unknown short header, too small to answer */ \
  X(kVersionNegotiation, "version_negotiation") /* a VN packet: servers ignore them */

enum class DropReason : std::uint8_t {
#define RAMJET_X(name, text) name,
  RAMJET_QUIC_DROP_REASONS(RAMJET_X)
#undef RAMJET_X
};
const char* to_string(DropReason r);

// The ids and version of a datagram's first packet, as `read_header` found them.
struct PacketHeader {
  bool long_header = false;
  std::uint32_t version = 0;  // long headers only
  std::array<std::uint8_t, 255> dcid_storage{};  // unsupported versions may use up to 255
  std::size_t dcid_length = 0;
  std::array<std::uint8_t, 255> scid_storage{};
  std::size_t scid_length = 0;

  std::span<const std::uint8_t> dcid() const { return {dcid_storage.data(), dcid_length}; }
  std::span<const std::uint8_t> scid() const { return {scid_storage.data(), scid_length}; }
};

enum class Action : std::uint8_t {
  kToConnection,        // a connection owns dcid: hand it the datagram
  kAccept,              // an Initial of a supported version: a new connection
  kVersionNegotiation,  // a long header of a version we do not speak: list ours
  kStatelessReset,      // a short header for no connection of ours: tell the peer
  kDrop,                // see `drop`
};

struct Decision {
  Action action = Action::kDrop;
  DropReason drop = DropReason::kMalformed;
  PacketHeader header;
};

// Reads the first packet's header and decides. `known(dcid)` says whether a connection
// of this worker owns the id; `server_cid_length` is the length of the ids we issue
// (short headers carry no length).
template <typename Known>
Decision decide(std::span<const std::uint8_t> datagram, std::size_t server_cid_length,
                Known&& known);

// The same without the lookup, for tests and for the template above.
bool read_header(std::span<const std::uint8_t> datagram, std::size_t server_cid_length,
                 PacketHeader& out, bool& unsupported_version);
Decision decide_unknown(std::span<const std::uint8_t> datagram, PacketHeader header,
                        bool unsupported_version);

// A Version Negotiation packet answering `header` (its ids swapped) into `out`, listing
// the versions we speak; the bytes written, 0 when `out` is too small.
std::size_t write_version_negotiation(std::span<std::uint8_t> out, const PacketHeader& header,
                                      std::uint8_t random_byte);

// A Stateless Reset for a datagram of `received` bytes carrying `token`; `random` fills
// the unpredictable part. 0 when the trigger is too small to answer without risking a
// loop (kMinStatelessReset + 1).
std::size_t write_stateless_reset(std::span<std::uint8_t> out, std::size_t received,
                                  std::span<const std::uint8_t, kStatelessResetTokenLength> token,
                                  std::span<const std::uint8_t> random);

template <typename Known>
Decision decide(std::span<const std::uint8_t> datagram, std::size_t server_cid_length,
                Known&& known) {
  Decision d;
  bool unsupported = false;
  if (!read_header(datagram, server_cid_length, d.header, unsupported)) return d;
  if (!unsupported && known(d.header.dcid())) {
    d.action = Action::kToConnection;
    return d;
  }
  return decide_unknown(datagram, d.header, unsupported);
}

}  // namespace ramjet::quic
