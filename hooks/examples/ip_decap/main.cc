// Example: an `onramp: ip` endpoint (a TUN device) that terminates chosen flows on this
// host instead of forwarding them as IP. IpFlowHook decapsulates TCP flows to the
// `tcp_ports` into the transparent tcp endpoint `tcp_to`, and UDP flows to the
// `udp_ports` into the transparent udp endpoint `udp_to` (docs/ip_onramp.md,
// "Decapsulation"): the host's stack takes their packets with the original addresses,
// and that endpoint relays each as an ordinary connection or UDP session, with its
// hooks, to where the client was going. Everything else is forwarded.
//
//   endpoints:
//     - name: gw
//       onramp: ip
//       tun: {name: rj0, routes: [10.10.2.0/24]}
//     - {name: web, onramp: tcp, transparent: true, listen: 127.0.0.1:15080}
//     - {name: dns, onramp: udp, transparent: true, listen: 127.0.0.1:15053}
//   app:
//     tcp_ports: [80]
//     tcp_to: web
//     udp_ports: [53]
//     udp_to: dns
//
// A connection of those endpoints knows where it came from (ConnectionInfo::
// decapsulated_from, the IP flow's id); the IngressHook below admits only those on the
// two endpoints, so a client that finds their addresses cannot use them as open relays.
#include <netinet/in.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "ramjet/bootstrap.h"

namespace {

struct DecapSettings {
  std::vector<unsigned> tcp_ports;
  std::string tcp_to;
  std::vector<unsigned> udp_ports;
  std::string udp_to;
  static void describe(ramjet::settings::Fields<DecapSettings>& f) {
    f("tcp_ports", &DecapSettings::tcp_ports,
      "TCP destination ports whose flows are decapsulated into `tcp_to`.");
    f("tcp_to", &DecapSettings::tcp_to, "A transparent tcp endpoint.");
    f("udp_ports", &DecapSettings::udp_ports,
      "UDP destination ports whose flows are decapsulated into `udp_to`.");
    f("udp_to", &DecapSettings::udp_to, "A transparent udp endpoint.");
  }
};

bool listed(const std::vector<unsigned>& ports, std::uint16_t port) {
  return std::find(ports.begin(), ports.end(), port) != ports.end();
}

class PortDecap final : public ramjet::IpFlowHook<ramjet::NoContext> {
 public:
  explicit PortDecap(DecapSettings s) : s_(std::move(s)) {}

  ramjet::Task<ramjet::IpFlowDecision> handle_flow(const ramjet::IpFlow& flow,
                                                   ramjet::NoContext&) override {
    if (flow.protocol == IPPROTO_TCP && listed(s_.tcp_ports, flow.dst_port))
      co_return ramjet::IpFlowDecision::decapsulate(s_.tcp_to);
    if (flow.protocol == IPPROTO_UDP && listed(s_.udp_ports, flow.dst_port))
      co_return ramjet::IpFlowDecision::decapsulate(s_.udp_to);
    co_return ramjet::IpFlowDecision::forward();
  }

 private:
  DecapSettings s_;
};

class DecapsulatedOnly final : public ramjet::IngressHook<ramjet::NoContext> {
 public:
  explicit DecapsulatedOnly(const DecapSettings& s) : tcp_to_(s.tcp_to), udp_to_(s.udp_to) {}

  ramjet::Task<ramjet::IngressDecision> handle_connection(const ramjet::ConnectionInfo& conn,
                                                          ramjet::NoContext&) override {
    const bool ours = (!tcp_to_.empty() && conn.endpoint == tcp_to_) ||
                      (!udp_to_.empty() && conn.endpoint == udp_to_);
    if (ours && conn.decapsulated_from == 0)
      co_return ramjet::IngressDecision::block("only decapsulated IP flows are relayed here");
    co_return ramjet::IngressDecision::allow();
  }

 private:
  std::string tcp_to_, udp_to_;
};

struct DecapApp {
  static constexpr std::string_view name = "example-ip-decap";
  static constexpr std::string_view version = "0.1.0";
  static constexpr std::string_view description =
      "ramjet example: decapsulates IP flows to chosen TCP and UDP ports into transparent "
      "endpoints, forwards the rest";
  using Settings = DecapSettings;

  static ramjet::Hooks<DecapApp> start(const DecapSettings& s) {
    ramjet::Hooks<DecapApp> hooks;
    hooks.ip = std::make_unique<PortDecap>(s);
    hooks.ingress = std::make_unique<DecapsulatedOnly>(s);
    return hooks;
  }
};

}  // namespace

int main(int argc, char** argv) {
  return ramjet::bootstrap<DecapApp>(argc, argv);
}
