#include "app/server.h"

#include <gnutls/crypto.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <iterator>
#include <mutex>
#include <optional>

#include "app/crash_report.h"
#include "datapath/datapath.h"
#include "dns/resolver.h"
#include "http/auth/proxy_auth.h"
#include "proxy/h2_session.h"
#include "proxy/h2_upstream.h"
#include "proxy/http_session.h"
#include "proxy/ip_onramp.h"
#include "proxy/proxy_protocol_prologue.h"
#include "proxy/quic_onramp.h"
#include "proxy/tcp_session.h"
#include "proxy/tls_streams.h"
#include "proxy/udp_onramp.h"
#include "proxy/upstream_pool.h"
#include "proxy/worker_context.h"
#include "runtime/thread.h"
#include "telemetry/access_log.h"
#include "telemetry/event_feed.h"
#include "telemetry/hook_trace.h"

namespace ramjet::app {

using proxy::WorkerContext;
using telemetry::Counter;

namespace {
constexpr auto kAcceptPause = std::chrono::milliseconds(100);
constexpr std::uint16_t kBufferGroup = 1;
constexpr unsigned kBufferCount = 256;
constexpr unsigned kBufferSize = 64 * 1024;

// IP_TRANSPARENT or IPV6_TRANSPARENT on `fd`, or the error that says what is missing.
Result<void> make_transparent(int fd, const SocketAddress& addr) {
  int one = 1;
  int rc = addr.family() == AF_INET
               ? ::setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof one)
               : ::setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof one);
  if (rc == 0) return {};
  int err = errno;
  return Error::kernel(err,
                       std::string("IP_TRANSPARENT: ") + strerror(err) +
                           (err == EPERM ? " (transparent endpoints need CAP_NET_ADMIN)" : ""));
}

Result<int> open_listener(const SocketAddress& addr, bool transparent, unsigned backlog) {
  int fd = ::socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error::kernel(errno, std::string("socket: ") + strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  // A proxy forwards what it has at once; Nagle would hold small writes (a response
  // head, then its body) for the peer's delayed ACK. Accepted sockets inherit it from
  // the listener, which saves a system call per connection.
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (transparent) {
    // Accepted sockets answer from the original destination, which is not ours.
    if (auto r = make_transparent(fd, addr); !r.ok()) {
      ::close(fd);
      return r.error();
    }
  }
  sockaddr_storage ss;
  socklen_t len = addr.to_sockaddr(ss);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
      ::listen(fd, static_cast<int>(backlog)) != 0) {
    int err = errno;
    ::close(fd);
    return Error::kernel(err, strerror(err));
  }
  return fd;
}

// One worker's socket of a udp endpoint: SO_REUSEPORT spreads clients over the workers
// by their 4-tuple, so each client's datagrams reach one worker's session table.
// Transparent: each datagram says where it was going (IP_RECVORIGDSTADDR); the socket
// itself never sends, but IP_TRANSPARENT here checks now the capability every session's
// reply socket needs.
// The address a bound socket got (its port when it asked for 0).
SocketAddress bound_address(int fd) {
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return *SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

// `gro`: coalesced receives (the UDP on-ramp splits them; the QUIC on-ramp does not yet).
Result<int> open_udp_socket(const SocketAddress& addr, bool transparent, bool gro = true) {
  int fd = ::socket(addr.family(), SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Error::kernel(errno, std::string("socket: ") + strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  // Datagrams of one flow may arrive coalesced (each receive says their size): fewer
  // trips up the stack; kernels before 5.0 lack it and deliver them one by one.
  if (gro) ::setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one);
  if (transparent) {
    auto r = make_transparent(fd, addr);
    if (r.ok() && (addr.family() == AF_INET
                       ? ::setsockopt(fd, SOL_IP, IP_RECVORIGDSTADDR, &one, sizeof one)
                       : ::setsockopt(fd, SOL_IPV6, IPV6_RECVORIGDSTADDR, &one, sizeof one)) != 0)
      r = Error::kernel(errno, std::string("IP_RECVORIGDSTADDR: ") + strerror(errno));
    if (!r.ok()) {
      ::close(fd);
      return r.error();
    }
  }
  sockaddr_storage ss;
  socklen_t len = addr.to_sockaddr(ss);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    int err = errno;
    ::close(fd);
    return Error::kernel(err, strerror(err));
  }
  return fd;
}

dns::ResolverSettings resolver_settings(const config::Config& c) {
  dns::ResolverSettings s;
  s.servers = c.dns.servers;
  s.fallback_servers = c.dns.fallback_servers;
  s.timeout = c.dns.timeout;
  s.attempts = c.dns.attempts;
  s.cache_size = c.dns.cache_size;
  s.min_ttl = c.dns.min_ttl;
  s.max_ttl = c.dns.max_ttl;
  s.negative_ttl = c.dns.negative_ttl;
  s.resolution_delay = c.egress.happy_eyeballs.resolution_delay;
  return s;
}

// Takes one of the daemon-wide server.max_connections slots; false when none is left.
bool take_connection_slot(WorkerContext& wc) {
  std::uint32_t max = wc.config.server.max_connections;
  std::uint32_t open = wc.open_connections->fetch_add(1, std::memory_order_relaxed);
  if (max == 0 || open < max) return true;
  wc.open_connections->fetch_sub(1, std::memory_order_relaxed);
  return false;
}

// Gives the slot back when the session's frame goes, however it ends.
struct ConnectionSlot {
  std::atomic<std::uint32_t>* open;
  ~ConnectionSlot() { open->fetch_sub(1, std::memory_order_relaxed); }
};

Task<void> run_session(WorkerContext& wc, const config::Endpoint& ep,
                       telemetry::CounterRow& counters, int fd, ConnectionInfo info) {
  ConnectionSlot slot{wc.open_connections};
  // A PROXY protocol header comes before everything, TLS included: it names the client.
  if (!co_await proxy::read_proxy_protocol(wc, ep, counters, fd, info)) {
    ::close(fd);
    co_return;
  }
  telemetry::event_feed().publish(proxy::connection_event(info, nullptr));
  // TLS is terminated first: ALPN picks the HTTP version, and hooks see TlsInfo.
  std::unique_ptr<runtime::Stream> client =
      co_await proxy::open_client_stream(wc, ep, counters, fd, info);
  if (!client) {
    ::close(fd);  // the handshake failed: counted and logged by open_client_stream
    co_return;
  }
  const bool http = ep.onramp == config::Onramp::kHttp;
  const bool h2 = http && (info.tls ? info.tls->alpn == "h2"
                                    : ep.http.h2c && co_await proxy::client_preface_follows(
                                                         wc.worker, fd, ep.idle_timeout,
                                                         wc.draining));
  if (h2) {
    proxy::H2Session session(wc, ep, counters, *client, std::move(info));
    co_await session.run();
  } else if (http) {
    proxy::HttpSession session(wc, ep, counters, std::move(client), std::move(info));
    co_await session.run();
  } else {
    proxy::TcpSession session(wc, ep, counters, std::move(client), std::move(info));
    co_await session.run();
  }
}

std::atomic<datapath::Datapath*> g_flow_ids{nullptr};

// Process-wide flow ids: unique across workers, never reused in a run. With the
// datapath on they come from the same counter the BPF programs use, so kernel
// flows and engine connections share one id space.
FlowId next_flow_id() {
  if (auto* dp = g_flow_ids.load(std::memory_order_acquire)) return dp->next_flow_id();
  static std::atomic<FlowId> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

void use_datapath_ids(datapath::Datapath* dp) {
  g_flow_ids.store(dp, std::memory_order_release);
}

Task<void> accept_loop(WorkerContext& wc, std::size_t endpoint_index, int listen_fd,
                       runtime::MultishotAccept& acc) {
  const config::Endpoint& ep = wc.config.endpoints[endpoint_index];
  telemetry::CounterRow& counters = wc.stats.endpoint(endpoint_index);
  const void* ep_app = ep.app.get();
  for (;;) {
    // The multishot may have ended after a success (a full CQ ring): re-arm, or the
    // endpoint would wait forever. Errors re-arm below, after their pause.
    if (acc.idle()) {
      if (wc.draining) break;
      acc.arm();
    }
    int fd = co_await acc.next();
    if (fd >= 0) {
      if (wc.draining) {
        ::close(fd);
        continue;
      }
      if (!take_connection_slot(wc)) {
        counters.add(Counter::connections_rejected);
        ::close(fd);
        continue;
      }
      ConnectionInfo info;
      info.endpoint = ep.name;
      info.worker = wc.worker.index();
      info.endpoint_app_settings = ep_app;
      sockaddr_storage ss;
      socklen_t len = sizeof ss;
      if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0)
        if (auto a = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len))
          info.client = *a;
      len = sizeof ss;
      if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0)
        if (auto a = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len))
          info.local = *a;
      std::optional<datapath::FlowEntry> kflow;
      if (ep.transparent && wc.datapath)
        kflow = wc.datapath->lookup_flow(info.client, info.local, IPPROTO_TCP);
      info.escalated = kflow && kflow->flow.escalated;
      info.id = info.escalated ? kflow->flow.flow_id : next_flow_id();
      if (ep.transparent && wc.ip_handoff_flows_fd >= 0)
        proxy::note_decapsulated(wc, info, IPPROTO_TCP);
      wc.worker.spawn(run_session(wc, ep, counters, fd, std::move(info)));
      continue;
    }
    if (acc.armed()) continue;  // a transient error inside a live multishot
    if (wc.draining || fd == -ECANCELED) break;
    if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
      // Out of descriptors or memory: pause instead of spinning, then try again.
      counters.add(Counter::accept_paused);
      spdlog::warn("endpoint {}: accept paused for {}ms: {}", ep.name, kAcceptPause.count(),
                   strerror(-fd));
      co_await wc.worker.sleep(kAcceptPause);
    } else {
      spdlog::warn("endpoint {}: accept failed: {}", ep.name, strerror(-fd));
    }
    if (wc.draining) break;
    acc.arm();
  }
  ::close(listen_fd);
}

Task<void> drain_timer(WorkerContext& wc, std::chrono::milliseconds deadline,
                       runtime::CancelSlot& slot) {
  int rc = co_await wc.worker.sleep(deadline, &slot);
  if (rc == -ECANCELED) co_return;
  if (!wc.sessions.empty())
    spdlog::warn("worker {}: drain deadline passed, closing {} connections", wc.worker.index(),
                 wc.sessions.size());
  // Copy: force_close may end sessions, which erase themselves from the set.
  std::vector<proxy::Session*> left(wc.sessions.begin(), wc.sessions.end());
  for (auto* s : left) s->force_close(CloseReason::kShutdown);
}

}  // namespace

struct Server::WorkerSlot {
  explicit WorkerSlot(unsigned i) : worker(i) {}
  runtime::Worker worker;
  // The worker's context while its loop runs (for connections() and kill()).
  std::atomic<WorkerContext*> context{nullptr};
  runtime::Event drain_requested;
  std::unique_ptr<dns::Resolver> resolver;  // moved into the worker's context
  telemetry::FlowBoard flow_board;          // its flow ids, for crash reports
};

Server::Server(const config::Config& config, engine::HookSet& hooks,
               telemetry::AccessLog& access_log, telemetry::AuditLog* audit_log)
    : config_(config), hooks_(hooks), access_log_(access_log), audit_log_(audit_log) {
  workers_ = config.server.workers.count;
  if (workers_ == 0) workers_ = std::max(1u, std::thread::hardware_concurrency());
  if (workers_ > telemetry::StatsRegistry::kMaxWorkers)
    workers_ = telemetry::StatsRegistry::kMaxWorkers;
  std::vector<std::string> names;
  for (const auto& ep : config.endpoints) names.push_back(ep.name);
  telemetry::stats().configure(workers_, std::move(names));
}

Server::~Server() {
  for (auto* fds : {&listen_fds_, &twin_fds_, &tun_fds_, &quic_fds_})
    for (auto& per_worker : *fds)
      for (int fd : per_worker)
        if (fd >= 0) ::close(fd);
}

Result<void> Server::load_auth() {
  auto table = http::auth::AuthTable::build(config_.endpoints);
  if (!table.ok()) return table.error();
  authenticators_.replace(std::move(*table));
  return {};
}

Result<void> Server::load_tls() {
  std::string first_error;
  tls_ = tls::TlsTable::build(config_.endpoints, [&](std::size_t i, const std::string& key,
                                                      const std::string& message) {
    if (first_error.empty())
      first_error = settings::index_path("endpoints", i) + "." + key + ": " + message;
  });
  if (!first_error.empty()) return Error::config(first_error);
  return {};
}

Result<std::function<void()>> Server::prepare_engine_reload(const config::Config& next) {
  // The running endpoints, with the auth settings the new file gives them (an endpoint the
  // file dropped keeps its own until the restart that removes it).
  std::vector<config::Endpoint> running = config_.endpoints;
  for (auto& ep : running) {
    auto it = std::find_if(next.endpoints.begin(), next.endpoints.end(),
                           [&](const auto& n) { return n.name == ep.name; });
    if (it != next.endpoints.end()) ep.auth = it->auth;
  }
  auto table = http::auth::AuthTable::build(running);
  if (!table.ok()) return table.error();
  // The egress settings, but for the resolver's (a restart applies those: the
  // resolvers are built with their workers).
  config::EgressSettings egress = next.egress;
  egress.happy_eyeballs.resolution_delay = config_.egress.happy_eyeballs.resolution_delay;
  return std::function<void()>([this, t = std::move(*table), egress]() mutable {
    authenticators_.replace(std::move(t));
    // Each worker takes them between two of its sessions' steps; connections already
    // made keep what they were made with.
    on_each_worker<int>(
        [egress](WorkerContext& wc) {
          wc.egress = egress;
          wc.guard = egress::EgressGuard(egress.allow_private);
          return 0;
        },
        std::chrono::milliseconds(1000));
  });
}

Result<void> Server::bind_listeners() {
  listen_fds_.assign(workers_, std::vector<int>(config_.endpoints.size(), -1));
  twin_fds_.assign(workers_, std::vector<int>(config_.endpoints.size(), -1));
  tun_fds_.assign(workers_, std::vector<int>(config_.endpoints.size(), -1));
  udp_sessions_ = std::make_unique<std::atomic<std::uint32_t>[]>(config_.endpoints.size());
  for (std::size_t e = 0; e < config_.endpoints.size(); ++e) {
    const auto& ep = config_.endpoints[e];
    if (ep.onramp == config::Onramp::kIp) {
      // No listener: a TUN device with a queue per worker.
      auto dev = proxy::TunDevice::create(*ep.tun, workers_);
      if (!dev.ok())
        return Error::config("endpoint " + ep.name + ": " + dev.error().message);
      tuns_.push_back(std::make_unique<proxy::TunDevice>(std::move(*dev)));
      for (unsigned w = 0; w < workers_; ++w) tun_fds_[w][e] = tuns_.back()->take_queue(w);
      continue;
    }
    SocketAddress addr = ep.listen;
    const bool udp = ep.onramp == config::Onramp::kUdp;
    for (unsigned w = 0; w < workers_; ++w) {
      auto fd = udp ? open_udp_socket(addr, ep.transparent)
                    : open_listener(addr, ep.transparent, ep.backlog);
      if (!fd.ok()) {
        return Error::config("endpoint " + ep.name + ": cannot listen on " + addr.to_string() +
                             ": " + fd.error().message);
      }
      listen_fds_[w][e] = *fd;
      // Port 0: the other workers' sockets join the port the first one got.
      if (w == 0) bound_[ep.name] = addr = bound_address(*fd);
    }
    // udp: no twin yet, so escalated UDP flows of the other family find no socket in
    // `listeners` and take their rule's fallback (docs/udp.md).
    if (!config::is_transparent_tcp_listener(ep)) continue;
    // Escalated flows of the other family need a listener of that family: an
    // internal twin on the loopback address, same port.
    auto twin_ip = IpAddress::parse(addr.ip().is_v4() ? "::1" : "127.0.0.1");
    SocketAddress twin(*twin_ip, addr.port());
    for (unsigned w = 0; w < workers_; ++w) {
      auto fd = open_listener(twin, true, ep.backlog);
      if (!fd.ok()) {
        spdlog::warn(
            "endpoint {}: no {} twin listener ({}): escalated flows of that family "
            "will be dropped",
            ep.name, twin.to_string(), fd.error().message);
        break;
      }
      twin_fds_[w][e] = *fd;
    }
  }
  if (auto r = open_quic_sockets(); !r.ok()) return r;
  for (const auto& ep : config_.endpoints)
    if (ep.onramp == config::Onramp::kIp) upstream_mark_ |= ep.tun->bypass_mark;
  // Only a transparent tcp, http or udp endpoint can take decapsulated flows: without one
  // the hand-off (CAP_BPF, tcx) is not loaded and decapsulate decisions are refused.
  const bool targets = std::any_of(
      config_.endpoints.begin(), config_.endpoints.end(), [](const config::Endpoint& ep) {
        return config::is_transparent_tcp_listener(ep) || config::is_transparent_udp(ep);
      });
  if (!tuns_.empty() && targets) return set_up_tun_handoff();
  return {};
}

// `quic:` of http endpoints: a UDP socket per worker in one SO_REUSEPORT group, steered
// by connection id (datapath::QuicSteering) when there is more than one worker, and
// GnuTLS credentials from the certificates the tls layer loaded for the endpoint.
Result<void> Server::open_quic_sockets() {
  quic_fds_.assign(workers_, std::vector<int>(config_.endpoints.size(), -1));
  quic_credentials_.assign(config_.endpoints.size(), nullptr);
  quic_connections_ = std::make_unique<std::atomic<std::uint32_t>[]>(config_.endpoints.size());
  gnutls_rnd(GNUTLS_RND_KEY, quic_reset_secret_.data(), quic_reset_secret_.size());
  gnutls_rnd(GNUTLS_RND_KEY, quic_token_secret_.data(), quic_token_secret_.size());
  for (std::size_t e = 0; e < config_.endpoints.size(); ++e) {
    const auto& ep = config_.endpoints[e];
    if (!ep.quic || ep.onramp != config::Onramp::kHttp) continue;
    const tls::EndpointTls* t = tls_.find(ep.name);
    if (t == nullptr || !t->server)
      return Error::config("endpoint " + ep.name + ": quic needs the endpoint's tls certificates");
    std::string error;
    quic_credentials_[e] = quic::ServerCredentials::create(t->server->pem_certificates(), error);
    if (!quic_credentials_[e])
      return Error::config("endpoint " + ep.name + ": quic: tls." + error);
    SocketAddress addr = ep.quic->listen;
    for (unsigned w = 0; w < workers_; ++w) {
      auto fd = open_udp_socket(addr, false, false);
      if (!fd.ok())
        return Error::config("endpoint " + ep.name + ": cannot serve QUIC on " +
                             addr.to_string() + ": " + fd.error().message);
      quic_fds_[w][e] = *fd;
      // Port 0: the other workers' sockets join the port the first one got.
      if (w == 0) bound_[ep.name + "/quic"] = addr = bound_address(*fd);
    }
    if (workers_ > 1) steer_quic(ep.name, e);
  }
  return {};
}

void Server::steer_quic(const std::string& endpoint, std::size_t e) {
  std::vector<int> group;
  for (unsigned w = 0; w < workers_; ++w) group.push_back(quic_fds_[w][e]);
  auto steering = datapath::QuicSteering::load();
  Result<void> attached =
      steering.ok() ? (*steering)->attach(group) : Result<void>(steering.error());
  if (!attached.ok()) {
    // Still a working listener: the kernel's hash keeps each 4-tuple on one worker, so
    // only a client whose address changes may land on another worker (which resets it).
    spdlog::warn("endpoint {}: QUIC connections are not steered by id: {}", endpoint,
                 attached.error().message);
    return;
  }
  quic_steering_.emplace_back(endpoint, std::move(*steering));
}

std::vector<datapath::QuicSteeringStats> Server::quic_steering_stats() const {
  std::vector<datapath::QuicSteeringStats> out;
  for (const auto& [endpoint, steering] : quic_steering_)
    out.push_back({endpoint, steering->stats()});
  return out;
}

Result<void> Server::set_up_tun_handoff() {
  auto handoff = datapath::TunHandoff::load(upstream_mark_);
  if (!handoff.ok()) return Error::config(handoff.error().message);
  tun_handoff_ = std::move(*handoff);
  for (std::size_t e = 0, t = 0; e < config_.endpoints.size(); ++e) {
    const auto& ep = config_.endpoints[e];
    if (ep.onramp != config::Onramp::kIp) continue;
    if (auto r = tun_handoff_->attach(ep.tun->name, tuns_[t++]->ifindex()); !r.ok())
      return Error::config("endpoint " + ep.name + ": " + r.error().message);
  }
  // Early demux off for each protocol whose flows can be decapsulated (docs/ip_onramp.md).
  for (const std::uint8_t protocol : {IPPROTO_TCP, IPPROTO_UDP}) {
    const bool udp = protocol == IPPROTO_UDP;
    const bool needed = std::any_of(
        config_.endpoints.begin(), config_.endpoints.end(), [udp](const config::Endpoint& ep) {
          return udp ? config::is_transparent_udp(ep) : config::is_transparent_tcp_listener(ep);
        });
    if (!needed) continue;
    const char* name = udp ? "udp_early_demux" : "tcp_early_demux";
    auto before = tun_handoff_->disable_early_demux(protocol);
    if (!before.ok()) return Error::config("TUN hand-off: " + before.error().message);
    if (*before != 0)
      spdlog::info(
          "TUN hand-off: net.ipv4.{} set to 0 while ramjetd runs (decapsulated {} flows need "
          "it: docs/ip_onramp.md); put back at stop",
          name, udp ? "UDP" : "TCP");
  }
  // Transparent tcp, http and udp endpoints take decapsulated flows: their sockets (one
  // member of each reuseport group, as for escalation) in the hand-off's sockmap, and the bypass
  // marks on all of them, so that what they send (a SYN-ACK, an accepted connection's
  // data; children inherit the mark) is routed around the TUN devices' tables. A udp
  // endpoint answers escalated and decapsulated flows from reply sockets that carry the
  // mark themselves; its own socket gets it too, for what it sends from there.
  for (std::size_t e = 0; e < config_.endpoints.size(); ++e) {
    const auto& ep = config_.endpoints[e];
    if (!config::is_transparent_tcp_listener(ep) && !config::is_transparent_udp(ep)) continue;
    for (auto* table : {&listen_fds_, &twin_fds_}) {
      for (unsigned w = 0; w < workers_; ++w) {
        int fd = (*table)[w][e];
        if (fd < 0) continue;
        ::setsockopt(fd, SOL_SOCKET, SO_MARK, &upstream_mark_, sizeof upstream_mark_);
        if (w != 0) continue;
        sockaddr_storage ss;
        socklen_t len = sizeof ss;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
        if (auto r = tun_handoff_->add_socket(config::endpoint_id(e), fd,
                                              ss.ss_family == AF_INET6);
            !r.ok())
          return Error::config("endpoint " + ep.name + ": " + r.error().message);
      }
    }
  }
  return {};
}

Result<void> Server::attach_datapath(datapath::Datapath& dp) {
  datapath_ = &dp;
  use_datapath_ids(&dp);
  for (std::size_t e = 0; e < config_.endpoints.size(); ++e) {
    if (!config_.endpoints[e].transparent) continue;
    std::uint32_t id = config::endpoint_id(e);
    // One member of each reuseport group: the kernel still spreads connections
    // over the group's workers (bpf_sk_assign honours SO_REUSEPORT since 6.5).
    for (int fd : {listen_fds_[0][e], twin_fds_[0][e]}) {
      if (fd < 0) continue;
      sockaddr_storage ss;
      socklen_t len = sizeof ss;
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
      if (auto r = dp.register_listener(id, fd, ss.ss_family == AF_INET6); !r.ok()) return r;
    }
  }
  return {};
}

Result<void> Server::start() {
  for (unsigned i = 0; i < workers_; ++i) {
    auto slot = std::make_unique<WorkerSlot>(i);
    // Created here, on the main thread, so a broken resolv.conf is an error at start-up.
    auto resolver = dns::Resolver::create(slot->worker, resolver_settings(config_));
    if (!resolver.ok()) return Error::config("dns: " + resolver.error().message);
    slot->resolver = std::move(*resolver);
    slots_.push_back(std::move(slot));
  }
  for (unsigned i = 0; i < workers_; ++i) {
    auto t = runtime::start_worker_thread(slots_[i]->worker, "worker " + std::to_string(i),
                                          [this, i] { worker_thread(i); });
    if (!t.ok()) {
      // The workers already running stop at once: they have no connections yet.
      drain();
      wait();
      return Error::kernel(t.error().code,
                           "worker " + std::to_string(i) + ": " + t.error().message);
    }
    threads_.push_back(std::move(*t));
  }
  return {};
}

void Server::drain() {
  for (auto& s : slots_) {
    WorkerSlot* slot = s.get();
    slot->worker.post([slot] { slot->drain_requested.set(); });
  }
}

template <typename T>
std::vector<T> Server::on_each_worker(std::function<T(WorkerContext&)> fn,
                                      std::chrono::milliseconds timeout, bool* all_answered) {
  // Shared with the posted closures, which may run after this call gave up on them.
  struct Pending {
    std::mutex mu;
    std::condition_variable cv;
    std::size_t left = 0;
    std::vector<T> results;
  };
  auto p = std::make_shared<Pending>();
  std::vector<WorkerSlot*> running;
  for (auto& s : slots_)
    if (s->context.load(std::memory_order_acquire) != nullptr) running.push_back(s.get());
  p->left = running.size();
  for (WorkerSlot* slot : running) {
    slot->worker.post([slot, p, fn] {
      // The context is gone once the loop ended; then there is nothing to report.
      std::optional<T> r;
      if (WorkerContext* wc = slot->context.load(std::memory_order_acquire)) r = fn(*wc);
      std::lock_guard lock(p->mu);
      if (r) p->results.push_back(std::move(*r));
      --p->left;
      p->cv.notify_all();
    });
  }
  std::unique_lock lock(p->mu);
  const bool answered = p->cv.wait_for(lock, timeout, [&] { return p->left == 0; });
  if (all_answered != nullptr) *all_answered = answered;
  return std::move(p->results);
}

bool Server::workers_answer(std::chrono::milliseconds timeout) {
  bool answered = false;
  on_each_worker<bool>([](WorkerContext&) { return true; }, timeout, &answered);
  return answered;
}

std::vector<admin::EngineConnection> Server::connections(std::chrono::milliseconds timeout) {
  auto per_worker = on_each_worker<std::vector<admin::EngineConnection>>(
      [](WorkerContext& wc) {
        std::vector<admin::EngineConnection> out;
        out.reserve(wc.sessions.size());
        for (const proxy::Session* s : wc.sessions) out.push_back(s->describe());
        return out;
      },
      timeout);
  std::vector<admin::EngineConnection> all;
  for (auto& v : per_worker) std::move(v.begin(), v.end(), std::back_inserter(all));
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return all;
}

std::size_t Server::kill(const std::function<bool(const admin::EngineConnection&)>& match,
                         std::chrono::milliseconds timeout) {
  auto per_worker = on_each_worker<std::size_t>(
      [match](WorkerContext& wc) {
        std::vector<proxy::Session*> chosen;
        for (proxy::Session* s : wc.sessions)
          if (match(s->describe())) chosen.push_back(s);
        // force_close may end a session at once, erasing it from the set: hence the copy.
        for (proxy::Session* s : chosen) s->force_close(CloseReason::kKilled);
        return chosen.size();
      },
      timeout);
  std::size_t n = 0;
  for (std::size_t k : per_worker) n += k;
  return n;
}

void Server::wait() {
  for (auto& t : threads_) t.join();
  threads_.clear();
}

namespace {
// fds[i] serves endpoint endpoints[i] (twins repeat an endpoint); udp_sessions[e]
// counts the sessions of udp endpoint e.
Task<void> worker_main(WorkerContext& wc, runtime::Event& drain_requested,
                       const std::vector<std::pair<std::size_t, int>>& fds,
                       const std::vector<std::pair<std::size_t, int>>& tun_fds,
                       std::atomic<std::uint32_t>* udp_sessions,
                       std::vector<std::unique_ptr<proxy::QuicOnramp>>& quic,
                       std::chrono::milliseconds drain_timeout) {
  std::vector<std::unique_ptr<runtime::MultishotAccept>> accepts;
  std::vector<std::unique_ptr<proxy::UdpOnramp>> udp;
  runtime::JoinSet loops;
  for (const auto& [e, fd] : fds) {
    if (wc.config.endpoints[e].onramp == config::Onramp::kUdp) {
      udp.push_back(std::make_unique<proxy::UdpOnramp>(wc, e, fd, &udp_sessions[e], &next_flow_id));
      loops.start(udp.back()->run());
      continue;
    }
    accepts.push_back(std::make_unique<runtime::MultishotAccept>(wc.worker, fd));
    loops.start(accept_loop(wc, e, fd, *accepts.back()));
  }
  // The QUIC loops end after the drain: their connections are sessions that finish their
  // requests first, and they need the socket for that.
  runtime::JoinSet quic_loops;
  for (auto& q : quic) quic_loops.start(q->run());
  // The IP on-ramps stop last: decapsulated connections among the draining sessions
  // still need their packets written back into the device.
  std::vector<std::unique_ptr<proxy::IpOnramp>> ip_onramps;
  runtime::JoinSet ip_loops;
  for (const auto& [e, fd] : tun_fds) {
    ip_onramps.push_back(std::make_unique<proxy::IpOnramp>(wc, e, fd, next_flow_id));
    ip_loops.start(ip_onramps.back()->run());
  }

  co_await drain_requested.wait();
  wc.draining = true;
  for (auto& a : accepts) a->cancel();
  for (auto& u : udp) u->stop();
  for (auto& q : quic) q->drain();
  co_await loops.wait();

  if (!wc.sessions.empty()) {
    runtime::CancelSlot slot;
    runtime::JoinSet timer;
    timer.start(drain_timer(wc, drain_timeout, slot));
    co_await wc.sessions_empty.wait();
    slot.cancel();
    co_await timer.wait();
  }
  for (auto& q : quic) q->stop();
  co_await quic_loops.wait();
  for (auto& ip : ip_onramps) ip->stop();
  co_await ip_loops.wait();
  // Pending DNS work and the HTTP/2 upstream connections must end before the ring stops,
  // or their coroutines would leak.
  co_await wc.h2_upstreams->close();
  co_await wc.resolver->close();
  wc.worker.stop();
}
}  // namespace

void Server::worker_thread(unsigned index) {
  WorkerSlot& slot = *slots_[index];
  WorkerContext wc{slot.worker, config_,
                   hooks_,      telemetry::stats().worker(index),
                   access_log_, config_.egress,
                   egress::EgressGuard(config_.egress.allow_private),
                   nullptr,     nullptr,
                   {},          &authenticators_,
                   false,       std::make_unique<proxy::UpstreamPool>(),
                   {},          audit_log_};
  wc.resolver = std::move(slot.resolver);
  wc.datapath = datapath_;
  wc.open_connections = &open_connections_;
  if (tun_handoff_) wc.ip_handoff_flows_fd = tun_handoff_->flows_fd();
  wc.upstream_mark = upstream_mark_;
  wc.bound = &bound_;
  wc.tls = &tls_;
  wc.h2_upstreams =
      std::make_unique<proxy::H2Upstreams>(slot.worker, proxy::UpstreamPool::Limits{}.max_idle_time);
  // Needs the worker's ring; created here, outside any coroutine, so that a failure
  // is an exception this thread reports (start_worker_thread) rather than a terminate.
  wc.buffers =
      std::make_unique<runtime::BufferRing>(slot.worker, kBufferGroup, kBufferCount, kBufferSize);
  // The listening sockets now belong to the accept loops, which close them.
  std::vector<std::pair<std::size_t, int>> fds;
  for (auto* table : {&listen_fds_, &twin_fds_}) {
    for (std::size_t e = 0; e < (*table)[index].size(); ++e) {
      int& fd = (*table)[index][e];
      if (fd >= 0) fds.emplace_back(e, fd);
      fd = -1;
    }
  }
  std::vector<std::pair<std::size_t, int>> tun_fds;
  for (std::size_t e = 0; e < tun_fds_[index].size(); ++e) {
    int& fd = tun_fds_[index][e];
    if (fd >= 0) tun_fds.emplace_back(e, fd);
    fd = -1;
  }
  std::vector<std::unique_ptr<proxy::QuicOnramp>> quic;
  for (std::size_t e = 0; e < quic_fds_[index].size(); ++e) {
    int& fd = quic_fds_[index][e];
    if (fd < 0) continue;
    quic::ServerIdentity identity;
    identity.worker = index;
    identity.reset_secret = quic_reset_secret_;
    identity.token_secret = quic_token_secret_;
    quic.push_back(std::make_unique<proxy::QuicOnramp>(wc, e, fd, quic_credentials_[e], identity,
                                                       &quic_connections_[e], &next_flow_id));
    fd = -1;
  }
  slot.worker.spawn(worker_main(wc, slot.drain_requested, fds, tun_fds, udp_sessions_.get(), quic,
                                config_.server.drain_timeout));
  wc.flow_board = &slot.flow_board;
  crash::watch_worker(index, &slot.flow_board);
  slot.context.store(&wc, std::memory_order_release);
  slot.worker.run();
  slot.context.store(nullptr, std::memory_order_release);
  crash::unwatch_worker(index);
}

}  // namespace ramjet::app
