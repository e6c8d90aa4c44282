#include "proxy/egress_chain.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "datapath/verdicts.h"
#include "dns/resolver.h"
#include "egress/happy_eyeballs.h"
#include "proxy/self_address.h"
#include "proxy_protocol/parser.h"
#include "telemetry/hook_trace.h"

namespace ramjet::proxy {

using telemetry::Counter;

namespace {
std::chrono::microseconds since(runtime::Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::microseconds>(runtime::Clock::now() - t0);
}

const char* describe(UpstreamIpsPolicy p) {
  switch (p) {
    case UpstreamIpsPolicy::kGuarded:
      return "guarded";
    case UpstreamIpsPolicy::kAllowPrivate:
      return "allow_private";
    case UpstreamIpsPolicy::kBlock:
      return "block";
  }
  return "?";
}

// Errors from the resolver and the race start with their RFC 9209 type.
bool starts_with(const std::string& s, std::string_view prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}
}  // namespace

void record_hook(const ConnectionInfo& info, const char* hook, std::string_view decision,
                 std::string detail, std::chrono::steady_clock::time_point started) {
  telemetry::hook_trace().record(
      {0, hook, info.id, info.endpoint, std::string(decision), std::move(detail), since(started)});
}

const char* EgressError::proxy_status() const {
  switch (kind) {
    case EgressFailure::kBlockedByHook:
      return "destination_ip_prohibited";
    case EgressFailure::kPrivateRefused:
      return "destination_ip_prohibited";
    case EgressFailure::kDnsError:
      return "dns_error";
    case EgressFailure::kDnsTimeout:
      return "dns_timeout";
    case EgressFailure::kConnectRefused:
      return starts_with(message, "destination_ip_unroutable") ? "destination_ip_unroutable"
                                                               : "connection_refused";
    case EgressFailure::kConnectTimeout:
      return "connection_timeout";
  }
  return "proxy_internal_error";
}

CloseReason EgressError::close_reason() const {
  switch (kind) {
    case EgressFailure::kBlockedByHook:
    case EgressFailure::kPrivateRefused:
      return CloseReason::kBlockedEgress;
    case EgressFailure::kDnsError:
    case EgressFailure::kDnsTimeout:
      return CloseReason::kDnsFailure;
    case EgressFailure::kConnectRefused:
    case EgressFailure::kConnectTimeout:
      return CloseReason::kConnectFailure;
  }
  return CloseReason::kConnectFailure;
}

// The real environment for the happy-eyeballs race: sockets, io_uring connect,
// and the tcp_connect_override hook before every attempt.
class ChainConnectEnv final : public egress::ConnectEnv {
 public:
  explicit ChainConnectEnv(EgressChain& c) : c_(c) {}

  runtime::Clock::time_point now() override { return runtime::Clock::now(); }

  Task<int> attempt(const SocketAddress& requested, runtime::CancelSlot& slot) override {
    auto t0 = runtime::Clock::now();
    ConnectOverride ov =
        co_await c_.wc_.hooks.egress_tcp_connect_override(c_.info_, requested, c_.ctx_);
    SocketAddress addr = requested;
    const char* decision = "continue";
    if (auto* r = std::get_if<ConnectOverride::Redirect>(&ov.value)) {
      addr = r->to;
      decision = "redirect";
    } else if (auto* f = std::get_if<ConnectOverride::Refuse>(&ov.value)) {
      trace_hook(c_.info_, "egress.tcp_connect_override", "refuse",
                 requested.to_string() + ": " + f->reason, t0);
      co_return -EACCES;
    }
    trace_hook(
        c_.info_, "egress.tcp_connect_override", decision, [&] { return addr.to_string(); }, t0);
    if (slot.cancelled()) co_return -ECANCELED;

    c_.counters_.add(Counter::connect_attempts);
    int fd = ::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) co_return -errno;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // A tcp_connect_override may have redirected to a family without a source.
    if (int rc = prepare_upstream_socket(fd, c_.wc_.upstream_mark, c_.sources_, addr); rc < 0) {
      if (rc != -EAFNOSUPPORT)
        spdlog::warn("flow {}: cannot bind the source address for {}: {}", c_.info_.id,
                     addr.to_string(), std::strerror(-rc));
      ::close(fd);
      co_return rc;
    }
    sockaddr_storage ss;
    socklen_t len = addr.to_sockaddr(ss);
    int rc = co_await c_.wc_.worker.connect(fd, reinterpret_cast<sockaddr*>(&ss), len, &slot);
    if (rc < 0) {
      ::close(fd);
      co_return rc;
    }
    co_return fd;
  }

  Task<int> sleep(std::chrono::nanoseconds d, runtime::CancelSlot& slot) override {
    co_return co_await c_.wc_.worker.sleep(d, &slot);
  }

  void close_fd(int fd) override { ::close(fd); }

  void spawn(Task<void> t) override { c_.wc_.worker.spawn(std::move(t)); }

 private:
  EgressChain& c_;
};

std::optional<IpAddress> source_for(const std::vector<IpAddress>& sources,
                                    const SocketAddress& to) {
  for (const auto& s : sources)
    if (s.family() == to.ip().family()) return s;
  return std::nullopt;
}

bool send_udp_datagram(int fd, const void* data, std::size_t len) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (::send(fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) return true;
    if (errno != ECONNREFUSED) break;
  }
  return false;
}

int prepare_upstream_socket(int fd, std::uint32_t mark, const std::vector<IpAddress>& sources,
                            const SocketAddress& to) {
  // With ip endpoints: the engine's own connections and datagrams do not enter a TUN
  // on-ramp.
  if (mark != 0) ::setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark);
  if (sources.empty()) return 0;
  std::optional<IpAddress> from = source_for(sources, to);
  if (!from) return -EAFNOSUPPORT;
  // The port is chosen at connect(), per destination: source ports are not used up by the
  // bind (IP_BIND_ADDRESS_NO_PORT).
  int one = 1;
  ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  sockaddr_storage local;
  socklen_t local_len = SocketAddress(*from, 0).to_sockaddr(local);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), local_len) != 0) return -errno;
  return 0;
}

std::string reuse_key_for(std::string tls_name, const EgressChain::Destinations& dest) {
  for (const auto& s : dest.sources) tls_name += " from " + s.to_string();
  if (!dest.proxy_header.empty()) tls_name += " proxy " + dest.proxy_header;
  return tls_name;
}

std::string upstream_proxy_header(const config::SendProxyProtocolSettings& send,
                                  const ConnectionInfo& info, const std::vector<ProxyTlv>& extra,
                                  ProxyHeader::Transport transport) {
  ProxyHeader h;
  h.version = send.version == 1 ? ProxyHeader::Version::kV1 : ProxyHeader::Version::kV2;
  h.command = ProxyHeader::Command::kProxy;
  h.transport = transport;
  // The address the client connected to: an incoming header's, as it named the client.
  SocketAddress to = info.local;
  if (info.proxy_header && info.proxy_header->client() && info.proxy_header->destination)
    to = *info.proxy_header->destination;
  const IpAddress client = info.client.ip().unmapped();
  const IpAddress local = to.ip().unmapped();
  if (client.family() == local.family()) {
    h.family = client.is_v4() ? ProxyHeader::Family::kInet : ProxyHeader::Family::kInet6;
    h.source = SocketAddress(client, info.client.port());
    h.destination = SocketAddress(local, to.port());
  }  // else: the families differ (a v4 client named in a header, a v6 listener): UNKNOWN
  if (h.version == ProxyHeader::Version::kV1) return proxy_protocol::encode_v1(h);
  for (const auto& t : send.tlvs)
    h.other.push_back({static_cast<std::uint8_t>(t.type), t.value});
  h.other.insert(h.other.end(), extra.begin(), extra.end());
  return proxy_protocol::encode_v2(h, send.crc32c);
}

Task<std::variant<std::vector<IpAddress>, EgressError>> EgressChain::resolve(
    const HostPort& target) {
  if (auto ip = target.ip()) co_return std::vector<IpAddress>{*ip};

  auto t0 = runtime::Clock::now();
  auto over = co_await wc_.hooks.egress_dns_resolve_override(info_, target.host, ctx_);
  trace_hook(info_, "egress.dns_resolve_override", over ? "override" : "none", target.host, t0);
  if (over) co_return std::move(*over);

  auto& r = *wc_.resolver;
  auto before = r.stats();
  auto res = co_await r.resolve(target.host);
  auto after = r.stats();
  auto delta = [](std::uint64_t a, std::uint64_t b) { return static_cast<std::int64_t>(a - b); };
  counters_.add(Counter::dns_queries, delta(after.queries, before.queries));
  counters_.add(Counter::dns_cache_hits, delta(after.cache_hits, before.cache_hits));
  counters_.add(Counter::dns_cache_misses, delta(after.cache_misses, before.cache_misses));
  counters_.add(Counter::dns_failures, delta(after.failures, before.failures));
  counters_.add(Counter::dns_fallback_used, delta(after.fallback_used, before.fallback_used));
  if (!res.ok()) {
    const std::string& msg = res.error().message;
    spdlog::info("flow {}: cannot resolve {}: {}", info_.id, target.host, msg);
    co_return EgressError{
        starts_with(msg, "dns_timeout") ? EgressFailure::kDnsTimeout : EgressFailure::kDnsError,
        msg};
  }
  co_return std::move(res.value());
}

Task<std::variant<Upstream, EgressError>> EgressChain::connect(HostPort requested) {
  auto decided = co_await decide(std::move(requested));
  if (auto* e = std::get_if<EgressError>(&decided)) co_return std::move(*e);
  co_return co_await connect_to(std::get<Destinations>(std::move(decided)));
}

void EgressChain::audit_block(std::string reason) {
  if (decisions_ == nullptr) return;
  decisions_->egress.decision = "block";
  decisions_->egress.block_reasons.push_back(std::move(reason));
}

Task<std::variant<EgressChain::Destinations, EgressError>> EgressChain::decide(HostPort requested) {
  // An http connection decides once per request: the audit keeps the latest.
  if (decisions_ != nullptr) decisions_->egress = {};
  auto t0 = runtime::Clock::now();
  EgressRequest req{std::move(requested)};
  EgressDecision ed = co_await wc_.hooks.egress_handle_connection(info_, req, ctx_);
  if (auto* b = std::get_if<EgressDecision::Block>(&ed.value)) {
    trace_hook(info_, "egress.handle_connection", "block", b->reason, t0);
    audit_block("egress.handle_connection: " + b->reason);
    datapath::apply_kernel_verdict(wc_.datapath, info_, ed.kernel, "egress.handle_connection");
    counters_.add(Counter::egress_blocked);
    spdlog::info("flow {}: blocked by EgressHook: {}", info_.id, b->reason);
    co_return EgressError{EgressFailure::kBlockedByHook, "blocked by EgressHook: " + b->reason};
  }
  HostPort target = std::get<EgressDecision::ExternalDirect>(ed.value).target;
  trace_hook(
      info_, "egress.handle_connection", "direct", [&] { return target.to_string(); }, t0);
  if (decisions_ != nullptr) {
    decisions_->egress.decision = "direct";
    decisions_->egress.target = target.to_string();
  }
  datapath::apply_kernel_verdict(wc_.datapath, info_, ed.kernel, "egress.handle_connection");

  auto resolved = co_await resolve(target);
  if (auto* e = std::get_if<EgressError>(&resolved)) co_return std::move(*e);

  UpstreamIps ips{target.host, std::get<std::vector<IpAddress>>(std::move(resolved))};
  t0 = runtime::Clock::now();
  UpstreamIpsPolicy policy = co_await wc_.hooks.egress_handle_upstream_ips(info_, ips, ctx_);
  trace_hook(
      info_, "egress.handle_upstream_ips", describe(policy),
      [&] {
        std::string listed;
        for (const auto& ip : ips.addresses) listed += (listed.empty() ? "" : " ") + ip.to_string();
        return listed;
      },
      t0);
  if (decisions_ != nullptr) decisions_->egress.upstream_ips = describe(policy);
  if (policy == UpstreamIpsPolicy::kBlock || ips.addresses.empty()) {
    audit_block(policy == UpstreamIpsPolicy::kBlock
                    ? "egress.handle_upstream_ips: block"
                    : "egress.handle_upstream_ips: no addresses left");
    counters_.add(Counter::egress_blocked);
    spdlog::info("flow {}: upstream addresses of {} blocked by EgressHook", info_.id, target.host);
    co_return EgressError{EgressFailure::kBlockedByHook,
                          "upstream addresses of " + target.host + " blocked by EgressHook"};
  }

  const SocketAddress* own = nullptr;
  if (ep_.transparent && wc_.bound != nullptr) {
    if (auto it = wc_.bound->find(ep_.name); it != wc_.bound->end()) own = &it->second;
  }
  std::vector<IpAddress> allowed;
  std::string refused;
  for (const auto& ip : ips.addresses) {
    // Whatever the hooks said: a transparent endpoint relaying to its own address would
    // accept that connection and relay it again, without end.
    if (own != nullptr && addressed_to_listener(*own, SocketAddress(ip, target.port))) {
      audit_block("egress: " + ip.to_string() + " is this transparent endpoint's own address");
      counters_.add(Counter::egress_refused_self);
      spdlog::info("flow {}: {} is the transparent endpoint {}'s own address; not relayed",
                   info_.id, SocketAddress(ip, target.port).to_string(), ep_.name);
      co_return EgressError{EgressFailure::kPrivateRefused,
                            "destination_ip_prohibited: " + target.to_string() +
                                " is this transparent endpoint's own address"};
    }
    if (policy == UpstreamIpsPolicy::kGuarded) {
      if (auto why = wc_.guard.refusal(ip)) {
        if (!refused.empty()) refused += ", ";
        refused += ip.to_string() + " (" + std::string(*why) + ")";
        continue;
      }
    }
    allowed.push_back(ip);
  }
  if (allowed.empty()) {
    audit_block("egress guard: " + refused);
    counters_.add(Counter::egress_refused_private);
    spdlog::warn("flow {}: egress guard refused {}: {}; allow with egress.allow_private", info_.id,
                 target.to_string(), refused);
    co_return EgressError{EgressFailure::kPrivateRefused,
                          "destination_ip_prohibited: " + target.to_string() + ": " + refused};
  }

  // A source address fixes the family: the others are not tried (a tenant's traffic
  // never leaves from the host's own address).
  std::vector<IpAddress> sources = ed.source ? std::vector<IpAddress>{*ed.source} : ep_.source;
  if (!sources.empty()) {
    std::erase_if(allowed, [&](const IpAddress& ip) {
      return !source_for(sources, SocketAddress(ip, target.port));
    });
    if (allowed.empty()) {
      std::string from;
      for (const auto& s : sources) from += (from.empty() ? "" : ", ") + s.to_string();
      spdlog::info("flow {}: no address of {} in the family of the source address {}", info_.id,
                   target.to_string(), from);
      co_return EgressError{EgressFailure::kConnectRefused,
                            "destination_ip_unroutable: no address of " + target.to_string() +
                                " in the family of the source address " + from};
    }
  }

  const auto& he = wc_.egress.happy_eyeballs;
  auto sorted = egress::sort_for_happy_eyeballs(
      std::move(allowed),
      he.prefer == config::IpFamily::kIpv4 ? egress::Preference::kIpv4 : egress::Preference::kIpv6);
  std::vector<SocketAddress> addrs;
  addrs.reserve(sorted.size());
  for (const auto& ip : sorted) addrs.emplace_back(ip, target.port);
  std::string proxy_header;
  if (ep_.send_proxy_protocol)
    proxy_header =
        upstream_proxy_header(*ep_.send_proxy_protocol, info_, ed.proxy_protocol_tlvs,
                              ep_.onramp == config::Onramp::kUdp ? ProxyHeader::Transport::kDgram
                                                                 : ProxyHeader::Transport::kStream);
  co_return Destinations{std::move(target), std::move(addrs), std::move(sources),
                         std::move(proxy_header)};
}

Task<std::variant<Upstream, EgressError>> EgressChain::connect_to(Destinations dest) {
  const auto& he = wc_.egress.happy_eyeballs;
  const HostPort& target = dest.target;
  egress::RaceSettings rs;
  rs.connection_attempt_delay = he.connection_attempt_delay;
  rs.connect_timeout = connect_timeout_for(wc_, ep_.connect_timeout);
  sources_ = std::move(dest.sources);
  ChainConnectEnv env(*this);
  auto raced = co_await egress::race_connect(env, std::move(dest.addresses), rs);
  if (!raced.ok()) {
    const Error& e = raced.error();
    bool timeout = e.code == ETIMEDOUT;
    counters_.add(timeout ? Counter::connect_timeouts : Counter::connect_failures);
    spdlog::info("flow {}: cannot connect to {}: {}", info_.id, target.to_string(), e.message);
    co_return EgressError{timeout ? EgressFailure::kConnectTimeout : EgressFailure::kConnectRefused,
                          e.message};
  }

  if (!dest.proxy_header.empty()) {
    // Before anything else on the connection, TLS included.
    std::string_view rest = dest.proxy_header;
    while (!rest.empty()) {
      int n = co_await wc_.worker.send(raced->fd, rest.data(), rest.size());
      if (n <= 0) {
        ::close(raced->fd);
        counters_.add(Counter::connect_failures);
        co_return EgressError{EgressFailure::kConnectRefused,
                              "connection_refused: " + target.to_string() +
                                  " closed before the PROXY header was sent"};
      }
      rest.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  EstablishedInfo est;
  est.upstream = raced->addr;
  est.connect_time = raced->elapsed;
  est.attempts = raced->attempts;
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (::getsockname(raced->fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    if (auto local = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len))
      est.local = *local;
  }
  auto t0 = runtime::Clock::now();
  wc_.hooks.egress_handle_connection_established(info_, est, ctx_);
  trace_hook(
      info_, "egress.handle_connection_established", "established",
      [&] { return est.upstream.to_string(); }, t0);
  co_return Upstream{raced->fd, raced->addr};
}

Task<std::variant<UdpUpstream, EgressError>> EgressChain::connect_udp(HostPort requested) {
  auto decided = co_await decide(std::move(requested));
  if (auto* e = std::get_if<EgressError>(&decided)) co_return std::move(*e);
  auto& dest = std::get<Destinations>(decided);
  // One address: a datagram has no handshake to race, so the first the hooks, DNS and
  // the guard left (in happy-eyeballs order) is the one.
  SocketAddress addr = dest.addresses.front();
  auto t0 = runtime::Clock::now();
  ConnectOverride ov = co_await wc_.hooks.egress_udp_connect_override(info_, addr, ctx_);
  if (auto* f = std::get_if<ConnectOverride::Refuse>(&ov.value)) {
    trace_hook(info_, "egress.udp_connect_override", "refuse", addr.to_string() + ": " + f->reason,
               t0);
    audit_block("egress.udp_connect_override: " + f->reason);
    counters_.add(Counter::egress_blocked);
    spdlog::info("flow {}: UDP upstream {} refused by EgressHook: {}", info_.id, addr.to_string(),
                 f->reason);
    co_return EgressError{EgressFailure::kBlockedByHook,
                          "destination_ip_prohibited: UDP upstream " + addr.to_string() +
                              " refused by EgressHook: " + f->reason};
  }
  const char* decision = "continue";
  if (auto* r = std::get_if<ConnectOverride::Redirect>(&ov.value)) {
    addr = r->to;  // trusted: the guard has already run
    decision = "redirect";
  }
  trace_hook(
      info_, "egress.udp_connect_override", decision, [&] { return addr.to_string(); }, t0);

  counters_.add(Counter::connect_attempts);
  int fd = ::socket(addr.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int rc = fd < 0 ? -errno : prepare_upstream_socket(fd, wc_.upstream_mark, dest.sources, addr);
  sockaddr_storage ss;
  socklen_t len = addr.to_sockaddr(ss);
  if (rc == 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) rc = -errno;
  if (rc < 0) {
    // EAFNOSUPPORT: a redirect to a family without a source address.
    spdlog::info("flow {}: UDP upstream {}: {}", info_.id, addr.to_string(), std::strerror(-rc));
    if (fd >= 0) ::close(fd);
    counters_.add(Counter::connect_failures);
    co_return EgressError{
        EgressFailure::kConnectRefused,
        "connection_refused: UDP upstream " + addr.to_string() + ": " + std::strerror(-rc)};
  }

  EstablishedInfo est;
  est.upstream = addr;
  est.attempts = 1;
  socklen_t llen = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &llen) == 0)
    if (auto l = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), llen))
      est.local = *l;
  t0 = runtime::Clock::now();
  wc_.hooks.egress_handle_connection_established(info_, est, ctx_);
  trace_hook(
      info_, "egress.handle_connection_established", "established",
      [&] { return addr.to_string(); }, t0);
  co_return UdpUpstream{fd, addr, std::move(dest.proxy_header)};
}

}  // namespace ramjet::proxy
