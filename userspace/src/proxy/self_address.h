// A transparent endpoint relays each connection or datagram to the address the client
// sent it to. A client that sends straight to the endpoint's own address has no other
// destination, and relaying "there" would open a connection to the endpoint itself,
// which would relay it again, hop after hop, until ports or memory run out (the egress
// guard catches it only when the listen address is loopback or private). The sessions
// ask this before they relay and refuse such flows, counted as
// `transparent_refused_self`.
#pragma once

#include "ramjet/net.h"

namespace ramjet::proxy {

// True when `local` (a flow's original destination) is the address the endpoint's
// listener is bound to (`bound`): the same port, and the same address, or the loopback
// address of the other family (a transparent tcp endpoint's twin listener), or, for a
// wildcard listener, any address of this host (asked of the kernel by binding a socket
// to it: an escalated flow's destination elsewhere is not bindable without
// IP_FREEBIND).
bool addressed_to_listener(const SocketAddress& bound, const SocketAddress& local);

}  // namespace ramjet::proxy
