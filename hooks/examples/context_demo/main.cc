// Example: a typed per-connection context carried from IngressHook to EgressHook.
//
//   app:
//     deny_clients: [127.0.0.9/32]     # refused at ingress
//     vip_clients: [127.0.0.2/32]      # tagged "vip" at ingress ...
//     vip_upstream: 127.0.0.1:9100     # ... and routed here at egress
//
// The framework default-constructs one ClientTag per connection and hands the same
// object to every hook of that connection; the engine never sees its type.
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "ramjet/bootstrap.h"

namespace {

struct ContextDemoSettings {
  std::vector<ramjet::Cidr> deny_clients;
  std::vector<ramjet::Cidr> vip_clients;
  std::optional<ramjet::HostPort> vip_upstream;
  static void describe(ramjet::settings::Fields<ContextDemoSettings>& f) {
    f("deny_clients", &ContextDemoSettings::deny_clients, "Clients refused at ingress.");
    f("vip_clients", &ContextDemoSettings::vip_clients, "Clients tagged \"vip\" at ingress.");
    f("vip_upstream", &ContextDemoSettings::vip_upstream,
      "Where vip connections go instead of the endpoint's upstream.");
  }
};

// The per-connection context: written at ingress, read at egress.
struct ClientTag {
  std::string tier = "standard";
};

bool in_any(const std::vector<ramjet::Cidr>& list, const ramjet::IpAddress& ip) {
  return std::any_of(list.begin(), list.end(),
                     [&](const ramjet::Cidr& c) { return c.contains(ip); });
}

class TaggingIngress final : public ramjet::IngressHook<ClientTag> {
 public:
  explicit TaggingIngress(const ContextDemoSettings& s) : s_(s) {}
  ramjet::Task<ramjet::IngressDecision> handle_connection(const ramjet::ConnectionInfo& conn,
                                                          ClientTag& tag) override {
    if (in_any(s_.deny_clients, conn.client.ip()))
      co_return ramjet::IngressDecision::block("client in app.deny_clients");
    if (in_any(s_.vip_clients, conn.client.ip())) tag.tier = "vip";
    co_return ramjet::IngressDecision::allow();
  }

 private:
  ContextDemoSettings s_;
};

class RoutingEgress final : public ramjet::EgressHook<ClientTag> {
 public:
  explicit RoutingEgress(const ContextDemoSettings& s) : s_(s) {}
  ramjet::Task<ramjet::EgressDecision> handle_connection(const ramjet::ConnectionInfo&,
                                                         const ramjet::EgressRequest& req,
                                                         ClientTag& tag) override {
    if (tag.tier == "vip" && s_.vip_upstream)
      co_return ramjet::EgressDecision::direct(*s_.vip_upstream);
    co_return ramjet::EgressDecision::direct(req.target);
  }

 private:
  ContextDemoSettings s_;
};

struct ContextDemoApp {
  static constexpr std::string_view name = "example-context-demo";
  static constexpr std::string_view version = "0.1.0";
  static constexpr std::string_view description =
      "ramjet example: IngressHook tags a connection, EgressHook routes by the tag";
  using Settings = ContextDemoSettings;
  using IngressConnectionContext = ClientTag;

  static ramjet::Hooks<ContextDemoApp> start(const ContextDemoSettings& s) {
    ramjet::Hooks<ContextDemoApp> hooks;
    hooks.ingress = std::make_unique<TaggingIngress>(s);
    hooks.egress = std::make_unique<RoutingEgress>(s);
    return hooks;
  }
};

}  // namespace

int main(int argc, char** argv) {
  return ramjet::bootstrap<ContextDemoApp>(argc, argv);
}
