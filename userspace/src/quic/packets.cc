#include "quic/packets.h"

#include <ngtcp2/ngtcp2.h>

#include <algorithm>
#include <cstring>

namespace ramjet::quic {
namespace {

// The versions this server speaks, in preference order.
constexpr std::uint32_t kSupportedVersions[] = {NGTCP2_PROTO_VER_V1};

}  // namespace

const char* to_string(DropReason r) {
  switch (r) {
#define RAMJET_X(name, text) \
  case DropReason::name:     \
    return text;
    RAMJET_QUIC_DROP_REASONS(RAMJET_X)
#undef RAMJET_X
  }
  return "unknown";
}

bool read_header(std::span<const std::uint8_t> datagram, std::size_t server_cid_length,
                 PacketHeader& out, bool& unsupported_version) {
  if (datagram.empty()) return false;  // ngtcp2 asserts on an empty packet
  ngtcp2_version_cid vc{};
  int rv = ngtcp2_pkt_decode_version_cid(&vc, datagram.data(), datagram.size(),
                                         server_cid_length);
  if (rv != 0 && rv != NGTCP2_ERR_VERSION_NEGOTIATION) return false;
  unsupported_version = rv == NGTCP2_ERR_VERSION_NEGOTIATION;
  out.long_header = (datagram[0] & 0x80) != 0;
  out.version = vc.version;
  out.dcid_length = std::min(vc.dcidlen, out.dcid_storage.size());
  if (out.dcid_length) std::memcpy(out.dcid_storage.data(), vc.dcid, out.dcid_length);
  out.scid_length = std::min(vc.scidlen, out.scid_storage.size());
  if (out.scid_length) std::memcpy(out.scid_storage.data(), vc.scid, out.scid_length);
  return true;
}

Decision decide_unknown(std::span<const std::uint8_t> datagram, PacketHeader header,
                        bool unsupported_version) {
  Decision d;
  d.header = header;
  if (!header.long_header) {
    // A connection we lost (a restart, an expired one) or an id never ours: a Stateless
    // Reset tells the peer at once instead of after its idle timeout.
    if (datagram.size() > kMinStatelessReset) {
      d.action = Action::kStatelessReset;
    } else {
      d.drop = DropReason::kTooSmallForReset;
    }
    return d;
  }
  if (header.version == 0) {
    d.drop = DropReason::kVersionNegotiation;
    return d;
  }
  // Version Negotiation only answers datagrams that could carry an Initial, so a
  // small spoofed packet buys no larger answer (RFC 9000 6.1).
  if (datagram.size() < kMinInitialDatagram) {
    d.drop = DropReason::kShortInitial;
    return d;
  }
  if (unsupported_version) {
    d.action = Action::kVersionNegotiation;
    return d;
  }
  ngtcp2_pkt_hd hd{};
  if (ngtcp2_accept(&hd, datagram.data(), datagram.size()) != 0 ||
      hd.type != NGTCP2_PKT_INITIAL) {
    d.drop = DropReason::kNotInitial;
    return d;
  }
  d.action = Action::kAccept;
  return d;
}

std::size_t write_version_negotiation(std::span<std::uint8_t> out, const PacketHeader& header,
                                      std::uint8_t random_byte) {
  // Our answer's destination is the client's source id and the other way round.
  ngtcp2_ssize n = ngtcp2_pkt_write_version_negotiation(
      out.data(), out.size(), random_byte, header.scid().data(), header.scid().size(),
      header.dcid().data(), header.dcid().size(), kSupportedVersions,
      std::size(kSupportedVersions));
  return n < 0 ? 0 : static_cast<std::size_t>(n);
}

std::size_t write_stateless_reset(std::span<std::uint8_t> out, std::size_t received,
                                  std::span<const std::uint8_t, kStatelessResetTokenLength> token,
                                  std::span<const std::uint8_t> random) {
  if (received <= kMinStatelessReset) return 0;
  // One byte less than the trigger (RFC 9000 10.3.3), and never more than needed to
  // look like a short-header packet of our connections.
  std::size_t length = std::min<std::size_t>({received - 1, out.size(), 43});
  if (length < kMinStatelessReset) return 0;
  std::size_t random_length = length - kStatelessResetTokenLength;
  if (random.size() < random_length) return 0;
  ngtcp2_ssize n = ngtcp2_pkt_write_stateless_reset(out.data(), length, token.data(),
                                                    random.data(), random_length);
  return n < 0 ? 0 : static_cast<std::size_t>(n);
}

}  // namespace ramjet::quic
