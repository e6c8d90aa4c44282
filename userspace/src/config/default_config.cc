// --print-default-config: the documented default file, generated from the declarations
// so it can never drift from what the loader accepts.
#include <string>
#include <vector>

#include "ramjet/config/config.h"

namespace ramjet::config {
namespace {

// Just the endpoints key, so the example prints with the same docs as the real thing.
struct ExampleEndpoints {
  std::vector<Endpoint> endpoints;

  static void describe(settings::Fields<ExampleEndpoints>& f) {
    f("endpoints", &ExampleEndpoints::endpoints, "");
  }
};

std::string comment_out(const std::string& text) {
  std::string out;
  std::size_t begin = 0;
  while (begin < text.size()) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + begin, end - begin);
    out += line.empty() ? "#\n" : "# " + std::string(line) + "\n";
    begin = end + 1;
  }
  return out;
}

std::string example_endpoint(const AppSchema& schema, const settings::SlotTable& slots) {
  Endpoint ep;
  ep.name = "example";
  ep.listen = *SocketAddress::parse("127.0.0.1:8000");
  ep.upstream = UpstreamTarget{UpstreamTarget::Scheme::kNone, HostPort{"example.com", 80}};
  ep.app = schema.endpoint.make();
  ExampleEndpoints example{{std::move(ep)}};
  settings::EmitOptions opts{&slots, /*fill_required=*/true, /*width=*/98};
  return settings::emit(example, 0, opts);
}

}  // namespace

std::string default_config_yaml(const AppSchema& schema) {
  settings::SlotTable slots;
  slots.set(std::string(kAppSlot), &schema.app);
  slots.set(std::string(kEndpointAppSlot), &schema.endpoint);

  Config config;
  config.app = schema.app.make();
  std::string body = settings::emit(config, 0, settings::EmitOptions{&slots, false});

  // Endpoints default to none; show a complete one, commented out, right below the key.
  const std::string marker = "\nendpoints: []\n";
  auto at = body.find(marker);
  if (at != std::string::npos) {
    std::string example =
        "# Uncomment and adapt, for example:\n" + comment_out(example_endpoint(schema, slots));
    body.insert(at + marker.size(), example);
  }

  std::string app_name = schema.app_name.empty() ? "ramjet" : schema.app_name;
  std::string header =
      "# " + app_name +
      " configuration: every setting at its default, with what it does.\n"
      "# Durations need a unit: 250ms, 5s, 2m, 1h or combined (1m30s); \"0\" also works.\n"
      "# Unknown keys are errors. Keys marked <required> must be set.\n\n";
  return header + body;
}

}  // namespace ramjet::config
