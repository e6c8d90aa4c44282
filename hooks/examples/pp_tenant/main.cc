// Example: per-tenant egress addresses. The load balancer in front names the tenant in a
// custom PROXY v2 TLV (0xE0 by default, one of the types the spec leaves to
// applications); ProxyProtocolConnectionHook looks the tenant up and refuses unknown
// ones, and EgressHook sends that connection's upstream traffic from the tenant's own
// source address (EgressDecision::from), so origins and their firewalls see which
// tenant is calling. ramjet reuses idle upstream connections only for the same source
// (docs/decisions.md, "Source addresses").
//
//   endpoints:
//     - name: tenants
//       listen: 0.0.0.0:8080
//       onramp: http
//       proxy_protocol: {mode: required, versions: [2], trusted: [10.0.0.0/16]}
//   app:
//     tenant_tlv: 224
//     tenants:
//       - {name: acme, source: 192.0.2.10}
//       - {name: globex, source: 192.0.2.11}
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ramjet/bootstrap.h"

namespace {

struct Tenant {
  std::string name;
  ramjet::IpAddress source;
  static void describe(ramjet::settings::Fields<Tenant>& f) {
    f.required("name", &Tenant::name, "The tenant as the balancer's TLV names it.");
    f.required("source", &Tenant::source, "The address its upstream connections leave from.");
  }
};

struct TenantSettings {
  unsigned tenant_tlv = 0xE0;
  std::vector<Tenant> tenants;
  static void describe(ramjet::settings::Fields<TenantSettings>& f) {
    f("tenant_tlv", &TenantSettings::tenant_tlv,
      "PROXY v2 TLV type carrying the tenant name (0xE0-0xEF are for applications).");
    f("tenants", &TenantSettings::tenants, "Known tenants; connections of others are closed.");
  }
};

// One per connection: the tenant's source address, once the header named the tenant.
struct TenantOfConnection {
  std::optional<ramjet::IpAddress> source;
};

class TenantFromHeader final : public ramjet::ProxyProtocolConnectionHook<TenantOfConnection> {
 public:
  explicit TenantFromHeader(TenantSettings s) : s_(std::move(s)) {}

  ramjet::Task<ramjet::ProxyProtocolDecision> handle_connection(
      const ramjet::ConnectionInfo&, const ramjet::ProxyHeader& h,
      TenantOfConnection& ctx) override {
    const ramjet::ProxyTlv* tlv = h.find(static_cast<std::uint8_t>(s_.tenant_tlv));
    if (tlv == nullptr) co_return ramjet::ProxyProtocolDecision::block("no tenant TLV");
    for (const Tenant& t : s_.tenants) {
      if (t.name == tlv->value) {
        ctx.source = t.source;
        co_return ramjet::ProxyProtocolDecision::allow();
      }
    }
    co_return ramjet::ProxyProtocolDecision::block("unknown tenant " + tlv->value);
  }

 private:
  TenantSettings s_;
};

class TenantSource final : public ramjet::EgressHook<TenantOfConnection> {
 public:
  ramjet::Task<ramjet::EgressDecision> handle_connection(const ramjet::ConnectionInfo&,
                                                         const ramjet::EgressRequest& req,
                                                         TenantOfConnection& ctx) override {
    // A connection without a tenant never gets here: the header hook closed it.
    if (!ctx.source) co_return ramjet::EgressDecision::block("no tenant");
    co_return ramjet::EgressDecision::direct(req.target).from(*ctx.source);
  }
};

struct TenantApp {
  static constexpr std::string_view name = "example-pp-tenant";
  static constexpr std::string_view version = "0.1.0";
  static constexpr std::string_view description =
      "ramjet example: the tenant named in a PROXY v2 TLV picks the egress source address";
  using Settings = TenantSettings;
  using IngressConnectionContext = TenantOfConnection;

  static ramjet::Hooks<TenantApp> start(const TenantSettings& s) {
    ramjet::Hooks<TenantApp> hooks;
    hooks.proxy_protocol = std::make_unique<TenantFromHeader>(s);
    hooks.egress = std::make_unique<TenantSource>();
    return hooks;
  }
};

}  // namespace

int main(int argc, char** argv) {
  return ramjet::bootstrap<TenantApp>(argc, argv);
}
