// quic::decide and the two answers it leads to (Version Negotiation, Stateless Reset) on
// arbitrary datagrams. Input: byte 0 picks the server's id length (0..20), byte 1 whether
// a connection owns the destination id; the rest is the datagram.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "quic/packets.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ramjet::quic;
  if (size < 2) return 0;
  const std::size_t cid_length = data[0] % (kMaxCidLength + 1);
  const bool owned = (data[1] & 1) != 0;
  std::span<const std::uint8_t> datagram(data + 2, size - 2);

  Decision d = decide(datagram, cid_length, [&](std::span<const std::uint8_t> dcid) {
    if (dcid.size() > 255) std::abort();
    return owned;
  });
  if (d.header.dcid_length > d.header.dcid_storage.size() ||
      d.header.scid_length > d.header.scid_storage.size())
    std::abort();

  std::array<std::uint8_t, 1500> out{};
  if (d.action == Action::kVersionNegotiation) {
    const std::size_t n = write_version_negotiation(out, d.header, 0x5a);
    if (n > out.size()) std::abort();
  } else if (d.action == Action::kStatelessReset) {
    const std::array<std::uint8_t, kStatelessResetTokenLength> token{};
    const std::array<std::uint8_t, 64> random{};
    const std::size_t n = write_stateless_reset(out, datagram.size(), token, random);
    // Never as large as the trigger (RFC 9000 10.3.3), never below the minimum.
    if (n != 0 && (n >= datagram.size() || n < kMinStatelessReset)) std::abort();
  } else if (d.action == Action::kAccept && datagram.size() < kMinInitialDatagram) {
    std::abort();  // an Initial in a short datagram must be dropped
  }
  return 0;
}
