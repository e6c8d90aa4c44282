// Example: an egress allowlist whose CIDRs come from the app's own settings.
//
//   app:
//     allowed_cidrs: [127.0.0.0/8, 192.0.2.0/24]
//
// Upstream addresses outside the list are dropped before connecting; if none is
// left the connection is blocked. Addresses on the list are vouched for, so they
// pass even when they are private and egress.allow_private does not name them:
// the app's list is the policy.
#include <algorithm>
#include <vector>

#include "ramjet/bootstrap.h"

namespace {

struct AllowlistSettings {
  std::vector<ramjet::Cidr> allowed_cidrs;
  static void describe(ramjet::settings::Fields<AllowlistSettings>& f) {
    f("allowed_cidrs", &AllowlistSettings::allowed_cidrs,
      "Upstream prefixes clients may reach; everything else is blocked.");
  }
};

class AllowlistEgress final : public ramjet::EgressHook<ramjet::NoContext> {
 public:
  explicit AllowlistEgress(std::vector<ramjet::Cidr> allowed) : allowed_(std::move(allowed)) {}

  ramjet::Task<ramjet::UpstreamIpsPolicy> handle_upstream_ips(const ramjet::ConnectionInfo&,
                                                              ramjet::UpstreamIps& ips,
                                                              ramjet::NoContext&) override {
    std::erase_if(ips.addresses, [this](const ramjet::IpAddress& ip) { return !allowed(ip); });
    co_return ips.addresses.empty() ? ramjet::UpstreamIpsPolicy::kBlock
                                    : ramjet::UpstreamIpsPolicy::kAllowPrivate;
  }

 private:
  bool allowed(const ramjet::IpAddress& ip) const {
    return std::any_of(allowed_.begin(), allowed_.end(),
                       [&](const ramjet::Cidr& c) { return c.contains(ip); });
  }
  std::vector<ramjet::Cidr> allowed_;
};

struct EgressAllowlistApp {
  static constexpr std::string_view name = "example-egress-allowlist";
  static constexpr std::string_view version = "0.1.0";
  static constexpr std::string_view description =
      "ramjet example: only connect to upstreams inside app.allowed_cidrs";
  using Settings = AllowlistSettings;

  static ramjet::Hooks<EgressAllowlistApp> start(const AllowlistSettings& s) {
    ramjet::Hooks<EgressAllowlistApp> hooks;
    hooks.egress = std::make_unique<AllowlistEgress>(s.allowed_cidrs);
    return hooks;
  }
};

}  // namespace

int main(int argc, char** argv) {
  return ramjet::bootstrap<EgressAllowlistApp>(argc, argv);
}
