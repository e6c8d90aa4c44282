// IpFlowHook: decisions about whole IP flows that reach an `onramp: ip` endpoint (a TUN
// device ramjetd creates; docs/ip_onramp.md). Packets are grouped into flows: the
// 5-tuple for TCP and UDP, the 3-tuple (addresses, protocol) for ICMP and the rest.
// handle_flow decides once per flow; handle_packet sees every packet of a flow whose
// decision asked for it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>

#include "ramjet/hooks/connection.h"
#include "ramjet/net.h"
#include "ramjet/task.h"

namespace ramjet {

// One flow of an IP on-ramp, as its first packet named it.
struct IpFlow {
  FlowId id = 0;
  std::string endpoint;  // the ip endpoint's name
  unsigned worker = 0;
  std::uint8_t protocol = 0;  // IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_ICMPV6, ...
  IpAddress src;
  IpAddress dst;
  std::uint16_t src_port = 0;  // TCP and UDP only; 0 otherwise
  std::uint16_t dst_port = 0;
  const void* endpoint_app_settings = nullptr;

  template <typename T>
  const T& endpoint_settings() const {
    return *static_cast<const T*>(endpoint_app_settings);
  }
};

// A packet of a flow, from its IP header on. handle_packet may change the bytes in
// place and shorten the packet; the engine fixes the IPv4 header checksum and the
// TCP, UDP and ICMP checksums afterwards (and the IP length fields on a shortened one).
class IpPacket {
 public:
  IpPacket(std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::span<std::uint8_t> bytes() { return {data_, size_}; }
  std::span<const std::uint8_t> bytes() const { return {data_, size_}; }
  std::size_t size() const { return size_; }
  // Drops bytes from the end (a payload trimmed); never grows.
  void truncate(std::size_t n) {
    if (n < size_) size_ = n;
  }

 private:
  std::uint8_t* data_;
  std::size_t size_;
};

struct IpFlowDecision {
  enum class Action : std::uint8_t {
    kForward,      // out as IP, routed by the host (the IP off-ramp)
    kDrop,         // every packet of the flow is dropped and counted
    kDecapsulate,  // terminated by the host's TCP (UDP) stack and handed to `endpoint`
  };
  Action action = Action::kForward;
  std::string reason;        // logged and traced when dropping
  bool see_packets = false;  // call handle_packet for each packet of the flow
  std::string endpoint;      // kDecapsulate: a transparent tcp, http (or udp) endpoint's name

  static IpFlowDecision forward() { return {}; }
  static IpFlowDecision drop(std::string why) { return {Action::kDrop, std::move(why), false, {}}; }
  // A TCP flow becomes an ordinary connection accepted by the transparent tcp or http
  // endpoint `endpoint`, with the flow's original addresses: the host's TCP stack terminates it
  // and that endpoint's hooks run for it as for any connection (docs/ip_onramp.md).
  // A UDP flow likewise becomes a UDP session of the transparent udp endpoint
  // `endpoint`. The flow is dropped, with a counted reason, when `endpoint` is not a
  // transparent endpoint of this config for the flow's protocol (tcp or http for TCP,
  // udp for UDP), or the flow is neither TCP nor UDP.
  static IpFlowDecision decapsulate(std::string endpoint) {
    return {Action::kDecapsulate, {}, false, std::move(endpoint)};
  }
  // The flow's packets pass through handle_packet (which may rewrite or drop each).
  IpFlowDecision with_packets() && {
    see_packets = true;
    return std::move(*this);
  }
};

enum class IpPacketVerdict : std::uint8_t { kPass, kDrop };

// How a flow ended: idle for the endpoint's flow_idle_timeout, or the daemon stopping.
struct IpFlowStats {
  std::uint64_t packets = 0;  // from the TUN device, the dropped ones included
  std::uint64_t bytes = 0;
  std::uint64_t dropped = 0;
  std::chrono::microseconds duration{0};
};

// Ctx is the application's IngressConnectionContext: one per flow.
template <typename Ctx>
class IpFlowHook {
 public:
  virtual ~IpFlowHook() = default;

  // Once per flow, on its first packet; the packets that arrive meanwhile wait for it.
  virtual Task<IpFlowDecision> handle_flow(const IpFlow& /*flow*/, Ctx& /*ctx*/) {
    co_return IpFlowDecision::forward();
  }

  // Every packet of a flow whose decision said with_packets(); not a coroutine: it
  // runs in the packet loop and must not wait.
  virtual IpPacketVerdict handle_packet(const IpFlow& /*flow*/, IpPacket& /*packet*/,
                                        Ctx& /*ctx*/) {
    return IpPacketVerdict::kPass;
  }

  // Once when the flow is forgotten.
  virtual void handle_flow_close(const IpFlow& /*flow*/, const IpFlowStats& /*stats*/,
                                 Ctx& /*ctx*/) {}
};

}  // namespace ramjet
