// The key of a UDP session: who sent (the client, or the client a PROXY v2 header named)
// and to which address. On a plain udp endpoint `local` is the endpoint's own address, so
// sessions are per client address and port; escalated flows (original destination via
// IP_TRANSPARENT and IP_RECVORIGDSTADDR, issue 12 item 3) will key by their original
// destination through the same field, so one table serves both.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "ramjet/net.h"

namespace ramjet::proxy {

struct UdpFlowKey {
  SocketAddress client;
  SocketAddress local;

  friend bool operator==(const UdpFlowKey& a, const UdpFlowKey& b) {
    return a.client == b.client && a.local == b.local;
  }
};

struct UdpFlowKeyHash {
  std::size_t operator()(const UdpFlowKey& k) const noexcept {
    // FNV-1a over family, address bytes and port of both sides: cheap, and a client
    // cannot pick collisions it could not pick in the kernel's own socket hash.
    std::uint64_t h = 0xcbf29ce484222325ull;
    auto mix = [&h](std::uint8_t b) {
      h ^= b;
      h *= 0x100000001b3ull;
    };
    for (const SocketAddress* a : {&k.client, &k.local}) {
      mix(a->ip().is_v4() ? 4 : 6);
      for (std::size_t i = 0; i < a->ip().size(); ++i) mix(a->ip().data()[i]);
      mix(static_cast<std::uint8_t>(a->port() >> 8));
      mix(static_cast<std::uint8_t>(a->port()));
    }
    return static_cast<std::size_t>(h);
  }
};

}  // namespace ramjet::proxy
