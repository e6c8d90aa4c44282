// Runs the whole test binary in a private network namespace with a known
// topology, so bpf_fib_lookup answers deterministically and nothing on the host
// is touched:
//
//   lo (test_run ingress, forwarding on)
//   rj0 (veth, 02:00:00:00:0a:01, mtu 1280) 10.99.0.1/24, fd00:99::1/64
//     neighbours: 10.99.0.2 / fd00:99::2 -> 02:00:00:00:0a:02 (permanent)
//     10.99.0.3 / fd00:99::3: on-link, no neighbour entry
#pragma once

#include <gtest/gtest.h>
#include <net/if.h>
#include <sched.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace ramjet::test {

struct Netns {
  bool ready = false;
  std::string why_not;
  unsigned rj0_ifindex = 0;

  static Netns& get() {
    static Netns n;
    return n;
  }
};

inline constexpr const char* kRj0Mac = "02:00:00:00:0a:01";
inline constexpr const char* kNeighMac = "02:00:00:00:0a:02";

class NetnsEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    Netns& n = Netns::get();
    if (unshare(CLONE_NEWNET) != 0) {
      n.why_not = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno);
      return;
    }
    const char* cmds[] = {
        "ip link set lo up",
        "ip link add rj0 type veth peer name rj1",
        "ip link set rj0 address 02:00:00:00:0a:01 mtu 1280 up",
        "ip link set rj1 up",
        "ip addr add 10.99.0.1/24 dev rj0",
        "ip -6 addr add fd00:99::1/64 dev rj0 nodad",
        "ip neigh add 10.99.0.2 lladdr 02:00:00:00:0a:02 dev rj0 nud permanent",
        "ip -6 neigh add fd00:99::2 lladdr 02:00:00:00:0a:02 dev rj0 nud permanent",
    };
    for (const char* c : cmds) {
      std::string quiet = std::string(c) + " >/dev/null 2>&1";
      if (std::system(quiet.c_str()) != 0) {
        n.why_not = std::string("netns setup failed: ") + c;
        return;
      }
    }
    for (const char* path :
         {"/proc/sys/net/ipv4/conf/all/forwarding", "/proc/sys/net/ipv6/conf/all/forwarding"}) {
      std::ofstream f(path);
      f << "1\n";
      if (!f) {
        n.why_not = std::string("cannot enable ") + path;
        return;
      }
    }
    n.rj0_ifindex = if_nametoindex("rj0");
    n.ready = n.rj0_ifindex != 0;
    if (!n.ready) n.why_not = "rj0 has no ifindex";
  }
};

}  // namespace ramjet::test
