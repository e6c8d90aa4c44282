// The policy routing escalated packets need, over rtnetlink (no iptables, no
// shelling out): `fwmark MARK lookup TABLE` rules and a `local default dev lo`
// route in TABLE, for IPv4 and IPv6. With them, a packet TC ingress marked and
// assigned to an engine socket is delivered locally instead of forwarded.
//
// The table is ramjet's alone: a catch-all local route in a table that another
// tool fills or looks up (Tailscale's `5270: from all lookup 52`) would make every
// packet of that tool local. So ramjet marks its route and rules with its own
// routing protocol number (kRouteProtocol, `proto 82` in `ip route`), refuses a
// table that holds anything else or that another rule looks up, adopts only
// entries exactly like its own (a previous run's), and deletes only those.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ramjet/result.h"

namespace ramjet::datapath {

// rtm_protocol / FRA_PROTOCOL of ramjet's routes and rules. Not in iproute2's
// rt_protos (0-18, 42, 99, 186-192); Calico uses 80, BIRD 12.
inline constexpr std::uint8_t kRouteProtocol = 82;

struct PolicyRoute {
  std::uint32_t mark = 0;
  std::uint32_t table = 0;
  std::uint32_t priority = 0;  // rule preference; 0 = mark % 30000 + 100

  std::uint32_t rule_priority() const { return priority ? priority : mark % 30000 + 100; }
};

// A route as RTM_NEWROUTE reports it: what it takes to name it and to tell ramjet's.
struct KernelRoute {
  int family = 0;
  std::uint32_t table = 0;
  std::uint8_t type = 0;
  std::uint8_t protocol = 0;
  std::uint8_t dst_len = 0;
  std::string dst;      // address text; empty when absent (the default route)
  std::string gateway;  // empty when absent
  std::uint32_t oif = 0;
  std::uint32_t metric = 0;
};

// A policy rule as RTM_NEWRULE reports it.
struct KernelRule {
  int family = 0;
  std::uint32_t priority = 0;
  std::uint32_t table = 0;
  std::uint8_t action = 0;
  std::uint8_t protocol = 0;
  std::uint8_t src_len = 0, dst_len = 0;
  std::string src, dst;  // address text; empty when absent
  std::optional<std::uint32_t> fwmark, fwmask;
  std::string iif, oif;
};

std::optional<KernelRoute> parse_route(const nlmsghdr& msg);
std::optional<KernelRule> parse_rule(const nlmsghdr& msg);

bool is_ours(const KernelRoute& route, const PolicyRoute& r, std::uint32_t lo_ifindex);
bool is_ours(const KernelRule& rule, const PolicyRoute& r);

// As `ip route` / `ip rule` print them ("unreachable 198.51.100.0/24 proto boot",
// "5270: from all lookup 52"), with the family when it is IPv6. `ifname` names an
// ifindex (empty: print the number).
std::string describe(const KernelRoute& route,
                     const std::function<std::string(std::uint32_t)>& ifname);
std::string describe(const KernelRule& rule);

// What the kernel holds for `r.table`: routes in it and rules that look it up.
struct TableUse {
  std::vector<std::string> foreign;    // described, routes first: not ramjet's
  bool our_route[2] = {false, false};  // [IPv4, IPv6]
  bool our_rule[2] = {false, false};
};
Result<TableUse> inspect_table(const PolicyRoute& r);

// Refuses a table that is not ramjet's alone, naming the table and the first
// foreign entry (a start checks before it attaches anything).
Result<void> check_table_is_ours(const PolicyRoute& r);
// Checks as above; adds the rules and routes that are missing; adopts exact copies
// of its own. An EEXIST on add is a conflict (someone added a route meanwhile).
Result<void> install_policy_route(const PolicyRoute& r);
// Removes ramjet's own rules and routes (matched with kRouteProtocol: an entry
// that merely looks the same stays); missing ones are fine.
void remove_policy_route(const PolicyRoute& r);

// The TUN hand-off's `local default dev lo proto 82` in `table`, for one family
// (docs/ip_onramp.md). Every ip endpoint that names the same handoff_table shares it,
// so it is counted per process: the first acquire adds it, the last release deletes
// it (and only ramjet's: the delete matches the protocol). It is added with
// create-exclusive semantics, never replace: a default route of anyone else in that
// table is refused, named, and left alone; an exact copy of ramjet's own (a crashed
// run's) is adopted. A failed acquire holds nothing.
Result<void> acquire_local_default(int family, std::uint32_t table);
void release_local_default(int family, std::uint32_t table);
// How many acquires of (family, table) this process holds (for tests).
unsigned local_default_users(int family, std::uint32_t table);

}  // namespace ramjet::datapath
