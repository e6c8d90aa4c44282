// config::changed_keys: the key-by-key difference a reload reports.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ramjet/config/config.h"

namespace {

namespace config = ramjet::config;
using Keys = std::vector<std::string>;

config::Config load(const std::string& yaml) {
  auto c = config::load_string(yaml, "test.yaml", config::AppSchema{"ramjetd", {}, {}});
  EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
  return c.ok() ? *c : config::Config{};
}

Keys changed(const std::string& a, const std::string& b) {
  return config::changed_keys(load(a), load(b), config::AppSchema{"ramjetd", {}, {}});
}

constexpr const char* kBase = R"(
logging: {level: info}
dns: {servers: ["127.0.0.1:53"]}
endpoints:
  - {name: web, listen: "127.0.0.1:8080", onramp: tcp, upstream: "127.0.0.1:80"}
  - {name: api, listen: "127.0.0.1:8081", onramp: tcp, upstream: "127.0.0.1:81"}
)";

TEST(ChangedKeys, NoneForTheSameFile) {
  EXPECT_EQ(changed(kBase, kBase), Keys{});
}

TEST(ChangedKeys, ADefaultWrittenOutIsNoChange) {
  std::string with_default = std::string(kBase) + "server: {drain_timeout: 10s}\n";
  EXPECT_EQ(changed(kBase, with_default), Keys{});
}

TEST(ChangedKeys, ScalarsAndListsByPath) {
  EXPECT_EQ(changed(kBase, R"(
logging: {level: debug}
dns: {servers: ["127.0.0.1:53", "127.0.0.2:53"]}
endpoints:
  - {name: web, listen: "127.0.0.1:8080", onramp: tcp, upstream: "127.0.0.1:80"}
  - {name: api, listen: "127.0.0.1:8081", onramp: tcp, upstream: "127.0.0.1:81"}
)"),
            (Keys{"logging.level", "dns.servers"}));
}

TEST(ChangedKeys, EndpointsAreMatchedByName) {
  EXPECT_EQ(changed(kBase, R"(
logging: {level: info}
dns: {servers: ["127.0.0.1:53"]}
endpoints:
  - {name: api, listen: "127.0.0.1:8081", onramp: tcp, upstream: "127.0.0.1:81", idle_timeout: 5s}
  - {name: new, listen: "127.0.0.1:8082", onramp: tcp, upstream: "127.0.0.1:82"}
)"),
            (Keys{"endpoints[web]", "endpoints[api].idle_timeout", "endpoints[new]"}));
}

TEST(ChangedKeys, ReorderedNamedItemsAreAChangeOfTheSequence) {
  EXPECT_EQ(changed(kBase, R"(
logging: {level: info}
dns: {servers: ["127.0.0.1:53"]}
endpoints:
  - {name: api, listen: "127.0.0.1:8081", onramp: tcp, upstream: "127.0.0.1:81"}
  - {name: web, listen: "127.0.0.1:8080", onramp: tcp, upstream: "127.0.0.1:80"}
)"),
            (Keys{"endpoints"}));
}

}  // namespace
