// Example: admit connections by what the load balancer in front says about them. An AWS
// Network Load Balancer reached through PrivateLink puts the VPC endpoint the client came
// through in its PROXY v2 header (TLV 0xEA, subtype 0x01); ProxyProtocolConnectionHook lets
// a connection in only when that endpoint is listed, and the access log, hooks and
// ramjetctl see the client's own address (docs/proxy_protocol.md).
//
//   endpoints:
//     - name: private
//       listen: 0.0.0.0:8080
//       upstream: 127.0.0.1:9000
//       proxy_protocol: {mode: required, versions: [2], trusted: [10.0.0.0/16]}
//   app:
//     allowed_vpc_endpoints: [vpce-0123456789abcdef0]
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "ramjet/bootstrap.h"

namespace {

// PP2_TYPE_AWS and its PP2_SUBTYPE_AWS_VPCE_ID, as AWS documents them.
constexpr std::uint8_t kTlvAws = 0xEA;
constexpr char kAwsVpceId = 0x01;

struct VpceSettings {
  std::vector<std::string> allowed_vpc_endpoints;
  static void describe(ramjet::settings::Fields<VpceSettings>& f) {
    f("allowed_vpc_endpoints", &VpceSettings::allowed_vpc_endpoints,
      "VPC endpoint IDs (vpce-...) whose connections are admitted; all others are closed.");
  }
};

// The VPC endpoint ID of an AWS TLV, or "" when the header has none.
std::string_view vpce_id(const ramjet::ProxyHeader& h) {
  const ramjet::ProxyTlv* aws = h.find(kTlvAws);
  if (aws == nullptr || aws->value.empty() || aws->value[0] != kAwsVpceId) return {};
  return std::string_view(aws->value).substr(1);
}

class VpceGate final : public ramjet::ProxyProtocolConnectionHook<ramjet::NoContext> {
 public:
  explicit VpceGate(VpceSettings s) : s_(std::move(s)) {}

  ramjet::Task<ramjet::ProxyProtocolDecision> handle_connection(const ramjet::ConnectionInfo&,
                                                                const ramjet::ProxyHeader& h,
                                                                ramjet::NoContext&) override {
    // The balancer's own health checks.
    if (h.command == ramjet::ProxyHeader::Command::kLocal)
      co_return ramjet::ProxyProtocolDecision::allow();
    const std::string_view id = vpce_id(h);
    if (id.empty()) co_return ramjet::ProxyProtocolDecision::block("no VPC endpoint ID");
    if (std::find(s_.allowed_vpc_endpoints.begin(), s_.allowed_vpc_endpoints.end(), id) ==
        s_.allowed_vpc_endpoints.end())
      co_return ramjet::ProxyProtocolDecision::block("VPC endpoint " + std::string(id) +
                                                     " is not allowed");
    co_return ramjet::ProxyProtocolDecision::allow();
  }

 private:
  VpceSettings s_;
};

struct VpceApp {
  static constexpr std::string_view name = "example-vpce-gate";
  static constexpr std::string_view version = "0.1.0";
  static constexpr std::string_view description =
      "ramjet example: admit connections by the VPC endpoint their PROXY v2 header names";
  using Settings = VpceSettings;

  static ramjet::Hooks<VpceApp> start(const VpceSettings& s) {
    ramjet::Hooks<VpceApp> hooks;
    hooks.proxy_protocol = std::make_unique<VpceGate>(s);
    return hooks;
  }
};

}  // namespace

int main(int argc, char** argv) {
  return ramjet::bootstrap<VpceApp>(argc, argv);
}
