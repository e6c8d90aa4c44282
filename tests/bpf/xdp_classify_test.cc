// xdp_classify through BPF_PROG_TEST_RUN: a table of
// {description, packet, rules, expected verdict, expected reason, expected bytes}
// plus sequence tests (rate limiting, flow table, escalation, events).
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/if_link.h>

#include <cctype>
#include <ctime>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "netns.h"
#include "packet_builder.h"
#include "xdp_fixture.h"

namespace ramjet::test {
namespace {

// Registered before RUN_ALL_TESTS: every test runs inside the private netns.
[[maybe_unused]] auto* const kNetnsEnv = ::testing::AddGlobalTestEnvironment(new NetnsEnvironment);

constexpr const char* kClient = "10.0.0.1";
constexpr const char* kServer = "10.99.0.2";  // has a neighbour entry in the netns
constexpr const char* kClient6 = "fd00::1";
constexpr const char* kServer6 = "fd00:99::2";
constexpr Mac kRj0 = {2, 0, 0, 0, 0x0a, 0x01};
constexpr Mac kNeigh = {2, 0, 0, 0, 0x0a, 0x02};

Bytes tcp4(uint16_t dport = 80, PacketBuilder::Ipv4Options o = {}, const char* dst = kServer) {
  return PacketBuilder().eth().ipv4(kClient, dst, o).tcp(40000, dport).payload(16).build();
}
Bytes tcp6(uint16_t dport = 80, const char* dst = kServer6) {
  return PacketBuilder().eth().ipv6(kClient6, dst).tcp(40000, dport).payload(16).build();
}
Bytes udp4(uint16_t dport = 53) {
  return PacketBuilder().eth().ipv4(kClient, kServer).udp(40000, dport).payload(8).build();
}
// IPv6 with `n` extension headers (hop-by-hop first, then alternating dest/routing).
Bytes ipv6_ext_chain(int n) {
  PacketBuilder b;
  b.eth().ipv6(kClient6, kServer6);
  for (int i = 0; i < n; i++)
    b.ipv6_ext(i == 0 ? kNextHdrHop : (i % 2 ? kNextHdrDest : kNextHdrRouting), 1);
  return b.tcp(40000, 80).payload(8).build();
}
// Cuts the frame to n bytes and shrinks the IP length field to match, so the
// parser gets past L3 and fails on the L4 (or extension) header.
Bytes cut_after_ip(Bytes p, size_t n) {
  p.resize(n);
  if (get16(&p[12]) == 0x0800)
    put16(&p[14 + 2], uint16_t(n - 14));
  else
    put16(&p[14 + 4], uint16_t(n - 14 - 40));
  return p;
}
uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}
Bytes with_byte(Bytes p, size_t at, uint8_t v) {
  p[at] = v;
  return p;
}
Bytes with_u16(Bytes p, size_t at, uint16_t v) {
  put16(&p[at], v);
  return p;
}

RuleSpec drop_tcp80() {
  return {.action = RAMJET_ACTION_DROP, .proto = IPPROTO_TCP, .port_min = 80, .port_max = 80};
}
RuleSpec drop_tcp80_v6() {
  RuleSpec r = drop_tcp80();
  r.src = r.dst = "::/0";
  return r;
}
RuleSpec fastpath_all() {
  return {.action = RAMJET_ACTION_FASTPATH};
}
RuleSpec fastpath_all_v6() {
  return {.src = "::/0", .dst = "::/0", .action = RAMJET_ACTION_FASTPATH};
}

struct Case {
  std::string description;
  std::function<Bytes()> packet;
  std::vector<RuleSpec> rules;
  int verdict;
  ramjet_stat reason;
  // Expected output frame from the input; empty: the frame must come back unchanged.
  std::function<Bytes(const Bytes&)> expected_out = {};
  Knobs knobs = {};
  std::function<void(XdpClassify&)> setup = {};
  bool needs_netns = false;
};

std::vector<Case> cases() {
  return {
      // --- L2 ---
      {"not IP (ARP) passes",
       [] { return PacketBuilder().eth().ethertype(0x0806).payload(28).build(); },
       {},
       XDP_PASS,
       RAMJET_STAT_PASS_NOT_IP},
      {"VLAN tag cut off",
       [] {
         return truncated(PacketBuilder().eth().vlan(10).ipv4(kClient, kServer).tcp(1, 80).build(),
                          16);
       },
       {},
       XDP_DROP,
       RAMJET_STAT_TRUNCATED_VLAN},
      {"three VLAN tags",
       [] {
         return PacketBuilder()
             .eth()
             .vlan(1, kEthP8021AD)
             .vlan(2)
             .vlan(3)
             .ipv4(kClient, kServer)
             .tcp(1, 80)
             .build();
       },
       {},
       XDP_DROP,
       RAMJET_STAT_VLAN_TOO_DEEP},
      {"802.1Q tagged TCP reaches the rule",
       [] { return PacketBuilder().eth().vlan(100).ipv4(kClient, kServer).tcp(1, 80).build(); },
       {drop_tcp80()},
       XDP_DROP,
       RAMJET_STAT_RULE_DROP},
      {"QinQ 802.1ad plus 802.1Q tagged TCP reaches the rule",
       [] {
         return PacketBuilder()
             .eth()
             .vlan(100, kEthP8021AD)
             .vlan(200)
             .ipv4(kClient, kServer)
             .tcp(1, 80)
             .build();
       },
       {drop_tcp80()},
       XDP_DROP,
       RAMJET_STAT_RULE_DROP},
      // --- IPv4 ---
      {"IPv4 header cut off",
       [] { return truncated(tcp4(), 14 + 19); },
       {},
       XDP_DROP,
       RAMJET_STAT_TRUNCATED_IP},
      {"IPv4 options cut off",
       [] { return truncated(tcp4(80, {.options = Bytes(8, 1)}), 14 + 24); },
       {},
       XDP_DROP,
       RAMJET_STAT_TRUNCATED_IP},
      {"IPv4 IHL below 5",
       [] { return with_byte(tcp4(), 14, 0x44); },
       {},
       XDP_DROP,
       RAMJET_STAT_BAD_IP_HEADER},
      {"IPv4 ethertype with version 6",
       [] { return with_byte(tcp4(), 14, 0x65); },
       {},
       XDP_DROP,
       RAMJET_STAT_BAD_IP_HEADER},
      {"IPv4 total length beyond frame",
       [] { return with_u16(tcp4(), 16, 1000); },
       {},
       XDP_DROP,
       RAMJET_STAT_TRUNCATED_IP},
      {"IPv4 total length below header",
       [] { return with_u16(tcp4(), 16, 19); },
       {},
       XDP_DROP,
       RAMJET_STAT_BAD_IP_HEADER},
      {"IPv4 options then TCP reaches the rule",
       [] {
         return tcp4(80, {.options = {1, 1, 1, 1, 0x94, 4, 0, 0}});
       },
       {drop_tcp80()},
       XDP_DROP,
       RAMJET_STAT_RULE_DROP},
      {"IPv4 first fragment (MF)",
       [] { return tcp4(80, {.frag_off = 0x2000}); },
       {},
       XDP_DROP,
       RAMJET_STAT_FRAGMENT},
      {"IPv4 later fragment (offset)",
       [] {
         return PacketBuilder().eth().ipv4(kClient, kServer, {.frag_off = 185}).payload(64).build();
       },
       {},
       XDP_DROP,
       RAMJET_STAT_FRAGMENT},
      {"IPv4 DF is not a fragment",
       [] { return tcp4(80, {.frag_off = 0x4000}); },
       {drop_tcp80()},
       XDP_DROP,
       RAMJET_STAT_RULE_DROP},
      {"IPv4 fragment passes with pass_fragments",
       [] { return tcp4(80, {.frag_off = 0x2000}); },
       {},
       XDP_PASS,
       RAMJET_STAT_PASS_FRAGMENT,
       {},
       {.pass_fragments = 1}},
      // --- L4 ---
      {"TCP header cut off",
       [] { return cut_after_ip(tcp4(), 14 + 20 + 19); },
       {},
       XDP_DROP,
       RAMJET_STAT_TRUNCATED_L4},
      {"TCP data offset below 5",
       [] {
         Bytes p = tcp4();
         p[14 + 20 + 12] = 4 << 4;
         return p;
       },
       {},
       XDP_DROP,
       RAMJET_STAT_BAD_L4_HEADER},
      {"UDP header cut off",
       [] {
         return cut_after_ip(PacketBuilder().eth().ipv4(kClient, kServer).udp(1, 53).build(),
                             14 + 20 + 7);
       },
       {},
       XDP_DROP,
       RAMJET_STAT_TRUNCATED_L4},
      {"ICMP header cut off",
       [] {
         return cut_after_ip(PacketBuilder().eth().ipv4(kClient, kServer).icmp(8, 0, 7, 1).build(),
                             14 + 20 + 7);
       },
       {},
       XDP_DROP,
       RAMJET_STAT_TRUNCATED_L4},
      {"ICMPv6 header cut off",
       [] {
         return cut_after_ip(
             PacketBuilder().eth().ipv6(kClient6, kServer6).icmpv6(128, 0, 7, 1).build(),
             14 + 40 + 7);
       },
       {},
       XDP_DROP,
       RAMJET_STAT_TRUNCATED_L4},
      // --- IPv6 ---
      {"IPv6 header cut off",
       [] { return truncated(tcp6(), 14 + 39); },
       {},
       XDP_DROP,
       RAMJET_STAT_TRUNCATED_IP},
      {"IPv6 payload length beyond frame",
       [] { return with_u16(tcp6(), 14 + 4, 500); },
       {},
       XDP_DROP,
       RAMJET_STAT_TRUNCATED_IP},
      {"IPv6 extension header cut off",
       [] { return cut_after_ip(ipv6_ext_chain(1), 14 + 40 + 1); },
       {},
       XDP_DROP,
       RAMJET_STAT_TRUNCATED_IPV6_EXT},
      {"IPv6 extension header longer than frame",
       [] {
         Bytes p = PacketBuilder().eth().ipv6(kClient6, kServer6).ipv6_ext(kNextHdrHop, 1).build();
         p[14 + 40 + 1] = 5;  // claims 48 bytes, 8 present
         return p;
       },
       {},
       XDP_DROP,
       RAMJET_STAT_TRUNCATED_IPV6_EXT},
      {"IPv6 six extension headers then TCP reaches the rule",
       [] { return ipv6_ext_chain(6); },
       {drop_tcp80_v6()},
       XDP_DROP,
       RAMJET_STAT_RULE_DROP},
      {"IPv6 seven extension headers",
       [] { return ipv6_ext_chain(7); },
       {},
       XDP_DROP,
       RAMJET_STAT_IPV6_EXT_TOO_DEEP},
      {"IPv6 fragment header, first fragment",
       [] {
         return PacketBuilder()
             .eth()
             .ipv6(kClient6, kServer6)
             .ipv6_frag(0, true)
             .tcp(1, 80)
             .build();
       },
       {},
       XDP_DROP,
       RAMJET_STAT_FRAGMENT},
      {"IPv6 fragment header, later fragment",
       [] {
         return PacketBuilder()
             .eth()
             .ipv6(kClient6, kServer6)
             .ipv6_frag(100, false)
             .payload(32)
             .build();
       },
       {},
       XDP_DROP,
       RAMJET_STAT_FRAGMENT},
      {"IPv6 atomic fragment reaches the rule",
       [] {
         return PacketBuilder()
             .eth()
             .ipv6(kClient6, kServer6)
             .ipv6_ext(kNextHdrHop)
             .ipv6_frag(0, false)
             .tcp(1, 80)
             .build();
       },
       {drop_tcp80_v6()},
       XDP_DROP,
       RAMJET_STAT_RULE_DROP},
      // --- policy ---
      {"no rule: default pass", [] { return tcp4(); }, {}, XDP_PASS, RAMJET_STAT_PASS_DEFAULT},
      {"no rule: default drop",
       [] { return tcp4(); },
       {},
       XDP_DROP,
       RAMJET_STAT_DEFAULT_DROP,
       {},
       {.default_action = RAMJET_ACTION_DROP}},
      {"rule pass",
       [] { return tcp4(); },
       {{.action = RAMJET_ACTION_PASS}},
       XDP_PASS,
       RAMJET_STAT_PASS_RULE},
      {"rule escalate",
       [] { return tcp4(443); },
       {{.action = RAMJET_ACTION_ESCALATE, .proto = IPPROTO_TCP, .port_min = 443, .port_max = 443}},
       XDP_PASS,
       RAMJET_STAT_ESCALATE},
      {"rule drop by port range",
       [] { return tcp4(8080); },
       {{.action = RAMJET_ACTION_DROP, .proto = IPPROTO_TCP, .port_min = 8000, .port_max = 8999}},
       XDP_DROP,
       RAMJET_STAT_RULE_DROP},
      {"port outside range falls to default",
       [] { return tcp4(81); },
       {drop_tcp80()},
       XDP_PASS,
       RAMJET_STAT_PASS_DEFAULT},
      {"protocol mismatch falls to default",
       [] { return udp4(80); },
       {drop_tcp80()},
       XDP_PASS,
       RAMJET_STAT_PASS_DEFAULT},
      {"ifindex mismatch falls to default",
       [] { return tcp4(); },
       {{.action = RAMJET_ACTION_DROP, .ifindex = 999}},
       XDP_PASS,
       RAMJET_STAT_PASS_DEFAULT},
      {"ifindex of lo matches",
       [] { return tcp4(); },
       {{.action = RAMJET_ACTION_DROP, .ifindex = 1}},
       XDP_DROP,
       RAMJET_STAT_RULE_DROP},
      {"src CIDR mismatch falls to default",
       [] { return tcp4(); },
       {{.src = "192.168.0.0/16", .action = RAMJET_ACTION_DROP}},
       XDP_PASS,
       RAMJET_STAT_PASS_DEFAULT},
      {"first candidate misses, second matches",
       [] { return tcp4(); },
       {{.action = RAMJET_ACTION_DROP, .proto = IPPROTO_UDP}, {.action = RAMJET_ACTION_PASS}},
       XDP_PASS,
       RAMJET_STAT_PASS_RULE},
      {"two candidates miss, third matches",
       [] { return tcp4(); },
       {{.action = RAMJET_ACTION_PASS, .proto = IPPROTO_UDP},
        {.action = RAMJET_ACTION_PASS, .proto = IPPROTO_ICMP},
        drop_tcp80()},
       XDP_DROP,
       RAMJET_STAT_RULE_DROP},
      {"lower slot wins: pass before drop",
       [] { return tcp4(); },
       {{.src = "10.0.0.0/8", .action = RAMJET_ACTION_PASS},
        {.src = "10.0.0.1/32", .action = RAMJET_ACTION_DROP}},
       XDP_PASS,
       RAMJET_STAT_PASS_RULE},
      {"lower slot wins: drop before pass",
       [] { return tcp4(); },
       {{.src = "10.0.0.1/32", .action = RAMJET_ACTION_DROP},
        {.src = "10.0.0.0/8", .action = RAMJET_ACTION_PASS}},
       XDP_DROP,
       RAMJET_STAT_RULE_DROP},
      {"shorter prefix rule still applies under a longer prefix",
       [] { return tcp4(22); },
       {{.src = "10.0.0.0/8",
         .action = RAMJET_ACTION_DROP,
         .proto = IPPROTO_TCP,
         .port_min = 22,
         .port_max = 22},
        {.src = "10.0.0.1/32", .dst = "10.99.0.0/16", .action = RAMJET_ACTION_PASS}},
       XDP_DROP,
       RAMJET_STAT_RULE_DROP},
      {"IPv4 rule does not match IPv6",
       [] { return tcp6(); },
       {drop_tcp80()},
       XDP_PASS,
       RAMJET_STAT_PASS_DEFAULT},
      {"IPv6 CIDR rule",
       [] { return tcp6(); },
       {{.src = "fd00::/16", .dst = "fd00:99::/32", .action = RAMJET_ACTION_DROP}},
       XDP_DROP,
       RAMJET_STAT_RULE_DROP},
      {"ICMP echo by protocol",
       [] { return PacketBuilder().eth().ipv4(kClient, kServer).icmp(8, 0, 7, 1).build(); },
       {{.action = RAMJET_ACTION_DROP, .proto = IPPROTO_ICMP}},
       XDP_DROP,
       RAMJET_STAT_RULE_DROP},
      {"ICMP never matches a port range",
       [] { return PacketBuilder().eth().ipv4(kClient, kServer).icmp(8, 0, 80, 1).build(); },
       {{.action = RAMJET_ACTION_DROP, .port_min = 80, .port_max = 80}},
       XDP_PASS,
       RAMJET_STAT_PASS_DEFAULT},
      {"ICMPv6 echo by protocol",
       [] { return PacketBuilder().eth().ipv6(kClient6, kServer6).icmpv6(128, 0, 7, 1).build(); },
       {{.src = "::/0", .dst = "::/0", .action = RAMJET_ACTION_DROP, .proto = kProtoIcmpv6}},
       XDP_DROP,
       RAMJET_STAT_RULE_DROP},
      {"denylisted source",
       [] { return tcp4(); },
       {{.action = RAMJET_ACTION_PASS}},
       XDP_DROP,
       RAMJET_STAT_DENYLIST,
       {},
       {},
       [](XdpClassify& x) { x.deny("10.0.0.0/24"); }},
      {"denylisted IPv6 source",
       [] { return tcp6(); },
       {},
       XDP_DROP,
       RAMJET_STAT_DENYLIST,
       {},
       {},
       [](XdpClassify& x) { x.deny("fd00::1/128"); }},
      {"expired denylist entry is ignored",
       [] { return tcp4(); },
       {},
       XDP_PASS,
       RAMJET_STAT_PASS_DEFAULT,
       {},
       {},
       [](XdpClassify& x) { x.deny("10.0.0.0/24", 1); }},
      {"denylist entry with a future deadline drops",
       [] { return tcp4(); },
       {},
       XDP_DROP,
       RAMJET_STAT_DENYLIST,
       {},
       {},
       [](XdpClassify& x) { x.deny("10.0.0.1/32", monotonic_ns() + 60'000'000'000ull); }},
      {"denylist entry is not consulted while deny_count is 0",
       [] { return tcp4(); },
       {},
       XDP_PASS,
       RAMJET_STAT_PASS_DEFAULT,
       {},
       {},
       [](XdpClassify& x) {
         // Breaks the maps.h contract on purpose: pins that the count gates the lookup.
         x.deny("10.0.0.0/24");
         x.skel()->data->deny_count = 0;
       }},
      {"rules are not consulted while rule_count is 0",
       [] { return tcp4(); },
       {drop_tcp80()},
       XDP_PASS,
       RAMJET_STAT_PASS_DEFAULT,
       {},
       {},
       [](XdpClassify& x) {
         x.skel()->data->rule_count = 0;  // breaks the contract on purpose, as above
         x.skel()->data->policy_generation++;
       }},
      {"denylist applies to fragments",
       [] { return tcp4(80, {.frag_off = 0x2000}); },
       {},
       XDP_DROP,
       RAMJET_STAT_DENYLIST,
       {},
       {},
       [](XdpClassify& x) { x.deny("10.0.0.1/32"); }},
      // --- fastpath (needs the netns topology) ---
      {"fastpath IPv4 rewrite and redirect",
       [] { return tcp4(); },
       {fastpath_all()},
       XDP_REDIRECT,
       RAMJET_STAT_FASTPATH_REDIRECT,
       [](const Bytes&) {
         // Built from scratch with TTL 63: checks the incremental checksum update.
         return PacketBuilder()
             .eth(kNeigh, kRj0)
             .ipv4(kClient, kServer, {.ttl = 63})
             .tcp(40000, 80)
             .payload(16)
             .build();
       },
       {},
       {},
       true},
      {"fastpath IPv6 rewrite and redirect",
       [] { return tcp6(); },
       {fastpath_all_v6()},
       XDP_REDIRECT,
       RAMJET_STAT_FASTPATH_REDIRECT,
       [](const Bytes&) {
         return PacketBuilder()
             .eth(kNeigh, kRj0)
             .ipv6(kClient6, kServer6, 63)
             .tcp(40000, 80)
             .payload(16)
             .build();
       },
       {},
       {},
       true},
      {"fastpath without neighbour passes",
       [] { return tcp4(80, {}, "10.99.0.3"); },
       {fastpath_all()},
       XDP_PASS,
       RAMJET_STAT_FIB_NO_NEIGH,
       {},
       {},
       {},
       true},
      {"fastpath IPv6 without neighbour passes",
       [] { return tcp6(80, "fd00:99::3"); },
       {fastpath_all_v6()},
       XDP_PASS,
       RAMJET_STAT_FIB_NO_NEIGH,
       {},
       {},
       {},
       true},
      {"multicast IPv4 destination goes to the stack, not the fast path",
       [] { return PacketBuilder().eth().ipv4(kClient, "224.0.0.251").udp(5353, 5353).build(); },
       {fastpath_all()},
       XDP_PASS,
       RAMJET_STAT_PASS_HOST_SCOPE},
      {"limited broadcast goes to the stack",
       [] { return PacketBuilder().eth().ipv4("0.0.0.0", "255.255.255.255").udp(68, 67).build(); },
       {fastpath_all()},
       XDP_PASS,
       RAMJET_STAT_PASS_HOST_SCOPE},
      {"IPv4 link-local destination goes to the stack",
       [] { return tcp4(80, {}, "169.254.1.1"); },
       {fastpath_all()},
       XDP_PASS,
       RAMJET_STAT_PASS_HOST_SCOPE},
      {"MLD report with hop limit 1 goes to the stack, not TTL-expired",
       [] { return PacketBuilder().eth().ipv6("fe80::1", "ff02::16", 1).icmpv6(143, 0).build(); },
       {fastpath_all_v6()},
       XDP_PASS,
       RAMJET_STAT_PASS_HOST_SCOPE},
      {"IPv6 link-local destination goes to the stack",
       [] { return tcp6(80, "fe80::2"); },
       {fastpath_all_v6()},
       XDP_PASS,
       RAMJET_STAT_PASS_HOST_SCOPE},
      {"fastpath TTL 1 passes for ICMP time exceeded",
       [] { return tcp4(80, {.ttl = 1}); },
       {fastpath_all()},
       XDP_PASS,
       RAMJET_STAT_FIB_TTL_EXPIRED,
       {},
       {},
       {},
       true},
      {"fastpath beyond egress MTU passes",
       [] { return PacketBuilder().eth().ipv4(kClient, kServer).udp(1, 2).payload(1300).build(); },
       {fastpath_all()},
       XDP_PASS,
       RAMJET_STAT_FIB_FRAG_NEEDED,
       {},
       {},
       {},
       true},
      {"fastpath without route passes",
       [] { return tcp4(80, {}, "192.0.2.1"); },
       {fastpath_all()},
       XDP_PASS,
       RAMJET_STAT_FIB_NO_ROUTE,
       {},
       {},
       {},
       true},
      {"fastpath tagged frame passes",
       [] { return PacketBuilder().eth().vlan(7).ipv4(kClient, kServer).tcp(1, 80).build(); },
       {fastpath_all()},
       XDP_PASS,
       RAMJET_STAT_FASTPATH_VLAN,
       {},
       {},
       {},
       true},
  };
}

std::string test_name(const std::string& description) {
  std::string n;
  for (char c : description) n += std::isalnum(uint8_t(c)) ? c : '_';
  return n;
}

// gtest prints parameters; the description says it all.
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.description;
}

class ClassifyTable : public ::testing::TestWithParam<Case> {};

// A table row through a fresh skeleton's XDP program (or its tc hook program):
// the input, the program's result, and the verdict stats that moved.
struct RowRun {
  Bytes in;
  RunResult r;
  std::map<std::string, int64_t> deltas;
  bool metadata = true;  // XdpClassify::metadata()
};

RowRun run_row(const Case& c, bool tc) {
  XdpClassify xdp(c.knobs);
  if (!c.rules.empty()) xdp.set_rules(c.rules);
  if (c.setup) c.setup(xdp);
  RowRun row{c.packet(), {}, {}, xdp.metadata()};
  StatArray before = xdp.stats();
  row.r = tc ? xdp.run_tc(row.in) : xdp.run(row.in);
  row.deltas = verdict_deltas(before, xdp.stats());
  return row;
}

TEST_P(ClassifyTable, Verdict) {
  const Case& c = GetParam();
  if (c.needs_netns && !Netns::get().ready) GTEST_SKIP() << Netns::get().why_not;
  auto [in, r, deltas, metadata] = run_row(c, false);

  if (!metadata && c.reason == RAMJET_STAT_ESCALATE) {
    // A kernel without XDP metadata (ramjetd runs tc there): the note cannot be
    // left, and an escalated packet passed without it would bypass the engine.
    EXPECT_EQ(r.retval, XDP_DROP);
    std::map<std::string, int64_t> want{{ramjet_stat_names[RAMJET_STAT_ESCALATE_NO_META], 1}};
    EXPECT_EQ(deltas, want);
    return;
  }
  EXPECT_EQ(r.retval, c.verdict);
  // Exactly one verdict stat moves, by one: the expected reason.
  std::map<std::string, int64_t> want{{ramjet_stat_names[c.reason], 1}};
  EXPECT_EQ(deltas, want);
  // Packets TC must finish carry a ramjet_xdp_meta record in front (test-run
  // output starts at data_meta); nothing else does, nor anything on a kernel that
  // refuses XDP metadata.
  uint8_t want_meta = !metadata                              ? RAMJET_ACTION_NONE
                      : c.reason == RAMJET_STAT_ESCALATE     ? RAMJET_ACTION_ESCALATE
                      : c.reason == RAMJET_STAT_FIB_NO_NEIGH ? RAMJET_ACTION_FASTPATH
                                                             : RAMJET_ACTION_NONE;
  Bytes out = r.out;
  if (want_meta != RAMJET_ACTION_NONE) {
    ramjet_xdp_meta meta{};
    ASSERT_GE(out.size(), sizeof(meta));
    std::memcpy(&meta, out.data(), sizeof(meta));
    EXPECT_EQ(meta.magic, RAMJET_META_MAGIC);
    EXPECT_EQ(meta.verdict, want_meta);
    EXPECT_EQ(meta.reason, c.reason);
    out.erase(out.begin(), out.begin() + sizeof(meta));
  }
  Bytes expected = c.expected_out ? c.expected_out(in) : in;
  EXPECT_EQ(out, expected);
  if (c.expected_out && r.out.size() > 34 && get16(&r.out[12]) == 0x0800) {
    EXPECT_TRUE(ipv4_header_checksum_ok(r.out));
  }
}

INSTANTIATE_TEST_SUITE_P(Xdp, ClassifyTable, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return test_name(info.param.description); });

// The same table through the tc hook (datapath.fastpath_hook tc): one
// classification, so the same reason and the same output frame; only the verdict
// is spelled in TC's terms. Escalation (delivered at once in TC, see
// tc_fallback_test) and a missing neighbour (TcFastpath below) end differently.
constexpr int kTcActOk = 0, kTcActShot = 2, kTcActRedirect = 7;

int tc_verdict_of(int xdp_verdict) {
  switch (xdp_verdict) {
    case XDP_DROP:
      return kTcActShot;
    case XDP_REDIRECT:
      return kTcActRedirect;
    default:
      return kTcActOk;
  }
}

// A test run refuses an skb whose frame cannot hold the IP header its ethertype
// names (-EINVAL): such a frame never reaches TC, so those rows stay XDP's.
bool skb_test_run_takes(const Bytes& frame) {
  if (frame.size() < 14) return false;
  uint16_t type = get16(&frame[12]);
  return !((type == 0x0800 && frame.size() < 14 + 20) ||
           (type == 0x86DD && frame.size() < 14 + 40));
}

std::vector<Case> tc_cases() {
  std::vector<Case> out;
  for (auto& c : cases())
    if (c.reason != RAMJET_STAT_ESCALATE && c.reason != RAMJET_STAT_ESCALATE_NO_META &&
        c.reason != RAMJET_STAT_FIB_NO_NEIGH && skb_test_run_takes(c.packet()))
      out.push_back(std::move(c));
  return out;
}

class TcClassifyTable : public ::testing::TestWithParam<Case> {};

TEST_P(TcClassifyTable, Verdict) {
  const Case& c = GetParam();
  if (c.needs_netns && !Netns::get().ready) GTEST_SKIP() << Netns::get().why_not;
  auto [in, r, deltas, metadata] = run_row(c, true);
  (void)metadata;  // tc needs none

  EXPECT_EQ(r.retval, tc_verdict_of(c.verdict));
  std::map<std::string, int64_t> want{{ramjet_stat_names[c.reason], 1}};
  EXPECT_EQ(deltas, want);
  Bytes expected = c.expected_out ? c.expected_out(in) : in;
  EXPECT_EQ(r.out, expected);
}

INSTANTIATE_TEST_SUITE_P(Tc, TcClassifyTable, ::testing::ValuesIn(tc_cases()),
                         [](const auto& info) { return test_name(info.param.description); });

// --- sequences ---

// TRUNCATED_ETH is a verifier-required bound that no frame can reach through
// BPF_PROG_TEST_RUN: the kernel refuses frames shorter than an Ethernet header
// (and bpf_xdp_adjust_head/tail refuse to shrink below one). Pin that fact, so
// the day it changes this test says the table should grow a runt case.
TEST(XdpRunt, KernelRefusesFramesShorterThanEthernet) {
  XdpClassify xdp;
  for (size_t n : {size_t(13), size_t(14)}) {
    Bytes in = truncated(tcp4(), n), out(64);
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    opts.data_in = in.data();
    opts.data_out = out.data();
    opts.data_size_in = uint32_t(in.size());
    opts.data_size_out = uint32_t(out.size());
    int err = bpf_prog_test_run_opts(xdp.prog_fd(), &opts);
    if (n < 14) {
      EXPECT_EQ(err, -EINVAL) << n << " bytes";
    } else {
      EXPECT_EQ(err, 0);
      EXPECT_EQ(opts.retval, uint32_t(XDP_DROP));  // 14 bytes of IPv4 EtherType, no header
    }
  }
}

int64_t delta(const StatArray& before, const StatArray& after, ramjet_stat s) {
  return int64_t(after[s] - before[s]);
}

TEST(XdpRateLimit, BurstPassesThenDropsPerSource) {
  XdpClassify xdp;
  xdp.set_rules({{.action = RAMJET_ACTION_RATELIMIT, .rate_pps = 1, .rate_burst = 3}});
  Bytes a = tcp4();
  StatArray before = xdp.stats();
  for (int i = 0; i < 3; i++) EXPECT_EQ(xdp.run(a).retval, XDP_PASS) << "packet " << i;
  EXPECT_EQ(xdp.run(a).retval, XDP_DROP);
  EXPECT_EQ(xdp.run(a).retval, XDP_DROP);
  // Another source has its own bucket.
  Bytes b = PacketBuilder().eth().ipv4("10.0.0.2", kServer).tcp(40000, 80).build();
  EXPECT_EQ(xdp.run(b).retval, XDP_PASS);
  StatArray after = xdp.stats();
  EXPECT_EQ(delta(before, after, RAMJET_STAT_PASS_RULE), 4);
  EXPECT_EQ(delta(before, after, RAMJET_STAT_RATE_LIMITED), 2);
}

// deny_count gates the denylist lookup (maps.h): the fixture keeps it the way
// userspace must, and a denylisted source drops as soon as its entry exists,
// until the last covering entry is gone.
TEST(XdpDenylist, CountTracksEntriesAndGatesTheLookup) {
  XdpClassify xdp;
  auto& count = xdp.skel()->data->deny_count;
  EXPECT_EQ(xdp.run(tcp4()).retval, XDP_PASS);  // empty: lookup skipped
  xdp.deny("10.0.0.1/32");
  EXPECT_EQ(count, 1u);
  EXPECT_EQ(xdp.run(tcp4()).retval, XDP_DROP);
  xdp.deny("10.0.0.1/32", monotonic_ns() + 60'000'000'000ull);  // same prefix: no new entry
  xdp.deny("10.0.0.0/8");
  EXPECT_EQ(count, 2u);
  xdp.undeny("10.0.0.1/32");
  EXPECT_EQ(count, 1u);
  StatArray before = xdp.stats();
  EXPECT_EQ(xdp.run(tcp4()).retval, XDP_DROP);  // still covered by 10.0.0.0/8
  EXPECT_EQ(delta(before, xdp.stats(), RAMJET_STAT_DENYLIST), 1);
  xdp.undeny("10.0.0.0/8");
  xdp.undeny("10.0.0.0/8");  // not there any more: no decrement
  EXPECT_EQ(count, 0u);
  EXPECT_EQ(xdp.run(tcp4()).retval, XDP_PASS);
}

// rule_count gates the prefix tries (maps.h): installing rules sets it, and
// removing every rule brings the default verdict back.
TEST(XdpPolicy, RuleCountFollowsTheRuleSet) {
  XdpClassify xdp;
  EXPECT_EQ(xdp.run(tcp4()).retval, XDP_PASS);
  xdp.set_rules({drop_tcp80()});
  EXPECT_EQ(xdp.skel()->data->rule_count, 1u);
  EXPECT_EQ(xdp.run(tcp4()).retval, XDP_DROP);
  xdp.set_rules({});
  EXPECT_EQ(xdp.skel()->data->rule_count, 0u);
  StatArray before = xdp.stats();
  EXPECT_EQ(xdp.run(tcp4()).retval, XDP_PASS);
  EXPECT_EQ(delta(before, xdp.stats(), RAMJET_STAT_PASS_DEFAULT), 1);
}

// The protocol / port filters only narrow the candidates: against a reference
// matcher (first rule in order whose every field matches), 256 random rules and
// packets of every protocol and a spread of ports pick the same rule. Interface
// rules (not in the filters) make the scan go on past a filtered-in candidate.
TEST(XdpPolicy, FiltersPickTheSameRuleAsAFieldByFieldScan) {
  std::mt19937 rng(4);
  const char* cidrs[] = {"0.0.0.0/0", "10.0.0.0/8", "10.99.0.0/16", "192.168.0.0/16"};
  const uint8_t protos[] = {0, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP};
  const uint16_t ports[] = {0, 1, 53, 79, 80, 81, 443, 1000, 8080, 65535};
  std::vector<RuleSpec> rules;
  for (int i = 0; i < RAMJET_MAX_RULES; i++) {
    RuleSpec r{.src = cidrs[rng() % 4], .dst = cidrs[rng() % 4], .action = RAMJET_ACTION_PASS};
    r.proto = protos[rng() % 4];
    switch (rng() % 3) {
      case 0:
        break;  // any port
      case 1:
        r.port_min = r.port_max = ports[rng() % 10];
        break;
      default:
        r.port_min = uint16_t(rng() % 2000);
        r.port_max = uint16_t(r.port_min + rng() % 100);
    }
    const uint32_t ifindexes[] = {0, 0, 1, 999};
    r.ifindex = ifindexes[rng() % 4];
    rules.push_back(r);
  }
  // Rarely-matching rules first so most packets scan past many candidates.
  for (int i = 0; i < 200; i++) rules[size_t(i)].ifindex = 999;
  XdpClassify xdp;
  xdp.set_rules(rules);

  auto reference = [&](uint8_t proto, bool has_ports, uint16_t dport) -> int {
    for (size_t i = 0; i < rules.size(); i++) {
      const RuleSpec& r = rules[i];
      Cidr src = Cidr::parse(r.src), dst = Cidr::parse(r.dst);
      if (!src.contains(Cidr::parse(kClient)) || !dst.contains(Cidr::parse(kServer))) continue;
      if (r.ifindex && r.ifindex != 1) continue;  // test runs arrive on lo
      if (r.proto && r.proto != proto) continue;
      bool any_port =
          r.port_min == RAMJET_RULE_ANY_PORT_MIN && r.port_max == RAMJET_RULE_ANY_PORT_MAX;
      if (!any_port && (!has_ports || dport < r.port_min || dport > r.port_max)) continue;
      return int(i);
    }
    return -1;
  };
  uint16_t sport = 20000;
  int matched = 0;
  for (uint8_t proto : {uint8_t(IPPROTO_TCP), uint8_t(IPPROTO_UDP), uint8_t(IPPROTO_ICMP)}) {
    for (uint16_t dport : ports) {
      sport++;
      PacketBuilder b;
      b.eth().ipv4(kClient, kServer);
      if (proto == IPPROTO_TCP) b.tcp(sport, dport);
      if (proto == IPPROTO_UDP) b.udp(sport, dport);
      if (proto == IPPROTO_ICMP) b.icmp(8, 0, sport, 1);
      int want = reference(proto, proto != IPPROTO_ICMP, dport);
      SCOPED_TRACE("proto " + std::to_string(proto) + " port " + std::to_string(dport) +
                   " want rule " + std::to_string(want));
      ASSERT_EQ(xdp.run(b.build()).retval, XDP_PASS);
      int got = -1;
      for (const auto& [key, flow] : xdp.flows())
        if (ntohs(key.port_lo) == sport || ntohs(key.port_hi) == sport) got = int(flow.rule_index);
      EXPECT_EQ(got, want);
      matched += want >= 0;
    }
  }
  EXPECT_GT(matched, 20);  // the rule set is not vacuous
}

TEST(XdpRateLimit, ZeroBurstDropsEverything) {
  XdpClassify xdp;
  xdp.set_rules({{.action = RAMJET_ACTION_RATELIMIT, .rate_pps = 1000, .rate_burst = 0}});
  EXPECT_EQ(xdp.run(tcp4()).retval, XDP_DROP);
}

TEST(XdpFlowTable, BothDirectionsShareOneFlow) {
  XdpClassify xdp;
  xdp.set_rules({{.action = RAMJET_ACTION_PASS, .rule_id = 7, .endpoint_id = 3}});
  Bytes syn = PacketBuilder().eth().ipv4(kServer, kClient).tcp(443, 40000, kTcpSyn).build();
  Bytes synack =
      PacketBuilder().eth().ipv4(kClient, kServer).tcp(40000, 443, kTcpSyn | kTcpAck).build();
  Bytes ack =
      PacketBuilder().eth().ipv4(kServer, kClient).tcp(443, 40000, kTcpAck).payload(100).build();
  StatArray before = xdp.stats();
  for (const Bytes* p : {&syn, &synack, &ack}) EXPECT_EQ(xdp.run(*p).retval, XDP_PASS);
  StatArray after = xdp.stats();

  auto flows = xdp.flows();
  ASSERT_EQ(flows.size(), 1u);
  const auto& [key, flow] = flows[0];
  EXPECT_EQ(key.family, RAMJET_FAMILY_IPV4);
  EXPECT_EQ(key.proto, IPPROTO_TCP);
  EXPECT_NE(flow.flow_id, 0u);
  EXPECT_EQ(flow.verdict, RAMJET_ACTION_PASS);
  EXPECT_EQ(flow.rule_id, 7u);
  EXPECT_EQ(flow.endpoint_id, 3u);
  EXPECT_EQ(flow.dir[RAMJET_DIR_ORIGINAL].packets, 2u);
  EXPECT_EQ(flow.dir[RAMJET_DIR_ORIGINAL].bytes, syn.size() + ack.size());
  EXPECT_EQ(flow.dir[RAMJET_DIR_REPLY].packets, 1u);
  EXPECT_EQ(flow.dir[RAMJET_DIR_REPLY].bytes, synack.size());
  EXPECT_EQ(flow.tcp_flags[RAMJET_DIR_ORIGINAL], kTcpSyn | kTcpAck);
  EXPECT_EQ(flow.tcp_flags[RAMJET_DIR_REPLY], kTcpSyn | kTcpAck);
  EXPECT_LE(flow.first_seen_ns, flow.last_seen_ns);
  // The originator (10.99.0.2:443) sorts above 10.0.0.1:40000, so it is key.hi.
  EXPECT_EQ(flow.origin_side, 1);
  EXPECT_EQ(delta(before, after, RAMJET_STAT_FLOW_NEW), 1);
  EXPECT_EQ(delta(before, after, RAMJET_STAT_FLOW_HIT), 2);
  EXPECT_EQ(delta(before, after, RAMJET_STAT_PASS_RULE), 3);
}

// The inline fast parser (untagged, IPv4 without options, IPv6 without extension
// headers) and the full parser (everything else) must describe a packet the
// same way: the same connection seen through both lands in one flow, with the
// same verdict, ports and counters.
TEST(XdpFlowTable, FastAndFullParserBuildTheSameFlow) {
  XdpClassify xdp;
  xdp.set_rules({{.action = RAMJET_ACTION_PASS},
                 {.src = "::/0", .dst = "::/0", .action = RAMJET_ACTION_PASS}});
  struct Case {
    const char* name;
    Bytes fast, full;
  };
  const Case cases[] = {
      {"tcp4, IPv4 options",
       PacketBuilder().eth().ipv4(kClient, kServer).tcp(40000, 80, kTcpSyn).payload(4).build(),
       PacketBuilder()
           .eth()
           .ipv4(kClient, kServer, {.options = {1, 1, 1, 1}})
           .tcp(40000, 80, kTcpAck)
           .payload(4)
           .build()},
      {"udp4 reply, VLAN tag",
       PacketBuilder().eth().ipv4(kServer, kClient).udp(53, 40001).payload(4).build(),
       PacketBuilder().eth().vlan(10).ipv4(kServer, kClient).udp(53, 40001).payload(4).build()},
      {"tcp6, hop-by-hop header",
       PacketBuilder().eth().ipv6(kClient6, kServer6).tcp(40000, 80, kTcpSyn).build(),
       PacketBuilder()
           .eth()
           .ipv6(kClient6, kServer6)
           .ipv6_ext(kNextHdrHop, 1)
           .tcp(40000, 80, kTcpAck)
           .build()},
      {"icmp6 echo, destination options header",
       PacketBuilder().eth().ipv6(kClient6, kServer6).icmpv6(128, 0, 77).build(),
       PacketBuilder()
           .eth()
           .ipv6(kClient6, kServer6)
           .ipv6_ext(kNextHdrDest, 1)
           .icmpv6(128, 0, 77)
           .build()},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    size_t flows_before = xdp.flows().size();
    StatArray before = xdp.stats();
    EXPECT_EQ(xdp.run(c.fast).retval, XDP_PASS);
    EXPECT_EQ(xdp.run(c.full).retval, XDP_PASS);
    StatArray after = xdp.stats();
    EXPECT_EQ(delta(before, after, RAMJET_STAT_FLOW_NEW), 1);
    EXPECT_EQ(delta(before, after, RAMJET_STAT_FLOW_HIT), 1);
    EXPECT_EQ(xdp.flows().size(), flows_before + 1);
  }
  for (const auto& [key, flow] : xdp.flows()) {
    EXPECT_EQ(flow.dir[RAMJET_DIR_ORIGINAL].packets, 2u);
    EXPECT_EQ(flow.dir[RAMJET_DIR_REPLY].packets, 0u);
  }
}

// The datapath's flow key order must be the one userspace computes with memcmp
// (userspace/src/datapath looks flows up by key): address bytes, then port
// bytes. Pairs that differ only in the low half of an IPv6 address, only in the
// port, or with the port order opposite to the address order.
TEST(XdpFlowTable, KeyOrderIsMemcmpOrderAndBothDirectionsShareIt) {
  struct Pair {
    const char *a, *b;
    uint16_t pa, pb;
  };
  const Pair pairs[] = {
      {"10.0.0.1", "10.99.0.2", 40000, 80}, {"10.99.0.2", "10.0.0.1", 40000, 80},
      {"10.0.0.1", "10.0.0.1", 40000, 80},  {"10.0.0.1", "10.0.0.1", 80, 40000},
      {"10.0.0.1", "10.0.0.2", 1, 0xff00},  {"10.0.0.1", "10.0.0.2", 0xff00, 1},
      {"fd00::1", "fd00::2", 40000, 80},    {"fd00::2", "fd00::1", 40000, 80},
      {"fd00::1:0:0:1", "fd00::1", 5, 6},   {"fd00:99::2", "fd00::1", 443, 443},
  };
  for (const Pair& p : pairs) {
    XdpClassify xdp;
    bool v6 = std::string(p.a).find(':') != std::string::npos;
    xdp.set_rules({v6 ? RuleSpec{.src = "::/0", .dst = "::/0", .action = RAMJET_ACTION_PASS}
                      : RuleSpec{.action = RAMJET_ACTION_PASS}});
    auto frame = [&](const char* s, const char* d, uint16_t ps, uint16_t pd) {
      PacketBuilder b;
      b.eth();
      if (v6)
        b.ipv6(s, d);
      else
        b.ipv4(s, d);
      return b.tcp(ps, pd).build();
    };
    EXPECT_EQ(xdp.run(frame(p.a, p.b, p.pa, p.pb)).retval, XDP_PASS);
    EXPECT_EQ(xdp.run(frame(p.b, p.a, p.pb, p.pa)).retval, XDP_PASS);
    auto flows = xdp.flows();
    ASSERT_EQ(flows.size(), 1u) << p.a << " " << p.b;
    const ramjet_flow_key& k = flows[0].first;
    IpAddr a = IpAddr::parse(p.a), b = IpAddr::parse(p.b);
    uint8_t ea[18] = {}, eb[18] = {};  // address (16, zero-padded) then port, network order
    std::memcpy(ea, a.bytes.data(), a.size());
    std::memcpy(eb, b.bytes.data(), b.size());
    put16(ea + 16, p.pa);
    put16(eb + 16, p.pb);
    bool a_lo = std::memcmp(ea, eb, sizeof ea) <= 0;
    const uint8_t* lo = a_lo ? ea : eb;
    const uint8_t* hi = a_lo ? eb : ea;
    EXPECT_EQ(std::memcmp(k.addr_lo, lo, 16), 0) << p.a << " " << p.b;
    EXPECT_EQ(std::memcmp(k.addr_hi, hi, 16), 0) << p.a << " " << p.b;
    EXPECT_EQ(get16(reinterpret_cast<const uint8_t*>(&k.port_lo)), get16(lo + 16));
    EXPECT_EQ(get16(reinterpret_cast<const uint8_t*>(&k.port_hi)), get16(hi + 16));
    EXPECT_EQ(k.pad[0] | k.pad[1], 0);
    // The first packet came from a: origin_side says which end that was.
    EXPECT_EQ(flows[0].second.origin_side, a_lo ? 0 : 1) << p.a << " " << p.b;
  }
}

// Flow stamps use the tick clock (maps.h flow_clock_ns): CLOCK_MONOTONIC,
// at most a couple of ticks behind, and moving on between packets.
TEST(XdpFlowTable, TimestampsAreMonotonicClockAtTickResolution) {
  constexpr uint64_t kSlack = 50'000'000;  // generous: two ticks at HZ=100 is 20 ms
  XdpClassify xdp;
  xdp.set_rules({{.action = RAMJET_ACTION_PASS}});
  uint64_t before = monotonic_ns();
  xdp.run(tcp4());
  uint64_t after = monotonic_ns();
  auto flows = xdp.flows();
  ASSERT_EQ(flows.size(), 1u);
  const ramjet_flow& first = flows[0].second;
  EXPECT_GE(first.first_seen_ns + kSlack, before);
  EXPECT_LE(first.first_seen_ns, after);
  EXPECT_EQ(first.last_seen_ns, first.first_seen_ns);

  timespec pause{0, 60'000'000};
  nanosleep(&pause, nullptr);
  before = monotonic_ns();
  xdp.run(tcp4());
  after = monotonic_ns();
  const ramjet_flow& later = xdp.flows()[0].second;
  EXPECT_EQ(later.first_seen_ns, first.first_seen_ns);
  EXPECT_GT(later.last_seen_ns, first.last_seen_ns);
  EXPECT_GE(later.last_seen_ns + kSlack, before);
  EXPECT_LE(later.last_seen_ns, after);
}

TEST(XdpFlowTable, Ipv6AndUdpFlowsAreSeparate) {
  XdpClassify xdp;
  xdp.set_rules({{.action = RAMJET_ACTION_PASS},
                 {.src = "::/0", .dst = "::/0", .action = RAMJET_ACTION_PASS}});
  xdp.run(tcp4());
  xdp.run(udp4(80));
  xdp.run(tcp6());
  xdp.run(PacketBuilder().eth().ipv6(kServer6, kClient6).tcp(80, 40000).build());
  EXPECT_EQ(xdp.flows().size(), 3u);
}

TEST(XdpFlowTable, DropsCreateNoFlowAndDefaultPassIsNotOurs) {
  XdpClassify xdp;
  xdp.set_rules({drop_tcp80()});
  xdp.run(tcp4(80));
  xdp.run(tcp4(81));  // default pass
  EXPECT_TRUE(xdp.flows().empty());
}

TEST(XdpFlowTable, PolicyGenerationReevaluatesCachedVerdict) {
  XdpClassify xdp;
  xdp.set_rules({{.action = RAMJET_ACTION_PASS}});
  EXPECT_EQ(xdp.run(tcp4()).retval, XDP_PASS);
  xdp.set_rules({drop_tcp80()});  // bumps policy_generation
  StatArray before = xdp.stats();
  EXPECT_EQ(xdp.run(tcp4()).retval, XDP_DROP);
  EXPECT_EQ(delta(before, xdp.stats(), RAMJET_STAT_RULE_DROP), 1);
  auto flows = xdp.flows();
  ASSERT_EQ(flows.size(), 1u);
  EXPECT_EQ(flows[0].second.verdict, RAMJET_ACTION_DROP);
  EXPECT_EQ(flows[0].second.reason, RAMJET_STAT_RULE_DROP);
}

// The first packet seen of a connection can travel in its reply direction: a
// SYN-ACK, or a segment picked up mid-stream (the entry was killed or expired).
// The flow is still the client's (origin_side; ramjetctl shows it as the
// source), and policy is matched on the client's direction, so a rule on the
// service port applies. A SYN always comes from the client; a mid-stream
// segment is taken to come from the end with the higher port.
TEST(XdpFlowTable, AConnectionFirstSeenFromItsServiceIsTheClients) {
  struct Case {
    const char* what;
    uint8_t flags;
    bool from_service;  // else from the client (10.0.0.1:40000 -> 10.99.0.2:443)
    bool flow;          // the pass rule on tcp/443 matches
  };
  const Case cases[] = {
      {"SYN-ACK from the service", kTcpSyn | kTcpAck, true, true},
      {"mid-stream ACK from the service", kTcpAck, true, true},
      {"mid-stream FIN from the service", kTcpFin | kTcpAck, true, true},
      {"mid-stream ACK from the client", kTcpAck, false, true},
      {"SYN from the client", kTcpSyn, false, true},
  };
  for (const Case& c : cases) {
    XdpClassify xdp;
    xdp.set_rules({{.action = RAMJET_ACTION_PASS, .proto = IPPROTO_TCP, .port_min = 443,
                    .port_max = 443, .rule_id = 7}});
    Bytes frame = c.from_service
                      ? PacketBuilder().eth().ipv4(kServer, kClient).tcp(443, 40000, c.flags).build()
                      : PacketBuilder().eth().ipv4(kClient, kServer).tcp(40000, 443, c.flags).build();
    EXPECT_EQ(xdp.run(frame).retval, XDP_PASS) << c.what;
    auto flows = xdp.flows();
    ASSERT_EQ(flows.size(), 1u) << c.what;
    const ramjet_flow& f = flows[0].second;
    EXPECT_EQ(f.rule_id, 7u) << c.what;
    EXPECT_EQ(f.origin_side, 0) << c.what << ": 10.0.0.1:40000 is key.lo and the client";
    int dir = c.from_service ? RAMJET_DIR_REPLY : RAMJET_DIR_ORIGINAL;
    EXPECT_EQ(f.dir[dir].packets, 1u) << c.what;
    EXPECT_EQ(f.dir[dir ^ 1].packets, 0u) << c.what;
  }
  // A SYN from port 443 to port 40000 opens a connection to port 40000: no rule.
  XdpClassify xdp;
  xdp.set_rules({{.action = RAMJET_ACTION_PASS, .proto = IPPROTO_TCP, .port_min = 443,
                  .port_max = 443}});
  xdp.run(PacketBuilder().eth().ipv4(kServer, kClient).tcp(443, 40000, kTcpSyn).build());
  EXPECT_TRUE(xdp.flows().empty());
}

// A packet sent from a dropped service port must not open a flow whose cached
// verdict the client's packets to that port would then inherit.
TEST(XdpPolicy, APacketFromADroppedPortOpensNoWayToIt) {
  XdpClassify xdp;
  xdp.set_rules({{.action = RAMJET_ACTION_DROP, .proto = IPPROTO_TCP, .port_min = 5002,
                  .port_max = 5002},
                 {.action = RAMJET_ACTION_PASS}});
  StatArray before = xdp.stats();
  EXPECT_EQ(
      xdp.run(PacketBuilder().eth().ipv4(kServer, kClient).tcp(5002, 40000, kTcpAck).build()).retval,
      XDP_DROP);
  EXPECT_EQ(
      xdp.run(PacketBuilder().eth().ipv4(kClient, kServer).tcp(40000, 5002, kTcpAck).build()).retval,
      XDP_DROP);
  EXPECT_EQ(delta(before, xdp.stats(), RAMJET_STAT_RULE_DROP), 2);
  EXPECT_TRUE(xdp.flows().empty());
}

// A policy change re-evaluates a live flow on whichever packet comes next; a
// reply is matched in the client's direction like the rest of its flow.
TEST(XdpPolicy, AReplyReevaluatesItsFlowInTheClientsDirection) {
  XdpClassify xdp;
  xdp.set_rules({{.action = RAMJET_ACTION_PASS}});
  EXPECT_EQ(xdp.run(tcp4(443)).retval, XDP_PASS);  // 10.0.0.1:40000 -> :443
  xdp.set_rules({{.action = RAMJET_ACTION_DROP, .proto = IPPROTO_TCP, .port_min = 443,
                  .port_max = 443},
                 {.action = RAMJET_ACTION_PASS}});
  Bytes reply = PacketBuilder().eth().ipv4(kServer, kClient).tcp(443, 40000, kTcpAck).build();
  EXPECT_EQ(xdp.run(reply).retval, XDP_DROP);
  auto flows = xdp.flows();
  ASSERT_EQ(flows.size(), 1u);
  EXPECT_EQ(flows[0].second.reason, RAMJET_STAT_RULE_DROP);
  EXPECT_EQ(flows[0].second.origin_side, 0);
}

TEST(XdpEscalate, MarksFlowAndEmitsEvents) {
  XdpClassify xdp;
  xdp.set_rules({{.action = RAMJET_ACTION_ESCALATE,
                  .proto = IPPROTO_TCP,
                  .port_min = 443,
                  .port_max = 443,
                  .rule_id = 42,
                  .endpoint_id = 9}});
  // Without XDP metadata (a kernel that refuses it) the packet cannot carry its note
  // to TC and is dropped; the flow is marked all the same.
  const int passed = xdp.metadata() ? XDP_PASS : XDP_DROP;
  EXPECT_EQ(xdp.run(tcp4(443)).retval, passed);
  EXPECT_EQ(xdp.run(tcp4(443)).retval, passed);
  auto flows = xdp.flows();
  ASSERT_EQ(flows.size(), 1u);
  const ramjet_flow& f = flows[0].second;
  EXPECT_EQ(f.verdict, RAMJET_ACTION_ESCALATE);
  EXPECT_EQ(f.escalated, 1);
  EXPECT_EQ(f.endpoint_id, 9u);
  EXPECT_EQ(f.dir[RAMJET_DIR_ORIGINAL].packets, 2u);

  Events ev;
  ev.drain(xdp);
  auto news = ev.of_type<ramjet_event_flow>(RAMJET_EVENT_FLOW_NEW);
  auto escalations = ev.of_type<ramjet_event_flow>(RAMJET_EVENT_ESCALATE);
  ASSERT_EQ(news.size(), 1u);
  ASSERT_EQ(escalations.size(), 1u);  // first packet only
  EXPECT_EQ(escalations[0].flow_id, f.flow_id);
  EXPECT_EQ(escalations[0].rule_id, 42u);
  EXPECT_EQ(escalations[0].endpoint_id, 9u);
  EXPECT_EQ(escalations[0].hdr.reason, RAMJET_STAT_ESCALATE);
  EXPECT_EQ(std::memcmp(&escalations[0].key, &flows[0].first, sizeof(ramjet_flow_key)), 0);
}

TEST(XdpEvents, FlowEventsCanBeTurnedOff) {
  XdpClassify xdp({.emit_flow_events = 0});
  xdp.set_rules({{.action = RAMJET_ACTION_PASS}});
  xdp.run(tcp4());
  Events ev;
  ev.drain(xdp);
  EXPECT_TRUE(ev.records.empty());
}

TEST(XdpEvents, DropSampleCarriesReasonAndBytes) {
  XdpClassify xdp({.drop_sample_rate = 1});
  xdp.set_rules({drop_tcp80()});
  Bytes small = tcp4();
  Bytes big = PacketBuilder().eth().ipv4(kClient, kServer).tcp(1, 80).payload(400).build();
  xdp.run(small);
  xdp.run(big);
  Events ev;
  ev.drain(xdp);
  auto drops = ev.of_type<ramjet_event_drop>(RAMJET_EVENT_DROP_SAMPLE);
  ASSERT_EQ(drops.size(), 2u);
  EXPECT_EQ(drops[0].hdr.reason, RAMJET_STAT_RULE_DROP);
  EXPECT_EQ(drops[0].packet_len, small.size());
  EXPECT_EQ(drops[0].capture_len, small.size());
  EXPECT_EQ(Bytes(drops[0].data, drops[0].data + small.size()), small);
  EXPECT_EQ(drops[1].packet_len, big.size());
  EXPECT_EQ(drops[1].capture_len, uint32_t(RAMJET_DROP_SAMPLE_BYTES));
  EXPECT_EQ(Bytes(drops[1].data, drops[1].data + RAMJET_DROP_SAMPLE_BYTES),
            Bytes(big.begin(), big.begin() + RAMJET_DROP_SAMPLE_BYTES));
}

TEST(XdpFastpath, FlowCachesFastpathAndForwardsEveryPacket) {
  if (!Netns::get().ready) GTEST_SKIP() << Netns::get().why_not;
  XdpClassify xdp;
  xdp.set_rules({fastpath_all()});
  StatArray before = xdp.stats();
  for (int i = 0; i < 3; i++) EXPECT_EQ(xdp.run(tcp4()).retval, XDP_REDIRECT);
  StatArray after = xdp.stats();
  EXPECT_EQ(delta(before, after, RAMJET_STAT_FASTPATH_REDIRECT), 3);
  EXPECT_EQ(delta(before, after, RAMJET_STAT_FLOW_HIT), 2);
  ASSERT_EQ(xdp.flows().size(), 1u);
  EXPECT_EQ(xdp.flows()[0].second.verdict, RAMJET_ACTION_FASTPATH);
}

// The flow keeps bpf_fib_lookup's answer per direction: a neighbour change is
// not seen until the cached next hop is older than RAMJET_NEXTHOP_TTL_NS, and a
// packet longer than any the lookup accepted gets a fresh lookup (MTU check).
TEST(XdpFastpath, NextHopIsCachedUntilItsTtlAndLongerPacketsAreLookedUp) {
  if (!Netns::get().ready) GTEST_SKIP() << Netns::get().why_not;
  XdpClassify xdp;
  xdp.set_rules({fastpath_all()});
  const Bytes first = tcp4();
  ASSERT_EQ(xdp.run(first).retval, XDP_REDIRECT);
  ASSERT_EQ(xdp.flows().size(), 1u);
  auto [key, flow] = xdp.flows()[0];
  const ramjet_flow_nexthop& nh = flow.nexthop[RAMJET_DIR_ORIGINAL];
  EXPECT_NE(nh.checked_ns, 0u);
  EXPECT_EQ(nh.ifindex, if_nametoindex("rj0"));
  EXPECT_EQ(nh.max_len, first.size() - 14);
  const std::uint8_t neigh[6] = {0x02, 0, 0, 0, 0x0a, 0x02};
  EXPECT_EQ(std::memcmp(nh.dmac, neigh, 6), 0);
  EXPECT_EQ(flow.nexthop[RAMJET_DIR_REPLY].checked_ns, 0u) << "no reply packet yet";

  ASSERT_EQ(
      std::system("ip neigh replace 10.99.0.2 lladdr 02:00:00:00:0a:03 dev rj0 nud permanent"), 0);
  RunResult cached = xdp.run(first);
  ASSERT_EQ(cached.retval, XDP_REDIRECT);
  EXPECT_EQ(cached.out[5], 0x02) << "within the TTL the cached neighbour is used";

  // A longer packet than the lookup accepted is looked up again (and sees the change).
  RunResult longer =
      xdp.run(PacketBuilder().eth().ipv4(kClient, kServer).tcp(40000, 80).payload(600).build());
  ASSERT_EQ(longer.retval, XDP_REDIRECT);
  EXPECT_EQ(longer.out[5], 0x03);
  EXPECT_EQ(xdp.flows()[0].second.nexthop[RAMJET_DIR_ORIGINAL].max_len, 20 + 20 + 600);

  // Once the TTL has passed the next hop is confirmed again.
  ASSERT_EQ(
      std::system("ip neigh replace 10.99.0.2 lladdr 02:00:00:00:0a:04 dev rj0 nud permanent"), 0);
  auto aged = xdp.flows()[0];
  aged.second.nexthop[RAMJET_DIR_ORIGINAL].checked_ns -= RAMJET_NEXTHOP_TTL_NS + 1;
  xdp.put_flow(aged.first, aged.second);
  RunResult refreshed = xdp.run(first);
  ASSERT_EQ(refreshed.retval, XDP_REDIRECT);
  EXPECT_EQ(refreshed.out[5], 0x04);
  EXPECT_EQ(xdp.flows()[0].second.nexthop[RAMJET_DIR_ORIGINAL].max_len, first.size() - 14)
      << "a refresh forgets longer packets: the MTU may have shrunk";
  std::system("ip neigh replace 10.99.0.2 lladdr 02:00:00:00:0a:02 dev rj0 nud permanent");
}

// TC forwards an unresolved neighbour itself (bpf_redirect_neigh) where XDP has
// to pass the packet up: TTL - 1, the MACs left to the neighbour code.
TEST(TcFastpath, UnresolvedNeighbourIsRedirectedWithRedirectNeigh) {
  if (!Netns::get().ready) GTEST_SKIP() << Netns::get().why_not;
  XdpClassify xdp;
  xdp.set_rules({fastpath_all()});
  const Bytes in = tcp4(80, {}, "10.99.0.3");
  StatArray before = xdp.stats();
  RunResult r = xdp.run_tc(in);
  StatArray after = xdp.stats();
  EXPECT_EQ(r.retval, kTcActRedirect);
  std::map<std::string, int64_t> want{{"TC_FASTPATH_NEIGH", 1}};
  EXPECT_EQ(verdict_deltas(before, after), want);
  ASSERT_EQ(r.out.size(), in.size());
  EXPECT_EQ(r.out[14 + 8], in[14 + 8] - 1) << "TTL";
  EXPECT_TRUE(ipv4_header_checksum_ok(r.out));
  EXPECT_TRUE(std::equal(in.begin(), in.begin() + 12, r.out.begin())) << "MACs untouched";
}

// One flow table for both hooks: a flow XDP created is hit by the tc program and
// the other way round, with the same verdict and counters.
TEST(TcFastpath, BothHooksShareTheFlowTable) {
  if (!Netns::get().ready) GTEST_SKIP() << Netns::get().why_not;
  XdpClassify xdp;
  xdp.set_rules({fastpath_all()});
  StatArray before = xdp.stats();
  EXPECT_EQ(xdp.run(tcp4()).retval, XDP_REDIRECT);
  EXPECT_EQ(xdp.run_tc(tcp4()).retval, kTcActRedirect);
  EXPECT_EQ(xdp.run_tc(tcp4()).retval, kTcActRedirect);
  StatArray after = xdp.stats();
  EXPECT_EQ(delta(before, after, RAMJET_STAT_FASTPATH_REDIRECT), 3);
  EXPECT_EQ(delta(before, after, RAMJET_STAT_FLOW_NEW), 1);
  EXPECT_EQ(delta(before, after, RAMJET_STAT_FLOW_HIT), 2);
  ASSERT_EQ(xdp.flows().size(), 1u);
  EXPECT_EQ(xdp.flows()[0].second.dir[RAMJET_DIR_ORIGINAL].packets, 3u);
}

// Rate limits are one implementation too: the bucket XDP drained drops in TC.
TEST(TcRateLimit, BucketIsSharedWithXdp) {
  XdpClassify xdp;
  xdp.set_rules({{.action = RAMJET_ACTION_RATELIMIT, .rate_pps = 1, .rate_burst = 2}});
  EXPECT_EQ(xdp.run(tcp4()).retval, XDP_PASS);
  EXPECT_EQ(xdp.run_tc(tcp4()).retval, kTcActOk);
  StatArray before = xdp.stats();
  EXPECT_EQ(xdp.run_tc(tcp4()).retval, kTcActShot);
  EXPECT_EQ(delta(before, xdp.stats(), RAMJET_STAT_RATE_LIMITED), 1);
}

// A GSO skb's IP total length counts the whole frame while only the headers are
// in the linear part: the parser checks lengths against the frame, not the
// linear bytes. (A test run's skb is linear; this pins that a frame whose length
// matches passes the TC parser exactly as XDP's.)
TEST(TcParse, FullLengthFramesParseAsInXdp) {
  XdpClassify xdp;
  xdp.set_rules({{.action = RAMJET_ACTION_PASS}});
  const Bytes big =
      PacketBuilder().eth().ipv4(kClient, kServer).tcp(40000, 80).payload(1400).build();
  StatArray before = xdp.stats();
  EXPECT_EQ(xdp.run_tc(big).retval, kTcActOk);
  EXPECT_EQ(delta(before, xdp.stats(), RAMJET_STAT_PASS_RULE), 1);
}

}  // namespace
}  // namespace ramjet::test
