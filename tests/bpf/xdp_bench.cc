// Micro-benchmark (not a test): ns per packet through BPF_PROG_TEST_RUN with
// repeat=N for the main xdp_classify paths. The kernel times the repeat loop
// itself, so the numbers exclude syscall overhead; ~10 ns is the floor for a
// trivial XDP program on this machine.
//
//   sudo tests/bpf/build/xdp_bench [repeat]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "packet_builder.h"
#include "xdp_fixture.h"

using namespace ramjet::test;

namespace {

struct Scenario {
  const char* name;
  std::vector<RuleSpec> rules;
  Bytes packet;
  int expected;
  ramjet_stat stat;
};

double run(const Scenario& s, uint32_t repeat) {
  XdpClassify xdp;
  if (!s.rules.empty()) xdp.set_rules(s.rules);
  RunResult warm = xdp.run(s.packet);  // creates the flow for the flow-hit case
  if (warm.retval != s.expected) {
    std::fprintf(stderr, "%s: verdict %d, want %d\n", s.name, warm.retval, s.expected);
    std::exit(1);
  }
  StatArray before = xdp.stats();
  uint32_t duration = 0;
  xdp.run(s.packet, repeat, &duration);
  StatArray after = xdp.stats();
  if (after[s.stat] - before[s.stat] != repeat) {
    std::fprintf(stderr, "%s: %s moved by %llu, want %u\n", s.name, ramjet_stat_names[s.stat],
                 (unsigned long long)(after[s.stat] - before[s.stat]), repeat);
    std::exit(1);
  }
  return duration;  // test_run reports the mean ns per repetition
}

}  // namespace

int main(int argc, char** argv) {
  uint32_t repeat = argc > 1 ? uint32_t(std::strtoul(argv[1], nullptr, 10)) : 1000000;
  Bytes tcp =
      PacketBuilder().eth().ipv4("10.0.0.1", "10.99.0.2").tcp(40000, 80).payload(16).build();
  Bytes tcp6 =
      PacketBuilder().eth().ipv6("fd00::1", "fd00:99::2").tcp(40000, 80).payload(16).build();
  // A realistic rule set: the matching rule sits behind 63 non-matching ones.
  std::vector<RuleSpec> many;
  for (int i = 0; i < 63; i++)
    many.push_back({.dst = "10.99.0.0/16",
                    .action = RAMJET_ACTION_DROP,
                    .proto = IPPROTO_UDP,
                    .port_min = uint16_t(1000 + i),
                    .port_max = uint16_t(1000 + i)});
  many.push_back(
      {.action = RAMJET_ACTION_DROP, .proto = IPPROTO_TCP, .port_min = 80, .port_max = 80});

  Scenario scenarios[] = {
      {"pass (no rule, default pass)", {}, tcp, XDP_PASS, RAMJET_STAT_PASS_DEFAULT},
      {"drop by rule (1 rule)",
       {{.action = RAMJET_ACTION_DROP, .proto = IPPROTO_TCP, .port_min = 80, .port_max = 80}},
       tcp,
       XDP_DROP,
       RAMJET_STAT_RULE_DROP},
      {"drop by rule (64th of 64 candidates)", many, tcp, XDP_DROP, RAMJET_STAT_RULE_DROP},
      {"flow-table hit (pass rule, IPv4)",
       {{.action = RAMJET_ACTION_PASS}},
       tcp,
       XDP_PASS,
       RAMJET_STAT_PASS_RULE},
      {"flow-table hit (pass rule, IPv6)",
       {{.src = "::/0", .dst = "::/0", .action = RAMJET_ACTION_PASS}},
       tcp6,
       XDP_PASS,
       RAMJET_STAT_PASS_RULE},
  };
  std::printf("%-40s %10s\n", "scenario", "ns/packet");
  for (const Scenario& s : scenarios) std::printf("%-40s %10.1f\n", s.name, run(s, repeat));
  return 0;
}
