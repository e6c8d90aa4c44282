#include "proxy/ip_onramp.h"

#include <arpa/inet.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "datapath/tun_handoff.h"
#include "proxy/tun_device.h"
#include "telemetry/hook_trace.h"

namespace ramjet::proxy {

using telemetry::Counter;

namespace {

// Packets of one flow held while handle_flow runs; more are dropped (ip_dropped_pending).
constexpr std::size_t kMaxWaiting = 64;
// Packets read per wake-up before the loop lets other coroutines run.
constexpr int kReadBatch = 64;

Counter drop_counter(IpDropReason r) {
  switch (r) {
#define RAMJET_X(name, help) \
  case IpDropReason::name:   \
    return Counter::ip_dropped_##name;
    RAMJET_IP_DROP_REASONS(RAMJET_X)
#undef RAMJET_X
  }
  return Counter::ip_dropped_too_short;
}

const char* action_name(const IpFlowDecision& d) {
  switch (d.action) {
    case IpFlowDecision::Action::kDrop:
      return "drop";
    case IpFlowDecision::Action::kDecapsulate:
      return "decapsulate";
    case IpFlowDecision::Action::kForward:
      break;
  }
  return "forward";
}

ramjet_handoff_key handoff_key(const IpFlow& f) {
  return datapath::TunHandoff::key_of(f.protocol, SocketAddress(f.src, f.src_port),
                                      SocketAddress(f.dst, f.dst_port));
}

std::string describe(const IpFlow& f) {
  auto addr = [](const IpAddress& a, std::uint16_t port, bool ports) {
    if (!ports) return a.to_string();
    return a.is_v6() ? "[" + a.to_string() + "]:" + std::to_string(port)
                     : a.to_string() + ":" + std::to_string(port);
  };
  const bool ports = f.protocol == IPPROTO_TCP || f.protocol == IPPROTO_UDP;
  return "proto " + std::to_string(f.protocol) + " " + addr(f.src, f.src_port, ports) + " -> " +
         addr(f.dst, f.dst_port, ports);
}

}  // namespace

IpOnramp::IpOnramp(WorkerContext& wc, std::size_t endpoint_index, int tun_fd,
                   std::function<FlowId()> next_id)
    : wc_(wc),
      ep_(wc.config.endpoints[endpoint_index]),
      counters_(wc.stats.endpoint(endpoint_index)),
      tun_fd_(tun_fd),
      next_id_(std::move(next_id)),
      buf_(65536) {
  for (int v6 = 0; v6 < 2; ++v6) {
    int fd = open_ip_offramp(v6 ? AF_INET6 : AF_INET, ep_.tun->bypass_mark);
    if (fd < 0)
      spdlog::error("endpoint {}: IP off-ramp ({}): {}", ep_.name, v6 ? "IPv6" : "IPv4",
                    std::strerror(-fd));
    offramp_[v6] = fd;
  }
}

IpOnramp::~IpOnramp() {
  for (int fd : offramp_)
    if (fd >= 0) ::close(fd);
  if (tun_fd_ >= 0) ::close(tun_fd_);
}

void IpOnramp::stop() {
  stopping_ = true;
  poll_slot_.cancel();
  sleep_slot_.cancel();
}

Task<void> IpOnramp::run() {
  runtime::JoinSet loops;
  loops.start(read_loop());
  loops.start(expiry_loop());
  co_await loops.wait();
  // Decisions still running hold Flow pointers: wait for them before the flows go.
  while (pending_decisions_ > 0) co_await wc_.worker.sleep(std::chrono::milliseconds(10));
  while (!flows_.empty()) close_flow(flows_.begin());
}

Task<void> IpOnramp::read_loop() {
  while (!stopping_) {
    int rc = co_await wc_.worker.poll(tun_fd_, POLLIN, &poll_slot_);
    if (stopping_ || rc == -ECANCELED) break;
    if (rc < 0) {
      spdlog::warn("endpoint {}: TUN poll: {}", ep_.name, std::strerror(-rc));
      co_await wc_.worker.sleep(std::chrono::milliseconds(100));
      continue;
    }
    for (int i = 0; i < kReadBatch; ++i) {
      ssize_t n = ::read(tun_fd_, buf_.data(), buf_.size());
      if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
          spdlog::warn("endpoint {}: TUN read: {}", ep_.name, std::strerror(errno));
        break;
      }
      on_packet({buf_.data(), static_cast<std::size_t>(n)});
    }
  }
}

Task<void> IpOnramp::expiry_loop() {
  const auto idle = ep_.flow_idle_timeout;
  // Checked four times per timeout (at most once a second), so a flow lives between
  // idle and 1.25 x idle after its last packet.
  auto period = std::min<std::chrono::milliseconds>(std::chrono::milliseconds(1000),
                                                    std::max(idle / 4, std::chrono::milliseconds(10)));
  while (!stopping_) {
    int rc = co_await wc_.worker.sleep(period, &sleep_slot_);
    if (stopping_ || rc == -ECANCELED) break;
    auto now = runtime::Clock::now();
    for (auto it = flows_.begin(); it != flows_.end();) {
      Flow& f = *it->second;
      if (f.decided && now - f.last_packet >= idle) {
        auto next = std::next(it);
        close_flow(it);
        it = next;
      } else {
        ++it;
      }
    }
  }
}

void IpOnramp::on_packet(std::span<std::uint8_t> packet) {
  counters_.add(Counter::ip_packets);
  counters_.add(Counter::ip_bytes, static_cast<std::int64_t>(packet.size()));
  auto parsed = parse_ip(packet);
  if (auto* reason = std::get_if<IpDropReason>(&parsed)) {
    counters_.add(drop_counter(*reason));
    return;
  }
  const ParsedIp& ip = std::get<ParsedIp>(parsed);
  if (wc_.ip_handoff_flows_fd >= 0 && hand_off_icmp_error(packet, ip)) return;
  auto now = runtime::Clock::now();
  auto it = flows_.find(ip.key);
  if (it == flows_.end()) {
    if (flows_.size() >= ep_.max_flows) {
      counters_.add(Counter::ip_flows_refused);
      return;
    }
    auto flow = std::make_unique<Flow>();
    flow->info.id = next_id_();
    flow->info.endpoint = ep_.name;
    flow->info.worker = wc_.worker.index();
    flow->info.protocol = ip.key.protocol;
    flow->info.src = ip.key.src;
    flow->info.dst = ip.key.dst;
    flow->info.src_port = ip.key.src_port;
    flow->info.dst_port = ip.key.dst_port;
    flow->info.endpoint_app_settings = ep_.app.get();
    flow->ctx = wc_.hooks.make_connection_context();
    flow->started = now;
    it = flows_.emplace(ip.key, std::move(flow)).first;
    counters_.add(Counter::ip_flows_opened);
    counters_.add(Counter::ip_flows_active);
    Flow* f = it->second.get();
    f->waiting.emplace_back(packet.begin(), packet.begin() + static_cast<long>(ip.length));
    f->stats.packets = 1;
    f->stats.bytes = packet.size();
    f->last_packet = now;
    ++pending_decisions_;
    wc_.worker.spawn(decide(f));
    return;
  }
  Flow& f = *it->second;
  f.last_packet = now;
  ++f.stats.packets;
  f.stats.bytes += packet.size();
  if (!f.decided) {
    if (f.waiting.size() >= kMaxWaiting) {
      ++f.stats.dropped;
      counters_.add(Counter::ip_dropped_pending);
      return;
    }
    f.waiting.emplace_back(packet.begin(), packet.begin() + static_cast<long>(ip.length));
    return;
  }
  deliver(f, packet.data(), ip.length);
}

Task<void> IpOnramp::decide(Flow* f) {
  auto t0 = runtime::Clock::now();
  IpFlowDecision d = co_await wc_.hooks.ip_handle_flow(f->info, f->ctx.get());
  if (telemetry::hook_trace().enabled()) {
    telemetry::HookEvent ev;
    ev.hook = "ip.handle_flow";
    ev.flow = f->info.id;
    ev.endpoint = f->info.endpoint;
    ev.decision = action_name(d);
    ev.detail = describe(f->info) + (d.reason.empty() ? "" : ": " + d.reason) +
                (d.endpoint.empty() ? "" : " -> endpoint " + d.endpoint);
    ev.duration = std::chrono::duration_cast<std::chrono::microseconds>(runtime::Clock::now() - t0);
    telemetry::hook_trace().record(std::move(ev));
  }
  f->decision = std::move(d);
  if (f->decision.action == IpFlowDecision::Action::kDecapsulate && !stopping_) {
    if (auto refused = hand_off(*f)) {
      counters_.add(Counter::ip_decapsulate_refused);
      spdlog::warn("endpoint {}: flow {} not decapsulated into endpoint {}: {}; dropped",
                   ep_.name, describe(f->info), f->decision.endpoint, *refused);
      f->decision = IpFlowDecision::drop("decapsulate: " + *refused);
    } else {
      counters_.add(Counter::ip_flows_decapsulated);
    }
  }
  const IpFlowDecision& d2 = f->decision;
  if (d2.action == IpFlowDecision::Action::kDrop) {
    counters_.add(Counter::ip_flows_dropped);
    spdlog::debug("endpoint {}: flow {} dropped by IpFlowHook: {}", ep_.name, describe(f->info),
                  d2.reason);
  }
  f->decided = true;
  // The packets that came meanwhile, in order (stopping: the flow is about to go).
  while (!f->waiting.empty()) {
    std::vector<std::uint8_t> p = std::move(f->waiting.front());
    f->waiting.pop_front();
    if (!stopping_) deliver(*f, p.data(), p.size());
  }
  --pending_decisions_;
}

void IpOnramp::deliver(Flow& f, std::uint8_t* data, std::size_t len) {
  if (f.decision.action == IpFlowDecision::Action::kDrop) {
    ++f.stats.dropped;
    counters_.add(Counter::ip_dropped_by_hook);
    return;
  }
  if (f.decision.see_packets) {
    IpPacket packet(data, len);
    IpPacketVerdict v = wc_.hooks.ip_handle_packet(f.info, packet, f.ctx.get());
    // A rewritten packet gets its lengths and checksums fixed; one that no longer
    // parses is dropped with the hook's drops.
    if (v == IpPacketVerdict::kDrop || !fix_checksums({data, packet.size()})) {
      ++f.stats.dropped;
      counters_.add(Counter::ip_dropped_by_packet_hook);
      return;
    }
    len = packet.size();
  }
  if (f.decision.action == IpFlowDecision::Action::kDecapsulate) {
    // A new connection on ports the host may still hold in TIME_WAIT from an earlier
    // one of this flow: end it, or the kernel drops the SYN the hand-off assigns.
    if (f.info.protocol == IPPROTO_TCP && is_tcp_syn({data, len}))
      datapath::TunHandoff::end_time_wait(SocketAddress(f.info.src, f.info.src_port),
                                          SocketAddress(f.info.dst, f.info.dst_port));
    write_back(f, data, len);
    return;
  }
  send_out(f, data, len);
}

void note_decapsulated(WorkerContext& wc, ConnectionInfo& info, std::uint8_t protocol) {
  if (wc.ip_handoff_flows_fd < 0) return;
  auto key = datapath::TunHandoff::key_of(protocol, info.client, info.local);
  info.decapsulated_from = datapath::TunHandoff::flow_of(wc.ip_handoff_flows_fd, key);
  if (info.decapsulated_from == 0 || !telemetry::hook_trace().enabled()) return;
  telemetry::HookEvent ev;
  ev.hook = "ip.handoff";
  ev.flow = info.id;
  ev.endpoint = info.endpoint;
  ev.decision = "accepted";
  ev.detail = "decapsulated from ip flow " + std::to_string(info.decapsulated_from) + ": " +
              info.client.to_string() + " -> " + info.local.to_string();
  telemetry::hook_trace().record(std::move(ev));
}

std::optional<std::string> IpOnramp::hand_off(Flow& f) {
  const std::string& name = f.decision.endpoint;
  const auto& eps = wc_.config.endpoints;
  auto target = std::find_if(eps.begin(), eps.end(),
                             [&](const config::Endpoint& e) { return e.name == name; });
  if (target == eps.end()) return "no endpoint of that name";
  const bool udp = f.info.protocol == IPPROTO_UDP;
  if (!udp && f.info.protocol != IPPROTO_TCP) return "only TCP and UDP flows can be decapsulated";
  if (udp && !config::is_transparent_udp(*target))
    return "not a transparent udp endpoint (the flow is UDP)";
  if (!udp && !config::is_transparent_tcp_listener(*target))
    return "not a transparent tcp or http endpoint";
  if (wc_.ip_handoff_flows_fd < 0) return "the TUN hand-off is not loaded";
  // Draining: no new connections, but a TCP flow that starts mid-connection is one
  // decapsulated before the drain whose packets now reach this worker's queue (the
  // worker whose queue carried it finished draining first and closed its queue, and the
  // device spread its flows over the queues left). Its packets must keep coming back.
  const bool mid_connection =
      !udp && !f.waiting.empty() && !is_tcp_syn({f.waiting.front().data(), f.waiting.front().size()});
  if (wc_.draining && !mid_connection)
    return "ramjetd is draining (the endpoint accepts no new connections)";
  auto index = static_cast<std::size_t>(target - eps.begin());
  int rc = datapath::TunHandoff::add_flow(wc_.ip_handoff_flows_fd, handoff_key(f.info),
                                          config::endpoint_id(index), f.info.id);
  if (rc < 0) return std::string("hand-off table: ") + std::strerror(-rc);
  f.handed_off = true;
  return std::nullopt;
}

bool IpOnramp::hand_off_icmp_error(std::span<const std::uint8_t> packet, const ParsedIp& ip) {
  if (ip.key.protocol != IPPROTO_ICMP && ip.key.protocol != IPPROTO_ICMPV6) return false;
  auto about = icmp_error_about_udp(packet, ip);
  if (!about) return false;
  // The client's side answering a decapsulated UDP session's reply (a port unreachable
  // once the client closed its socket, say). It is addressed to the original
  // destination, so the host routed it here; written back, the hand-off lets the host
  // deliver it, and the host finds the session's reply socket by the datagram quoted.
  const auto key = datapath::TunHandoff::key_of(IPPROTO_UDP,
                                                SocketAddress(about->src, about->src_port),
                                                SocketAddress(about->dst, about->dst_port));
  if (datapath::TunHandoff::flow_of(wc_.ip_handoff_flows_fd, key) == 0) return false;
  if (::write(tun_fd_, packet.data(), ip.length) != static_cast<ssize_t>(ip.length)) {
    counters_.add(Counter::ip_decapsulate_errors);
  } else {
    counters_.add(Counter::ip_icmp_errors_decapsulated);
  }
  return true;
}

void IpOnramp::write_back(Flow& f, const std::uint8_t* data, std::size_t len) {
  // Into the device's queue: the host receives it as if it had arrived on the device,
  // and the hand-off program picks the endpoint's socket. A TUN write does not block.
  if (::write(tun_fd_, data, len) != static_cast<ssize_t>(len)) {
    ++f.stats.dropped;
    counters_.add(Counter::ip_decapsulate_errors);
    return;
  }
  counters_.add(Counter::ip_decapsulated);
}

void IpOnramp::send_out(Flow& f, const std::uint8_t* data, std::size_t len) {
  const bool v6 = f.info.dst.is_v6();
  int fd = offramp_[v6];
  sockaddr_storage ss{};
  socklen_t sl;
  if (v6) {
    auto* sa = reinterpret_cast<sockaddr_in6*>(&ss);
    sa->sin6_family = AF_INET6;
    std::memcpy(&sa->sin6_addr, f.info.dst.data(), 16);
    sl = sizeof *sa;
  } else {
    auto* sa = reinterpret_cast<sockaddr_in*>(&ss);
    sa->sin_family = AF_INET;
    std::memcpy(&sa->sin_addr, f.info.dst.data(), 4);
    sl = sizeof *sa;
  }
  // Non-blocking: a full socket buffer drops the packet, as a full device queue would.
  if (fd < 0 || ::sendto(fd, data, len, 0, reinterpret_cast<sockaddr*>(&ss), sl) < 0) {
    ++f.stats.dropped;
    counters_.add(Counter::ip_offramp_errors);
    return;
  }
  counters_.add(Counter::ip_forwarded);
}

void IpOnramp::close_flow(FlowMap::iterator it) {
  Flow& f = *it->second;
  f.stats.duration =
      std::chrono::duration_cast<std::chrono::microseconds>(runtime::Clock::now() - f.started);
  if (f.handed_off) datapath::TunHandoff::remove_flow(wc_.ip_handoff_flows_fd, handoff_key(f.info));
  wc_.hooks.ip_handle_flow_close(f.info, f.stats, f.ctx.get());
  counters_.add(Counter::ip_flows_closed);
  counters_.add(Counter::ip_flows_active, -1);
  flows_.erase(it);
}

}  // namespace ramjet::proxy
