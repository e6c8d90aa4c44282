// The ramjetd configuration: every section declared once (type, default, doc) with
// ramjet/settings.h, plus the loader and the default-file printer.
//
//   auto schema = config::AppSchema{"my-app", settings::ErasedStruct::of<MySettings>(),
//                                   settings::ErasedStruct::of<MyEndpointSettings>()};
//   Result<config::Config> cfg = config::load_file(path, schema);
//   const MySettings& mine = cfg->app_settings<MySettings>();
//
// Errors are Error{kConfig} with "FILE:LINE:COL: KEY.PATH: message"; only the first
// problem is reported so the operator fixes one thing at a time, in file order.
// The value types and enums are in ramjet/config/values.h, the `datapath:` section in
// ramjet/config/datapath_settings.h.
#pragma once

#include <charconv>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ramjet/config/datapath_settings.h"
#include "ramjet/config/proxy_protocol_settings.h"
#include "ramjet/config/tls_settings.h"
#include "ramjet/config/values.h"
#include "ramjet/net.h"
#include "ramjet/result.h"
#include "ramjet/settings.h"

namespace ramjet::config {

// Slot names: where the application's own settings types plug into the core Config.
inline constexpr std::string_view kAppSlot = "app";
inline constexpr std::string_view kEndpointAppSlot = "endpoint_app";

// Where the admin socket goes unless the config says otherwise. When its directory
// cannot be created (a user without root), ramjetd falls back (admin/socket_path.h).
inline constexpr std::string_view kDefaultAdminSocket = "/run/ramjet/admin.sock";

// Capacities of the datapath's maps that the validator enforces. The maps are sized
// in bpf/include/ramjet/abi, which config may not include: datapath/ static_asserts
// that these agree. Endpoint ids are 1-based (0 = none) and index the escalation
// sockmap, so one id of RAMJET_MAX_ENDPOINTS is never used.
inline constexpr std::size_t kDatapathMaxRules = 256;
inline constexpr std::size_t kDatapathMaxEndpoints = 63;

// The endpoint-id mapping, in one place: an endpoint's id, as the datapath stores it
// (listener slots, rules, flow entries) and the admin API and ramjetctl show it, is
// its position in Config::endpoints counted from 1; 0 means no endpoint.
constexpr std::uint32_t endpoint_id(std::size_t index) {
  return static_cast<std::uint32_t>(index + 1);
}
// The inverse: the index of endpoint `id` among `count` endpoints, if it is one of them.
constexpr std::optional<std::size_t> endpoint_index(std::uint32_t id, std::size_t count) {
  if (id == 0 || id > count) return std::nullopt;
  return std::size_t{id} - 1;
}

struct ServerSettings {
  WorkerCount workers;
  milliseconds drain_timeout{10'000};
  std::string admin_socket{kDefaultAdminSocket};
  std::string ready_file;
  unsigned max_connections = 0;
  std::string crash_dir{"/var/lib/ramjet/crash"};

  static void describe(settings::Fields<ServerSettings>& f) {
    f("workers", &ServerSettings::workers,
      "Worker threads, each with its own io_uring: auto (one per CPU) or a count.");
    f("drain_timeout", &ServerSettings::drain_timeout,
      "How long SIGTERM waits for open connections to finish before closing them.");
    f("admin_socket", &ServerSettings::admin_socket,
      "Unix socket of the admin API used by ramjetctl (mode 0600). \"\" disables it. When the "
      "default's directory cannot be created (no root), $XDG_RUNTIME_DIR/ramjet/admin.sock, "
      "else admin.sock beside the config file. A lock file <socket>.lock keeps a second "
      "daemon off it.");
    f("ready_file", &ServerSettings::ready_file,
      "When set, a JSON file written once every listener is bound (for supervisors and "
      "tests).");
    f("max_connections", &ServerSettings::max_connections,
      "Open downstream connections allowed for the whole daemon (all workers together); "
      "connections beyond it are closed at once and counted. 0 = unlimited.");
    f("crash_dir", &ServerSettings::crash_dir,
      "Where a crash (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) writes its report: signal, "
      "version, config hash, each worker's flow ids and every thread's symbolized stack. "
      "The report also goes to the log. Created if missing; \"\" or an unwritable "
      "directory = the log only.");
  }
};

struct LoggingSettings {
  LogLevel level = LogLevel::kInfo;
  AccessLogFormat access_log = AccessLogFormat::kText;
  std::string access_log_path;

  static void describe(settings::Fields<LoggingSettings>& f) {
    f("level", &LoggingSettings::level,
      "Minimum level logged: trace, debug, info, warn, error or off.");
    f("access_log", &LoggingSettings::access_log,
      "One line per finished connection: text, json or off.");
    f("access_log_path", &LoggingSettings::access_log_path,
      "File the access log is appended to; \"\" = standard output.");
  }
};

struct DnsSettings {
  std::vector<SocketAddress> servers;
  std::vector<SocketAddress> fallback_servers;
  milliseconds timeout{1000};
  unsigned attempts = 2;
  unsigned cache_size = 4096;
  milliseconds min_ttl{0};
  milliseconds max_ttl{3'600'000};
  milliseconds negative_ttl{30'000};

  static void describe(settings::Fields<DnsSettings>& f) {
    f("servers", &DnsSettings::servers,
      "Resolvers to query (ip:port); empty = the nameservers in /etc/resolv.conf.");
    f("fallback_servers", &DnsSettings::fallback_servers,
      "Resolvers tried when every server above failed.");
    f("timeout", &DnsSettings::timeout, "Time allowed for each query attempt.");
    f("attempts", &DnsSettings::attempts, "Attempts per query before giving up.");
    f("cache_size", &DnsSettings::cache_size, "Answers kept in the cache (entries); 0 = no cache.");
    f("min_ttl", &DnsSettings::min_ttl, "Answers are cached at least this long.");
    f("max_ttl", &DnsSettings::max_ttl, "Answers are cached at most this long.");
    f("negative_ttl", &DnsSettings::negative_ttl,
      "How long NXDOMAIN and empty answers are cached.");
  }
};

struct HappyEyeballsSettings {
  milliseconds resolution_delay{50};
  milliseconds connection_attempt_delay{250};
  IpFamily prefer = IpFamily::kIpv6;

  static void describe(settings::Fields<HappyEyeballsSettings>& f) {
    f("resolution_delay", &HappyEyeballsSettings::resolution_delay,
      "How long to wait for the preferred family's DNS answer once the other one arrived "
      "(RFC 8305).");
    f("connection_attempt_delay", &HappyEyeballsSettings::connection_attempt_delay,
      "Delay before racing the next address while a connect is still pending.");
    f("prefer", &HappyEyeballsSettings::prefer, "Address family tried first: ipv6 or ipv4.");
  }
};

struct EgressSettings {
  std::vector<Cidr> allow_private;
  milliseconds connect_timeout{5000};
  HappyEyeballsSettings happy_eyeballs;

  static void describe(settings::Fields<EgressSettings>& f) {
    f("allow_private", &EgressSettings::allow_private,
      "Private, loopback and link-local ranges upstreams may be in anyway. Everything "
      "else of that kind is refused, so a client cannot reach internal services.");
    f("connect_timeout", &EgressSettings::connect_timeout,
      "Time allowed to connect to an upstream (all addresses together).");
    f("happy_eyeballs", &EgressSettings::happy_eyeballs,
      "Racing IPv6 and IPv4 connects to a dual-stack upstream.");
  }
};

struct MetricsSettings {
  OptionalListen listen{SocketAddress(*IpAddress::parse("127.0.0.1"), 9464)};

  static void describe(settings::Fields<MetricsSettings>& f) {
    f("listen", &MetricsSettings::listen,
      "Where Prometheus scrapes GET /metrics (text format 0.0.4): ip:port, port 0 for any "
      "free port (the ready file names it); \"\" disables it.");
  }
};

struct AuditLogSettings {
  std::string path;

  static void describe(settings::Fields<AuditLogSettings>& f) {
    f("path", &AuditLogSettings::path,
      "File that gets one JSON line per finished TCP flow or tunnel (docs/audit-log.md); "
      "reopened on SIGHUP. \"\" disables it.");
  }
};

struct TracingSettings {
  std::string path;
  double sample = 0.0;

  static void describe(settings::Fields<TracingSettings>& f) {
    f("path", &TracingSettings::path,
      "File that gets one OpenTelemetry JSON line per sampled HTTP request or tunnel "
      "(docs/tracing.md), with W3C traceparent continued or started and passed upstream. "
      "\"\" disables tracing: requests then keep the traceparent they came with.");
    f("sample", &TracingSettings::sample,
      "Share of requests without a valid traceparent that start a sampled trace, 0 to 1. A "
      "request with one follows its sampled flag.");
  }
};

struct TelemetrySettings {
  bool hook_trace = false;
  unsigned hook_trace_capacity = 10'000;
  MetricsSettings metrics;
  AuditLogSettings audit_log;
  TracingSettings tracing;

  static void describe(settings::Fields<TelemetrySettings>& f) {
    f("hook_trace", &TelemetrySettings::hook_trace,
      "Record every hook invocation (hook, connection, decision, duration) for the admin "
      "API and tests.");
    f("hook_trace_capacity", &TelemetrySettings::hook_trace_capacity,
      "Hook trace entries kept; the oldest are dropped first.");
    f("metrics", &TelemetrySettings::metrics, "The Prometheus endpoint (docs/metrics.md).");
    f("audit_log", &TelemetrySettings::audit_log, "The audit log of L4 flows and tunnels.");
    f("tracing", &TelemetrySettings::tracing,
      "Trace context and request spans (set at start; a reload keeps them).");
  }
};

// Bounds for `onramp: http` request heads (RFC 9112): over them a client gets 414/431.
struct HttpLimits {
  unsigned max_request_line = 8 * 1024;
  unsigned max_head = 64 * 1024;
  unsigned max_fields = 100;
  bool h2c = false;
  unsigned h2_max_concurrent_streams = 100;
  unsigned h2_reset_burst = 1000;
  unsigned h2_reset_rate = 33;

  static void describe(settings::Fields<HttpLimits>& f) {
    f("max_request_line", &HttpLimits::max_request_line,
      "Longest request line accepted, in bytes; longer gets 414.");
    f("max_head", &HttpLimits::max_head,
      "Largest request head (request line and fields), in bytes; larger gets 431.");
    f("max_fields", &HttpLimits::max_fields, "Most header fields in one request; more gets 431.");
    f("h2c", &HttpLimits::h2c,
      "Serve HTTP/2 without TLS to clients that open with its preface (h2c, RFC 9113 3.3); "
      "others get HTTP/1.1.");
    f("h2_max_concurrent_streams", &HttpLimits::h2_max_concurrent_streams,
      "HTTP/2 streams a client may have open at once; more are refused.");
    f("h2_reset_burst", &HttpLimits::h2_reset_burst,
      "HTTP/2 stream resets a client may send in a burst before GOAWAY (rapid reset).");
    f("h2_reset_rate", &HttpLimits::h2_reset_rate,
      "HTTP/2 stream resets per second a client earns back after a burst.");
  }
};

// Proxy authentication of `onramp: http` endpoints; none configured = open proxy.
struct AuthSettings {
  std::string htpasswd;
  std::vector<std::string> preshared_keys;
  std::string realm = "ramjet";

  bool enabled() const { return !htpasswd.empty() || !preshared_keys.empty(); }

  static void describe(settings::Fields<AuthSettings>& f) {
    f("htpasswd", &AuthSettings::htpasswd,
      "File of user:hash lines (sha512-crypt $6$, yescrypt $y$ or bcrypt $2b$/$2y$, as made "
      "by openssl passwd -6 or mkpasswd) for Basic proxy authentication; \"\" = off.");
    f("preshared_keys", &AuthSettings::preshared_keys,
      "Keys accepted as \"Proxy-Authorization: Preshared <key>\" (token68, 16+ bytes).");
    f("realm", &AuthSettings::realm, "Realm named in the 407 challenge.");
  }
};

// The TUN device of an `onramp: ip` endpoint (docs/ip_onramp.md).
struct TunSettings {
  std::string name = "rj0";
  std::vector<std::string> addresses;
  std::vector<Cidr> routes;
  unsigned mtu = 1500;
  // 21067 and 0x524b0000 follow the datapath's 21066 and 0x524a0000 ("RJ").
  unsigned route_table = 21067;
  unsigned rule_priority = 21067;
  unsigned bypass_mark = 0x524b0000;
  unsigned handoff_table = 21068;

  static void describe(settings::Fields<TunSettings>& f) {
    f("name", &TunSettings::name,
      "Name of the TUN device ramjetd creates (one queue per worker); it goes when ramjetd does.");
    f("addresses", &TunSettings::addresses,
      "Addresses given to the device, ip/len (e.g. [10.99.0.1/24]); none are needed to route "
      "into it.");
    f("routes", &TunSettings::routes,
      "Destinations whose traffic goes into the device, forwarded or from this host (e.g. "
      "[0.0.0.0/0, ::/0]): routes in route_table, looked up by a rule for every packet "
      "without bypass_mark.");
    f("mtu", &TunSettings::mtu, "The device's MTU.");
    f("route_table", &TunSettings::route_table,
      "Routing table that holds the device's routes; ramjet's alone. Not 0, 253, 254 or 255.");
    f("rule_priority", &TunSettings::rule_priority,
      "Preference of the rule `not fwmark bypass_mark lookup route_table` (before main, 32766).");
    f("bypass_mark", &TunSettings::bypass_mark,
      "Mark of the packets ramjetd forwards (the IP off-ramp), which the rule lets through to "
      "the host's other tables.");
    f("handoff_table", &TunSettings::handoff_table,
      "Routing table of decapsulated flows: `local default dev lo`, looked up by a rule for "
      "packets arriving on the device, so the host terminates them. ip endpoints may share it.");
  }
};

// Sessions of `onramp: udp` endpoints (docs/udp.md).
struct UdpSettings {
  milliseconds idle_timeout{60'000};
  unsigned max_sessions = 10'000;
  unsigned setup_queue = 64;

  static void describe(settings::Fields<UdpSettings>& f) {
    f("idle_timeout", &UdpSettings::idle_timeout,
      "Close a session (its upstream socket) after this long without a datagram in either "
      "direction.");
    f("max_sessions", &UdpSettings::max_sessions,
      "Sessions (client address and port) open at once on this endpoint, all workers "
      "together; datagrams of new clients over it are dropped (udp_sessions_refused).");
    f("setup_queue", &UdpSettings::setup_queue,
      "Datagrams kept per session while its hooks and DNS run; more are dropped "
      "(udp_dropped_setup_queue).");
  }
};

// UDP proxying over HTTP (RFC 9298, "connect-udp") on an `onramp: http` forward proxy:
// HTTP/1.1 upgrade requests whose path matches `template` open a UDP tunnel (docs/masque.md).
struct ConnectUdpSettings {
  bool enabled = false;
  // RFC 9298 2: the well-known default; the http layer validates it at load
  // (http/connect_udp_config.h), as config may not include it.
  std::string uri_template = "/.well-known/masque/udp/{target_host}/{target_port}/";
  milliseconds idle_timeout{60'000};

  static void describe(settings::Fields<ConnectUdpSettings>& f) {
    f("enabled", &ConnectUdpSettings::enabled,
      "Serve connect-udp (RFC 9298) on this http forward proxy: an HTTP/1.1 GET with "
      "Upgrade: connect-udp whose path matches template opens a UDP tunnel.");
    f("template", &ConnectUdpSettings::uri_template,
      "URI template of tunnel requests (RFC 9298 2, level 1): a path, or an https URI naming "
      "this proxy, with {target_host} and {target_port} once each.");
    f("idle_timeout", &ConnectUdpSettings::idle_timeout,
      "Close a tunnel after this long without a datagram in either direction.");
  }
};

// `quic:` of an `onramp: http` endpoint with `tls`: HTTP/3 over QUIC on a UDP port beside
// the TCP listener, with the certificates of `tls` (docs/quic.md).
struct QuicSettings {
  SocketAddress listen;
  milliseconds idle_timeout{30'000};
  milliseconds handshake_timeout{10'000};
  unsigned max_connections = 10'000;
  unsigned max_streams_bidi = 100;
  unsigned max_streams_uni = 3;
  unsigned max_stream_data = 256 * 1024;
  unsigned max_data = 1024 * 1024;
  milliseconds alt_svc_max_age{86'400'000};
  QuicRetry retry = QuicRetry::kAuto;
  unsigned retry_rate = 200;

  static void describe(settings::Fields<QuicSettings>& f) {
    f.required("listen", &QuicSettings::listen,
               "UDP address to serve QUIC on: ip:port or [ipv6]:port (usually the TCP "
               "listener's address and port).");
    f("idle_timeout", &QuicSettings::idle_timeout,
      "Close a connection silently after this long without a packet (QUIC max_idle_timeout).");
    f("handshake_timeout", &QuicSettings::handshake_timeout,
      "Time a client has to complete the QUIC handshake.");
    f("max_connections", &QuicSettings::max_connections,
      "QUIC connections open at once on this endpoint, all workers together; new ones over it "
      "are refused (quic_connections_refused).");
    f("max_streams_bidi", &QuicSettings::max_streams_bidi,
      "Request streams a client may open at once (initial_max_streams_bidi).");
    f("max_streams_uni", &QuicSettings::max_streams_uni,
      "Unidirectional streams a client may open (HTTP/3 needs 3: control, QPACK encoder "
      "and decoder).");
    f("max_stream_data", &QuicSettings::max_stream_data,
      "Flow-control window of each stream, in bytes.");
    f("max_data", &QuicSettings::max_data,
      "Flow-control window of a whole connection, in bytes (at least max_stream_data).");
    f("alt_svc_max_age", &QuicSettings::alt_svc_max_age,
      "In reverse-proxy mode, HTTP/1.1 and HTTP/2 responses advertise HTTP/3 on this port "
      "with Alt-Svc (RFC 7838) for this long (ma=); 0s advertises nothing.");
    f("retry", &QuicSettings::retry,
      "Address validation (RFC 9000 8.1): auto sends a Retry to every new client once a "
      "worker takes more than retry_rate new connections a second (a flood of spoofed "
      "Initials then costs one small packet each, no handshake); always: every new "
      "connection; never.");
    f("retry_rate", &QuicSettings::retry_rate,
      "New connections a second per worker above which retry: auto sends Retries.");
  }
};

// One tenant: where clients connect, how traffic arrives, where it goes.
struct Endpoint {
  std::string name;
  SocketAddress listen;
  Onramp onramp = Onramp::kTcp;
  std::optional<UpstreamTarget> upstream;
  std::optional<TlsServerSettings> tls;
  std::optional<TlsClientSettings> upstream_tls;
  std::optional<QuicSettings> quic;
  milliseconds connect_timeout{0};
  std::vector<IpAddress> source;
  milliseconds idle_timeout{300'000};
  milliseconds max_lifetime{0};
  RelayMode relay = RelayMode::kAuto;
  HttpLimits http;
  AuthSettings auth;
  ProxyProtocolSettings proxy_protocol;
  std::optional<SendProxyProtocolSettings> send_proxy_protocol;
  bool transparent = false;
  unsigned backlog = 4096;
  UdpSettings udp;
  ConnectUdpSettings connect_udp;
  std::optional<TunSettings> tun;
  milliseconds flow_idle_timeout{60'000};
  unsigned max_flows = 65536;
  std::shared_ptr<void> app;  // an AppSchema::endpoint instance

  template <typename S>
  const S& app_settings() const {
    return *static_cast<const S*>(app.get());
  }

  static void describe(settings::Fields<Endpoint>& f) {
    f.required("name", &Endpoint::name,
               "Unique name used in logs, stats and ramjetctl ([a-z0-9_-]+).");
    f("listen", &Endpoint::listen,
      "Address to accept clients on: ip:port or [ipv6]:port (required but on ip endpoints).");
    f("onramp", &Endpoint::onramp,
      "How traffic arrives: tcp (a plain TCP relay to upstream), http (an HTTP/1.1 forward "
      "proxy: CONNECT tunnels and absolute-form requests), udp (datagrams relayed to "
      "upstream, a session per client address; docs/udp.md) or ip (IP packets from a TUN "
      "device, see tun).");
    f("upstream", &Endpoint::upstream,
      "Where tcp and udp endpoints relay to (required): name:port, ip:port or [ipv6]:port. An "
      "http endpoint with one is a reverse proxy: origin-form requests go to "
      "http://host[:port] or https://host[:port].");
    f("tls", &Endpoint::tls,
      "Terminate TLS from clients (tcp: a TLS-terminating TCP proxy; http: an HTTPS proxy).");
    f("upstream_tls", &Endpoint::upstream_tls,
      "TLS to upstreams: on for tcp endpoints when present; for http endpoints the settings "
      "of https:// upstreams.");
    f("quic", &Endpoint::quic,
      "http endpoints with tls: also serve HTTP/3 over QUIC on a UDP address, with the "
      "certificates of tls (docs/quic.md).");
    f("connect_timeout", &Endpoint::connect_timeout,
      "Upstream connect timeout; 0 = egress.connect_timeout.");
    f("source", &Endpoint::source,
      "Source addresses of upstream connections, at most one IPv4 and one IPv6 (e.g. "
      "[192.0.2.10]); upstream addresses of a family without one are not tried. Empty = "
      "the kernel's choice. EgressDecision::from() overrides it per connection.");
    f("idle_timeout", &Endpoint::idle_timeout,
      "Close a connection after this long without traffic in either direction; 0 = never.");
    f("max_lifetime", &Endpoint::max_lifetime,
      "Close a connection after this long regardless of traffic; 0 = unlimited.");
    f("relay", &Endpoint::relay,
      "How bytes are moved: auto (through memory, and each direction that carries bulk "
      "moves to splice), splice (zero-copy through a pipe from the first byte) or buffer "
      "(through memory only).");
    f("http", &Endpoint::http, "Request limits of http endpoints.");
    f("auth", &Endpoint::auth,
      "Proxy authentication of http endpoints; missing or wrong credentials get 407.");
    f("proxy_protocol", &Endpoint::proxy_protocol,
      "Read a PROXY protocol header (v1/v2) from trusted load balancers in front of this "
      "endpoint; the client address is then the header's (docs/proxy_protocol.md).");
    f("send_proxy_protocol", &Endpoint::send_proxy_protocol,
      "Start each upstream connection with a PROXY header naming the client (v1 or v2, "
      "before TLS); such connections are reused only by the same client connection. udp "
      "endpoints: a v2 header leads every datagram (docs/udp.md).");
    f("transparent", &Endpoint::transparent,
      "tcp, http and udp endpoints: take the flows datapath rules escalate (and, tcp and "
      "http, the flows ip endpoints decapsulate) and relay each to its original destination "
      "(no upstream). Needs CAP_NET_ADMIN. tcp and http: a twin listener of the other "
      "address family takes that family's flows; http: origin-form requests, each sent to "
      "the original destination whatever its Host names (docs/ip_onramp.md); udp: only "
      "flows of the listen address's family (docs/udp.md).");
    f("backlog", &Endpoint::backlog,
      "Accept queue length of each listening socket (listen(2) backlog; the kernel caps it at "
      "net.core.somaxconn). Escalated flows that find it full take their rule's "
      "on_engine_unavailable.");
    f("udp", &Endpoint::udp, "Sessions of udp endpoints.");
    f("connect_udp", &Endpoint::connect_udp,
      "http forward proxies: UDP tunnels over HTTP/1.1 (RFC 9298 connect-udp, docs/masque.md).");
    f("tun", &Endpoint::tun,
      "ip endpoints: the TUN device packets arrive on (required for onramp: ip).");
    f("flow_idle_timeout", &Endpoint::flow_idle_timeout,
      "ip endpoints: forget a flow after this long without packets (IpFlowHook decides again).");
    f("max_flows", &Endpoint::max_flows,
      "ip endpoints: flows tracked at once per worker; packets of new flows beyond it are "
      "dropped and counted (ip_flows_refused).");
    f.slot("app", &Endpoint::app, kEndpointAppSlot,
           "The application's settings for this endpoint.");
  }
};

// A transparent endpoint whose sockets are TCP listeners (tcp and http): the ones that
// take TCP flows the datapath escalates and the IP on-ramp decapsulates, and whose
// listening sockets join the datapath's and the TUN hand-off's sockmaps.
inline bool is_transparent_tcp_listener(const Endpoint& ep) {
  return ep.transparent && (ep.onramp == Onramp::kTcp || ep.onramp == Onramp::kHttp);
}

// A transparent udp endpoint: takes the UDP flows the datapath escalates and the IP
// on-ramp decapsulates.
inline bool is_transparent_udp(const Endpoint& ep) {
  return ep.transparent && ep.onramp == Onramp::kUdp;
}

struct Config {
  ServerSettings server;
  LoggingSettings logging;
  DnsSettings dns;
  EgressSettings egress;
  TelemetrySettings telemetry;
  std::vector<Endpoint> endpoints;
  DatapathSettings datapath;
  std::shared_ptr<void> app;  // an AppSchema::app instance

  template <typename S>
  const S& app_settings() const {
    return *static_cast<const S*>(app.get());
  }

  static void describe(settings::Fields<Config>& f) {
    f("server", &Config::server, "Process-wide settings.");
    f("logging", &Config::logging, "Diagnostics and access logs.");
    f("dns", &Config::dns, "The resolver used for upstream names.");
    f("egress", &Config::egress, "Connections to upstreams.");
    f("telemetry", &Config::telemetry, "Introspection for operators and tests.");
    f("endpoints", &Config::endpoints,
      "Listeners. Each endpoint is a tenant with its own on-ramp, address, timeouts and "
      "application settings.");
    f("datapath", &Config::datapath, "The in-kernel fast path.");
    f.slot("app", &Config::app, kAppSlot, "The application's own settings.");
  }
};

// The application's settings types, which fill the `app:` slots of Config and Endpoint.
struct AppSchema {
  std::string app_name;
  settings::ErasedStruct app;       // the top-level `app:` section
  settings::ErasedStruct endpoint;  // each endpoint's `app:` section
  // Checks that need a layer above config (the tls layer loads the certificate files):
  // run after the built-in ones when those passed, reporting through the same context.
  using Check =
      std::function<void(const Config&, const settings::Node& root, settings::ParseContext&)>;
  std::vector<Check> checks;
};

// Where a check should point: the value of `key` in the mapping `map` (else the map,
// else `fallback`), and the node of endpoints[i].
settings::Mark mark_of(const settings::Node* map, std::string_view key, settings::Mark fallback);
const settings::Node* endpoint_node(const settings::Node& root, std::size_t i);

// Reads and validates a config file. Never throws.
Result<Config> load_file(const std::string& path, const AppSchema& schema);

// Same, for text already in memory; `filename` prefixes error messages. Never throws.
Result<Config> load_string(std::string_view yaml, std::string_view filename,
                           const AppSchema& schema);

// One datapath rule from YAML or JSON text (POST /v1/rules), read by the same codecs
// as an entry of datapath.rules; errors start with `source` and the position.
Result<DatapathRule> parse_datapath_rule(std::string_view text, std::string_view source);
// The checks the loader makes of the datapath section (rule names unique, address
// families, ports only with tcp/udp, escalate endpoints transparent, ...), for a
// Config changed in memory; the error names `source` and the key.
Result<void> check_datapath(const Config& config, std::string_view source);

// The settings whose values differ between two configs, as key paths in document order:
// "logging.level", "dns.servers", "endpoints[web].idle_timeout", "endpoints[api]" (an
// endpoint only one of them has; sequences of named items are matched by name). A key
// written out at its default is no change. What a reload reports, key by key.
std::vector<std::string> changed_keys(const Config& before, const Config& after,
                                      const AppSchema& schema);

// The whole documented default file: every key at its default with its doc, the app's
// settings, and a commented example endpoint. It loads as is.
std::string default_config_yaml(const AppSchema& schema);

}  // namespace ramjet::config
