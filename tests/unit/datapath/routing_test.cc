// Policy routing: parsing and naming what the kernel reports, telling ramjet's
// entries from look-alikes, and (as root, in a network namespace of the test's
// own thread) refusing a table that is not ramjet's and removing only its own.
#include "datapath/routing.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/fib_rules.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <thread>

#include "datapath/netlink.h"

namespace ramjet::datapath {
namespace {

constexpr PolicyRoute kRoute{0x524a0000, 21066, 0};

netlink::Request route_message(int family, std::uint8_t type, std::uint8_t protocol,
                               const char* dst, std::uint8_t dst_len, std::uint32_t oif) {
  netlink::Request m(RTM_NEWROUTE, 0);
  auto* rt = m.body<rtmsg>();
  rt->rtm_family = static_cast<std::uint8_t>(family);
  rt->rtm_type = type;
  rt->rtm_protocol = protocol;
  rt->rtm_dst_len = dst_len;
  rt->rtm_table = RT_TABLE_COMPAT;
  m.attr_u32(RTA_TABLE, kRoute.table);
  if (dst) {
    unsigned char addr[16];
    ::inet_pton(family, dst, addr);
    m.attr(RTA_DST, addr, family == AF_INET ? 4 : 16);
  }
  if (oif) m.attr_u32(RTA_OIF, oif);
  return m;
}

std::string name_of(std::uint32_t ifindex) {
  return ifindex == 1 ? "lo" : "";
}

TEST(Routing, OursIsExactlyTheLocalDefaultWithRamjetsProtocol) {
  auto ours = route_message(AF_INET, RTN_LOCAL, kRouteProtocol, nullptr, 0, 1);
  auto r = parse_route(*ours.hdr());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->table, 21066u);
  EXPECT_TRUE(is_ours(*r, kRoute, 1));
  EXPECT_EQ(describe(*r, name_of), "local default dev lo proto 82 (ramjet)");

  // The same route with another protocol, in another table, to another device or
  // prefix, is someone else's.
  auto stat = route_message(AF_INET6, RTN_LOCAL, RTPROT_STATIC, nullptr, 0, 1);
  auto s = parse_route(*stat.hdr());
  ASSERT_TRUE(s);
  EXPECT_FALSE(is_ours(*s, kRoute, 1));
  EXPECT_EQ(describe(*s, name_of), "local default (IPv6) dev lo proto static");
  EXPECT_FALSE(is_ours(*r, PolicyRoute{kRoute.mark, 52, 0}, 1));
  EXPECT_FALSE(is_ours(*r, kRoute, 7));
  auto prefix = route_message(AF_INET, RTN_UNREACHABLE, RTPROT_BOOT, "198.51.100.0", 24, 0);
  auto p = parse_route(*prefix.hdr());
  ASSERT_TRUE(p);
  EXPECT_FALSE(is_ours(*p, kRoute, 1));
  EXPECT_EQ(describe(*p, name_of), "unreachable 198.51.100.0/24 proto boot");
  auto dev = route_message(AF_INET, RTN_UNICAST, RTPROT_STATIC, "10.0.0.0", 8, 9);
  EXPECT_EQ(describe(*parse_route(*dev.hdr()), name_of), "10.0.0.0/8 dev ifindex 9 proto static");

  netlink::Request other(RTM_NEWRULE, 0);
  other.body<fib_rule_hdr>();
  EXPECT_FALSE(parse_route(*other.hdr())) << "not a route message";
}

TEST(Routing, RulesAreNamedAsIpRulePrintsThem) {
  netlink::Request m(RTM_NEWRULE, 0);
  auto* f = m.body<fib_rule_hdr>();
  f->family = AF_INET;
  f->action = FR_ACT_TO_TBL;
  f->table = 52;
  m.attr_u32(FRA_TABLE, 52);
  m.attr_u32(FRA_PRIORITY, 5270);
  auto tailscale = parse_rule(*m.hdr());
  ASSERT_TRUE(tailscale);
  EXPECT_EQ(describe(*tailscale), "5270: from all lookup 52");
  EXPECT_FALSE(is_ours(*tailscale, kRoute));

  netlink::Request o(RTM_NEWRULE, 0);
  auto* g = o.body<fib_rule_hdr>();
  g->family = AF_INET6;
  g->action = FR_ACT_TO_TBL;
  o.attr_u32(FRA_TABLE, kRoute.table);
  o.attr_u32(FRA_PRIORITY, kRoute.rule_priority());
  o.attr_u32(FRA_FWMARK, kRoute.mark);
  o.attr_u32(FRA_FWMASK, 0xffffffffu);
  o.attr_u8(FRA_PROTOCOL, kRouteProtocol);
  auto ours = parse_rule(*o.hdr());
  ASSERT_TRUE(ours);
  EXPECT_TRUE(is_ours(*ours, kRoute));
  EXPECT_EQ(describe(*ours), std::to_string(kRoute.rule_priority()) +
                                 ": from all fwmark 0x524a0000 lookup 21066 proto 82 (ramjet) "
                                 "(IPv6)");
  ours->protocol = RTPROT_STATIC;
  EXPECT_FALSE(is_ours(*ours, kRoute));
}

// Runs `fn` on a thread of its own in a fresh network namespace (lo up), so that
// routes and rules it adds never touch the host's.
void in_private_netns(const std::function<void()>& fn) {
  std::thread([&] {
    ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << std::strerror(errno);
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    std::strcpy(ifr.ifr_name, "lo");
    ASSERT_EQ(::ioctl(s, SIOCGIFFLAGS, &ifr), 0);
    ifr.ifr_flags |= IFF_UP;
    ASSERT_EQ(::ioctl(s, SIOCSIFFLAGS, &ifr), 0);
    ::close(s);
    fn();
  }).join();
}

// Adds a route to the table as another tool would (protocol static).
int add_foreign_route(const char* dst, std::uint8_t len, std::uint8_t type) {
  netlink::Request m(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
  auto* rt = m.body<rtmsg>();
  rt->rtm_family = AF_INET;
  rt->rtm_type = type;
  rt->rtm_protocol = RTPROT_STATIC;
  rt->rtm_scope = type == RTN_LOCAL ? RT_SCOPE_HOST : RT_SCOPE_UNIVERSE;
  rt->rtm_dst_len = len;
  m.attr_u32(RTA_TABLE, kRoute.table);
  if (len) {
    unsigned char addr[4];
    ::inet_pton(AF_INET, dst, addr);
    m.attr(RTA_DST, addr, 4);
  }
  if (type == RTN_LOCAL) m.attr_u32(RTA_OIF, ::if_nametoindex("lo"));
  return netlink::transact(m);
}

class RoutingNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: a network namespace and its routes";
  }
};

TEST_F(RoutingNetns, InstallAdoptRemove) {
  in_private_netns([] {
    auto empty = inspect_table(kRoute);
    ASSERT_TRUE(empty.ok()) << empty.error().message;
    EXPECT_TRUE(empty->foreign.empty());
    ASSERT_TRUE(install_policy_route(kRoute).ok());
    auto use = inspect_table(kRoute);
    ASSERT_TRUE(use.ok());
    EXPECT_TRUE(use->foreign.empty());
    EXPECT_TRUE(use->our_route[0] && use->our_route[1] && use->our_rule[0] && use->our_rule[1]);
    // A second install (a restart) adopts them.
    ASSERT_TRUE(install_policy_route(kRoute).ok());
    remove_policy_route(kRoute);
    auto gone = inspect_table(kRoute);
    ASSERT_TRUE(gone.ok());
    EXPECT_FALSE(gone->our_route[0] || gone->our_route[1] || gone->our_rule[0] ||
                 gone->our_rule[1]);
  });
}

TEST_F(RoutingNetns, ALookAlikeRouteIsAConflictAndNeverRemoved) {
  in_private_netns([] {
    ASSERT_EQ(add_foreign_route(nullptr, 0, RTN_LOCAL), 0);
    auto r = install_policy_route(kRoute);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message,
              "routing table 21066 is not ramjet's alone: it holds or is looked up by `local "
              "default dev lo proto static`. ramjet puts a catch-all local route there for "
              "escalated packets, which would capture that traffic: set datapath.route_table to "
              "a table nothing else uses, or remove the entry");
    auto use = inspect_table(kRoute);
    ASSERT_TRUE(use.ok());
    EXPECT_FALSE(use->our_rule[0] || use->our_rule[1]) << "a refused install adds nothing";
    remove_policy_route(kRoute);
    auto after = inspect_table(kRoute);
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(after->foreign.size(), 1u) << "the look-alike must survive a remove";
  });
}

TEST_F(RoutingNetns, RemoveLeavesRoutesAddedMeanwhile) {
  in_private_netns([] {
    ASSERT_TRUE(install_policy_route(kRoute).ok());
    ASSERT_EQ(add_foreign_route("198.51.100.0", 24, RTN_UNREACHABLE), 0);
    remove_policy_route(kRoute);
    auto use = inspect_table(kRoute);
    ASSERT_TRUE(use.ok());
    ASSERT_EQ(use->foreign.size(), 1u);
    EXPECT_EQ(use->foreign[0], "unreachable 198.51.100.0/24 proto static");
    EXPECT_FALSE(use->our_route[0] || use->our_route[1]);
  });
}

// The TUN hand-off's local default route (acquire_local_default): its own table.
constexpr PolicyRoute kHandoff{0, 21068, 0};

// A default route in the hand-off table, as `ip route add TYPE default table 21068 proto P`.
int add_handoff_default(int family, std::uint8_t type, std::uint8_t protocol) {
  netlink::Request m(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
  auto* rt = m.body<rtmsg>();
  rt->rtm_family = static_cast<std::uint8_t>(family);
  rt->rtm_type = type;
  rt->rtm_protocol = protocol;
  rt->rtm_scope = type == RTN_LOCAL ? RT_SCOPE_HOST : RT_SCOPE_UNIVERSE;
  m.attr_u32(RTA_TABLE, kHandoff.table);
  if (type == RTN_LOCAL) m.attr_u32(RTA_OIF, ::if_nametoindex("lo"));
  return netlink::transact(m);
}

bool handoff_route_there(int family) {
  auto use = inspect_table(kHandoff);
  EXPECT_TRUE(use.ok());
  return use.ok() && use->our_route[family == AF_INET6];
}

TEST_F(RoutingNetns, HandoffRouteIsSharedUntilTheLastRelease) {
  in_private_netns([] {
    for (int family : {AF_INET, AF_INET6}) {
      ASSERT_TRUE(acquire_local_default(family, kHandoff.table).ok());
      ASSERT_TRUE(acquire_local_default(family, kHandoff.table).ok()) << "a second ip endpoint";
      EXPECT_EQ(local_default_users(family, kHandoff.table), 2u);
      release_local_default(family, kHandoff.table);
      EXPECT_TRUE(handoff_route_there(family)) << "the other endpoint still needs it";
      release_local_default(family, kHandoff.table);
      EXPECT_FALSE(handoff_route_there(family));
      EXPECT_EQ(local_default_users(family, kHandoff.table), 0u);
      release_local_default(family, kHandoff.table);  // one too many: nothing happens
    }
  });
}

TEST_F(RoutingNetns, HandoffRouteNeverReplacesAnotherDefault) {
  in_private_netns([] {
    // Someone else's default in the table.
    ASSERT_EQ(add_handoff_default(AF_INET, RTN_BLACKHOLE, RTPROT_STATIC), 0);
    auto r = acquire_local_default(AF_INET, kHandoff.table);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message,
              "cannot add the IPv4 route local default dev lo table 21068: the table holds "
              "`blackhole default proto static`, which is not ramjet's (set tun.handoff_table "
              "to a table nothing else uses, or remove the route)");
    EXPECT_EQ(local_default_users(AF_INET, kHandoff.table), 0u) << "a refusal holds nothing";
    release_local_default(AF_INET, kHandoff.table);
    auto use = inspect_table(kHandoff);
    ASSERT_TRUE(use.ok());
    ASSERT_EQ(use->foreign.size(), 1u);
    EXPECT_EQ(use->foreign[0], "blackhole default proto static") << "left alone";
  });
}

TEST_F(RoutingNetns, HandoffRouteLeftByACrashIsAdoptedAndRemoved) {
  in_private_netns([] {
    // As a crashed run left it: `local default dev lo table 21068 proto 82`.
    ASSERT_EQ(add_handoff_default(AF_INET6, RTN_LOCAL, kRouteProtocol), 0);
    ASSERT_TRUE(handoff_route_there(AF_INET6));
    ASSERT_TRUE(acquire_local_default(AF_INET6, kHandoff.table).ok());
    release_local_default(AF_INET6, kHandoff.table);
    EXPECT_FALSE(handoff_route_there(AF_INET6));
  });
}

}  // namespace
}  // namespace ramjet::datapath
