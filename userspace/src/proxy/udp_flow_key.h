// The key of a UDP session: who sent (the client, or the client a PROXY v2 header named)
// and to which address. On a plain udp endpoint `local` is the endpoint's own address, so
// sessions are per client address and port; escalated flows (original destination via
// IP_TRANSPARENT and IP_RECVORIGDSTADDR, issue 12 item 3) will key by their original
// destination through the same field, so one table serves both.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "ramjet/net.h"
#include "runtime/siphash.h"

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
    // Clients choose their addresses and ports, so the hash is keyed (a process-wide
    // secret): nobody can line up sessions in one bucket of the table.
    std::uint8_t buf[2 * 19];
    std::size_t n = 0;
    for (const SocketAddress* a : {&k.client, &k.local}) {
      buf[n++] = a->ip().is_v4() ? 4 : 6;
      std::memcpy(buf + n, a->ip().data(), a->ip().size());
      n += a->ip().size();
      buf[n++] = static_cast<std::uint8_t>(a->port() >> 8);
      buf[n++] = static_cast<std::uint8_t>(a->port());
    }
    return static_cast<std::size_t>(runtime::siphash13(runtime::table_hash_key(), {buf, n}));
  }
};

}  // namespace ramjet::proxy
