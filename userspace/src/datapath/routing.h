// The policy routing escalated packets need, over rtnetlink (no iptables, no
// shelling out): `fwmark MARK lookup TABLE` rules and a `local default dev lo`
// route in TABLE, for IPv4 and IPv6. With them, a packet TC ingress marked and
// assigned to an engine socket is delivered locally instead of forwarded.
#pragma once

#include <cstdint>

#include "ramjet/result.h"

namespace ramjet::datapath {

struct PolicyRoute {
  std::uint32_t mark = 0;
  std::uint32_t table = 0;
  std::uint32_t priority = 0;  // rule preference; 0 = mark % 30000 + 100
};

// Adds the rules and routes; those already present are kept (a restart adopts them).
Result<void> install_policy_route(const PolicyRoute& r);
// Removes them; missing ones are fine.
void remove_policy_route(const PolicyRoute& r);

}  // namespace ramjet::datapath
