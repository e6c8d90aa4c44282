// The engine-unavailable decision of TC ingress (bpf/lib/tc.h, bpf/lib/fallback.h)
// through BPF_PROG_TEST_RUN: a table of
//   {engine state, rule fallback, family, expected TC verdict, counted stat,
//    flow entry afterwards, answer on the wire}
// A SYN first goes through the datapath's XDP program (the flow is marked
// ESCALATE by an escalate rule), then through the harness TC program
// (tc_fallback_harness.bpf.c), which acts as TC ingress does on it.
//
// The engine's side is real: listening sockets in the test's network namespace,
// put in the `listeners` sockmap; "accept queue full" is a listener with backlog
// 0 holding one connection nobody accepted. A test run's skb is not at TC ingress,
// so bpf_sk_assign refuses even a healthy listener (EOPNOTSUPP): that is the
// ASSIGN_FAILED row, and the integration tests cover delivery itself.
#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "netns.h"
#include "packet_builder.h"
#include "xdp_fixture.h"

namespace ramjet::test {
namespace {

[[maybe_unused]] auto* const kNetnsEnv = ::testing::AddGlobalTestEnvironment(new NetnsEnvironment);

constexpr int kTcActOk = 0;
constexpr int kTcActShot = 2;
constexpr int kTcActRedirect = 7;
constexpr uint32_t kRuleId = 77;
constexpr uint32_t kEndpoint = 1;  // the harness's endpoint id
constexpr uint16_t kClientPort = 40000;
constexpr uint32_t kSynSeq = 0x01000000;  // what PacketBuilder puts in a TCP header

enum class Engine {
  kNoListener,  // nothing in the sockmap: stopped, crashed, listener closed
  kDraining,    // a healthy listener, but the target is marked draining
  kQueueFull,   // listener with backlog 0 and one unaccepted connection
  kListening,   // a healthy listener (sk_assign fails in a test run)
};

struct Case {
  std::string name;
  Engine engine;
  uint8_t rule_fallback;  // NONE: the default_fallback global decides
  uint8_t default_fallback;
  bool v6 = false;
  int want_retval;
  ramjet_stat want_stat;
  uint8_t want_mode;
  uint8_t want_cause;
  uint8_t want_verdict;  // the flow's verdict afterwards
};

// The loopback address of the family, port 0 (the kernel picks one at bind).
socklen_t loopback_any_port(bool v6, sockaddr_storage& ss) {
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    return sizeof(*a);
  }
  auto* a = reinterpret_cast<sockaddr_in*>(&ss);
  a->sin_family = AF_INET;
  a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sizeof(*a);
}

// A real listener (and, for a full queue, one connection left in it) in the netns.
class Listener {
 public:
  Listener(bool v6, int backlog, bool fill) {
    int family = v6 ? AF_INET6 : AF_INET;
    fd_ = ::socket(family, SOCK_STREAM, 0);
    sockaddr_storage ss{};
    socklen_t len = loopback_any_port(v6, ss);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd_, backlog) != 0)
      throw std::runtime_error(std::string("listener: ") + std::strerror(errno));
    if (!fill) return;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len);
    client_ = ::socket(family, SOCK_STREAM, 0);
    if (::connect(client_, reinterpret_cast<sockaddr*>(&ss), len) != 0)
      throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
  }
  ~Listener() {
    if (client_ >= 0) ::close(client_);
    ::close(fd_);
  }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  int client_ = -1;
};

struct TcRun {
  int retval;
  Bytes out;
};

// What XDP returns for an escalated packet: passed up with its note, or, on a kernel
// that refuses XDP metadata (where ramjetd runs the tc hook instead), dropped for
// want of one. The flow is marked either way, which is what these tests need of XDP.
int escalated_verdict(const XdpClassify& xdp) { return xdp.metadata() ? XDP_PASS : XDP_DROP; }

TcRun run_tc(const XdpClassify& xdp, const Bytes& frame) {
  Bytes in = frame;
  TcRun r{-1, Bytes(frame.size() + 256)};
  LIBBPF_OPTS(bpf_test_run_opts, opts);
  opts.data_in = in.data();
  opts.data_size_in = uint32_t(in.size());
  opts.data_out = r.out.data();
  opts.data_size_out = uint32_t(r.out.size());
  int err = bpf_prog_test_run_opts(bpf_program__fd(xdp.skel()->progs.tc_escalated), &opts);
  if (err) throw std::runtime_error("tc test run: " + std::to_string(err));
  r.retval = int(opts.retval);
  r.out.resize(opts.data_size_out);
  return r;
}

const char* client(bool v6) {
  return v6 ? "fd00::1" : "10.0.0.1";
}
const char* server(bool v6) {
  return v6 ? "fd00:99::2" : "10.99.0.2";
}

Bytes segment(bool v6, uint8_t flags, size_t payload = 0) {
  PacketBuilder b;
  b.eth();
  if (v6)
    b.ipv6(client(v6), server(v6));
  else
    b.ipv4(client(v6), server(v6));
  b.tcp(kClientPort, 80, flags);
  if (payload) b.payload(payload);
  return b.build();
}

void escalate_rule(XdpClassify& xdp, uint8_t fallback, bool v6) {
  xdp.set_rules({{.src = v6 ? "::/0" : "0.0.0.0/0",
                  .dst = v6 ? "fd00:99::/64" : "10.99.0.0/24",
                  .action = RAMJET_ACTION_ESCALATE,
                  .proto = IPPROTO_TCP,
                  .port_min = 80,
                  .port_max = 80,
                  .rule_id = kRuleId,
                  .endpoint_id = kEndpoint,
                  .fallback = fallback}});
}

void put_listener(XdpClassify& xdp, int fd, bool v6) {
  uint32_t slot = RAMJET_LISTENER_SLOT(kEndpoint, v6);
  uint64_t value = uint64_t(fd);
  ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(xdp.skel()->maps.listeners), &slot, &value, BPF_ANY), 0)
      << std::strerror(errno);
}

void mark_draining(XdpClassify& xdp) {
  uint32_t id = kEndpoint, flags = RAMJET_ENGINE_DRAINING;
  ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(xdp.skel()->maps.engine_state), &id, &flags, BPF_ANY),
            0);
}

ramjet_fallback_count rule_counts(const XdpClassify& xdp) {
  int ncpu = libbpf_num_possible_cpus();
  std::vector<ramjet_fallback_count> per_cpu(size_t(ncpu > 0 ? ncpu : 1));
  ramjet_fallback_count sum{};
  uint32_t id = kRuleId;
  if (bpf_map_lookup_elem(bpf_map__fd(xdp.skel()->maps.fallback_counts), &id, per_cpu.data()) != 0)
    return sum;
  for (const auto& c : per_cpu)
    for (int m = 0; m < RAMJET_FALLBACK__COUNT; m++)
      for (int k = 0; k < RAMJET_FALLBACK_CAUSE__COUNT; k++) sum.flows[m][k] += c.flows[m][k];
  return sum;
}

// Checks `out` is the RST RFC 9293 asks for in answer to `in` (a segment without
// ACK): addresses, ports and MACs swapped, RST+ACK, SEQ 0, ACK = SEG.SEQ+SEG.LEN,
// valid checksums, nothing after the TCP header.
void expect_rst_for(const Bytes& in, const Bytes& out, bool v6, uint32_t seg_len) {
  size_t l3 = 14, ip_len = v6 ? 40 : 20, l4 = l3 + ip_len;
  ASSERT_EQ(out.size(), l4 + 20) << "the answer is Ethernet + IP + a bare TCP header";
  EXPECT_TRUE(std::equal(out.begin(), out.begin() + 6, in.begin() + 6)) << "dst MAC = sender";
  EXPECT_TRUE(std::equal(out.begin() + 6, out.begin() + 12, in.begin())) << "src MAC = receiver";
  size_t addr = v6 ? 8 : 12, alen = v6 ? 16 : 4;
  EXPECT_TRUE(std::equal(out.begin() + l3 + addr, out.begin() + l3 + addr + alen,
                         in.begin() + l3 + addr + alen))
      << "src address = the original destination";
  EXPECT_TRUE(std::equal(out.begin() + l3 + addr + alen, out.begin() + l3 + addr + 2 * alen,
                         in.begin() + l3 + addr))
      << "dst address = the client";
  EXPECT_EQ(get16(&out[l4]), 80);
  EXPECT_EQ(get16(&out[l4 + 2]), kClientPort);
  EXPECT_EQ(out[l4 + 13], kTcpRst | kTcpAck);
  EXPECT_EQ(get16(&out[l4 + 4]) << 16 | get16(&out[l4 + 6]), 0u) << "SEQ 0";
  uint32_t ack = uint32_t(get16(&out[l4 + 8])) << 16 | get16(&out[l4 + 10]);
  EXPECT_EQ(ack, kSynSeq + seg_len);
  if (v6) {
    EXPECT_EQ(get16(&out[l3 + 4]), 20) << "payload length";
    EXPECT_EQ(out[l3 + 6], IPPROTO_TCP);
  } else {
    EXPECT_TRUE(ipv4_header_checksum_ok(out)) << "IPv4 header checksum";
    EXPECT_EQ(get16(&out[l3 + 2]), 40) << "total length";
  }
  // TCP checksum over the pseudo-header: sums to 0xffff when valid.
  uint32_t sum = csum_add(&out[l3 + addr], 2 * alen);
  sum += IPPROTO_TCP + 20;
  sum = csum_add(&out[l4], 20, sum);
  EXPECT_EQ(csum_finish(sum), 0) << "TCP checksum";
}

std::vector<Case> cases() {
  using C = Case;
  const uint8_t P = RAMJET_FALLBACK_PASS, R = RAMJET_FALLBACK_REJECT, D = RAMJET_FALLBACK_DROP;
  const uint8_t N = RAMJET_FALLBACK_NONE;
  std::vector<Case> out;
  struct Cause {
    const char* name;
    Engine engine;
    uint8_t cause;
  };
  const Cause causes[] = {
      {"NoListener", Engine::kNoListener, RAMJET_FALLBACK_CAUSE_NO_LISTENER},
      {"Draining", Engine::kDraining, RAMJET_FALLBACK_CAUSE_DRAINING},
      {"QueueFull", Engine::kQueueFull, RAMJET_FALLBACK_CAUSE_ACCEPT_QUEUE_FULL},
      {"AssignFailed", Engine::kListening, RAMJET_FALLBACK_CAUSE_ASSIGN_FAILED},
  };
  for (bool v6 : {false, true}) {
    for (const Cause& c : causes) {
      std::string fam = v6 ? "Ipv6" : "Ipv4";
      out.push_back(C{fam + c.name + "Pass", c.engine, P, R, v6, kTcActOk,
                      RAMJET_STAT_TC_FALLBACK_PASS, P, c.cause, RAMJET_ACTION_FASTPATH});
      out.push_back(C{fam + c.name + "Reject", c.engine, R, P, v6, kTcActRedirect,
                      RAMJET_STAT_TC_FALLBACK_REJECT, R, c.cause, RAMJET_ACTION_ESCALATE});
      out.push_back(C{fam + c.name + "Drop", c.engine, D, P, v6, kTcActShot,
                      RAMJET_STAT_TC_FALLBACK_DROP, D, c.cause, RAMJET_ACTION_DROP});
    }
  }
  // A rule without its own fallback takes the datapath's default.
  out.push_back(C{"RuleWithoutFallbackTakesTheDefaultDrop", Engine::kNoListener, N, D, false,
                  kTcActShot, RAMJET_STAT_TC_FALLBACK_DROP, D, RAMJET_FALLBACK_CAUSE_NO_LISTENER,
                  RAMJET_ACTION_DROP});
  out.push_back(C{"RuleWithoutFallbackTakesTheDefaultReject", Engine::kNoListener, N, R, false,
                  kTcActRedirect, RAMJET_STAT_TC_FALLBACK_REJECT, R,
                  RAMJET_FALLBACK_CAUSE_NO_LISTENER, RAMJET_ACTION_ESCALATE});
  return out;
}

class FallbackTable : public ::testing::TestWithParam<Case> {};

TEST_P(FallbackTable, Decision) {
  const Case& c = GetParam();
  ASSERT_TRUE(Netns::get().ready) << Netns::get().why_not;
  XdpClassify xdp({.default_action = RAMJET_ACTION_FASTPATH});
  xdp.skel()->data->default_fallback = c.default_fallback;
  escalate_rule(xdp, c.rule_fallback, c.v6);
  std::optional<Listener> listener;
  if (c.engine != Engine::kNoListener) {
    bool full = c.engine == Engine::kQueueFull;
    listener.emplace(c.v6, full ? 0 : 16, full);
    put_listener(xdp, listener->fd(), c.v6);
  }
  if (c.engine == Engine::kDraining) mark_draining(xdp);

  Bytes syn = segment(c.v6, kTcpSyn);
  ASSERT_EQ(xdp.run(syn).retval, escalated_verdict(xdp)) << "XDP passes an escalated SYN up to TC";
  auto before = xdp.stats();
  TcRun tc = run_tc(xdp, syn);
  auto after = xdp.stats();

  EXPECT_EQ(tc.retval, c.want_retval);
  EXPECT_EQ(verdict_deltas(before, after),
            (std::map<std::string, int64_t>{{ramjet_stat_names[c.want_stat], 1}}));
  auto flows = xdp.flows();
  ASSERT_EQ(flows.size(), 1u);
  const ramjet_flow& f = flows[0].second;
  EXPECT_EQ(f.fallback, c.want_mode);
  EXPECT_EQ(f.fallback_cause, c.want_cause);
  EXPECT_EQ(f.verdict, c.want_verdict);
  EXPECT_EQ(f.rule_id, kRuleId);
  EXPECT_EQ(rule_counts(xdp).flows[c.want_mode][c.want_cause], 1u);
  if (c.want_mode == RAMJET_FALLBACK_REJECT) expect_rst_for(syn, tc.out, c.v6, 1);

  // The rule was healthy: its first fallback is an event, with the cause.
  Events ev;
  ev.drain(xdp);
  auto fell = ev.of_type<ramjet_event_fallback>(RAMJET_EVENT_FALLBACK);
  ASSERT_EQ(fell.size(), 1u);
  EXPECT_EQ(fell[0].rule_id, kRuleId);
  EXPECT_EQ(fell[0].mode, c.want_mode);
  EXPECT_EQ(fell[0].cause, c.want_cause);
  EXPECT_EQ(fell[0].flow_id, f.flow_id);
  EXPECT_EQ(xdp.skel()->data->unhealthy_rules, 1u);
}

INSTANTIATE_TEST_SUITE_P(Tc, FallbackTable, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

// Later packets of the flow: XDP applies a pass or drop fallback from the flow
// entry (a policy change does not send the flow back to the engine); a reject
// flow's packets come back to TC and are answered again, an RST never is.
TEST(FallbackFlow, PassFlowTakesTheFastPathInXdpAcrossAPolicyChange) {
  ASSERT_TRUE(Netns::get().ready) << Netns::get().why_not;
  XdpClassify xdp({.default_action = RAMJET_ACTION_FASTPATH});
  escalate_rule(xdp, RAMJET_FALLBACK_PASS, false);
  xdp.run(segment(false, kTcpSyn));
  ASSERT_EQ(run_tc(xdp, segment(false, kTcpSyn)).retval, kTcActOk);
  escalate_rule(xdp, RAMJET_FALLBACK_PASS, false);  // a reload: new policy generation
  auto before = xdp.stats();
  EXPECT_EQ(xdp.run(segment(false, kTcpAck, 100)).retval, XDP_REDIRECT);
  EXPECT_EQ(verdict_deltas(before, xdp.stats()),
            (std::map<std::string, int64_t>{{"FASTPATH_REDIRECT", 1}}));
  EXPECT_EQ(xdp.flows()[0].second.fallback, RAMJET_FALLBACK_PASS);
}

TEST(FallbackFlow, PassFlowGoesToTheStackWhenTheDefaultIsNotFastpath) {
  ASSERT_TRUE(Netns::get().ready) << Netns::get().why_not;
  XdpClassify xdp({.default_action = RAMJET_ACTION_PASS});
  escalate_rule(xdp, RAMJET_FALLBACK_PASS, false);
  xdp.run(segment(false, kTcpSyn));
  ASSERT_EQ(run_tc(xdp, segment(false, kTcpSyn)).retval, kTcActOk);
  EXPECT_EQ(xdp.flows()[0].second.verdict, RAMJET_ACTION_PASS);
  auto before = xdp.stats();
  EXPECT_EQ(xdp.run(segment(false, kTcpAck)).retval, XDP_PASS);
  EXPECT_EQ(verdict_deltas(before, xdp.stats()),
            (std::map<std::string, int64_t>{{"FALLBACK_PASS", 1}}));
}

TEST(FallbackFlow, DropFlowIsDroppedInXdpWithItsReason) {
  XdpClassify xdp;
  escalate_rule(xdp, RAMJET_FALLBACK_DROP, false);
  xdp.run(segment(false, kTcpSyn));
  ASSERT_EQ(run_tc(xdp, segment(false, kTcpSyn)).retval, kTcActShot);
  auto before = xdp.stats();
  EXPECT_EQ(xdp.run(segment(false, kTcpSyn)).retval, XDP_DROP);  // the client retries
  EXPECT_EQ(verdict_deltas(before, xdp.stats()),
            (std::map<std::string, int64_t>{{"FALLBACK_DROP", 1}}));
  EXPECT_EQ(rule_counts(xdp).flows[RAMJET_FALLBACK_DROP][RAMJET_FALLBACK_CAUSE_NO_LISTENER], 1u)
      << "counted once per flow, not per packet";
}

TEST(FallbackFlow, RejectAnswersEverySegmentButAnRst) {
  XdpClassify xdp;
  escalate_rule(xdp, RAMJET_FALLBACK_REJECT, false);
  xdp.run(segment(false, kTcpSyn));
  ASSERT_EQ(run_tc(xdp, segment(false, kTcpSyn)).retval, kTcActRedirect);

  // A data segment with ACK: <SEQ=SEG.ACK><CTL=RST> (PacketBuilder's ACK field is 0).
  Bytes data = segment(false, kTcpAck, 10);
  ASSERT_EQ(xdp.run(data).retval, escalated_verdict(xdp)) << "a reject flow stays escalated in XDP";
  TcRun again = run_tc(xdp, data);
  ASSERT_EQ(again.retval, kTcActRedirect);
  ASSERT_EQ(again.out.size(), 54u);
  EXPECT_EQ(again.out[14 + 20 + 13], kTcpRst);
  EXPECT_TRUE(xdp.flows()[0].second.tcp_flags[RAMJET_DIR_REPLY] & RAMJET_TCP_RST)
      << "the RST it sent is in the flow entry (closed: expires after tcp_closed_timeout)";

  auto before = xdp.stats();
  TcRun rst = run_tc(xdp, segment(false, kTcpRst));
  EXPECT_EQ(rst.retval, kTcActShot) << "an RST is never answered";
  EXPECT_EQ(verdict_deltas(before, xdp.stats()),
            (std::map<std::string, int64_t>{{"TC_FALLBACK_REJECT", 1}}));
  EXPECT_EQ(rule_counts(xdp).flows[RAMJET_FALLBACK_REJECT][RAMJET_FALLBACK_CAUSE_NO_LISTENER], 1u);
}

TEST(FallbackFlow, SynWithPayloadIsAcknowledgedPastItsPayload) {
  XdpClassify xdp;
  escalate_rule(xdp, RAMJET_FALLBACK_REJECT, false);
  Bytes syn = segment(false, kTcpSyn, 7);  // TCP fast open style: SYN + 7 bytes
  xdp.run(syn);
  TcRun tc = run_tc(xdp, syn);
  ASSERT_EQ(tc.retval, kTcActRedirect);
  expect_rst_for(syn, tc.out, false, 1 + 7);
}

// XDP passes an escalated packet to TC with a note in the XDP metadata. When
// bpf_xdp_adjust_meta fails, as on a driver without headroom for it (here: 200
// bytes of metadata already fill the test run's headroom, up to the xdp_frame the
// kernel keeps in front), the packet is dropped with a name: without the note the
// stack would forward it around the engine.
TEST(FallbackFlow, EscalatedPacketWithoutRoomForTheNoteIsDroppedByName) {
  XdpClassify xdp;
  escalate_rule(xdp, RAMJET_FALLBACK_REJECT, false);
  constexpr uint32_t kMeta = 200;
  Bytes syn = segment(false, kTcpSyn);
  Bytes in(kMeta, 0);
  in.insert(in.end(), syn.begin(), syn.end());
  Bytes out(in.size() + 256);
  xdp_md ctx{};
  ctx.data_meta = 0;
  ctx.data = kMeta;
  ctx.data_end = uint32_t(in.size());
  LIBBPF_OPTS(bpf_test_run_opts, opts);
  opts.data_in = in.data();
  opts.data_size_in = uint32_t(in.size());
  opts.data_out = out.data();
  opts.data_size_out = uint32_t(out.size());
  opts.ctx_in = &ctx;
  opts.ctx_size_in = sizeof(ctx);
  auto before = xdp.stats();
  ASSERT_EQ(bpf_prog_test_run_opts(xdp.prog_fd(), &opts), 0) << std::strerror(errno);
  EXPECT_EQ(opts.retval, uint32_t(XDP_DROP));
  EXPECT_EQ(verdict_deltas(before, xdp.stats()),
            (std::map<std::string, int64_t>{{"ESCALATE_NO_META", 1}}));
}

TEST(FallbackFlow, SecondFlowOfAFallingBackRuleEmitsNoEvent) {
  XdpClassify xdp;
  escalate_rule(xdp, RAMJET_FALLBACK_DROP, false);
  for (uint16_t port : {40000, 40001}) {
    Bytes syn = PacketBuilder().eth().ipv4("10.0.0.1", "10.99.0.2").tcp(port, 80).build();
    xdp.run(syn);
    run_tc(xdp, syn);
  }
  Events ev;
  ev.drain(xdp);
  EXPECT_EQ(ev.of_type<ramjet_event_fallback>(RAMJET_EVENT_FALLBACK).size(), 1u);
  EXPECT_EQ(rule_counts(xdp).flows[RAMJET_FALLBACK_DROP][RAMJET_FALLBACK_CAUSE_NO_LISTENER], 2u);
}

// The tc hook (datapath.fastpath_hook tc) classifies and delivers in one program:
// an escalated SYN the engine cannot take gets its fallback there, counted once as
// ESCALATE (classification) and once as the fallback (delivery), and a retried SYN
// of a drop flow is dropped from the flow's cached verdict, as XDP does.
TEST(TcHook, EscalationAndFallbackInOneProgram) {
  ASSERT_TRUE(Netns::get().ready) << Netns::get().why_not;
  XdpClassify xdp;
  escalate_rule(xdp, RAMJET_FALLBACK_REJECT, false);
  mark_draining(xdp);
  Bytes syn = segment(false, kTcpSyn);
  auto before = xdp.stats();
  RunResult r = xdp.run_tc(syn);
  EXPECT_EQ(r.retval, 7) << "TC_ACT_REDIRECT: the RST goes back out";
  EXPECT_EQ(verdict_deltas(before, xdp.stats()),
            (std::map<std::string, int64_t>{{"ESCALATE", 1}, {"TC_FALLBACK_REJECT", 1}}));
  expect_rst_for(syn, r.out, false, 1);

  XdpClassify dropping;
  escalate_rule(dropping, RAMJET_FALLBACK_DROP, false);
  mark_draining(dropping);
  EXPECT_EQ(dropping.run_tc(syn).retval, kTcActShot);
  before = dropping.stats();
  EXPECT_EQ(dropping.run_tc(syn).retval, kTcActShot);  // the client retries
  EXPECT_EQ(verdict_deltas(before, dropping.stats()),
            (std::map<std::string, int64_t>{{"FALLBACK_DROP", 1}}));
}

// UDP escalation: the endpoint's UDP socket in `listeners` is a target as a TCP
// listener is (a test run's skb still cannot be assigned: ASSIGN_FAILED shows it
// got that far), the same causes apply, and reject (no RST for UDP) drops.
constexpr uint16_t kDnsPort = 53;

void udp_escalate_rule(XdpClassify& xdp, uint8_t fallback, bool v6) {
  xdp.set_rules({{.src = v6 ? "::/0" : "0.0.0.0/0",
                  .dst = v6 ? "fd00:99::/64" : "10.99.0.0/24",
                  .action = RAMJET_ACTION_ESCALATE,
                  .proto = IPPROTO_UDP,
                  .port_min = kDnsPort,
                  .port_max = kDnsPort,
                  .rule_id = kRuleId,
                  .endpoint_id = kEndpoint,
                  .fallback = fallback}});
}

Bytes datagram(bool v6, uint16_t client_port = kClientPort) {
  PacketBuilder b;
  b.eth();
  if (v6)
    b.ipv6(client(v6), server(v6));
  else
    b.ipv4(client(v6), server(v6));
  return b.udp(client_port, kDnsPort).payload(32).build();
}

// A UDP socket on loopback, as a transparent udp endpoint's.
class UdpSocket {
 public:
  explicit UdpSocket(bool v6) {
    fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
    sockaddr_storage ss{};
    socklen_t len = loopback_any_port(v6, ss);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0)
      throw std::runtime_error(std::string("udp socket: ") + std::strerror(errno));
  }
  ~UdpSocket() { ::close(fd_); }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

struct UdpCase {
  std::string name;
  bool v6;
  bool draining;
  bool tcp_listener;  // the slot holds a TCP listener: the wrong transport
  uint8_t rule_fallback;
  int want_retval;
  ramjet_stat want_stat;
  uint8_t want_mode;
  uint8_t want_cause;
};

class UdpFallbackTable : public ::testing::TestWithParam<UdpCase> {};

TEST_P(UdpFallbackTable, Decision) {
  const UdpCase& c = GetParam();
  ASSERT_TRUE(Netns::get().ready) << Netns::get().why_not;
  XdpClassify xdp({.default_action = RAMJET_ACTION_FASTPATH});
  udp_escalate_rule(xdp, c.rule_fallback, c.v6);
  std::optional<UdpSocket> udp;
  std::optional<Listener> tcp;
  if (c.tcp_listener) {
    tcp.emplace(c.v6, 16, false);
    put_listener(xdp, tcp->fd(), c.v6);
  } else {
    udp.emplace(c.v6);
    put_listener(xdp, udp->fd(), c.v6);
  }
  if (c.draining) mark_draining(xdp);

  Bytes d = datagram(c.v6);
  ASSERT_EQ(xdp.run(d).retval, escalated_verdict(xdp)) << "XDP passes an escalated datagram up to TC";
  auto before = xdp.stats();
  TcRun tc = run_tc(xdp, d);
  EXPECT_EQ(tc.retval, c.want_retval);
  EXPECT_EQ(verdict_deltas(before, xdp.stats()),
            (std::map<std::string, int64_t>{{ramjet_stat_names[c.want_stat], 1}}));
  auto flows = xdp.flows();
  ASSERT_EQ(flows.size(), 1u);
  EXPECT_EQ(flows[0].second.fallback, c.want_mode);
  EXPECT_EQ(flows[0].second.fallback_cause, c.want_cause);
  EXPECT_EQ(rule_counts(xdp).flows[c.want_mode][c.want_cause], 1u);
}

std::vector<UdpCase> udp_cases() {
  const uint8_t P = RAMJET_FALLBACK_PASS, R = RAMJET_FALLBACK_REJECT, D = RAMJET_FALLBACK_DROP;
  std::vector<UdpCase> out;
  for (bool v6 : {false, true}) {
    std::string fam = v6 ? "Ipv6" : "Ipv4";
    out.push_back({fam + "UdpSocketReachesAssign", v6, false, false, P, kTcActOk,
                   RAMJET_STAT_TC_FALLBACK_PASS, P, RAMJET_FALLBACK_CAUSE_ASSIGN_FAILED});
    out.push_back({fam + "DrainingPass", v6, true, false, P, kTcActOk, RAMJET_STAT_TC_FALLBACK_PASS,
                   P, RAMJET_FALLBACK_CAUSE_DRAINING});
    out.push_back({fam + "TcpListenerIsNoUdpTarget", v6, false, true, D, kTcActShot,
                   RAMJET_STAT_TC_FALLBACK_DROP, D, RAMJET_FALLBACK_CAUSE_NO_LISTENER});
    out.push_back({fam + "RejectDropsUdp", v6, true, false, R, kTcActShot,
                   RAMJET_STAT_TC_FALLBACK_DROP, D, RAMJET_FALLBACK_CAUSE_DRAINING});
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Udp, UdpFallbackTable, ::testing::ValuesIn(udp_cases()),
                         [](const auto& info) { return info.param.name; });

// An ICMP error quoting a datagram the engine sent for an escalated flow (from the
// original destination to the client) is marked for local delivery in TC; one
// about any other flow is classified as usual.
struct IcmpErrorShape {
  const char* to = nullptr;       // the error's destination; null: the quoted source
  uint16_t quoted_frag_off = 0;   // IPv4 only: the quoted header's flags | offset
};

Bytes icmp_error_about(bool v6, uint16_t client_port, IcmpErrorShape shape = {}) {
  PacketBuilder inner;
  if (v6)
    inner.ipv6(server(v6), client(v6));
  else
    inner.ipv4(server(v6), client(v6), {.frag_off = shape.quoted_frag_off});
  Bytes quoted = inner.udp(kDnsPort, client_port).payload(32).build();
  quoted.resize(v6 ? 48 + 32 : 28);  // what RFC 792 / RFC 4443 senders quote at least
  PacketBuilder b;
  b.eth();
  const char* to = shape.to != nullptr ? shape.to : server(v6);
  if (v6)
    b.ipv6(client(v6), to).icmpv6(1, 4);  // port unreachable
  else
    b.ipv4(client(v6), to).icmp(3, 3);
  return b.payload(quoted).build();
}

TEST(UdpEscalation, IcmpErrorAboutAnEscalatedFlowIsMarkedLocal) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    XdpClassify xdp({.default_action = RAMJET_ACTION_FASTPATH});
    udp_escalate_rule(xdp, RAMJET_FALLBACK_DROP, v6);
    ASSERT_EQ(xdp.run(datagram(v6)).retval, escalated_verdict(xdp));  // the flow, ESCALATE
    auto before = xdp.stats();
    EXPECT_EQ(xdp.run_tc(icmp_error_about(v6, kClientPort)).retval, kTcActOk);
    EXPECT_EQ(verdict_deltas(before, xdp.stats()),
              (std::map<std::string, int64_t>{{"TC_ESCALATE_ICMP_ERROR", 1}}));

    before = xdp.stats();
    xdp.run_tc(icmp_error_about(v6, kClientPort + 1));  // no such escalated flow
    auto delta = verdict_deltas(before, xdp.stats());
    EXPECT_EQ(delta.count("TC_ESCALATE_ICMP_ERROR"), 0u);
  }
}

TEST(UdpEscalation, IcmpErrorsNotAboutTheEnginesReplyAreNotMarked) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    XdpClassify xdp({.default_action = RAMJET_ACTION_FASTPATH});
    udp_escalate_rule(xdp, RAMJET_FALLBACK_DROP, v6);
    ASSERT_EQ(xdp.run(datagram(v6)).retval, escalated_verdict(xdp));
    // Quotes the flow's datagram but goes to another host than the one it came from.
    auto before = xdp.stats();
    xdp.run_tc(icmp_error_about(v6, kClientPort, {.to = v6 ? "fd00:99::7" : "10.99.0.7"}));
    EXPECT_EQ(verdict_deltas(before, xdp.stats()).count("TC_ESCALATE_ICMP_ERROR"), 0u);
    if (v6) continue;
    // Quotes a later fragment: the bytes where the ports would be are payload that
    // happens to match the flow's ports.
    before = xdp.stats();
    xdp.run_tc(icmp_error_about(v6, kClientPort, {.quoted_frag_off = 0x0010}));
    EXPECT_EQ(verdict_deltas(before, xdp.stats()).count("TC_ESCALATE_ICMP_ERROR"), 0u);
    // The first fragment (MF set, offset 0) quotes the ports: still the flow's error.
    before = xdp.stats();
    xdp.run_tc(icmp_error_about(v6, kClientPort, {.quoted_frag_off = 0x2000}));
    EXPECT_EQ(verdict_deltas(before, xdp.stats()).count("TC_ESCALATE_ICMP_ERROR"), 1);
  }
}

}  // namespace
}  // namespace ramjet::test
