// Example: a firewall for whole IP flows on an `onramp: ip` endpoint (a TUN device).
// IpFlowHook decides once per flow: flows to a blocked TCP or UDP port are dropped,
// TCP flows to the `decapsulate_ports` are decapsulated into the transparent http
// endpoint `decapsulate_to` (the host's TCP stack terminates them, that endpoint reads
// their HTTP requests and sends each to the flow's original destination, and its
// HttpRequestHook logs each one), and the rest are forwarded (out through the IP
// off-ramp, routed by the host). Flows to the `marked_ports` also pass through
// handle_packet, which sets the packets' DSCP (a rewrite: ramjet fixes the checksums
// afterwards), so a QoS policy downstream can tell them apart. The IngressHook admits
// on the decapsulation endpoint only what came that way.
//
//   endpoints:
//     - name: fw
//       onramp: ip
//       tun: {name: rj0, routes: [10.10.2.0/24]}
//     - name: web
//       onramp: http
//       transparent: true
//       listen: 127.0.0.1:15080
//   app:
//     blocked_ports: [23, 5201]
//     marked_ports: [53]
//     dscp: 46   # EF
//     decapsulate_ports: [80]
//     decapsulate_to: web
//
// Each request on `web` is logged to stderr as one line:
//   ip_firewall: ip flow 7 -> connection 9: 10.10.1.2:41234 -> 10.10.2.2:80 GET host=www.example:80 /index.html
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <netinet/in.h>

#include "ramjet/bootstrap.h"

namespace {

struct FirewallSettings {
  std::vector<unsigned> blocked_ports;
  std::vector<unsigned> marked_ports;
  unsigned dscp = 46;
  std::vector<unsigned> decapsulate_ports;
  std::string decapsulate_to;
  static void describe(ramjet::settings::Fields<FirewallSettings>& f) {
    f("blocked_ports", &FirewallSettings::blocked_ports,
      "TCP and UDP destination ports whose flows are dropped.");
    f("marked_ports", &FirewallSettings::marked_ports,
      "TCP and UDP destination ports whose packets get `dscp`.");
    f("dscp", &FirewallSettings::dscp, "DSCP (0-63) set on packets of marked flows.");
    f("decapsulate_ports", &FirewallSettings::decapsulate_ports,
      "TCP destination ports whose flows are decapsulated into `decapsulate_to`.");
    f("decapsulate_to", &FirewallSettings::decapsulate_to,
      "A transparent http endpoint: it takes the decapsulated flows, and only those, and "
      "logs each request.");
  }
};

bool listed(const std::vector<unsigned>& ports, std::uint16_t port) {
  return std::find(ports.begin(), ports.end(), port) != ports.end();
}

class PortFirewall final : public ramjet::IpFlowHook<ramjet::NoContext> {
 public:
  explicit PortFirewall(FirewallSettings s) : s_(std::move(s)) {}

  ramjet::Task<ramjet::IpFlowDecision> handle_flow(const ramjet::IpFlow& flow,
                                                  ramjet::NoContext&) override {
    const bool ports = flow.protocol == IPPROTO_TCP || flow.protocol == IPPROTO_UDP;
    if (ports && listed(s_.blocked_ports, flow.dst_port))
      co_return ramjet::IpFlowDecision::drop("port " + std::to_string(flow.dst_port) +
                                             " is blocked");
    if (flow.protocol == IPPROTO_TCP && listed(s_.decapsulate_ports, flow.dst_port) &&
        !s_.decapsulate_to.empty())
      co_return ramjet::IpFlowDecision::decapsulate(s_.decapsulate_to);
    if (ports && listed(s_.marked_ports, flow.dst_port))
      co_return ramjet::IpFlowDecision::forward().with_packets();
    co_return ramjet::IpFlowDecision::forward();
  }

  ramjet::IpPacketVerdict handle_packet(const ramjet::IpFlow& flow, ramjet::IpPacket& packet,
                                        ramjet::NoContext&) override {
    auto b = packet.bytes();
    const auto dscp = static_cast<std::uint8_t>(s_.dscp << 2);
    if (flow.src.is_v4()) {
      b[1] = static_cast<std::uint8_t>(dscp | (b[1] & 0x03));  // TOS: DSCP and ECN
    } else {
      // Traffic class straddles bytes 0 and 1: version(4) tc(8) flow label(20).
      b[0] = static_cast<std::uint8_t>(0x60 | dscp >> 4);
      b[1] = static_cast<std::uint8_t>((dscp & 0x0f) << 4 | (b[1] & 0x3f));
    }
    return ramjet::IpPacketVerdict::kPass;
  }

 private:
  FirewallSettings s_;
};

// On the decapsulation endpoint: connections that did not come from an IP flow (a
// client that found the listener itself) are refused.
class DecapsulatedOnly final : public ramjet::IngressHook<ramjet::NoContext> {
 public:
  explicit DecapsulatedOnly(std::string endpoint) : endpoint_(std::move(endpoint)) {}

  ramjet::Task<ramjet::IngressDecision> handle_connection(const ramjet::ConnectionInfo& conn,
                                                          ramjet::NoContext&) override {
    if (conn.endpoint == endpoint_ && conn.decapsulated_from == 0)
      co_return ramjet::IngressDecision::block("only decapsulated IP flows are relayed here");
    co_return ramjet::IngressDecision::allow();
  }

 private:
  std::string endpoint_;
};

// On the decapsulation endpoint: one line per request, naming the IP flow it came from.
// The request goes to the original destination (conn.local) whatever its Host says.
class RequestLog final : public ramjet::HttpRequestHook<ramjet::NoContext, ramjet::NoContext> {
 public:
  explicit RequestLog(std::string endpoint) : endpoint_(std::move(endpoint)) {}

  ramjet::Task<ramjet::RequestDirective> handle_request(const ramjet::ConnectionInfo& conn,
                                                        ramjet::HttpRequestHead& req,
                                                        ramjet::NoContext&,
                                                        ramjet::NoContext&) override {
    if (conn.endpoint == endpoint_) {
      std::string line =
          "ip_firewall: ip flow " + std::to_string(conn.decapsulated_from) + " -> connection " +
          std::to_string(conn.id) + ": " + conn.client.to_string() + " -> " +
          conn.local.to_string() + " " + req.method +
          " host=" + (req.authority ? req.authority->to_string() : "-") + " " + req.path + "\n";
      // One write, so that lines of different workers never interleave.
      std::fwrite(line.data(), 1, line.size(), stderr);
    }
    co_return ramjet::RequestDirective::proceed();
  }

 private:
  std::string endpoint_;
};

struct FirewallApp {
  static constexpr std::string_view name = "example-ip-firewall";
  static constexpr std::string_view version = "0.1.0";
  static constexpr std::string_view description =
      "ramjet example: drops IP flows to blocked ports, decapsulates some, marks others' packets "
      "with a DSCP";
  using Settings = FirewallSettings;

  static ramjet::Hooks<FirewallApp> start(const FirewallSettings& s) {
    ramjet::Hooks<FirewallApp> hooks;
    hooks.ip = std::make_unique<PortFirewall>(s);
    if (!s.decapsulate_to.empty()) {
      hooks.ingress = std::make_unique<DecapsulatedOnly>(s.decapsulate_to);
      hooks.http = std::make_unique<RequestLog>(s.decapsulate_to);
    }
    return hooks;
  }
};

}  // namespace

int main(int argc, char** argv) {
  return ramjet::bootstrap<FirewallApp>(argc, argv);
}
