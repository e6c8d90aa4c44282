// Debug-only example: an IngressHook that misbehaves on purpose, so that what ramjetd does
// about a misbehaving hook can be tested with the real daemon. Never deploy it.
//
//   app:
//     fault: segv      # none | segv | abort | fpe | hang
//     hang_ms: 3000    # how long `hang` blocks the worker thread
//
// segv writes through a bad pointer, abort calls std::abort, fpe divides by zero, hang
// sleeps on the worker's thread (nothing else on that worker runs meanwhile; systemd's
// watchdog notices). Each logs "flow N: debug fault F" first, so a test knows the flow.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>

#include "ramjet/bootstrap.h"

namespace {

struct FaultSettings {
  std::string fault = "none";
  std::uint32_t hang_ms = 3000;
  static void describe(ramjet::settings::Fields<FaultSettings>& f) {
    f("fault", &FaultSettings::fault,
      "What every new connection's IngressHook does: none, segv, abort, fpe or hang.");
    f("hang_ms", &FaultSettings::hang_ms, "How long `hang` blocks the worker, in ms.");
  }
};

// Out of line and named, so the crash report's stack shows where the fault was.
// The bad address and the zero divisor go through volatiles so that the compiler can
// neither see the fault coming nor remove it.
volatile std::uintptr_t g_bad_address = 16;
volatile int g_zero = 0;

[[gnu::noinline]] void debug_fault_segv() {
  *reinterpret_cast<int*>(g_bad_address) = 1;
}

[[gnu::noinline]] int debug_fault_fpe() {
  return 1 / g_zero;
}

class FaultIngress final : public ramjet::IngressHook<ramjet::NoContext> {
 public:
  explicit FaultIngress(FaultSettings s) : s_(std::move(s)) {}

  ramjet::Task<ramjet::IngressDecision> handle_connection(const ramjet::ConnectionInfo& c,
                                                          ramjet::NoContext&) override {
    if (s_.fault != "none") spdlog::warn("flow {}: debug fault {}", c.id, s_.fault);
    if (s_.fault == "segv") debug_fault_segv();
    if (s_.fault == "abort") std::abort();
    if (s_.fault == "fpe") spdlog::info("{}", debug_fault_fpe());
    if (s_.fault == "hang") std::this_thread::sleep_for(std::chrono::milliseconds(s_.hang_ms));
    co_return ramjet::IngressDecision::allow();
  }

 private:
  FaultSettings s_;
};

struct DebugFaultsApp {
  static constexpr std::string_view name = "example-debug-faults";
  static constexpr std::string_view version = "0.1.0";
  static constexpr std::string_view description =
      "ramjet debug example: an IngressHook that crashes or hangs on purpose (tests only)";
  using Settings = FaultSettings;

  static ramjet::Hooks<DebugFaultsApp> start(const FaultSettings& s) {
    ramjet::Hooks<DebugFaultsApp> hooks;
    hooks.ingress = std::make_unique<FaultIngress>(s);
    return hooks;
  }
};

}  // namespace

int main(int argc, char** argv) {
  return ramjet::bootstrap<DebugFaultsApp>(argc, argv);
}
