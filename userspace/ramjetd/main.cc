// ramjetd: the default application - the framework with no custom hooks.
#include "ramjet/bootstrap.h"

namespace {
struct Ramjetd {
  static constexpr std::string_view name = "ramjetd";
  static constexpr std::string_view version = "0.1.0";
  static constexpr std::string_view description =
      "ramjet: eBPF-accelerated hybrid proxy framework (default application, no custom hooks)";
  static ramjet::Hooks<Ramjetd> start(const ramjet::NoSettings&) { return {}; }
};
}  // namespace

int main(int argc, char** argv) {
  return ramjet::bootstrap<Ramjetd>(argc, argv);
}
