#include "proxy/tcp_session.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "dns/resolver.h"
#include "egress/happy_eyeballs.h"
#include "telemetry/access_log.h"
#include "telemetry/hook_trace.h"

namespace ramjet::proxy {

using telemetry::Counter;

namespace {
std::chrono::microseconds since(runtime::Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::microseconds>(runtime::Clock::now() - t0);
}

std::string detail_of(const EgressDecision& d) {
  if (auto* b = std::get_if<EgressDecision::Block>(&d.value)) return b->reason;
  return std::get<EgressDecision::ExternalDirect>(d.value).target.to_string();
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
}  // namespace

// The real environment for the happy-eyeballs race: sockets, io_uring connect,
// and the tcp_connect_override hook before every attempt.
class SessionConnectEnv final : public egress::ConnectEnv {
 public:
  explicit SessionConnectEnv(TcpSession& s) : s_(s) {}

  runtime::Clock::time_point now() override { return runtime::Clock::now(); }

  Task<int> attempt(const SocketAddress& requested, runtime::CancelSlot& slot) override {
    auto t0 = runtime::Clock::now();
    ConnectOverride ov =
        co_await s_.wc_.hooks.egress_tcp_connect_override(s_.info_, requested, s_.ctx_.get());
    SocketAddress addr = requested;
    const char* decision = "continue";
    if (auto* r = std::get_if<ConnectOverride::Redirect>(&ov.value)) {
      addr = r->to;
      decision = "redirect";
    } else if (auto* f = std::get_if<ConnectOverride::Refuse>(&ov.value)) {
      s_.trace("egress.tcp_connect_override", "refuse", requested.to_string() + ": " + f->reason,
               t0);
      co_return -EACCES;
    }
    s_.trace("egress.tcp_connect_override", decision, addr.to_string(), t0);
    if (slot.cancelled()) co_return -ECANCELED;

    s_.wc_.stats.add(Counter::connect_attempts);
    int fd = ::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) co_return -errno;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_storage ss;
    socklen_t len = addr.to_sockaddr(ss);
    int rc = co_await s_.wc_.worker.connect(fd, reinterpret_cast<sockaddr*>(&ss), len, &slot);
    if (rc < 0) {
      ::close(fd);
      co_return rc;
    }
    co_return fd;
  }

  Task<int> sleep(std::chrono::nanoseconds d, runtime::CancelSlot& slot) override {
    co_return co_await s_.wc_.worker.sleep(d, &slot);
  }

  void close_fd(int fd) override { ::close(fd); }

  void spawn(Task<void> t) override { s_.wc_.worker.spawn(std::move(t)); }

 private:
  TcpSession& s_;
};

TcpSession::TcpSession(app::WorkerContext& wc, const config::Endpoint& ep, int client_fd,
                       ConnectionInfo info)
    : wc_(wc), ep_(ep), client_fd_(client_fd), info_(std::move(info)) {
  started_ = runtime::Clock::now();
  wc_.sessions.insert(this);
  wc_.stats.add(Counter::connections_accepted);
  wc_.stats.add(Counter::connections_active);
}

TcpSession::~TcpSession() {
  wc_.stats.add(Counter::connections_active, -1);
  wc_.stats.add(Counter::connections_closed);
  wc_.sessions.erase(this);
  if (wc_.draining && wc_.sessions.empty()) wc_.sessions_empty.set();
}

void TcpSession::trace(const char* hook, std::string decision, std::string detail,
                       runtime::Clock::time_point t0) {
  auto& tr = telemetry::hook_trace();
  if (!tr.enabled()) return;
  tr.record({0, hook, info_.id, info_.endpoint, std::move(decision), std::move(detail), since(t0)});
}

void TcpSession::force_close(CloseReason why) {
  if (!close_reason_) close_reason_ = why;
  if (relay_) relay_->force_close(why);
}

Task<void> TcpSession::run() {
  ctx_ = wc_.hooks.make_connection_context();

  auto t0 = runtime::Clock::now();
  IngressDecision in = co_await wc_.hooks.ingress_handle_connection(info_, ctx_.get());
  bool blocked = in.action == IngressDecision::Action::kBlock;
  trace("ingress.handle_connection", blocked ? "block" : "allow", in.reason, t0);
  if (blocked) {
    wc_.stats.add(Counter::ingress_blocked);
    spdlog::info("flow {}: blocked by IngressHook: {}", info_.id, in.reason);
    close_reason_ = CloseReason::kBlockedIngress;
  }

  if (!close_reason_) upstream_fd_ = co_await connect_upstream();

  if (upstream_fd_ >= 0 && !close_reason_) {
    RelayLimits limits{ep_.idle_timeout, ep_.max_lifetime};
    RelayMode mode =
        ep_.relay == config::RelayMode::kBuffer ? RelayMode::kBuffer : RelayMode::kSplice;
    relay_ = std::make_unique<Relay>(wc_.worker, client_fd_, upstream_fd_, mode, limits,
                                     wc_.buffers.get());
    co_await relay_->run();
    stats_.bytes_from_client = relay_->bytes_from_client();
    stats_.bytes_to_client = relay_->bytes_to_client();
    wc_.stats.add(Counter::bytes_from_client, static_cast<std::int64_t>(stats_.bytes_from_client));
    wc_.stats.add(Counter::bytes_to_client, static_cast<std::int64_t>(stats_.bytes_to_client));
    if (auto r = relay_->reason(); r && !close_reason_) close_reason_ = *r;
  }
  finish();
}

Task<std::optional<std::vector<IpAddress>>> TcpSession::resolve(const HostPort& target) {
  if (auto ip = target.ip()) co_return std::vector<IpAddress>{*ip};

  auto t0 = runtime::Clock::now();
  auto over = co_await wc_.hooks.egress_dns_resolve_override(info_, target.host, ctx_.get());
  trace("egress.dns_resolve_override", over ? "override" : "none", target.host, t0);
  if (over) co_return std::move(*over);

  auto& r = *wc_.resolver;
  auto before = r.stats();
  auto res = co_await r.resolve(target.host);
  auto after = r.stats();
  wc_.stats.add(Counter::dns_queries, static_cast<std::int64_t>(after.queries - before.queries));
  wc_.stats.add(Counter::dns_cache_hits,
                static_cast<std::int64_t>(after.cache_hits - before.cache_hits));
  wc_.stats.add(Counter::dns_cache_misses,
                static_cast<std::int64_t>(after.cache_misses - before.cache_misses));
  wc_.stats.add(Counter::dns_failures, static_cast<std::int64_t>(after.failures - before.failures));
  wc_.stats.add(Counter::dns_fallback_used,
                static_cast<std::int64_t>(after.fallback_used - before.fallback_used));
  if (!res.ok()) {
    spdlog::info("flow {}: cannot resolve {}: {}", info_.id, target.host, res.error().message);
    co_return std::nullopt;
  }
  co_return std::move(res.value());
}

Task<int> TcpSession::connect_upstream() {
  auto t0 = runtime::Clock::now();
  EgressRequest req{*ep_.upstream};
  EgressDecision ed = co_await wc_.hooks.egress_handle_connection(info_, req, ctx_.get());
  trace("egress.handle_connection", ed.is_block() ? "block" : "direct", detail_of(ed), t0);
  if (auto* b = std::get_if<EgressDecision::Block>(&ed.value)) {
    wc_.stats.add(Counter::egress_blocked);
    spdlog::info("flow {}: blocked by EgressHook: {}", info_.id, b->reason);
    close_reason_ = CloseReason::kBlockedEgress;
    co_return -1;
  }
  HostPort target = std::get<EgressDecision::ExternalDirect>(ed.value).target;

  auto resolved = co_await resolve(target);
  if (!resolved) {
    close_reason_ = CloseReason::kDnsFailure;
    co_return -1;
  }
  if (close_reason_) co_return -1;  // force-closed while resolving

  UpstreamIps ips{target.host, std::move(*resolved)};
  t0 = runtime::Clock::now();
  UpstreamIpsPolicy policy = co_await wc_.hooks.egress_handle_upstream_ips(info_, ips, ctx_.get());
  std::string listed;
  for (const auto& ip : ips.addresses) listed += (listed.empty() ? "" : " ") + ip.to_string();
  trace("egress.handle_upstream_ips", describe(policy), std::move(listed), t0);
  if (policy == UpstreamIpsPolicy::kBlock || ips.addresses.empty()) {
    wc_.stats.add(Counter::egress_blocked);
    spdlog::info("flow {}: upstream addresses of {} blocked by EgressHook", info_.id, target.host);
    close_reason_ = CloseReason::kBlockedEgress;
    co_return -1;
  }

  std::vector<IpAddress> allowed;
  std::string refused;
  for (const auto& ip : ips.addresses) {
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
    wc_.stats.add(Counter::egress_refused_private);
    spdlog::warn("flow {}: egress guard refused {}: {}; allow with egress.allow_private", info_.id,
                 target.to_string(), refused);
    close_reason_ = CloseReason::kBlockedEgress;
    co_return -1;
  }

  const auto& he = wc_.config.egress.happy_eyeballs;
  auto sorted = egress::sort_for_happy_eyeballs(
      std::move(allowed),
      he.prefer == config::IpFamily::kIpv4 ? egress::Preference::kIpv4 : egress::Preference::kIpv6);
  std::vector<SocketAddress> addrs;
  addrs.reserve(sorted.size());
  for (const auto& ip : sorted) addrs.emplace_back(ip, target.port);

  egress::RaceSettings rs;
  rs.connection_attempt_delay = he.connection_attempt_delay;
  rs.connect_timeout =
      ep_.connect_timeout.count() > 0 ? ep_.connect_timeout : wc_.config.egress.connect_timeout;
  SessionConnectEnv env(*this);
  auto raced = co_await egress::race_connect(env, std::move(addrs), rs);
  if (!raced.ok()) {
    const Error& e = raced.error();
    bool timeout = e.code == ETIMEDOUT;
    wc_.stats.add(timeout ? Counter::connect_timeouts : Counter::connect_failures);
    spdlog::info("flow {}: cannot connect to {}: {}", info_.id, target.to_string(), e.message);
    close_reason_ = CloseReason::kConnectFailure;
    co_return -1;
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
  stats_.upstream = est.upstream.to_string();
  t0 = runtime::Clock::now();
  wc_.hooks.egress_handle_connection_established(info_, est, ctx_.get());
  trace("egress.handle_connection_established", "established", stats_.upstream, t0);
  co_return raced->fd;
}

void TcpSession::finish() {
  tcp_info ti{};
  socklen_t len = sizeof ti;
  if (::getsockopt(client_fd_, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0) {
    stats_.rtt = std::chrono::microseconds(ti.tcpi_rtt);
    stats_.retransmits = ti.tcpi_total_retrans;
  }
  ::close(client_fd_);
  if (upstream_fd_ >= 0) ::close(upstream_fd_);
  stats_.reason = close_reason_.value_or(CloseReason::kCompleted);
  stats_.duration = since(started_);
  switch (stats_.reason) {
    case CloseReason::kIdleTimeout:
      wc_.stats.add(Counter::idle_timeouts);
      break;
    case CloseReason::kMaxLifetime:
      wc_.stats.add(Counter::max_lifetime_closes);
      break;
    case CloseReason::kShutdown:
      wc_.stats.add(Counter::drain_forced_closes);
      break;
    default:
      break;
  }
  auto t0 = runtime::Clock::now();
  wc_.hooks.ingress_handle_connection_close(info_, stats_, ctx_.get());
  trace("ingress.handle_connection_close", to_string(stats_.reason), "", t0);
  wc_.access_log.record(info_, stats_);
}

}  // namespace ramjet::proxy
