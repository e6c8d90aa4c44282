// The TUN hand-off program (bpf/progs/tun_handoff.bpf.c) through BPF_PROG_TEST_RUN: a
// table of {packet, hand-off entry, endpoint socket, expected TC verdict, counted
// stat, mark}. The packets are bare IP, as the engine writes them into the TUN device
// (no link-layer header).
//
// A test run of a tc program takes its input as an Ethernet frame: the kernel reads
// skb->protocol from bytes 12-13 (eth_type_trans), then puts the data back, so the
// program still sees the packet from its first byte. The clients' addresses are chosen
// so that those bytes say what the device would: 8.0.0.2 (IPv4 source: bytes 12-13 are
// 08 00, ETH_P_IP) and 2001:db8:86dd::2 (IPv6 source: bytes 12-13 are 86 dd,
// ETH_P_IPV6). The kernel also wants an IP header's worth of bytes after those 14, so
// packets are padded (the program does not read the IP length fields).
//
// The sockets are real, in the test's network namespace: a tcp connection for "own
// socket", a udp socket in handoff_sockets. A test run's skb is not at TC ingress, so
// bpf_sk_assign refuses every socket (EOPNOTSUPP): ASSIGN_FAILED is what "assigned"
// looks like here; the integration tests (ip_onramp.test.ts) cover delivery itself.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "netns.h"
#include "ramjet/abi/handoff.h"
#include "ramjet/abi/meta.h"
#include "tun_handoff.skel.h"

namespace ramjet::test {
namespace {

[[maybe_unused]] auto* const kNetnsEnv = ::testing::AddGlobalTestEnvironment(new NetnsEnvironment);

using Bytes = std::vector<uint8_t>;

constexpr int kTcActOk = 0;
constexpr int kTcActShot = 2;
constexpr uint32_t kMark = 0x524b0000;
constexpr uint32_t kEndpoint = 3;
constexpr const char* kClient4 = "8.0.0.2";
constexpr const char* kServer4 = "10.99.0.1";  // rj0's address (netns.h)
constexpr const char* kClient6 = "2001:db8:86dd::2";
constexpr const char* kServer6 = "fd00:99::1";
constexpr uint16_t kClientPort = 40000;
constexpr uint16_t kUdpPort = 53;
constexpr uint8_t kSyn = 0x02, kAck = 0x10;

Bytes udp(uint16_t sport, uint16_t dport) {
  return {uint8_t(sport >> 8), uint8_t(sport), uint8_t(dport >> 8), uint8_t(dport), 0, 8, 0, 0};
}

Bytes tcp(uint16_t sport, uint16_t dport, uint8_t flags) {
  Bytes h(20, 0);
  h[0] = uint8_t(sport >> 8), h[1] = uint8_t(sport), h[2] = uint8_t(dport >> 8),
  h[3] = uint8_t(dport);
  h[12] = 5 << 4;
  h[13] = flags;
  return h;
}

// IPv4: `ihl` in words, `frag` the flags/offset field (0x2000 = more fragments).
Bytes ipv4(uint8_t proto, const Bytes& l4, uint8_t ihl = 5, uint16_t frag = 0) {
  Bytes p(20, 0);
  p[0] = uint8_t(0x40 | ihl);
  p[6] = uint8_t(frag >> 8), p[7] = uint8_t(frag);
  p[8] = 64;
  p[9] = proto;
  inet_pton(AF_INET, kClient4, &p[12]);
  inet_pton(AF_INET, kServer4, &p[16]);
  p.insert(p.end(), l4.begin(), l4.end());
  p.resize(80);  // 14 + an IP header's worth, at least (see the top)
  return p;
}

Bytes ipv6(uint8_t next, const Bytes& l4) {
  Bytes p(40, 0);
  p[0] = 0x60;
  p[6] = next;
  p[7] = 64;
  inet_pton(AF_INET6, kClient6, &p[8]);
  inet_pton(AF_INET6, kServer6, &p[24]);
  p.insert(p.end(), l4.begin(), l4.end());
  p.resize(120);
  return p;
}

ramjet_handoff_key key(bool v6, uint8_t proto, uint16_t sport, uint16_t dport) {
  ramjet_handoff_key k{};
  k.family = v6 ? RAMJET_FAMILY_IPV6 : RAMJET_FAMILY_IPV4;
  k.proto = proto;
  inet_pton(v6 ? AF_INET6 : AF_INET, v6 ? kClient6 : kClient4, k.saddr);
  inet_pton(v6 ? AF_INET6 : AF_INET, v6 ? kServer6 : kServer4, k.daddr);
  k.sport = htons(sport);
  k.dport = htons(dport);
  return k;
}

struct SkelDeleter {
  void operator()(tun_handoff* s) const { tun_handoff__destroy(s); }
};

class TunHandoffTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Netns::get().ready) << Netns::get().why_not;
    // The clients' addresses, for the sockets of the TCP cases.
    (void)std::system("ip addr add 8.0.0.2/32 dev lo >/dev/null 2>&1");
    (void)std::system("ip -6 addr add 2001:db8:86dd::2/128 dev lo nodad >/dev/null 2>&1");
    tun_handoff* s = tun_handoff__open();
    ASSERT_NE(s, nullptr);
    s->rodata->handoff_mark = kMark;
    ASSERT_EQ(tun_handoff__load(s), 0);
    skel_.reset(s);
  }
  void TearDown() override {
    for (int fd : fds_) ::close(fd);
  }

  struct Run {
    int retval;
    uint32_t mark;
  };
  Run run(const Bytes& packet) {
    Bytes in = packet, out(in.size() + 64);
    __sk_buff ctx{};
    LIBBPF_OPTS(bpf_test_run_opts, o);
    o.data_in = in.data();
    o.data_size_in = uint32_t(in.size());
    o.data_out = out.data();
    o.data_size_out = uint32_t(out.size());
    o.ctx_in = &ctx;
    o.ctx_size_in = sizeof ctx;
    o.ctx_out = &ctx;
    o.ctx_size_out = sizeof ctx;
    int err = bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.tun_handoff), &o);
    EXPECT_EQ(err, 0) << std::strerror(errno);
    return {int(o.retval), ctx.mark};
  }

  std::array<uint64_t, RAMJET_HANDOFF_STAT_COUNT> stats() {
    std::array<uint64_t, RAMJET_HANDOFF_STAT_COUNT> out{};
    std::vector<uint64_t> per_cpu(static_cast<size_t>(libbpf_num_possible_cpus()));
    for (uint32_t i = 0; i < RAMJET_HANDOFF_STAT_COUNT; ++i) {
      if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.handoff_stats), &i, per_cpu.data()) != 0)
        continue;
      for (uint64_t n : per_cpu) out[i] += n;
    }
    return out;
  }

  // One packet through the program: its verdict, mark and the one stat it counted.
  void expect(const Bytes& packet, int retval, ramjet_handoff_stat stat, uint32_t mark = 0) {
    auto before = stats();
    Run r = run(packet);
    EXPECT_EQ(r.retval, retval);
    EXPECT_EQ(r.mark, mark);
    auto after = stats();
    for (unsigned i = 0; i < RAMJET_HANDOFF_STAT_COUNT; ++i)
      EXPECT_EQ(after[i] - before[i], i == unsigned(stat) ? 1u : 0u) << "stat " << i;
  }

  void add_flow(const ramjet_handoff_key& k) {
    ramjet_handoff_target t{};
    t.slot = RAMJET_LISTENER_SLOT(kEndpoint, k.family == RAMJET_FAMILY_IPV6);
    t.flow_id = 42;
    ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.handoff_flows), &k, &t, BPF_ANY), 0);
  }

  // A socket of `type` bound to `addr`:`port` (0: any), in handoff_sockets when `slot`.
  int socket_on(int family, int type, const char* addr, uint16_t port) {
    int fd = ::socket(family, type | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd, 0);
    fds_.push_back(fd);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_storage ss{};
    socklen_t len = fill(family, addr, port, ss);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&ss), len), 0) << std::strerror(errno);
    return fd;
  }
  static socklen_t fill(int family, const char* addr, uint16_t port, sockaddr_storage& ss) {
    if (family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_port = htons(port);
      inet_pton(AF_INET, addr, &a->sin_addr);
      return sizeof *a;
    }
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    inet_pton(AF_INET6, addr, &a->sin6_addr);
    return sizeof *a;
  }
  void put_socket(int fd, bool v6) {
    uint32_t slot = RAMJET_LISTENER_SLOT(kEndpoint, v6);
    uint64_t value = uint64_t(fd);
    ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.handoff_sockets), &slot, &value, BPF_ANY),
              0)
        << std::strerror(errno);
  }

  std::unique_ptr<tun_handoff, SkelDeleter> skel_;
  std::vector<int> fds_;
};

TEST_F(TunHandoffTest, BadPacketsAreDroppedByName) {
  expect(ipv4(IPPROTO_UDP, udp(kClientPort, kUdpPort), /*ihl=*/4), kTcActShot,
         RAMJET_HANDOFF_MALFORMED);
  expect(ipv4(IPPROTO_UDP, udp(kClientPort, kUdpPort), 5, /*MF=*/0x2000), kTcActShot,
         RAMJET_HANDOFF_UNSUPPORTED);
  expect(ipv4(IPPROTO_ICMP, Bytes{8, 0, 0, 0, 0, 0, 0, 0}), kTcActShot, RAMJET_HANDOFF_UNSUPPORTED);
  expect(ipv6(0 /* hop-by-hop */, Bytes(8, 0)), kTcActShot, RAMJET_HANDOFF_UNSUPPORTED);
}

TEST_F(TunHandoffTest, IcmpErrorsTheEngineWritesBackAreDeliveredLocally) {
  // Destination unreachable (v4 3, v6 1): marked, left to the host's own delivery, which
  // finds the decapsulated session's reply socket by the datagram quoted.
  expect(ipv4(IPPROTO_ICMP, Bytes{3, 3, 0, 0, 0, 0, 0, 0}), kTcActOk, RAMJET_HANDOFF_OWN_SOCKET, kMark);
  expect(ipv6(58, Bytes{1, 4, 0, 0, 0, 0, 0, 0}), kTcActOk, RAMJET_HANDOFF_OWN_SOCKET, kMark);
  expect(ipv6(58, Bytes{128, 0, 0, 0, 0, 0, 0, 0}), kTcActShot, RAMJET_HANDOFF_UNSUPPORTED);  // echo
}

TEST_F(TunHandoffTest, UdpWithoutAFlowOrASocketIsDropped) {
  for (bool v6 : {false, true}) {
    const Bytes p = v6 ? ipv6(IPPROTO_UDP, udp(kClientPort, kUdpPort))
                       : ipv4(IPPROTO_UDP, udp(kClientPort, kUdpPort));
    expect(p, kTcActShot, RAMJET_HANDOFF_NO_FLOW);
    add_flow(key(v6, IPPROTO_UDP, kClientPort, kUdpPort));
    expect(p, kTcActShot, RAMJET_HANDOFF_NO_SOCKET);
  }
}

TEST_F(TunHandoffTest, EveryUdpDatagramGoesToTheEndpointNotToAConnectedReplySocket) {
  // The endpoint's socket, and a session's reply socket: bound to the original
  // destination and connected to the client, the kernel's own lookup would pick it.
  int endpoint = socket_on(AF_INET, SOCK_DGRAM, "127.0.0.1", 0);
  put_socket(endpoint, false);
  int reply = socket_on(AF_INET, SOCK_DGRAM, kServer4, kUdpPort);
  sockaddr_storage ss{};
  socklen_t len = fill(AF_INET, kClient4, kClientPort, ss);
  ASSERT_EQ(::connect(reply, reinterpret_cast<sockaddr*>(&ss), len), 0) << std::strerror(errno);
  add_flow(key(false, IPPROTO_UDP, kClientPort, kUdpPort));
  // bpf_sk_assign was tried (and refused, a test run is not at TC ingress): not left to
  // the kernel as OWN_SOCKET.
  for (int i = 0; i < 2; ++i)
    expect(ipv4(IPPROTO_UDP, udp(kClientPort, kUdpPort)), kTcActShot, RAMJET_HANDOFF_ASSIGN_FAILED);
}

TEST_F(TunHandoffTest, TcpOfAnEstablishedConnectionIsLeftToTheKernelAndMarked) {
  for (bool v6 : {false, true}) {
    const int family = v6 ? AF_INET6 : AF_INET;
    const char* server = v6 ? kServer6 : kServer4;
    const uint16_t port = v6 ? 8086 : 8084;
    int listener = socket_on(family, SOCK_STREAM, server, port);
    ASSERT_EQ(::listen(listener, 4), 0);
    // Without a hand-off entry a SYN to a listener is not this program's to give.
    expect(v6 ? ipv6(IPPROTO_TCP, tcp(kClientPort, port, kSyn))
              : ipv4(IPPROTO_TCP, tcp(kClientPort, port, kSyn)),
           kTcActShot, RAMJET_HANDOFF_NO_FLOW);
    int client = socket_on(family, SOCK_STREAM, v6 ? kClient6 : kClient4, kClientPort);
    sockaddr_storage ss{};
    socklen_t len = fill(family, server, port, ss);
    ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&ss), len), 0) << std::strerror(errno);
    expect(v6 ? ipv6(IPPROTO_TCP, tcp(kClientPort, port, kAck))
              : ipv4(IPPROTO_TCP, tcp(kClientPort, port, kAck)),
           kTcActOk, RAMJET_HANDOFF_OWN_SOCKET, kMark);
  }
}

}  // namespace
}  // namespace ramjet::test
