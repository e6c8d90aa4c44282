// The TUN hand-off (bpf/progs/tun_handoff.bpf.c, ramjet/abi/handoff.h): how packets
// of IP flows that an IpFlowHook decapsulated reach the socket of a transparent
// endpoint. The IP on-ramp writes them back into its TUN device; the device's tcx
// ingress program gives each new connection's packets to the endpoint's listening
// socket (bpf_sk_assign; a UDP flow's every datagram to the endpoint's socket) and
// marks them, and the policy rule the TunDevice adds makes every destination local for
// marked packets from the device, so the host's TCP stack terminates the connection (or
// its UDP stack delivers the datagram) with its original addresses. One object for all
// ip endpoints: the flow table and the sockets are shared, the program is attached to
// each device. Its links are not pinned: the devices go with the process.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ramjet/abi/handoff.h"
#include "ramjet/net.h"
#include "ramjet/result.h"

struct tun_handoff;

namespace ramjet::datapath {

class TunHandoff {
 public:
  // `mark` goes on the packets handed on, for the hand-off rule (TunDevice).
  static Result<std::unique_ptr<TunHandoff>> load(std::uint32_t mark);
  ~TunHandoff();
  TunHandoff(const TunHandoff&) = delete;
  TunHandoff& operator=(const TunHandoff&) = delete;

  // Runs the program on the device's ingress (tcx).
  Result<void> attach(const std::string& ifname, unsigned ifindex);
  // The socket of transparent endpoint `endpoint_id` for its family: a tcp endpoint's
  // listener, a udp endpoint's bound socket.
  Result<void> add_socket(std::uint32_t endpoint_id, int fd, bool v6);

  // Turns off early demux of `protocol` in this network namespace until this object
  // goes, when the value from before is put back: IPPROTO_TCP net.ipv4.tcp_early_demux,
  // IPPROTO_UDP net.ipv4.udp_early_demux (IPv6 follows both). Needed once a flow of that
  // protocol can be decapsulated: the client's later packets arrive on the host's other
  // interface, addressed to the original destination; early demux matches them to a
  // socket the host now has there (the connection it terminates, a UDP session's reply
  // socket connected to the client) and attaches it, the route (into the TUN device)
  // says forward, and the kernel drops forwarded packets that carry a socket. Without it
  // they take the route into the device and come back through the hand-off.
  // Returns the value before (0: nothing changed).
  Result<int> disable_early_demux(std::uint8_t protocol);

  // The flow table's descriptor, for add_flow and remove_flow from any thread.
  int flows_fd() const;
  // -errno: EEXIST never (an entry is replaced), E2BIG when the table is full.
  static int add_flow(int flows_fd, const ramjet_handoff_key& key, std::uint32_t endpoint_id,
                      std::uint64_t flow_id);
  static void remove_flow(int flows_fd, const ramjet_handoff_key& key);
  // The id of the IP flow that `key` was decapsulated from, or 0.
  static std::uint64_t flow_of(int flows_fd, const ramjet_handoff_key& key);
  // The key of a connection from `client` to `local` (the original destination).
  static ramjet_handoff_key key_of(std::uint8_t protocol, const SocketAddress& client,
                                   const SocketAddress& local);

  // Ends the TIME_WAIT the host may hold for a TCP connection from `client` to `local`
  // (SOCK_DESTROY over NETLINK_SOCK_DIAG, CONFIG_INET_DIAG_DESTROY). A SYN that
  // bpf_sk_assign gives to a listener while a TIME_WAIT holds the same ports is dropped
  // by the kernel (it will not hash a request socket beside it); the kernel's own lookup
  // would end the TIME_WAIT, then find no listener on the original destination. So the
  // IP on-ramp clears it before it writes a decapsulated flow's SYN back, as xt_TPROXY
  // does for TPROXY. 0 when one was ended, -ENOENT when there was none, else -errno.
  static int end_time_wait(const SocketAddress& client, const SocketAddress& local);

  // Packets by enum ramjet_handoff_stat, summed over CPUs.
  std::array<std::uint64_t, RAMJET_HANDOFF_STAT_COUNT> stats() const;
  static const char* stat_name(unsigned stat);

 private:
  TunHandoff() = default;
  ::tun_handoff* skel_ = nullptr;
  std::vector<int> links_;
  std::vector<std::pair<const char*, int>> restore_;  // sysctl file, value before
};

}  // namespace ramjet::datapath
