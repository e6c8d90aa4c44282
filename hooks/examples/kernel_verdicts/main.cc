// Example: hook decisions that reach into the eBPF datapath.
//
//   app:
//     block_seconds: 5       # how long a blocked client stays blocked in XDP
//     fastpath_seconds: 30   # how long an allowed class stays on the fast path
//
// Run it behind datapath rules that escalate tcp ports 81-82 to a transparent
// endpoint. A connection to original destination port 81 is refused and the
// client's address is dropped in XDP for block_seconds, so everything it sends
// (fast-path flows included) stops at the gateway's NIC. A connection to port 82
// is relayed, and its (client, destination, port) class is put on the fast path
// for fastpath_seconds: the client's next connection there never reaches the
// engine. Any other port is relayed as usual.
#include <chrono>

#include "ramjet/bootstrap.h"

namespace {

struct KernelVerdictSettings {
  std::uint32_t block_seconds = 5;
  std::uint32_t fastpath_seconds = 30;
  static void describe(ramjet::settings::Fields<KernelVerdictSettings>& f) {
    f("block_seconds", &KernelVerdictSettings::block_seconds,
      "Seconds a client that reached port 81 stays blocked in the kernel.");
    f("fastpath_seconds", &KernelVerdictSettings::fastpath_seconds,
      "Seconds a (client, destination, port 82) class stays on the kernel fast path.");
  }
};

constexpr std::uint16_t kBlockedPort = 81;
constexpr std::uint16_t kFastpathPort = 82;

class KernelVerdictIngress final : public ramjet::IngressHook<ramjet::NoContext> {
 public:
  explicit KernelVerdictIngress(KernelVerdictSettings s) : settings_(s) {}

  ramjet::Task<ramjet::IngressDecision> handle_connection(const ramjet::ConnectionInfo& conn,
                                                          ramjet::NoContext&) override {
    using std::chrono::seconds;
    if (conn.local.port() == kBlockedPort)
      co_return ramjet::IngressDecision::block("port 81 is closed to this client")
          .with_kernel(ramjet::KernelVerdict::block_source(seconds(settings_.block_seconds)));
    if (conn.local.port() == kFastpathPort)
      co_return ramjet::IngressDecision::allow().with_kernel(
          ramjet::KernelVerdict::fastpath_class(seconds(settings_.fastpath_seconds)));
    co_return ramjet::IngressDecision::allow();
  }

 private:
  KernelVerdictSettings settings_;
};

struct KernelVerdictsApp {
  static constexpr std::string_view name = "example-kernel-verdicts";
  static constexpr std::string_view version = "0.1.0";
  static constexpr std::string_view description =
      "ramjet example: hooks that block sources and fast-path classes in the kernel";
  using Settings = KernelVerdictSettings;

  static ramjet::Hooks<KernelVerdictsApp> start(const KernelVerdictSettings& s) {
    ramjet::Hooks<KernelVerdictsApp> hooks;
    hooks.ingress = std::make_unique<KernelVerdictIngress>(s);
    return hooks;
  }
};

}  // namespace

int main(int argc, char** argv) {
  return ramjet::bootstrap<KernelVerdictsApp>(argc, argv);
}
