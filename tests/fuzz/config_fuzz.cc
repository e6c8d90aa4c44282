// libFuzzer target for the config loader: arbitrary bytes through yaml-cpp, the Node
// conversion, every codec and validation. load_string must return an Error, never crash,
// hang or throw. An application schema is plugged in so app sections are exercised too.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ramjet/config/config.h"

namespace {

enum class Mode { kFast, kSafe };

}  // namespace

template <>
struct ramjet::settings::EnumNames<Mode> {
  static constexpr std::pair<Mode, std::string_view> values[] = {{Mode::kFast, "fast"},
                                                                 {Mode::kSafe, "safe"}};
};

namespace {

struct Tier {
  unsigned max = 1;
  std::optional<std::chrono::milliseconds> window;
  static void describe(ramjet::settings::Fields<Tier>& f) {
    f("max", &Tier::max, "");
    f("window", &Tier::window, "");
  }
};

struct FuzzAppSettings {
  std::string name;
  std::vector<ramjet::Cidr> allowed_cidrs;
  std::chrono::milliseconds interval{1000};
  std::int64_t offset = 0;
  std::uint16_t port = 0;
  double ratio = 0;
  ramjet::IpAddress ip;
  std::optional<ramjet::SocketAddress> target;
  std::vector<ramjet::HostPort> peers;
  Mode mode = Mode::kSafe;
  std::vector<Tier> tiers;
  std::vector<std::vector<int>> grid;
  static void describe(ramjet::settings::Fields<FuzzAppSettings>& f) {
    f.required("name", &FuzzAppSettings::name, "");
    f("allowed_cidrs", &FuzzAppSettings::allowed_cidrs, "");
    f("interval", &FuzzAppSettings::interval, "");
    f("offset", &FuzzAppSettings::offset, "");
    f("port", &FuzzAppSettings::port, "");
    f("ratio", &FuzzAppSettings::ratio, "");
    f("ip", &FuzzAppSettings::ip, "");
    f("target", &FuzzAppSettings::target, "");
    f("peers", &FuzzAppSettings::peers, "");
    f("mode", &FuzzAppSettings::mode, "");
    f("tiers", &FuzzAppSettings::tiers, "");
    f("grid", &FuzzAppSettings::grid, "");
  }
};

struct FuzzEndpointSettings {
  bool audit = false;
  std::vector<std::string> labels;
  static void describe(ramjet::settings::Fields<FuzzEndpointSettings>& f) {
    f("audit", &FuzzEndpointSettings::audit, "");
    f("labels", &FuzzEndpointSettings::labels, "");
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const ramjet::config::AppSchema schema{
      "fuzz", ramjet::settings::ErasedStruct::of<FuzzAppSettings>(),
      ramjet::settings::ErasedStruct::of<FuzzEndpointSettings>()};
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto result = ramjet::config::load_string(text, "fuzz.yaml", schema);
  if (!result.ok()) {
    // Every error names the file first.
    if (result.error().message.rfind("fuzz.yaml", 0) != 0) __builtin_trap();
  }
  return 0;
}
