// Micro-benchmark (not a test): ns per packet through BPF_PROG_TEST_RUN for the
// main xdp_classify paths, next to the floor (a two-instruction XDP program run
// the same way) and the ratio to it. The kernel times the repeat loop itself, so
// the numbers exclude syscall overhead.
//
// Every scenario runs in batches of kBatch repetitions per test run (the fast
// path rewrites the frame in place: TTL 255 allows 254 forwards before the
// stack would have to answer), and each batch starts from the original frame.
// Every batch checks the verdict and that the expected stat moved by exactly
// the batch size, so a number never measures a path other than the one named.
// The figure is the mean of the middle half of the batch means: robust against
// batches the scheduler interrupted when the machine is shared.
//
// Runs in a private network namespace (tests/bpf/netns.h) so bpf_fib_lookup
// finds a real route and a permanent neighbour for the fast-path scenarios.
// There the program under test is also attached (generic XDP) to the idle veth
// peer rj1 while it is timed: a test run with repeat > 1 puts the program in the
// kernel's XDP dispatcher and takes it out again, each an RCU grace period
// (milliseconds), unless the program is already there because it is attached.
//
//   sudo tests/bpf/build/xdp_bench [packets per scenario] [name filter]
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "netns.h"
#include "packet_builder.h"
#include "xdp_fixture.h"

using namespace ramjet::test;

namespace {

constexpr uint32_t kBatch = 254;
constexpr uint8_t kTtl = 255;

struct Scenario {
  const char* name;
  std::vector<RuleSpec> rules;
  Bytes packet;
  int expected;
  ramjet_stat stat;  // must move by exactly the number of packets
  bool needs_netns = false;
  std::function<void(XdpClassify&)> setup = {};
};

// Keeps a program in the XDP dispatcher (see the top comment) while alive, by
// attaching it (generic XDP) to rjb0, a veth left down so that no packet ever
// reaches it.
class DispatcherPin {
 public:
  explicit DispatcherPin(int prog_fd) {
    if (!Netns::get().ready) return;  // slower runs, same numbers
    ifindex_ = if_nametoindex("rjb0");
    if (!ifindex_ &&
        std::system("ip link add rjb0 type veth peer name rjb1 >/dev/null 2>&1") == 0)
      ifindex_ = if_nametoindex("rjb0");
    if (ifindex_ && bpf_xdp_attach(int(ifindex_), prog_fd, XDP_FLAGS_SKB_MODE, nullptr) != 0)
      ifindex_ = 0;
  }
  ~DispatcherPin() {
    if (ifindex_) bpf_xdp_detach(int(ifindex_), XDP_FLAGS_SKB_MODE, nullptr);
  }
  DispatcherPin(const DispatcherPin&) = delete;
  DispatcherPin& operator=(const DispatcherPin&) = delete;

 private:
  unsigned ifindex_ = 0;
};

// Runs `frame` through `prog_fd` in batches of kBatch; returns the mean of the
// middle half of the per-batch means (a batch the scheduler interrupted, on a
// shared machine, lands in the top quarter), or nullopt on a wrong verdict.
using Check = std::function<bool(uint32_t batch)>;
std::optional<double> time_batches(int prog_fd, const Bytes& frame, int expected, uint64_t packets,
                                   const char* name, const Check& check) {
  DispatcherPin pin(prog_fd);
  std::vector<uint32_t> batch_ns;
  Bytes in(frame), out(frame.size() + 256);
  for (uint64_t done = 0; done < packets; done += kBatch) {
    in = frame;
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    opts.data_in = in.data();
    opts.data_out = out.data();
    opts.data_size_in = uint32_t(in.size());
    opts.data_size_out = uint32_t(out.size());
    opts.repeat = kBatch;
    if (int err = bpf_prog_test_run_opts(prog_fd, &opts); err) {
      std::fprintf(stderr, "%s: test run failed: %s\n", name, std::strerror(-err));
      return std::nullopt;
    }
    if (int(opts.retval) != expected) {
      std::fprintf(stderr, "%s: verdict %u, want %d\n", name, opts.retval, expected);
      return std::nullopt;
    }
    if (check && !check(kBatch)) return std::nullopt;
    batch_ns.push_back(opts.duration);  // mean ns per repetition in this batch
  }
  std::sort(batch_ns.begin(), batch_ns.end());
  size_t lo = batch_ns.size() / 4, hi = batch_ns.size() - batch_ns.size() / 4;
  double sum = 0;
  for (size_t i = lo; i < hi; i++) sum += batch_ns[i];
  return sum / double(hi - lo);
}

std::optional<double> run(const Scenario& s, uint64_t packets) {
  XdpClassify xdp;
  if (!s.rules.empty()) xdp.set_rules(s.rules);
  if (s.setup) s.setup(xdp);
  // One packet first: creates the flow for the flow-hit scenarios.
  if (RunResult warm = xdp.run(s.packet); warm.retval != s.expected) {
    std::fprintf(stderr, "%s: first packet verdict %d, want %d\n", s.name, warm.retval,
                 s.expected);
    return std::nullopt;
  }
  StatArray last = xdp.stats();
  auto check = [&](uint32_t batch) {
    StatArray now = xdp.stats();
    uint64_t moved = now[s.stat] - last[s.stat];
    last = now;
    if (moved == batch) return true;
    std::fprintf(stderr, "%s: %s moved by %llu, want %u\n", s.name, ramjet_stat_names[s.stat],
                 (unsigned long long)moved, batch);
    return false;
  };
  return time_batches(xdp.prog_fd(), s.packet, s.expected, packets, s.name, check);
}

// The floor: `r0 = XDP_PASS; exit`, loaded from raw instructions.
std::optional<double> run_floor(const Bytes& frame, uint64_t packets) {
  const bpf_insn insns[] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_PASS},
      {.code = BPF_JMP | BPF_EXIT},
  };
  int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "xdp_floor", "GPL", insns, 2, nullptr);
  if (fd < 0) {
    std::fprintf(stderr, "floor: bpf_prog_load: %s\n", std::strerror(-fd));
    return std::nullopt;
  }
  auto ns = time_batches(fd, frame, XDP_PASS, packets, "floor", {});
  close(fd);
  return ns;
}

RuleSpec drop_tcp80() {
  return {.action = RAMJET_ACTION_DROP, .proto = IPPROTO_TCP, .port_min = 80, .port_max = 80};
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t packets = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 2000000;
  std::string filter = argc > 2 ? argv[2] : "";

  NetnsEnvironment().SetUp();
  const Netns& netns = Netns::get();

  // Destinations with a route and a permanent neighbour in the netns (rj0).
  Bytes tcp = PacketBuilder()
                  .eth()
                  .ipv4("10.0.0.1", "10.99.0.2", {.ttl = kTtl})
                  .tcp(40000, 80)
                  .payload(16)
                  .build();
  Bytes tcp6 =
      PacketBuilder().eth().ipv6("fd00::1", "fd00:99::2", kTtl).tcp(40000, 80).payload(16).build();
  // A realistic rule set: the matching rule sits behind 63 non-matching ones.
  std::vector<RuleSpec> many;
  for (int i = 0; i < 63; i++)
    many.push_back({.dst = "10.99.0.0/16",
                    .action = RAMJET_ACTION_DROP,
                    .proto = IPPROTO_UDP,
                    .port_min = uint16_t(1000 + i),
                    .port_max = uint16_t(1000 + i)});
  many.push_back(drop_tcp80());

  Scenario scenarios[] = {
      {"pass (no rule, default pass)", {}, tcp, XDP_PASS, RAMJET_STAT_PASS_DEFAULT},
      {"pass (denylist has another prefix)",
       {},
       tcp,
       XDP_PASS,
       RAMJET_STAT_PASS_DEFAULT,
       false,
       [](XdpClassify& x) { x.deny("192.0.2.0/24"); }},
      {"drop by rule (1 rule)", {drop_tcp80()}, tcp, XDP_DROP, RAMJET_STAT_RULE_DROP},
      {"drop by rule (64th of 64 candidates)", many, tcp, XDP_DROP, RAMJET_STAT_RULE_DROP},
      {"flow hit, pass rule (IPv4)",
       {{.action = RAMJET_ACTION_PASS}},
       tcp,
       XDP_PASS,
       RAMJET_STAT_PASS_RULE},
      {"flow hit, pass rule (IPv6)",
       {{.src = "::/0", .dst = "::/0", .action = RAMJET_ACTION_PASS}},
       tcp6,
       XDP_PASS,
       RAMJET_STAT_PASS_RULE},
      {"flow hit, fast path: cached next hop (IPv4)",
       {{.action = RAMJET_ACTION_FASTPATH}},
       tcp,
       XDP_REDIRECT,
       RAMJET_STAT_FASTPATH_REDIRECT,
       true},
      {"flow hit, fast path: cached next hop (IPv6)",
       {{.src = "::/0", .dst = "::/0", .action = RAMJET_ACTION_FASTPATH}},
       tcp6,
       XDP_REDIRECT,
       RAMJET_STAT_FASTPATH_REDIRECT,
       true},
  };

  std::optional<double> floor = run_floor(tcp, packets);
  if (!floor) return 1;
  std::printf("%-46s %10s %8s\n", "scenario", "ns/packet", "x floor");
  std::printf("%-46s %10.1f %8.1f\n", "floor (trivial XDP program)", *floor, 1.0);
  int failed = 0;
  for (const Scenario& s : scenarios) {
    if (!filter.empty() && std::string(s.name).find(filter) == std::string::npos) continue;
    if (s.needs_netns && !netns.ready) {
      std::printf("%-46s skipped: %s\n", s.name, netns.why_not.c_str());
      continue;
    }
    std::optional<double> ns = run(s, packets);
    if (!ns) {
      failed++;
      continue;
    }
    std::printf("%-46s %10.1f %8.1f\n", s.name, *ns, *ns / *floor);
  }
  return failed ? 1 : 0;
}
