#include "datapath/routing.h"

#include <arpa/inet.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <span>
#include <utility>

#include "datapath/netlink.h"

namespace ramjet::datapath {

namespace {

constexpr int kFamilies[2] = {AF_INET, AF_INET6};

const char* family_name(int family) {
  return family == AF_INET ? "IPv4" : "IPv6";
}

std::string address_text(int family, std::optional<std::span<const std::uint8_t>> bytes) {
  std::size_t want = family == AF_INET ? 4 : 16;
  if (!bytes || bytes->size() < want) return {};
  char text[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(family, bytes->data(), text, sizeof text);
  return text;
}

std::string string_attr(const netlink::Attributes& attrs, std::uint16_t type) {
  auto a = attrs.get(type);
  if (!a || a->empty()) return {};
  std::string s(reinterpret_cast<const char*>(a->data()), a->size());
  if (auto nul = s.find('\0'); nul != std::string::npos) s.resize(nul);
  return s;
}

std::string protocol_name(std::uint8_t p) {
  switch (p) {
    case RTPROT_KERNEL:
      return "kernel";
    case RTPROT_BOOT:
      return "boot";
    case RTPROT_STATIC:
      return "static";
    case RTPROT_DHCP:
      return "dhcp";
    case kRouteProtocol:
      return std::to_string(p) + " (ramjet)";
    default:
      return std::to_string(p);
  }
}

std::string type_name(std::uint8_t t) {
  switch (t) {
    case RTN_UNICAST:
      return "";
    case RTN_LOCAL:
      return "local";
    case RTN_BROADCAST:
      return "broadcast";
    case RTN_ANYCAST:
      return "anycast";
    case RTN_MULTICAST:
      return "multicast";
    case RTN_BLACKHOLE:
      return "blackhole";
    case RTN_UNREACHABLE:
      return "unreachable";
    case RTN_PROHIBIT:
      return "prohibit";
    case RTN_THROW:
      return "throw";
    default:
      return "type " + std::to_string(t);
  }
}

std::string prefix_text(const std::string& addr, std::uint8_t len, int family) {
  if (len == 0) return family == AF_INET6 ? "default (IPv6)" : "default";
  std::string s = (addr.empty() ? std::string(family == AF_INET ? "0.0.0.0" : "::") : addr) + "/" +
                  std::to_string(len);
  return s;
}

int route_request(bool add, int family, const PolicyRoute& r) {
  netlink::Request req(add ? RTM_NEWROUTE : RTM_DELROUTE, add ? NLM_F_CREATE | NLM_F_EXCL : 0);
  auto* rt = req.body<rtmsg>();
  rt->rtm_family = static_cast<std::uint8_t>(family);
  rt->rtm_dst_len = 0;
  rt->rtm_table = RT_TABLE_UNSPEC;
  // A delete matches on the protocol too: only ramjet's own route goes.
  rt->rtm_protocol = kRouteProtocol;
  rt->rtm_scope = RT_SCOPE_HOST;
  rt->rtm_type = RTN_LOCAL;
  req.attr_u32(RTA_TABLE, r.table);
  req.attr_u32(RTA_OIF, ::if_nametoindex("lo"));
  return netlink::transact(req);
}

int rule_request(bool add, int family, const PolicyRoute& r) {
  netlink::Request req(add ? RTM_NEWRULE : RTM_DELRULE, add ? NLM_F_CREATE | NLM_F_EXCL : 0);
  auto* f = req.body<fib_rule_hdr>();
  f->family = static_cast<std::uint8_t>(family);
  f->action = FR_ACT_TO_TBL;
  f->table = RT_TABLE_UNSPEC;
  req.attr_u32(FRA_FWMARK, r.mark);
  req.attr_u32(FRA_FWMASK, 0xffffffffu);
  req.attr_u32(FRA_TABLE, r.table);
  req.attr_u32(FRA_PRIORITY, r.rule_priority());
  req.attr_u8(FRA_PROTOCOL, kRouteProtocol);
  return netlink::transact(req);
}

std::string ifname_of(std::uint32_t ifindex) {
  char name[IF_NAMESIZE] = {};
  return ::if_indextoname(ifindex, name) ? std::string(name) : std::string();
}

}  // namespace

std::optional<KernelRoute> parse_route(const nlmsghdr& msg) {
  if (msg.nlmsg_type != RTM_NEWROUTE || msg.nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg)))
    return std::nullopt;
  const auto* rt = static_cast<const rtmsg*>(NLMSG_DATA(&msg));
  netlink::Attributes attrs(msg, sizeof(rtmsg));
  KernelRoute out;
  out.family = rt->rtm_family;
  out.table = attrs.u32(RTA_TABLE).value_or(rt->rtm_table);
  out.type = rt->rtm_type;
  out.protocol = rt->rtm_protocol;
  out.dst_len = rt->rtm_dst_len;
  out.dst = address_text(out.family, attrs.get(RTA_DST));
  out.gateway = address_text(out.family, attrs.get(RTA_GATEWAY));
  out.oif = attrs.u32(RTA_OIF).value_or(0);
  out.metric = attrs.u32(RTA_PRIORITY).value_or(0);
  return out;
}

std::optional<KernelRule> parse_rule(const nlmsghdr& msg) {
  if (msg.nlmsg_type != RTM_NEWRULE || msg.nlmsg_len < NLMSG_LENGTH(sizeof(fib_rule_hdr)))
    return std::nullopt;
  const auto* f = static_cast<const fib_rule_hdr*>(NLMSG_DATA(&msg));
  netlink::Attributes attrs(msg, sizeof(fib_rule_hdr));
  KernelRule out;
  out.family = f->family;
  out.priority = attrs.u32(FRA_PRIORITY).value_or(0);
  out.table = attrs.u32(FRA_TABLE).value_or(f->table);
  out.action = f->action;
  out.protocol = attrs.u8(FRA_PROTOCOL).value_or(0);
  out.src_len = f->src_len;
  out.dst_len = f->dst_len;
  out.src = address_text(out.family, attrs.get(FRA_SRC));
  out.dst = address_text(out.family, attrs.get(FRA_DST));
  out.fwmark = attrs.u32(FRA_FWMARK);
  out.fwmask = attrs.u32(FRA_FWMASK);
  out.iif = string_attr(attrs, FRA_IFNAME);
  out.oif = string_attr(attrs, FRA_OIFNAME);
  return out;
}

bool is_ours(const KernelRoute& route, const PolicyRoute& r, std::uint32_t lo_ifindex) {
  return route.table == r.table && route.type == RTN_LOCAL && route.dst_len == 0 &&
         route.protocol == kRouteProtocol && route.oif == lo_ifindex && route.gateway.empty();
}

bool is_ours(const KernelRule& rule, const PolicyRoute& r) {
  return rule.table == r.table && rule.action == FR_ACT_TO_TBL && rule.protocol == kRouteProtocol &&
         rule.priority == r.rule_priority() && rule.fwmark == r.mark &&
         rule.fwmask.value_or(0xffffffffu) == 0xffffffffu && rule.src_len == 0 &&
         rule.dst_len == 0 && rule.iif.empty() && rule.oif.empty();
}

std::string describe(const KernelRoute& route,
                     const std::function<std::string(std::uint32_t)>& ifname) {
  std::string s = type_name(route.type);
  if (!s.empty()) s += " ";
  s += prefix_text(route.dst, route.dst_len, route.family);
  if (!route.gateway.empty()) s += " via " + route.gateway;
  if (route.oif) {
    std::string name = ifname ? ifname(route.oif) : std::string();
    s += " dev " + (name.empty() ? "ifindex " + std::to_string(route.oif) : name);
  }
  s += " proto " + protocol_name(route.protocol);
  if (route.metric) s += " metric " + std::to_string(route.metric);
  return s;
}

std::string describe(const KernelRule& rule) {
  std::string s = std::to_string(rule.priority) + ": from ";
  s += rule.src_len ? rule.src + "/" + std::to_string(rule.src_len) : "all";
  if (rule.dst_len) s += " to " + rule.dst + "/" + std::to_string(rule.dst_len);
  if (rule.fwmark) {
    char mark[32];
    std::snprintf(mark, sizeof mark, " fwmark %#x", *rule.fwmark);
    s += mark;
    if (rule.fwmask && *rule.fwmask != 0xffffffffu) {
      std::snprintf(mark, sizeof mark, "/%#x", *rule.fwmask);
      s += mark;
    }
  }
  if (!rule.iif.empty()) s += " iif " + rule.iif;
  if (!rule.oif.empty()) s += " oif " + rule.oif;
  s += " lookup " + std::to_string(rule.table);
  if (rule.protocol) s += " proto " + protocol_name(rule.protocol);
  if (rule.family == AF_INET6) s += " (IPv6)";
  return s;
}

Result<TableUse> inspect_table(const PolicyRoute& r) {
  TableUse use;
  std::uint32_t lo = ::if_nametoindex("lo");
  std::vector<std::string> rules;
  for (int i = 0; i < 2; ++i) {
    int family = kFamilies[i];
    netlink::Request routes(RTM_GETROUTE, 0);
    routes.body<rtmsg>()->rtm_family = static_cast<std::uint8_t>(family);
    routes.attr_u32(RTA_TABLE, r.table);
    int rc = netlink::dump(routes, [&](const nlmsghdr& msg) {
      auto route = parse_route(msg);
      if (!route || route->table != r.table) return;
      if (is_ours(*route, r, lo))
        use.our_route[i] = true;
      else
        use.foreign.push_back(describe(*route, ifname_of));
    });
    // ENOENT: the table does not exist yet, so it is empty.
    if (rc != 0 && rc != -ENOENT)
      return Error::kernel(-rc, std::string("cannot list the ") + family_name(family) +
                                    " routes of table " + std::to_string(r.table) + ": " +
                                    std::strerror(-rc));

    netlink::Request rule_dump(RTM_GETRULE, 0);
    rule_dump.body<fib_rule_hdr>()->family = static_cast<std::uint8_t>(family);
    rc = netlink::dump(rule_dump, [&](const nlmsghdr& msg) {
      auto rule = parse_rule(msg);
      if (!rule || rule->table != r.table || rule->action != FR_ACT_TO_TBL) return;
      if (is_ours(*rule, r))
        use.our_rule[i] = true;
      else
        rules.push_back(describe(*rule));
    });
    if (rc != 0)
      return Error::kernel(-rc, std::string("cannot list the ") + family_name(family) +
                                    " policy rules: " + std::strerror(-rc));
  }
  use.foreign.insert(use.foreign.end(), rules.begin(), rules.end());
  return use;
}

namespace {

Error conflict(const PolicyRoute& r, const std::vector<std::string>& foreign) {
  std::string what = "routing table " + std::to_string(r.table) +
                     " is not ramjet's alone: it holds or is looked up by `" + foreign.front() +
                     "`";
  if (foreign.size() > 1) what += " and " + std::to_string(foreign.size() - 1) + " more";
  what +=
      ". ramjet puts a catch-all local route there for escalated packets, which would "
      "capture that traffic: set datapath.route_table to a table nothing else uses, or remove "
      "the entry";
  return Error::config(what);
}

}  // namespace

Result<void> check_table_is_ours(const PolicyRoute& r) {
  auto use = inspect_table(r);
  if (!use.ok()) return use.error();
  if (!use->foreign.empty()) return conflict(r, use->foreign);
  return {};
}

Result<void> install_policy_route(const PolicyRoute& r) {
  auto use = inspect_table(r);
  if (!use.ok()) return use.error();
  if (!use->foreign.empty()) return conflict(r, use->foreign);
  // What this call added, taken back if a later step fails.
  std::vector<std::pair<bool, int>> added;  // {is_rule, family}
  auto fail = [&](Error e) -> Result<void> {
    for (auto it = added.rbegin(); it != added.rend(); ++it)
      it->first ? rule_request(false, it->second, r) : route_request(false, it->second, r);
    return e;
  };
  for (int i = 0; i < 2; ++i) {
    int family = kFamilies[i];
    const char* fam = family_name(family);
    if (!use->our_route[i]) {
      int rc = route_request(true, family, r);
      if (rc == 0) {
        added.emplace_back(false, family);
      } else if (rc == -EEXIST) {
        // Not there when we looked: a route took the slot meanwhile. Only an exact
        // copy of ours (another start racing this one) is not a conflict.
        auto again = inspect_table(r);
        if (again.ok() && !again->foreign.empty()) return fail(conflict(r, again->foreign));
        if (!again.ok() || !again->our_route[i])
          return fail(Error::config(std::string("cannot add the ") + fam +
                                    " local route to table " + std::to_string(r.table) +
                                    ": a route for the same destination exists and is not "
                                    "ramjet's"));
      } else {
        return fail(Error::kernel(-rc, std::string("cannot add the ") + fam +
                                           " local route to table " + std::to_string(r.table) +
                                           ": " + std::strerror(-rc) +
                                           (rc == -EPERM ? " (needs CAP_NET_ADMIN)" : "")));
      }
    }
    if (!use->our_rule[i]) {
      int rc = rule_request(true, family, r);
      // The kernel says EEXIST only for an identical rule, protocol included: ours.
      if (rc != 0 && rc != -EEXIST)
        return fail(Error::kernel(
            -rc, std::string("cannot add the ") + fam + " fwmark rule: " + std::strerror(-rc)));
      if (rc == 0) added.emplace_back(true, family);
    }
  }
  return {};
}

void remove_policy_route(const PolicyRoute& r) {
  for (int family : kFamilies) {
    rule_request(false, family, r);
    route_request(false, family, r);
  }
}

namespace {

// Hand-off routes this process holds, by (family, table): ip endpoints are set up and
// torn down on the main thread, the lock only keeps that from being an assumption.
std::mutex g_local_defaults_mutex;
std::map<std::pair<int, std::uint32_t>, unsigned> g_local_defaults;

// After an EEXIST: what holds the default slot of `table`. nullopt when it is an exact
// copy of ramjet's own route, else the occupant as `ip route` prints it.
Result<std::optional<std::string>> default_occupant(int family, std::uint32_t table) {
  const PolicyRoute r{0, table, 0};
  const std::uint32_t lo = ::if_nametoindex("lo");
  std::optional<std::string> foreign;
  bool ours = false;
  netlink::Request dump_req(RTM_GETROUTE, 0);
  dump_req.body<rtmsg>()->rtm_family = static_cast<std::uint8_t>(family);
  dump_req.attr_u32(RTA_TABLE, table);
  int rc = netlink::dump(dump_req, [&](const nlmsghdr& msg) {
    auto route = parse_route(msg);
    if (!route || route->table != table || route->dst_len != 0) return;
    if (is_ours(*route, r, lo))
      ours = true;
    else if (!foreign)
      foreign = describe(*route, ifname_of);
  });
  if (rc != 0)
    return Error::kernel(-rc, std::string("cannot list the ") + family_name(family) +
                                  " routes of table " + std::to_string(table) + ": " +
                                  std::strerror(-rc));
  if (ours) return std::optional<std::string>();
  return std::optional<std::string>(foreign.value_or("a route for the same destination"));
}

}  // namespace

Result<void> acquire_local_default(int family, std::uint32_t table) {
  std::lock_guard lock(g_local_defaults_mutex);
  const auto key = std::make_pair(family, table);
  if (auto it = g_local_defaults.find(key); it != g_local_defaults.end()) {
    ++it->second;
    return {};
  }
  const std::string what = std::string(family_name(family)) + " route local default dev lo table " +
                           std::to_string(table);
  int rc = route_request(true, family, PolicyRoute{0, table, 0});
  if (rc == -EEXIST) {
    // The default slot is taken (same metric). A replace would take it from whoever
    // holds it; only ramjet's own route, left by a crash, is ours to take over.
    auto occupant = default_occupant(family, table);
    if (!occupant.ok()) return occupant.error();
    if (*occupant)
      return Error::config("cannot add the " + what + ": the table holds `" + **occupant +
                           "`, which is not ramjet's (set tun.handoff_table to a table nothing "
                           "else uses, or remove the route)");
    rc = 0;
  }
  if (rc != 0)
    return Error::kernel(-rc, "cannot add the " + what + ": " + std::strerror(-rc) +
                                  (rc == -EPERM ? " (needs CAP_NET_ADMIN)" : ""));
  g_local_defaults[key] = 1;
  return {};
}

void release_local_default(int family, std::uint32_t table) {
  std::lock_guard lock(g_local_defaults_mutex);
  auto it = g_local_defaults.find(std::make_pair(family, table));
  if (it == g_local_defaults.end()) return;
  if (--it->second > 0) return;
  g_local_defaults.erase(it);
  (void)route_request(false, family, PolicyRoute{0, table, 0});
}

unsigned local_default_users(int family, std::uint32_t table) {
  std::lock_guard lock(g_local_defaults_mutex);
  auto it = g_local_defaults.find(std::make_pair(family, table));
  return it == g_local_defaults.end() ? 0 : it->second;
}

}  // namespace ramjet::datapath
