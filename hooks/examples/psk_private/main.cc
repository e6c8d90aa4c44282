// Example (after Oxy's): clients that present the pre-shared key may reach private
// ranges; everyone else is held to the egress guard.
//
//   endpoints: [{name: fwd, listen: 127.0.0.1:3128, onramp: http}]
//   app:
//     key: "0123456789abcdef-secret"
//     private_cidrs: [127.0.0.0/8, 10.0.0.0/8]
//
// HttpRequestHook reads `Proxy-Authorization: Preshared <key>` and writes the verdict
// into the connection's context; EgressHook reads it when the addresses are known.
// (The header is hop-by-hop: the engine never forwards it upstream.)
#include <algorithm>
#include <string>
#include <vector>

#include "ramjet/bootstrap.h"

namespace {

struct PskSettings {
  std::string key;
  std::vector<ramjet::Cidr> private_cidrs;
  static void describe(ramjet::settings::Fields<PskSettings>& f) {
    f("key", &PskSettings::key, "The pre-shared key that unlocks private_cidrs.");
    f("private_cidrs", &PskSettings::private_cidrs,
      "Private ranges a client with the key may reach.");
  }
};

struct Trust {
  bool has_key = false;
};

// Compares without an early exit, so timing does not reveal how much matched.
bool same_secret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= a[i] ^ (i < b.size() ? b[i] : 0);
  return diff == 0;
}

class PskHttp final : public ramjet::HttpRequestHook<Trust, ramjet::NoContext> {
 public:
  explicit PskHttp(std::string key) : key_(std::move(key)) {}
  void check(const ramjet::HttpHeaders& headers, Trust& trust) const {
    auto v = headers.get("proxy-authorization");
    constexpr std::string_view kScheme = "Preshared ";
    trust.has_key = v && v->size() > kScheme.size() &&
                    ramjet::HttpHeaders::iequals(v->substr(0, kScheme.size()), kScheme) &&
                    same_secret(v->substr(kScheme.size()), key_);
  }
  ramjet::Task<ramjet::ConnectDirective> handle_proxy_connect_request(
      const ramjet::ConnectionInfo&, const ramjet::HttpRequestHead& head, Trust& trust) override {
    check(head.headers, trust);
    co_return ramjet::ConnectDirective::allow();
  }
  ramjet::Task<ramjet::RequestDirective> handle_request(const ramjet::ConnectionInfo&,
                                                        ramjet::HttpRequestHead& req, Trust& trust,
                                                        ramjet::NoContext&) override {
    check(req.headers, trust);
    co_return ramjet::RequestDirective::proceed();
  }

 private:
  std::string key_;
};

class PskEgress final : public ramjet::EgressHook<Trust> {
 public:
  explicit PskEgress(std::vector<ramjet::Cidr> cidrs) : cidrs_(std::move(cidrs)) {}
  ramjet::Task<ramjet::UpstreamIpsPolicy> handle_upstream_ips(const ramjet::ConnectionInfo&,
                                                              ramjet::UpstreamIps& ips,
                                                              Trust& trust) override {
    if (!trust.has_key) co_return ramjet::UpstreamIpsPolicy::kGuarded;
    bool all_listed = std::all_of(ips.addresses.begin(), ips.addresses.end(), [&](auto& ip) {
      return std::any_of(cidrs_.begin(), cidrs_.end(), [&](auto& c) { return c.contains(ip); });
    });
    co_return all_listed ? ramjet::UpstreamIpsPolicy::kAllowPrivate
                         : ramjet::UpstreamIpsPolicy::kGuarded;
  }

 private:
  std::vector<ramjet::Cidr> cidrs_;
};

struct PskApp {
  static constexpr std::string_view name = "example-psk-private";
  static constexpr std::string_view version = "0.1.0";
  static constexpr std::string_view description =
      "ramjet example: a pre-shared key unlocks private destinations";
  using Settings = PskSettings;
  using IngressConnectionContext = Trust;

  static ramjet::Hooks<PskApp> start(const PskSettings& s) {
    ramjet::Hooks<PskApp> hooks;
    hooks.http = std::make_unique<PskHttp>(s.key);
    hooks.egress = std::make_unique<PskEgress>(s.private_cidrs);
    return hooks;
  }
};

}  // namespace

int main(int argc, char** argv) {
  return ramjet::bootstrap<PskApp>(argc, argv);
}
