// Example: steering UDP sessions (onramp: udp, docs/udp.md).
//
//   app:
//     deny: [192.0.2.0/24]                       # IngressHook: these clients get nothing
//     backends: [10.0.0.1:53, 10.0.0.2:53]       # udp_connect_override: one per client
//
// IngressHook::handle_connection runs once per session (a client address and port), so a
// denied client costs one hook call, not one per datagram. EgressHook::udp_connect_override
// pins each session to backends[client port % n]: all of a client's datagrams reach the
// same backend, as a stateful UDP service (DNS over a cache, a game server) wants.
#include <algorithm>
#include <vector>

#include "ramjet/bootstrap.h"

namespace {

struct SteerSettings {
  std::vector<ramjet::Cidr> deny;
  std::vector<ramjet::SocketAddress> backends;

  static void describe(ramjet::settings::Fields<SteerSettings>& f) {
    f("deny", &SteerSettings::deny, "Client prefixes whose sessions are blocked.");
    f("backends", &SteerSettings::backends,
      "Upstreams to spread sessions over by client port; empty = the endpoint's upstream.");
  }
};

class DenyClients final : public ramjet::IngressHook<ramjet::NoContext> {
 public:
  explicit DenyClients(std::vector<ramjet::Cidr> deny) : deny_(std::move(deny)) {}

  ramjet::Task<ramjet::IngressDecision> handle_connection(const ramjet::ConnectionInfo& conn,
                                                          ramjet::NoContext&) override {
    for (const auto& c : deny_)
      if (c.contains(conn.client.ip())) co_return ramjet::IngressDecision::block("client denied");
    co_return ramjet::IngressDecision::allow();
  }

 private:
  std::vector<ramjet::Cidr> deny_;
};

class PinBackend final : public ramjet::EgressHook<ramjet::NoContext> {
 public:
  explicit PinBackend(std::vector<ramjet::SocketAddress> backends)
      : backends_(std::move(backends)) {}

  ramjet::Task<ramjet::ConnectOverride> udp_connect_override(const ramjet::ConnectionInfo& conn,
                                                             const ramjet::SocketAddress&,
                                                             ramjet::NoContext&) override {
    if (backends_.empty()) co_return ramjet::ConnectOverride::proceed();
    co_return ramjet::ConnectOverride::redirect(backends_[conn.client.port() % backends_.size()]);
  }

 private:
  std::vector<ramjet::SocketAddress> backends_;
};

struct UdpSteerApp {
  static constexpr std::string_view name = "example-udp-steer";
  static constexpr std::string_view version = "0.1.0";
  static constexpr std::string_view description =
      "ramjet example: block UDP clients by prefix, pin each session to a backend";
  using Settings = SteerSettings;

  static ramjet::Hooks<UdpSteerApp> start(const SteerSettings& s) {
    ramjet::Hooks<UdpSteerApp> hooks;
    hooks.ingress = std::make_unique<DenyClients>(s.deny);
    hooks.egress = std::make_unique<PinBackend>(s.backends);
    return hooks;
  }
};

}  // namespace

int main(int argc, char** argv) {
  return ramjet::bootstrap<UdpSteerApp>(argc, argv);
}
