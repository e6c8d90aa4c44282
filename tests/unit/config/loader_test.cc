// The config loader end to end: YAML text and files in, Config or one exact error out.
#include <gtest/gtest.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "ramjet/config/config.h"

namespace {

namespace config = ramjet::config;
namespace settings = ramjet::settings;
using ramjet::Cidr;
using ramjet::HostPort;
using ramjet::IpAddress;
using ramjet::SocketAddress;
using std::chrono::milliseconds;

// --- A sample application, declared the way an application would. ---

enum class Mode { kFast, kSafe };

struct Percent {
  unsigned value = 0;
};

}  // namespace

template <>
struct ramjet::settings::EnumNames<Mode> {
  static constexpr std::pair<Mode, std::string_view> values[] = {{Mode::kFast, "fast"},
                                                                 {Mode::kSafe, "safe"}};
};

template <>
struct ramjet::settings::Codec<Percent> {
  static bool parse(const Node& node, Percent& out, std::string& error) {
    const std::string* s = scalar_text(node, error);
    if (!s) return false;
    unsigned v = 0;
    auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
    if (ec != std::errc() || end + 1 != s->data() + s->size() || *end != '%' || v > 100) {
      error = "invalid percentage \"" + *s + "\" (expected 0% to 100%)";
      return false;
    }
    out.value = v;
    return true;
  }
  static std::string format(const Percent& p) { return std::to_string(p.value) + "%"; }
};

namespace {

struct Limits {
  unsigned max = 10;
  std::optional<milliseconds> window;
  static void describe(settings::Fields<Limits>& f) {
    f("max", &Limits::max, "Requests allowed per window.");
    f("window", &Limits::window, "Window length; null = no window.");
  }
};

struct SampleSettings {
  std::string name;
  std::vector<Cidr> allowed_cidrs{*Cidr::parse("10.0.0.0/8"), *Cidr::parse("fd00::/8")};
  milliseconds check_interval{5000};
  bool strict = false;
  int offset = 0;
  std::uint16_t port = 8080;
  std::uint64_t big = 1;
  std::int64_t small = -1;
  double ratio = 0.5;
  IpAddress bind_ip = *IpAddress::parse("127.0.0.1");
  std::optional<SocketAddress> report_to;
  std::vector<HostPort> peers;
  Mode mode = Mode::kSafe;
  Percent share{50};
  Limits limits;
  std::vector<Limits> tiers{Limits{}, Limits{5, milliseconds(1000)}};

  static void describe(settings::Fields<SampleSettings>& f) {
    f.required("name", &SampleSettings::name, "Shown in logs.");
    f("allowed_cidrs", &SampleSettings::allowed_cidrs, "CIDRs the app lets clients reach.");
    f("check_interval", &SampleSettings::check_interval, "How often to re-check.");
    f("strict", &SampleSettings::strict, "Refuse on doubt.");
    f("offset", &SampleSettings::offset, "A signed int.");
    f("port", &SampleSettings::port, "A 16-bit port.");
    f("big", &SampleSettings::big, "A 64-bit count.");
    f("small", &SampleSettings::small, "A signed 64-bit value.");
    f("ratio", &SampleSettings::ratio, "A double.");
    f("bind_ip", &SampleSettings::bind_ip, "An address.");
    f("report_to", &SampleSettings::report_to, "Optional syslog target.");
    f("peers", &SampleSettings::peers, "host:port peers.");
    f("mode", &SampleSettings::mode, "fast or safe.");
    f("share", &SampleSettings::share, "A custom codec.");
    f("limits", &SampleSettings::limits, "A nested struct.");
    f("tiers", &SampleSettings::tiers, "A list of structs.");
  }
};

struct SampleEndpointSettings {
  std::string tag = "none";
  std::vector<std::string> labels;
  static void describe(settings::Fields<SampleEndpointSettings>& f) {
    f("tag", &SampleEndpointSettings::tag, "Billing tag.");
    f("labels", &SampleEndpointSettings::labels, "Free-form labels.");
  }
};

config::AppSchema core_schema() {
  return config::AppSchema{"ramjetd", {}, {}};
}

config::AppSchema sample_schema() {
  return config::AppSchema{"sample", settings::ErasedStruct::of<SampleSettings>(),
                           settings::ErasedStruct::of<SampleEndpointSettings>()};
}

std::filesystem::path testdata() {
#ifdef RAMJET_CONFIG_TESTDATA_DIR
  return RAMJET_CONFIG_TESTDATA_DIR;
#else
  return std::filesystem::path(__FILE__).parent_path() / "testdata";
#endif
}

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The whole configuration as text, app sections included: equal text = equal config.
std::string dump(const config::Config& c, const config::AppSchema& schema) {
  settings::SlotTable slots;
  slots.set(std::string(config::kAppSlot), &schema.app);
  slots.set(std::string(config::kEndpointAppSlot), &schema.endpoint);
  return settings::emit(c, 0, settings::EmitOptions{&slots, true});
}

// --- Good files. ---

TEST(LoadGood, EmptyFileIsAllDefaults) {
  auto c = config::load_file(testdata() / "good_empty.yaml", core_schema());
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_TRUE(c->server.workers.is_auto());
  EXPECT_EQ(c->server.drain_timeout, milliseconds(10'000));
  EXPECT_EQ(c->server.admin_socket, "/run/ramjet/admin.sock");
  EXPECT_EQ(c->server.ready_file, "");
  EXPECT_EQ(c->server.max_connections, 0u);
  EXPECT_EQ(c->logging.level, config::LogLevel::kInfo);
  EXPECT_EQ(c->logging.access_log, config::AccessLogFormat::kText);
  EXPECT_TRUE(c->dns.servers.empty());
  EXPECT_EQ(c->dns.timeout, milliseconds(1000));
  EXPECT_EQ(c->dns.attempts, 2u);
  EXPECT_EQ(c->dns.cache_size, 4096u);
  EXPECT_EQ(c->dns.max_ttl, milliseconds(3'600'000));
  EXPECT_EQ(c->dns.negative_ttl, milliseconds(30'000));
  EXPECT_TRUE(c->egress.allow_private.empty());
  EXPECT_EQ(c->egress.connect_timeout, milliseconds(5000));
  EXPECT_EQ(c->egress.happy_eyeballs.resolution_delay, milliseconds(50));
  EXPECT_EQ(c->egress.happy_eyeballs.connection_attempt_delay, milliseconds(250));
  EXPECT_EQ(c->egress.happy_eyeballs.prefer, config::IpFamily::kIpv6);
  EXPECT_FALSE(c->telemetry.hook_trace);
  EXPECT_EQ(c->telemetry.hook_trace_capacity, 10'000u);
  ASSERT_TRUE(c->telemetry.metrics.listen.enabled());
  EXPECT_EQ(c->telemetry.metrics.listen.address->to_string(), "127.0.0.1:9464");
  EXPECT_EQ(c->telemetry.audit_log.path, "");
  EXPECT_TRUE(c->endpoints.empty());
  EXPECT_FALSE(c->datapath.enabled);
  // Turning the datapath on must not drop every fragment on the interface.
  EXPECT_TRUE(c->datapath.pass_fragments);
  EXPECT_NE(c->app, nullptr);  // the (empty) app settings still exist
}

TEST(LoadGood, EmptyMetricsListenTurnsMetricsOffAndRoundTrips) {
  auto c =
      config::load_string("telemetry:\n  metrics:\n    listen: \"\"\n", "off.yaml", core_schema());
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_FALSE(c->telemetry.metrics.listen.enabled());
  auto again = config::load_string(dump(*c, core_schema()), "dump.yaml", core_schema());
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_FALSE(again->telemetry.metrics.listen.enabled());
  auto port0 = config::load_string("telemetry: {metrics: {listen: \"127.0.0.1:0\"}}", "p.yaml",
                                   core_schema());
  ASSERT_TRUE(port0.ok()) << port0.error().message;
  EXPECT_EQ(port0->telemetry.metrics.listen.address->port(), 0);
}

TEST(LoadGood, TcpEscalateRuleNamesATransparentHttpEndpoint) {
  auto c = config::load_string(
      "endpoints:\n"
      "  - {name: web, onramp: http, listen: 127.0.0.1:80, transparent: true}\n"
      "  - {name: fwd, onramp: http, listen: 127.0.0.1:3128}\n"
      "  - {name: dns, onramp: udp, listen: 127.0.0.1:5353, transparent: true}\n"
      "datapath:\n"
      "  enabled: true\n"
      "  interfaces: [eth0]\n"
      "  rules:\n"
      "    - {name: web, proto: tcp, dst_port: 80, action: escalate, endpoint: web}\n",
      "esc.yaml", core_schema());
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_TRUE(config::is_transparent_tcp_listener(c->endpoints[0]));
  EXPECT_FALSE(config::is_transparent_tcp_listener(c->endpoints[1]));  // not transparent
  EXPECT_FALSE(config::is_transparent_tcp_listener(c->endpoints[2]));  // udp
}

TEST(LoadGood, UdpEscalateRuleNamesATransparentUdpEndpoint) {
  auto c = config::load_string(
      "endpoints:\n"
      "  - {name: web, listen: 127.0.0.1:80, transparent: true}\n"
      "  - {name: dns, onramp: udp, listen: 127.0.0.1:5353, transparent: true}\n"
      "datapath:\n"
      "  enabled: true\n"
      "  interfaces: [eth0]\n"
      "  rules:\n"
      "    - {name: dns, proto: udp, dst_port: 53, action: escalate, endpoint: dns}\n"
      "    - {name: web, proto: tcp, dst_port: 80, action: escalate, endpoint: web}\n",
      "esc.yaml", core_schema());
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_TRUE(c->endpoints[1].transparent);
  EXPECT_EQ(c->endpoints[1].onramp, config::Onramp::kUdp);
  EXPECT_FALSE(c->endpoints[1].upstream);
}

TEST(LoadGood, ConnectUdpOnAForwardProxy) {
  auto c = config::load_string(
      "endpoints:\n"
      "  - {name: fwd, onramp: http, listen: 127.0.0.1:3128, connect_udp: {enabled: true}}\n"
      "  - name: masque\n"
      "    onramp: http\n"
      "    listen: 127.0.0.1:3129\n"
      "    connect_udp:\n"
      "      enabled: true\n"
      "      template: /masque/{target_host}/{target_port}\n"
      "      idle_timeout: 5s\n"
      "  - {name: plain, onramp: http, listen: 127.0.0.1:3130}\n",
      "cu.yaml", core_schema());
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_TRUE(c->endpoints[0].connect_udp.enabled);
  EXPECT_EQ(c->endpoints[0].connect_udp.uri_template,
            "/.well-known/masque/udp/{target_host}/{target_port}/");
  EXPECT_EQ(c->endpoints[0].connect_udp.idle_timeout, milliseconds(60'000));
  EXPECT_EQ(c->endpoints[1].connect_udp.uri_template, "/masque/{target_host}/{target_port}");
  EXPECT_EQ(c->endpoints[1].connect_udp.idle_timeout, milliseconds(5'000));
  EXPECT_FALSE(c->endpoints[2].connect_udp.enabled);  // off unless asked for
}

TEST(LoadGood, QuicBesideAnHttpsListener) {
  auto c = config::load_string(
      "endpoints:\n"
      "  - name: web\n"
      "    onramp: http\n"
      "    listen: 127.0.0.1:8443\n"
      "    upstream: http://127.0.0.1:9000\n"
      "    tls: {certificates: [{cert: web.pem, key: web.key}]}\n"
      "    quic: {listen: 127.0.0.1:8443, max_streams_bidi: 10, idle_timeout: 5s}\n"
      "  - name: dns\n"
      "    onramp: udp\n"
      "    listen: 127.0.0.1:8444\n"
      "    upstream: 127.0.0.1:53\n"
      "  - {name: plain, onramp: http, listen: 127.0.0.1:8444}\n",
      "quic.yaml", core_schema());
  ASSERT_TRUE(c.ok()) << c.error().message;
  ASSERT_TRUE(c->endpoints[0].quic);
  const config::QuicSettings& q = *c->endpoints[0].quic;
  EXPECT_EQ(q.listen.to_string(), "127.0.0.1:8443");  // UDP: no clash with the TCP port
  EXPECT_EQ(q.max_streams_bidi, 10u);
  EXPECT_EQ(q.idle_timeout, milliseconds(5'000));
  EXPECT_EQ(q.max_streams_uni, 3u);  // defaults
  EXPECT_EQ(q.max_stream_data, 256u * 1024);
  EXPECT_EQ(q.max_data, 1024u * 1024);
  EXPECT_EQ(q.alt_svc_max_age, milliseconds(86'400'000));
  EXPECT_EQ(q.retry, config::QuicRetry::kAuto);
  EXPECT_EQ(q.retry_rate, 200u);
  EXPECT_FALSE(c->endpoints[2].quic);  // off unless asked for
}

TEST(LoadGood, EmptySectionsKeepDefaults) {
  auto c = config::load_file(testdata() / "good_sections_empty.yaml", core_schema());
  ASSERT_TRUE(c.ok()) << c.error().message;
  auto d = config::load_string("", "empty.yaml", core_schema());
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(dump(*c, core_schema()), dump(*d, core_schema()));
}

TEST(LoadGood, FullFileSetsEveryKey) {
  auto c = config::load_file(testdata() / "good_full.yaml", core_schema());
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->server.workers.count, 4u);
  EXPECT_EQ(c->server.drain_timeout, milliseconds(90'000));
  EXPECT_EQ(c->server.admin_socket, "");
  EXPECT_EQ(c->server.ready_file, "/tmp/ramjet-ready.json");
  EXPECT_EQ(c->server.max_connections, 1000u);
  EXPECT_EQ(c->logging.level, config::LogLevel::kDebug);
  EXPECT_EQ(c->logging.access_log, config::AccessLogFormat::kJson);
  EXPECT_EQ(c->logging.access_log_path, "/var/log/ramjet/access.log");
  ASSERT_EQ(c->dns.servers.size(), 2u);
  EXPECT_EQ(c->dns.servers[0].to_string(), "1.1.1.1:53");
  EXPECT_EQ(c->dns.servers[1].to_string(), "[2606:4700:4700::1111]:53");
  ASSERT_EQ(c->dns.fallback_servers.size(), 1u);
  EXPECT_EQ(c->dns.fallback_servers[0].to_string(), "8.8.8.8:53");
  EXPECT_EQ(c->dns.timeout, milliseconds(500));
  EXPECT_EQ(c->dns.attempts, 3u);
  EXPECT_EQ(c->dns.cache_size, 0u);
  EXPECT_EQ(c->dns.min_ttl, milliseconds(5000));
  EXPECT_EQ(c->dns.max_ttl, milliseconds(600'000));
  EXPECT_EQ(c->dns.negative_ttl, milliseconds(0));
  ASSERT_EQ(c->egress.allow_private.size(), 3u);
  EXPECT_EQ(c->egress.allow_private[0].to_string(), "127.0.0.0/8");
  EXPECT_EQ(c->egress.allow_private[1].to_string(), "10.1.2.3/32");
  EXPECT_EQ(c->egress.allow_private[2].to_string(), "fd00::/8");
  EXPECT_EQ(c->egress.connect_timeout, milliseconds(2000));
  EXPECT_EQ(c->egress.happy_eyeballs.resolution_delay, milliseconds(20));
  EXPECT_EQ(c->egress.happy_eyeballs.connection_attempt_delay, milliseconds(100));
  EXPECT_EQ(c->egress.happy_eyeballs.prefer, config::IpFamily::kIpv4);
  EXPECT_TRUE(c->telemetry.hook_trace);
  EXPECT_EQ(c->telemetry.hook_trace_capacity, 500u);
  ASSERT_TRUE(c->telemetry.metrics.listen.enabled());
  EXPECT_EQ(c->telemetry.metrics.listen.address->to_string(), "[::1]:9100");
  EXPECT_EQ(c->telemetry.audit_log.path, "/var/log/ramjet/audit.log");
  EXPECT_TRUE(c->datapath.enabled);
  const config::DatapathSettings& dp = c->datapath;
  EXPECT_EQ(dp.instance, "edge-1");
  EXPECT_EQ(dp.pin_root, "/run/ramjet/bpffs");
  EXPECT_EQ(dp.interfaces, (std::vector<std::string>{"gw-c", "gw-s"}));
  EXPECT_EQ(dp.xdp_mode, config::XdpMode::kNative);
  EXPECT_EQ(dp.fastpath_hook, config::FastpathHook::kTc);
  ASSERT_EQ(dp.fastpath_hooks.size(), 1u);
  EXPECT_EQ(dp.fastpath_hooks[0].interface, "gw-s");
  EXPECT_EQ(dp.fastpath_hooks[0].hook, config::FastpathHook::kXdp);
  EXPECT_EQ(dp.default_action, config::DatapathAction::kFastpath);
  ASSERT_EQ(dp.rules.size(), 3u);
  EXPECT_EQ(dp.rules[0].src->to_string(), "10.10.1.66/32");
  EXPECT_EQ(dp.rules[0].action, config::DatapathAction::kDrop);
  EXPECT_EQ(dp.rules[1].proto, config::RuleProto::kUdp);
  EXPECT_EQ(dp.rules[1].dst_port, (config::PortRange{53, 53}));
  EXPECT_EQ(dp.rules[1].interface, "gw-c");
  EXPECT_EQ(dp.rules[1].rate_pps, 1000u);
  EXPECT_EQ(dp.rules[1].burst, 2000u);
  EXPECT_EQ(dp.rules[2].dst->to_string(), "fd00::/8");
  EXPECT_EQ(dp.rules[2].dst_port, (config::PortRange{8000, 8100}));
  EXPECT_FALSE(dp.pass_fragments);
  EXPECT_EQ(dp.flow_table_size, 262144u);
  EXPECT_EQ(dp.tcp_timeout, milliseconds(600'000));
  EXPECT_EQ(dp.tcp_closed_timeout, milliseconds(5000));
  EXPECT_EQ(dp.udp_timeout, milliseconds(30'000));
  EXPECT_EQ(dp.other_timeout, milliseconds(15'000));
  EXPECT_EQ(dp.drop_sample_rate, 100u);
  EXPECT_EQ(dp.escalate_mark, 4660u);
  EXPECT_EQ(dp.route_table, 77u);
  EXPECT_EQ(dp.on_engine_unavailable, config::EngineFallback::kPass);
  EXPECT_EQ(dp.rules[0].on_engine_unavailable, std::nullopt);

  ASSERT_EQ(c->endpoints.size(), 2u);
  const config::Endpoint& web = c->endpoints[0];
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(web.listen.to_string(), "0.0.0.0:8080");
  EXPECT_EQ(web.onramp, config::Onramp::kTcp);
  EXPECT_EQ(web.upstream->target, (HostPort{"backend.internal", 80}));
  EXPECT_EQ(web.connect_timeout, milliseconds(3000));
  EXPECT_EQ(web.idle_timeout, milliseconds(0));
  EXPECT_EQ(web.max_lifetime, milliseconds(3'600'000));
  EXPECT_EQ(web.relay, config::RelayMode::kBuffer);
  EXPECT_EQ(web.proxy_protocol.mode, config::ProxyProtocolMode::kRequired);
  EXPECT_EQ(web.proxy_protocol.versions, (std::vector<unsigned>{2}));
  ASSERT_EQ(web.proxy_protocol.trusted.size(), 2u);
  EXPECT_TRUE(web.proxy_protocol.trusts(*IpAddress::parse("10.9.8.7")));
  EXPECT_TRUE(web.proxy_protocol.trusts(*IpAddress::parse("fd00::1")));
  EXPECT_FALSE(web.proxy_protocol.trusts(*IpAddress::parse("192.0.2.1")));
  EXPECT_EQ(web.proxy_protocol.timeout, milliseconds(500));
  const config::Endpoint& v6 = c->endpoints[1];
  EXPECT_EQ(v6.name, "v6_only-2");
  EXPECT_EQ(v6.listen.to_string(), "[::1]:9001");
  EXPECT_EQ(v6.upstream->target, (HostPort{"::1", 80}));
  EXPECT_EQ(v6.connect_timeout, milliseconds(0));
  EXPECT_EQ(v6.idle_timeout, milliseconds(300'000));
  EXPECT_EQ(v6.relay, config::RelayMode::kAuto);  // the default
  EXPECT_EQ(v6.proxy_protocol.mode, config::ProxyProtocolMode::kOff);  // the default
  EXPECT_EQ(v6.proxy_protocol.versions, (std::vector<unsigned>{1, 2}));
  EXPECT_EQ(v6.proxy_protocol.timeout, milliseconds(3000));
}

TEST(LoadGood, SampleAppSettings) {
  auto schema = sample_schema();
  auto c = config::load_file(testdata() / "good_app.yaml", schema);
  ASSERT_TRUE(c.ok()) << c.error().message;
  const auto& app = c->app_settings<SampleSettings>();
  EXPECT_EQ(app.name, "edge");
  ASSERT_EQ(app.allowed_cidrs.size(), 2u);
  EXPECT_EQ(app.allowed_cidrs[1].to_string(), "192.168.1.7/32");
  EXPECT_EQ(app.check_interval, milliseconds(250));
  EXPECT_TRUE(app.strict);
  EXPECT_EQ(app.offset, -42);
  EXPECT_EQ(app.port, 65535);
  EXPECT_EQ(app.big, UINT64_MAX);
  EXPECT_EQ(app.small, INT64_MIN);
  EXPECT_EQ(app.ratio, 1.25);
  EXPECT_EQ(app.bind_ip.to_string(), "::1");
  ASSERT_TRUE(app.report_to.has_value());
  EXPECT_EQ(app.report_to->to_string(), "10.0.0.1:514");
  ASSERT_EQ(app.peers.size(), 2u);
  EXPECT_EQ(app.peers[1], (HostPort{"fe80::1", 2}));
  EXPECT_EQ(app.mode, Mode::kFast);
  EXPECT_EQ(app.share.value, 75u);
  EXPECT_EQ(app.limits.max, 7u);
  EXPECT_EQ(app.limits.window, milliseconds(2000));
  ASSERT_EQ(app.tiers.size(), 2u);
  EXPECT_EQ(app.tiers[0].max, 100u);
  EXPECT_FALSE(app.tiers[0].window.has_value());
  EXPECT_EQ(app.tiers[1].window, milliseconds(60'000));

  ASSERT_EQ(c->endpoints.size(), 2u);
  const auto& a = c->endpoints[0].app_settings<SampleEndpointSettings>();
  EXPECT_EQ(a.tag, "gold");
  EXPECT_EQ(a.labels, (std::vector<std::string>{"x", "y z"}));
  // An endpoint without app: gets the app's endpoint defaults.
  const auto& b = c->endpoints[1].app_settings<SampleEndpointSettings>();
  EXPECT_EQ(b.tag, "none");
  EXPECT_TRUE(b.labels.empty());
}

TEST(LoadGood, ShippedDemoConfig) {
  auto path = testdata() / ".." / ".." / ".." / ".." / "config" / "ramjet.yaml";
  auto c = config::load_file(path, core_schema());
  ASSERT_TRUE(c.ok()) << c.error().message;
  ASSERT_EQ(c->endpoints.size(), 1u);
  EXPECT_EQ(c->endpoints[0].name, "tcp-demo");
  EXPECT_EQ(c->endpoints[0].listen.to_string(), "127.0.0.1:9000");
  EXPECT_EQ(c->endpoints[0].upstream->target, (HostPort{"127.0.0.1", 8080}));
  ASSERT_EQ(c->egress.allow_private.size(), 1u);
  EXPECT_EQ(c->egress.allow_private[0].to_string(), "127.0.0.0/8");
  EXPECT_FALSE(c->datapath.enabled);
}

// Loading what the emitter printed gives the same config back, non-default values too.
TEST(LoadGood, EmitLoadIsAFixedPoint) {
  for (auto [file, schema] :
       {std::pair{"good_full.yaml", core_schema()}, std::pair{"good_app.yaml", sample_schema()}}) {
    auto c = config::load_file(testdata() / file, schema);
    ASSERT_TRUE(c.ok()) << c.error().message;
    std::string text = dump(*c, schema);
    auto again = config::load_string(text, "dump.yaml", schema);
    ASSERT_TRUE(again.ok()) << again.error().message << "\n" << text;
    EXPECT_EQ(dump(*again, schema), text) << file;
  }
}

// --- Bad files: each gives exactly one message, with file:line:col and the key path. ---

struct BadCase {
  const char* file;
  bool sample_app;  // load with the sample app's schema instead of the core one
  const char* message;
};

class LoadBad : public testing::TestWithParam<BadCase> {};

TEST_P(LoadBad, ReportsTheFirstProblemExactly) {
  const BadCase& bad = GetParam();
  std::string text = read(testdata() / bad.file);
  ASSERT_FALSE(text.empty()) << bad.file;
  auto c = config::load_string(text, "bad.yaml", bad.sample_app ? sample_schema() : core_schema());
  ASSERT_FALSE(c.ok()) << bad.file;
  EXPECT_EQ(c.error().source, ramjet::ErrorSource::kConfig);
  EXPECT_FALSE(c.error().retryable);
  EXPECT_EQ(c.error().message, bad.message) << bad.file;
}

INSTANTIATE_TEST_SUITE_P(
    Files, LoadBad,
    testing::Values(
        BadCase{"bad_unknown_key.yaml", false,
                "bad.yaml:3:3: server.wrokers: unknown key (expected one of: workers, "
                "drain_timeout, admin_socket, ready_file, max_connections, crash_dir)"},
        BadCase{"bad_listen_name.yaml", false,
                "bad.yaml:5:13: endpoints[0].listen: invalid socket address \"localhost:80\" "
                "(expected ip:port or [ipv6]:port)"},
        BadCase{"bad_duration_no_unit.yaml", false,
                "bad.yaml:2:18: server.drain_timeout: invalid duration \"10\" (add a unit: ms, "
                "s, m or h)"},
        BadCase{"bad_duration_garbage.yaml", false,
                "bad.yaml:2:12: dns.timeout: invalid duration \"1.5s\" (expected e.g. 250ms, "
                "5s, 2m, 1h or 1m30s)"},
        BadCase{"bad_missing_name.yaml", false,
                "bad.yaml:4:5: endpoints[0]: missing required key \"name\""},
        BadCase{"bad_syntax.yaml", false,
                "bad.yaml:3:1: YAML syntax error: end of sequence flow not found"},
        BadCase{"bad_ipv6_unquoted.yaml", false,
                "bad.yaml:3:18: YAML syntax error: end of map not found (quote IPv6 "
                "addresses: \"[::1]:80\")"},
        BadCase{"bad_enum.yaml", false,
                "bad.yaml:2:10: logging.level: invalid value \"verbose\" (expected one of: "
                "trace, debug, info, warn, error, off)"},
        BadCase{"bad_workers_zero.yaml", false,
                "bad.yaml:2:12: server.workers: invalid worker count \"0\" (expected auto or 1 "
                "to 4096)"},
        BadCase{"bad_missing_value.yaml", false,
                "bad.yaml:2:3: server.max_connections: missing value"},
        BadCase{"bad_uint_negative.yaml", false,
                "bad.yaml:2:20: server.max_connections: integer \"-1\" out of range (0 to "
                "4294967295)"},
        BadCase{"bad_bool.yaml", false,
                "bad.yaml:2:15: telemetry.hook_trace: invalid boolean \"yes\" (expected true "
                "or false)"},
        BadCase{"bad_metrics_listen.yaml", false,
                "bad.yaml:3:13: telemetry.metrics.listen: invalid socket address "
                "\"localhost:9464\" (expected ip:port, [ipv6]:port or \"\" for off)"},
        BadCase{"bad_section_kind.yaml", false,
                "bad.yaml:1:9: server: expected a mapping, got a scalar"},
        BadCase{"bad_sequence_kind.yaml", false,
                "bad.yaml:2:12: dns.servers: expected a sequence, got a scalar"},
        BadCase{"bad_top_unknown.yaml", false,
                "bad.yaml:1:1: servers: unknown key (expected one of: server, logging, dns, "
                "egress, telemetry, endpoints, datapath, app)"},
        BadCase{"bad_duplicate_key.yaml", false, "bad.yaml:3:3: server.workers: duplicate key"},
        BadCase{"bad_not_mapping.yaml", false, "bad.yaml:1:1: expected a mapping, got a scalar"},
        BadCase{"bad_cidr.yaml", false,
                "bad.yaml:2:32: egress.allow_private[1]: invalid CIDR \"10.0.0.0/33\" (expected "
                "e.g. 10.0.0.0/8, fd00::/8 or an address)"},
        BadCase{"bad_endpoint_name.yaml", false,
                "bad.yaml:2:11: endpoints[0].name: invalid endpoint name \"Web\" (use 1 to 64 "
                "of a-z, 0-9, _ and -)"},
        BadCase{"bad_duplicate_name.yaml", false,
                "bad.yaml:5:11: endpoints[1].name: duplicate endpoint name \"web\" (also used "
                "by endpoints[0])"},
        BadCase{"bad_duplicate_listen.yaml", false,
                "bad.yaml:6:13: endpoints[1].listen: duplicate listen address 127.0.0.1:80 "
                "(also used by endpoints[0])"},
        BadCase{"bad_listen_overlap.yaml", false,
                "bad.yaml:6:13: endpoints[1].listen: listen address 127.0.0.1:80 overlaps "
                "0.0.0.0:80 of endpoints[0]"},
        BadCase{"bad_tcp_no_upstream.yaml", false,
                "bad.yaml:2:5: endpoints[0]: missing required key \"upstream\" (tcp endpoints "
                "relay to it)"},
        BadCase{"bad_upstream.yaml", false,
                "bad.yaml:4:15: endpoints[0].upstream: invalid upstream \"no_port.example\" "
                "(expected host:port, http://host[:port] or https://host[:port])"},
        BadCase{"bad_endpoint_kind.yaml", false,
                "bad.yaml:2:3: endpoints: expected a sequence, got a mapping"},
        BadCase{"bad_dns_ttl.yaml", false,
                "bad.yaml:2:12: dns.min_ttl: min_ttl 2h is above max_ttl 1h"},
        BadCase{"bad_dns_attempts.yaml", false, "bad.yaml:2:13: dns.attempts: must be at least 1"},
        BadCase{"bad_alias_cycle.yaml", false, "bad.yaml:1:4: document nested too deeply"},
        BadCase{"bad_app_unknown_key.yaml", true,
                "bad.yaml:3:3: app.allowed_cidr: unknown key (expected one of: name, "
                "allowed_cidrs, check_interval, strict, offset, port, big, small, ratio, "
                "bind_ip, report_to, peers, mode, share, limits, tiers)"},
        BadCase{"bad_app_cidr.yaml", true,
                "bad.yaml:5:7: app.allowed_cidrs[1]: invalid CIDR \"10.0.0.0/33\" (expected "
                "e.g. 10.0.0.0/8, fd00::/8 or an address)"},
        BadCase{"bad_app_missing_required.yaml", true,
                "bad.yaml:2:1: app: missing required key \"name\""},
        BadCase{"bad_app_port_range.yaml", true,
                "bad.yaml:3:9: app.port: integer \"65536\" out of range (0 to 65535)"},
        BadCase{"bad_app_custom_codec.yaml", true,
                "bad.yaml:3:10: app.share: invalid percentage \"150%\" (expected 0% to 100%)"},
        BadCase{"bad_app_nested.yaml", true,
                "bad.yaml:5:15: app.tiers[1].window: invalid duration \"5\" (add a unit: ms, "
                "s, m or h)"},
        BadCase{"bad_datapath_not_transparent.yaml", false,
                "bad.yaml:7:73: datapath.rules[0].endpoint: endpoint \"web\" is not "
                "transparent: escalated flows keep their original destination, so set "
                "transparent: true on it"},
        BadCase{"bad_datapath_escalate_udp.yaml", false,
                "bad.yaml:7:73: datapath.rules[0].endpoint: escalate rule \"dns\" has proto: "
                "udp, so it needs a transparent udp endpoint; \"web\" is not one"},
        BadCase{"bad_datapath_escalate_tcp_to_udp.yaml", false,
                "bad.yaml:7:73: datapath.rules[0].endpoint: escalate rule \"web\" has proto: "
                "tcp, so it needs a transparent tcp or http endpoint; \"dns\" is not one"},
        BadCase{"bad_datapath_escalate_any.yaml", false,
                "bad.yaml:7:7: datapath.rules[0].proto: escalate rule \"everything\" needs "
                "proto: tcp or proto: udp (flows are delivered to a tcp or udp endpoint's "
                "sockets)"},
        BadCase{"bad_transparent_http_auth.yaml", false,
                "bad.yaml:7:7: endpoints[0].auth: transparent endpoints serve intercepted "
                "clients, which do not know of a proxy and never send Proxy-Authorization; "
                "remove \"auth\""},
        BadCase{"bad_transparent_http_tls.yaml", false,
                "bad.yaml:7:7: endpoints[0].tls: transparent endpoints relay what the datapath "
                "sends them as it is; they cannot terminate TLS"},
        BadCase{"bad_transparent_http_upstream.yaml", false,
                "bad.yaml:6:15: endpoints[0].upstream: transparent endpoints relay each flow to "
                "its original destination; remove \"upstream\""},
        BadCase{"bad_transparent_http_h2c.yaml", false,
                "bad.yaml:7:12: endpoints[0].http.h2c: transparent http endpoints serve "
                "HTTP/1.1 only (h2c is not supported on them)"},
        BadCase{"bad_datapath_escalate_udp_to_http.yaml", false,
                "bad.yaml:7:73: datapath.rules[0].endpoint: escalate rule \"dns\" has proto: "
                "udp, so it needs a transparent udp endpoint; \"web\" is not one"},
        BadCase{"bad_udp_transparent_upstream.yaml", false,
                "bad.yaml:6:15: endpoints[0].upstream: transparent endpoints relay each flow to "
                "its original destination; remove \"upstream\""},
        BadCase{"bad_datapath_fallback_not_escalate.yaml", false,
                "bad.yaml:3:72: datapath.rules[0].on_engine_unavailable: only escalate rules "
                "have an engine to fall back from"},
        BadCase{"bad_datapath_fallback_value.yaml", false,
                "bad.yaml:2:26: datapath.on_engine_unavailable: invalid value \"retry\" "
                "(expected one of: pass, reject, drop)"},
        BadCase{"bad_datapath_port_range.yaml", false,
                "bad.yaml:3:41: datapath.rules[0].dst_port: invalid port or range \"90-80\" "
                "(expected e.g. 80 or 8000-8100)"},
        BadCase{"bad_datapath_interface.yaml", false,
                "bad.yaml:5:18: datapath.rules[0].interface: interface \"gw-x\" is not in "
                "datapath.interfaces"},
        BadCase{"bad_proxy_protocol_untrusted.yaml", false,
                "bad.yaml:6:7: endpoints[0].proxy_protocol.trusted: name the peers allowed to "
                "send a PROXY header (a header lets its sender choose the client address; "
                "0.0.0.0/0 and ::/0 trust every peer)"},
        BadCase{"bad_proxy_protocol_version.yaml", false,
                "bad.yaml:7:21: endpoints[0].proxy_protocol.versions[1]: unknown PROXY protocol "
                "version 3 (1 or 2)"},
        BadCase{"bad_udp_tls.yaml", false,
                "bad.yaml:7:7: endpoints[0].tls: udp endpoints relay datagrams as they are (no "
                "TLS; DTLS and QUIC are not terminated here)"},
        BadCase{"bad_udp_proxy_protocol_v1.yaml", false,
                "bad.yaml:8:17: endpoints[0].proxy_protocol.versions: PROXY headers over UDP "
                "are version 2 only (docs/udp.md): list 2"},
        BadCase{"bad_udp_max_sessions.yaml", false,
                "bad.yaml:8:21: endpoints[0].udp.max_sessions: at least one session (got 0)"},
        BadCase{"bad_udp_unknown_key.yaml", false,
                "bad.yaml:7:7: endpoints[0].udp.sessions: unknown key (expected one of: "
                "idle_timeout, max_sessions, setup_queue)"},
        BadCase{"bad_udp_send_v1.yaml", false,
                "bad.yaml:7:16: endpoints[0].send_proxy_protocol.version: PROXY headers over "
                "UDP are version 2 only (docs/udp.md)"},
        BadCase{"bad_connect_udp_tcp.yaml", false,
                "bad.yaml:7:16: endpoints[0].connect_udp.enabled: connect-udp tunnels are "
                "served by http endpoints (onramp: http) only"},
        BadCase{"bad_connect_udp_transparent.yaml", false,
                "bad.yaml:6:28: endpoints[0].connect_udp.enabled: transparent endpoints serve "
                "intercepted clients, which never ask a proxy for a UDP tunnel; connect-udp "
                "needs an explicit forward proxy"},
        BadCase{"bad_connect_udp_upstream.yaml", false,
                "bad.yaml:7:16: endpoints[0].connect_udp.enabled: an http endpoint with an "
                "upstream is a reverse proxy; connect-udp needs a forward proxy (no upstream)"},
        BadCase{"bad_connect_udp_idle_timeout.yaml", false,
                "bad.yaml:7:21: endpoints[0].connect_udp.idle_timeout: a tunnel must be allowed "
                "a positive idle time"},
        BadCase{"bad_connect_udp_unknown_key.yaml", false,
                "bad.yaml:7:7: endpoints[0].connect_udp.uri_template: unknown key (expected one "
                "of: enabled, template, idle_timeout)"},
        BadCase{"bad_udp_no_upstream.yaml", false,
                "bad.yaml:2:5: endpoints[0]: missing required key \"upstream\" (udp endpoints "
                "relay to it)"},
        BadCase{"bad_proxy_protocol_mode.yaml", false,
                "bad.yaml:6:13: endpoints[0].proxy_protocol.mode: invalid value \"on\" "
                "(expected one of: off, optional, required)"},
        BadCase{"bad_quic_tcp.yaml", false,
                "bad.yaml:7:7: endpoints[0].quic: QUIC (HTTP/3) is served by http endpoints "
                "(onramp: http) only"},
        BadCase{"bad_quic_no_tls.yaml", false,
                "bad.yaml:6:11: endpoints[0].quic: QUIC needs the endpoint's tls section: its "
                "certificates serve HTTP/3 as well"},
        BadCase{"bad_quic_streams_uni.yaml", false,
                "bad.yaml:9:24: endpoints[0].quic.max_streams_uni: HTTP/3 clients open 3 "
                "unidirectional streams (control, QPACK encoder and decoder); at least 3 (got 2)"},
        BadCase{"bad_quic_windows.yaml", false,
                "bad.yaml:10:17: endpoints[0].quic.max_data: the connection window (4096) is "
                "smaller than one stream's (max_stream_data 65536)"},
        BadCase{"bad_quic_idle_timeout.yaml", false,
                "bad.yaml:7:50: endpoints[0].quic.idle_timeout: a connection must be allowed a "
                "positive idle time"},
        BadCase{"bad_quic_missing_listen.yaml", false,
                "bad.yaml:8:7: endpoints[0].quic: missing required key \"listen\""},
        BadCase{"bad_quic_unknown_key.yaml", false,
                "bad.yaml:9:7: endpoints[0].quic.max_stream: unknown key (expected one of: "
                "listen, idle_timeout, handshake_timeout, max_connections, max_streams_bidi, "
                "max_streams_uni, max_stream_data, max_data, alt_svc_max_age, retry, retry_rate)"},
        BadCase{"bad_quic_udp_port_taken.yaml", false,
                "bad.yaml:12:15: endpoints[1].quic.listen: duplicate UDP address "
                "127.0.0.1:8443 (also used by endpoints[0].listen)"},
        BadCase{"bad_quic_overlap.yaml", false,
                "bad.yaml:11:20: endpoints[1].quic.listen: UDP address 127.0.0.1:8443 overlaps "
                "0.0.0.0:8443 of endpoints[0].quic.listen"},
        BadCase{"bad_endpoint_app_key.yaml", true,
                "bad.yaml:8:7: endpoints[0].app.tagg: unknown key (expected one of: tag, "
                "labels)"}),
    [](const testing::TestParamInfo<BadCase>& info) {
      std::string name = info.param.file;
      name = name.substr(0, name.find('.'));
      for (char& c : name) {
        if (c == '-') c = '_';
      }
      return name;
    });

TEST(LoadBad, EveryBadFileIsListed) {
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(testdata())) {
    if (entry.path().filename().string().rfind("bad_", 0) == 0) ++files;
  }
  EXPECT_EQ(files, 73u);
}

TEST(LoadFile, MissingFile) {
  auto c = config::load_file("/nonexistent/ramjet.yaml", core_schema());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().source, ramjet::ErrorSource::kConfig);
  EXPECT_EQ(c.error().message, "/nonexistent/ramjet.yaml: cannot read: No such file or directory");
}

TEST(LoadFile, Directory) {
  auto c = config::load_file(testdata().string(), core_schema());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message, testdata().string() + ": cannot read: Is a directory");
}

TEST(LoadFile, ErrorsNameThePath) {
  auto path = testdata() / "bad_unknown_key.yaml";
  auto c = config::load_file(path, core_schema());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message.rfind(path.string() + ":3:3: server.wrokers: unknown key", 0), 0u)
      << c.error().message;
}

TEST(LoadString, NeverThrowsOnOddInput) {
  for (std::string text : std::vector<std::string>{
           "server:\n\tworkers: 1", "- a", "? [a]: b", "a: !!binary x", "--- a\n--- b", "&a a: *a",
           "{", "\"", std::string("a: \0b", 5), "%YAML 9.9\n---\n"}) {
    auto c = config::load_string(text, "odd.yaml", core_schema());
    EXPECT_FALSE(c.ok()) << text;
  }
}

// Aliases can describe an exponentially large tree in a few lines; the loader refuses
// instead of expanding it.
TEST(LoadString, AliasBombIsRefused) {
  std::string text = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 10; ++i) {
    std::string prev = "*l" + std::to_string(i - 1);
    text += "l" + std::to_string(i) + ": &l" + std::to_string(i) + " [" + prev;
    for (int j = 0; j < 9; ++j) text += ", " + prev;
    text += "]\n";
  }
  auto c = config::load_string(text, "bomb.yaml", core_schema());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find(": document too large"), std::string::npos) << c.error().message;
}

// --- The printed default file. ---

// Replaces the "# key: <required>" placeholder with a value.
std::string fill(std::string text, const std::string& key, const std::string& value) {
  std::string placeholder = "# " + key + ": <required>";
  auto at = text.find(placeholder);
  EXPECT_NE(at, std::string::npos) << key;
  if (at != std::string::npos) text.replace(at, placeholder.size(), key + ": " + value);
  return text;
}

// The commented example endpoint, uncommented in place.
std::string uncomment_example(const std::string& text) {
  const std::string start = "# Uncomment and adapt, for example:\n";
  auto at = text.find(start);
  EXPECT_NE(at, std::string::npos);
  if (at == std::string::npos) return text;
  std::string before = text.substr(0, at);
  before.replace(before.find("endpoints: []\n"), 14, "");
  std::string out = before;
  std::istringstream rest(text.substr(at + start.size()));
  std::string line;
  bool in_example = true;
  while (std::getline(rest, line)) {
    if (in_example && line.rfind("# ", 0) == 0) {
      out += line.substr(2) + "\n";
    } else {
      in_example = false;
      out += line + "\n";
    }
  }
  return out;
}

TEST(DefaultConfig, CoreLoadsAsPrinted) {
  std::string text = config::default_config_yaml(core_schema());
  auto c = config::load_string(text, "default.yaml", core_schema());
  ASSERT_TRUE(c.ok()) << c.error().message << "\n" << text;
  auto d = config::load_string("", "empty.yaml", core_schema());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(dump(*c, core_schema()), dump(*d, core_schema()));
}

TEST(DefaultConfig, DocumentsEveryKeyInOrder) {
  std::string text = config::default_config_yaml(core_schema());
  EXPECT_EQ(text.rfind("# ramjetd configuration", 0), 0u);
  std::size_t pos = 0;
  for (const char* key : {"server:",
                          "  workers: auto",
                          "  drain_timeout: 10s",
                          "  admin_socket: /run/ramjet/admin.sock",
                          "  ready_file: \"\"",
                          "  max_connections: 0",
                          "logging:",
                          "  level: info",
                          "  access_log: text",
                          "  access_log_path: \"\"",
                          "dns:",
                          "  servers: []",
                          "  fallback_servers: []",
                          "  timeout: 1s",
                          "  attempts: 2",
                          "  cache_size: 4096",
                          "  min_ttl: 0s",
                          "  max_ttl: 1h",
                          "  negative_ttl: 30s",
                          "egress:",
                          "  allow_private: []",
                          "  connect_timeout: 5s",
                          "  happy_eyeballs:",
                          "    resolution_delay: 50ms",
                          "    connection_attempt_delay: 250ms",
                          "    prefer: ipv6",
                          "telemetry:",
                          "  hook_trace: false",
                          "  hook_trace_capacity: 10000",
                          "  metrics:",
                          "    listen: 127.0.0.1:9464",
                          "  audit_log:",
                          "    path: \"\"",
                          "endpoints: []",
                          "#   - # Unique name",
                          "#     name: example",
                          "#     listen: 127.0.0.1:8000",
                          "#     onramp: tcp",
                          "#     upstream: example.com:80",
                          "#     relay: auto",
                          "datapath:",
                          "  enabled: false",
                          "app: {}"}) {
    auto at = text.find(std::string("\n") + key, pos);
    ASSERT_NE(at, std::string::npos) << key << "\n" << text;
    // Every key line is preceded by its doc comment.
    if (std::string(key).find(": ") != std::string::npos && key[0] != '#') {
      auto prev = text.rfind('\n', at - 1);
      EXPECT_EQ(text.substr(prev + 1, at - prev - 1).find_first_not_of(' '),
                text.substr(prev + 1, at - prev - 1).find('#'))
          << "no doc above " << key;
    }
    pos = at + 1;
  }
  for (std::size_t begin = 0; begin < text.size();) {
    auto end = text.find('\n', begin);
    EXPECT_LE(end - begin, 100u) << text.substr(begin, end - begin);
    begin = end + 1;
  }
}

TEST(DefaultConfig, CoreExampleEndpointLoadsWhenUncommented) {
  std::string text = uncomment_example(config::default_config_yaml(core_schema()));
  auto c = config::load_string(text, "example.yaml", core_schema());
  ASSERT_TRUE(c.ok()) << c.error().message << "\n" << text;
  ASSERT_EQ(c->endpoints.size(), 1u);
  EXPECT_EQ(c->endpoints[0].name, "example");
  EXPECT_EQ(c->endpoints[0].upstream->target, (HostPort{"example.com", 80}));
}

TEST(DefaultConfig, SampleAppLoadsOnceRequiredKeysAreSet) {
  auto schema = sample_schema();
  std::string text = config::default_config_yaml(schema);
  EXPECT_EQ(text.rfind("# sample configuration", 0), 0u);
  EXPECT_NE(text.find("\napp:\n  # Shown in logs.\n  # name: <required>\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("#     app:\n#       # Billing tag.\n#       tag: none\n"), std::string::npos)
      << text;

  auto unfilled = config::load_string(text, "default.yaml", schema);
  ASSERT_FALSE(unfilled.ok());
  EXPECT_NE(unfilled.error().message.find("app: missing required key \"name\""), std::string::npos)
      << unfilled.error().message;

  auto c = config::load_string(fill(text, "name", "edge"), "default.yaml", schema);
  ASSERT_TRUE(c.ok()) << c.error().message << "\n" << text;
  const auto& app = c->app_settings<SampleSettings>();
  SampleSettings defaults;
  EXPECT_EQ(app.name, "edge");
  ASSERT_EQ(app.allowed_cidrs.size(), 2u);
  EXPECT_EQ(app.allowed_cidrs[1].to_string(), "fd00::/8");
  EXPECT_EQ(app.check_interval, defaults.check_interval);
  EXPECT_EQ(app.port, defaults.port);
  EXPECT_EQ(app.ratio, defaults.ratio);
  EXPECT_EQ(app.bind_ip, defaults.bind_ip);
  EXPECT_FALSE(app.report_to.has_value());
  EXPECT_EQ(app.mode, Mode::kSafe);
  EXPECT_EQ(app.share.value, 50u);
  ASSERT_EQ(app.tiers.size(), 2u);
  EXPECT_EQ(app.tiers[1].max, 5u);
  EXPECT_EQ(app.tiers[1].window, milliseconds(1000));

  auto with_example =
      config::load_string(uncomment_example(fill(text, "name", "edge")), "example.yaml", schema);
  ASSERT_TRUE(with_example.ok()) << with_example.error().message;
  ASSERT_EQ(with_example->endpoints.size(), 1u);
  EXPECT_EQ(with_example->endpoints[0].app_settings<SampleEndpointSettings>().tag, "none");
}

// --- The routing table ramjet owns ---

TEST(DatapathRouteTable, DefaultIsNoCommonToolsTable) {
  auto c = config::load_string("", "t.yaml", core_schema());
  ASSERT_TRUE(c.ok()) << c.error().message;
  // Tailscale 52, wg-quick 51820, Cilium 2004/2005, kube-router 77-79, strongSwan 220,
  // and the kernel's own 0 and 253-255.
  for (unsigned taken : {0u, 52u, 51820u, 2004u, 2005u, 77u, 78u, 79u, 220u, 253u, 254u, 255u})
    EXPECT_NE(c->datapath.route_table, taken);
  EXPECT_EQ(c->datapath.route_table, 21066u);
}

TEST(DatapathRouteTable, ReservedTablesAndMarkZeroAreRefused) {
  for (const char* table : {"0", "253", "254", "255"}) {
    std::string yaml = std::string("datapath:\n  route_table: ") + table + "\n";
    auto c = config::load_string(yaml, "bad.yaml", core_schema());
    ASSERT_FALSE(c.ok()) << table;
    EXPECT_EQ(c.error().message,
              std::string("bad.yaml:2:16: datapath.route_table: table ") + table +
                  " is reserved (0 unspec, 253 default, 254 main, 255 local): pick a table "
                  "ramjet can own alone");
  }
  EXPECT_TRUE(config::load_string("datapath:\n  route_table: 252\n", "t.yaml", core_schema()).ok());
  auto mark = config::load_string("datapath:\n  escalate_mark: 0\n", "bad.yaml", core_schema());
  ASSERT_FALSE(mark.ok());
  EXPECT_EQ(mark.error().message,
            "bad.yaml:2:18: datapath.escalate_mark: must not be 0 (every unmarked packet would "
            "match the escalation rule)");
}

TEST(DatapathFastpathHook, DefaultsToAutoAndOverridesNameConfiguredInterfaces) {
  auto c = config::load_string("datapath:\n  interfaces: [gw-c]\n", "t.yaml", core_schema());
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->datapath.fastpath_hook, config::FastpathHook::kAuto);

  auto value = config::load_string("datapath:\n  fastpath_hook: ebpf\n", "bad.yaml", core_schema());
  ASSERT_FALSE(value.ok());
  EXPECT_EQ(value.error().message.rfind("bad.yaml:2:18: datapath.fastpath_hook: invalid value", 0),
            0u)
      << value.error().message;

  auto unknown = config::load_string(
      "datapath:\n  interfaces: [gw-c]\n  fastpath_hooks:\n    - {interface: gw-x, hook: xdp}\n",
      "bad.yaml", core_schema());
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().message,
            "bad.yaml:4:19: datapath.fastpath_hooks[0].interface: interface \"gw-x\" is not in "
            "datapath.interfaces");

  auto twice = config::load_string(
      "datapath:\n  interfaces: [gw-c]\n  fastpath_hooks:\n    - {interface: gw-c, hook: xdp}\n"
      "    - {interface: gw-c, hook: tc}\n",
      "bad.yaml", core_schema());
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.error().message,
            "bad.yaml:5:19: datapath.fastpath_hooks[1].interface: interface \"gw-c\" already has a "
            "fastpath_hook at datapath.fastpath_hooks[0]");
}

// --- Rules given at runtime (POST /v1/rules) ---

TEST(RuntimeRule, ParsesJsonWithTheFileCodecs) {
  auto r = config::parse_datapath_rule(
      R"({"name":"web","action":"drop","proto":"tcp","dst_port":"8000-8100","src":"10.0.0.0/8"})",
      "POST /v1/rules");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->name, "web");
  EXPECT_EQ(r->action, config::DatapathAction::kDrop);
  EXPECT_EQ(r->proto, config::RuleProto::kTcp);
  EXPECT_EQ(r->src->to_string(), "10.0.0.0/8");
}

TEST(RuntimeRule, ErrorsNameTheSourceAndTheKey) {
  auto r = config::parse_datapath_rule(R"({"name":"x","action":"explode"})", "POST /v1/rules");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("POST /v1/rules:1:"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("action"), std::string::npos) << r.error().message;
  auto unknown = config::parse_datapath_rule(R"({"name":"x","action":"drop","prot":"tcp"})", "api");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("prot"), std::string::npos) << unknown.error().message;
  EXPECT_FALSE(config::parse_datapath_rule("[1, 2]", "api").ok());
  EXPECT_FALSE(config::parse_datapath_rule("{", "api").ok());
}

// `count` tcp endpoints, one per line from line 3, with the datapath on or off.
std::string endpoints_yaml(std::size_t count, bool datapath) {
  std::string text = std::string("datapath: {enabled: ") + (datapath ? "true" : "false") +
                     ", interfaces: [lo]}\nendpoints:\n";
  for (std::size_t i = 0; i < count; ++i)
    text += "  - {name: e" + std::to_string(i) +
            ", onramp: tcp, listen: 127.0.0.1:0, upstream: " + "127.0.0.1:1}\n";
  return text;
}

TEST(LoadBad, MoreEndpointsThanTheDatapathHoldsNameTheFirstOneOver) {
  std::size_t max = config::kDatapathMaxEndpoints;
  EXPECT_TRUE(config::load_string(endpoints_yaml(max, true), "eps.yaml", core_schema()).ok());
  // Without the datapath no map limits them.
  EXPECT_TRUE(config::load_string(endpoints_yaml(max + 1, false), "eps.yaml", core_schema()).ok());
  auto c = config::load_string(endpoints_yaml(max + 1, true), "eps.yaml", core_schema());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().source, ramjet::ErrorSource::kConfig);
  // endpoints[63] is on line 3 + 63, its flow map at column 5.
  EXPECT_EQ(c.error().message,
            "eps.yaml:66:5: endpoints[63]: with the datapath enabled, at most 63 endpoints (got "
            "64): endpoint ids index the datapath's escalation map");
}

TEST(RuntimeRule, CheckDatapathRefusesWhatTheLoaderRefuses) {
  auto c = config::load_string("datapath:\n  rules:\n    - {name: a, action: drop}\n", "t.yaml",
                               core_schema());
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_TRUE(config::check_datapath(*c, "api").ok());
  auto dup = *c;
  dup.datapath.rules.push_back(dup.datapath.rules.front());
  auto r = config::check_datapath(dup, "api");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "api: datapath.rules[1].name: duplicate rule name \"a\"");
  auto escalate = *c;
  escalate.datapath.rules.front().action = config::DatapathAction::kEscalate;
  escalate.datapath.rules.front().endpoint = "nowhere";
  auto e = config::check_datapath(escalate, "api");
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("no endpoint named \"nowhere\""), std::string::npos);
}

}  // namespace

// --- The TUN hand-off table of ip endpoints ---

TEST(TunHandoffTable, DefaultFollowsTheTunTableAndClashesAreNamed) {
  const std::string ip = "endpoints:\n  - name: fw\n    onramp: ip\n    tun:\n      routes: [10.0.0.0/8]\n";
  auto c = config::load_string(ip, "t.yaml", core_schema());
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->endpoints[0].tun->handoff_table, 21068u);
  EXPECT_NE(c->endpoints[0].tun->handoff_table, c->endpoints[0].tun->route_table);

  auto reserved = config::load_string(ip + "      handoff_table: 255\n", "bad.yaml", core_schema());
  ASSERT_FALSE(reserved.ok());
  EXPECT_EQ(reserved.error().message,
            "bad.yaml:6:22: endpoints[0].tun.handoff_table: 0, 253, 254 and 255 are the kernel's "
            "tables (got 255)");
  auto own = config::load_string(ip + "      handoff_table: 21067\n", "bad.yaml", core_schema());
  ASSERT_FALSE(own.ok());
  EXPECT_EQ(own.error().message,
            "bad.yaml:6:22: endpoints[0].tun.handoff_table: is the route_table of endpoint fw "
            "(21067)");
  auto dp = config::load_string(ip + "      handoff_table: 21066\n", "bad.yaml", core_schema());
  ASSERT_FALSE(dp.ok());
  EXPECT_EQ(dp.error().message,
            "bad.yaml:6:22: endpoints[0].tun.handoff_table: is datapath.route_table too (21066)");
}
