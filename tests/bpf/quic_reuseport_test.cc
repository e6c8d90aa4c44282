// QUIC steering (bpf/progs/quic_reuseport.bpf.c) with real sockets: an SO_REUSEPORT
// group of four UDP sockets on loopback, one per "worker", the program attached to it
// and each socket in quic_sockets at its worker's index, as the QUIC on-ramp sets them
// up. Datagrams from client sockets (several source ports and two source addresses:
// a client whose address changed) must arrive on the socket of the worker their
// destination connection id names; Initial packets go by the kernel's 4-tuple hash,
// the same 4-tuple always to the same socket. The layout of ids is ramjet/abi/quic.h.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "netns.h"
#include "quic_reuseport.skel.h"
#include "ramjet/abi/quic.h"

namespace ramjet::test {
namespace {

[[maybe_unused]] auto* const kNetnsEnv = ::testing::AddGlobalTestEnvironment(new NetnsEnvironment);

using Bytes = std::vector<uint8_t>;
constexpr int kWorkers = 4;

// A server-chosen id naming `worker` (generation 1), the rest fixed filler.
Bytes our_cid(uint8_t worker) {
  Bytes cid(RAMJET_QUIC_CID_LEN, 0x5a);
  cid[0] = static_cast<uint8_t>((1 << RAMJET_QUIC_CID_GENERATION_SHIFT) | 0x15);
  cid[RAMJET_QUIC_CID_WORKER_BYTE] = worker;
  return cid;
}

// A 1-RTT packet: header form 0, fixed bit 1, then the destination id, then payload.
Bytes short_header(const Bytes& dcid) {
  Bytes p{0x43};
  p.insert(p.end(), dcid.begin(), dcid.end());
  p.resize(p.size() + 24, 0xee);
  return p;
}

// A QUIC v1 long-header packet of `type` (0 Initial, 1 0-RTT, 2 Handshake).
Bytes long_header(uint8_t type, const Bytes& dcid) {
  Bytes p{static_cast<uint8_t>(0xc0 | (type << 4)), 0, 0, 0, 1, static_cast<uint8_t>(dcid.size())};
  p.insert(p.end(), dcid.begin(), dcid.end());
  p.push_back(8);  // source id length, then the source id
  p.resize(p.size() + 8 + 40, 0x11);
  return p;
}

struct SkelDeleter {
  void operator()(quic_reuseport* s) const { quic_reuseport__destroy(s); }
};

class QuicReuseportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Netns::get().ready) << Netns::get().why_not;
    quic_reuseport* s = quic_reuseport__open_and_load();
    ASSERT_NE(s, nullptr);
    skel_.reset(s);
    const int prog = bpf_program__fd(skel_->progs.quic_select);
    const int sockets = bpf_map__fd(skel_->maps.quic_sockets);
    for (int w = 0; w < kWorkers; ++w) {
      int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      ASSERT_GE(fd, 0);
      fds_.push_back(fd);
      int one = 1;
      ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one), 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = port_;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      // The program belongs to the group; attaching it to the first socket sets it.
      if (w == 0) {
        ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &prog, sizeof prog), 0);
      }
      ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
      socklen_t len = sizeof a;
      ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
      port_ = a.sin_port;
      uint32_t key = static_cast<uint32_t>(w);
      uint64_t value = static_cast<uint64_t>(fd);
      ASSERT_EQ(bpf_map_update_elem(sockets, &key, &value, BPF_ANY), 0) << std::strerror(errno);
    }
  }
  void TearDown() override {
    for (int fd : fds_) ::close(fd);
  }

  // A client socket bound to `from` (127.0.0.x) and a port of the kernel's choosing.
  int client(const char* from) {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd, 0);
    fds_.push_back(fd);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, from, &a.sin_addr);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    return fd;
  }

  // Sends `p` from `fd` and returns the index of the socket it arrived on (-1: none),
  // checking it arrived whole.
  int deliver(int fd, const Bytes& p) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = port_;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::sendto(fd, p.data(), p.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
              static_cast<ssize_t>(p.size()));
    std::array<pollfd, kWorkers> pfds{};
    for (int w = 0; w < kWorkers; ++w) pfds[w] = {fds_[w], POLLIN, 0};
    if (::poll(pfds.data(), kWorkers, 2000) <= 0) return -1;
    for (int w = 0; w < kWorkers; ++w) {
      if (!(pfds[w].revents & POLLIN)) continue;
      Bytes got(2048);
      ssize_t n = ::recv(fds_[w], got.data(), got.size(), 0);
      got.resize(n > 0 ? static_cast<size_t>(n) : 0);
      EXPECT_EQ(got, p);
      return w;
    }
    return -1;
  }

  uint64_t stat(uint32_t which) {
    const int ncpu = libbpf_num_possible_cpus();
    std::vector<uint64_t> values(static_cast<size_t>(ncpu));
    EXPECT_EQ(bpf_map_lookup_elem(bpf_map__fd(skel_->maps.quic_stats), &which, values.data()), 0);
    uint64_t sum = 0;
    for (uint64_t v : values) sum += v;
    return sum;
  }

  std::unique_ptr<quic_reuseport, SkelDeleter> skel_;
  std::vector<int> fds_;  // the workers' sockets first, then the clients'
  uint16_t port_ = 0;
};

TEST_F(QuicReuseportTest, ShortHeaderPacketsReachTheWorkerTheirIdNamesFromAnyAddress) {
  int sent = 0;
  // Eight client sockets: four ports on 127.0.0.1, then the "same client" on 127.0.0.2.
  for (const char* from : {"127.0.0.1", "127.0.0.2"}) {
    for (int c = 0; c < 4; ++c) {
      const int fd = client(from);
      for (uint8_t w = 0; w < kWorkers; ++w) {
        EXPECT_EQ(deliver(fd, short_header(our_cid(w))), w) << "from " << from << " id of worker " << int(w);
        ++sent;
      }
    }
  }
  EXPECT_EQ(stat(RAMJET_QUIC_BY_CID), static_cast<uint64_t>(sent));
  EXPECT_EQ(stat(RAMJET_QUIC_HASHED), 0u);
}

TEST_F(QuicReuseportTest, HandshakePacketsGoByIdInitialPacketsByTheirFourTuple) {
  const int fd = client("127.0.0.1");
  EXPECT_EQ(deliver(fd, long_header(2, our_cid(3))), 3);
  EXPECT_EQ(deliver(fd, long_header(2, our_cid(1))), 1);
  EXPECT_EQ(stat(RAMJET_QUIC_BY_CID), 2u);
  // Initials carry the client's id (here one that looks like ours, naming worker 2):
  // the hash decides, and a 4-tuple keeps its socket.
  std::set<int> used;
  for (int c = 0; c < 16; ++c) {
    const int cfd = client("127.0.0.1");
    const int first = deliver(cfd, long_header(0, our_cid(2)));
    ASSERT_GE(first, 0);
    EXPECT_EQ(deliver(cfd, long_header(0, our_cid(2))), first) << "the hash moved a 4-tuple";
    EXPECT_EQ(deliver(cfd, long_header(1, Bytes(8, 0x77))), first) << "0-RTT goes with its Initial";
    used.insert(first);
  }
  EXPECT_GT(used.size(), 1u) << "sixteen 4-tuples all hashed to one socket";
  EXPECT_EQ(stat(RAMJET_QUIC_HASHED), 48u);
}

TEST_F(QuicReuseportTest, WhatCannotBeRoutedByIdIsHashedAndCounted) {
  const int fd = client("127.0.0.1");
  EXPECT_GE(deliver(fd, short_header(our_cid(7))), 0);  // no worker 7
  EXPECT_EQ(stat(RAMJET_QUIC_NO_SOCKET), 1u);
  EXPECT_GE(deliver(fd, Bytes{0x40, 1, 2}), 0);  // shorter than our id
  EXPECT_EQ(stat(RAMJET_QUIC_TOO_SHORT), 1u);
  EXPECT_GE(deliver(fd, long_header(2, Bytes(5, 0x33))), 0);  // a 5-byte id is not ours
  EXPECT_EQ(stat(RAMJET_QUIC_OTHER_CID), 1u);
  EXPECT_EQ(stat(RAMJET_QUIC_BY_CID), 0u);
}

}  // namespace
}  // namespace ramjet::test
