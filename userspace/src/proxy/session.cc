#include "proxy/session.h"

#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <iterator>
#include <string>
#include <variant>
#include <nlohmann/json.hpp>

#include "datapath/json.h"
#include "datapath/verdicts.h"
#include "proxy/egress_chain.h"
#include "proxy/relay.h"
#include "proxy_protocol/parser.h"
#include "telemetry/access_log.h"
#include "telemetry/event_feed.h"

namespace ramjet::proxy {

using telemetry::Counter;

const char* to_string(SessionState s) {
  switch (s) {
    case SessionState::kAccepted:
      return "accepted";
    case SessionState::kHooks:
      return "hooks";
    case SessionState::kConnecting:
      return "connecting";
    case SessionState::kRelaying:
      return "relaying";
    case SessionState::kClosing:
      return "closing";
  }
  return "accepted";
}

Task<bool> Session::ingress_blocks(const ConnectionInfo& info, void* ctx) {
  if (info.proxy_header) {
    auto t0 = runtime::Clock::now();
    ProxyProtocolDecision pp =
        co_await wc_.hooks.proxy_protocol_handle_connection(info, *info.proxy_header, ctx);
    bool blocked = pp.action == ProxyProtocolDecision::Action::kBlock;
    trace_hook(
        info, "proxy_protocol.handle_connection", blocked ? "block" : "allow",
        [&] { return blocked ? pp.reason : proxy_protocol::describe(*info.proxy_header); }, t0);
    if (blocked) {
      audit_ingress(true, pp.reason);
      counters_.add(Counter::proxy_protocol_blocked_by_hook);
      spdlog::info("flow {}: blocked by ProxyProtocolConnectionHook: {}", info.id, pp.reason);
      co_return true;
    }
  }
  auto t0 = runtime::Clock::now();
  IngressDecision in = co_await wc_.hooks.ingress_handle_connection(info, ctx);
  bool blocked = in.action == IngressDecision::Action::kBlock;
  trace_hook(info, "ingress.handle_connection", blocked ? "block" : "allow", in.reason, t0);
  audit_ingress(blocked, in.reason);
  datapath::apply_kernel_verdict(wc_.datapath, info, in.kernel, "ingress.handle_connection");
  if (blocked) {
    counters_.add(Counter::ingress_blocked);
    spdlog::info("flow {}: blocked by IngressHook: {}", info.id, in.reason);
  }
  co_return blocked;
}

Task<ResponseDirective> Session::run_response_hook(const ConnectionInfo& info, void* ctx,
                                                  const HttpRequestHead& req,
                                                  HttpResponseHead& resp, void* req_ctx) {
  auto t0 = runtime::Clock::now();
  ResponseDirective rd = co_await wc_.hooks.http_response(info, req, resp, ctx, req_ctx);
  if (auto* respond = std::get_if<ResponseDirective::Respond>(&rd.value)) {
    trace_hook(
        info, "http.handle_response", "respond",
        [&] { return std::to_string(respond->reply.status); }, t0);
  } else {
    trace_hook(
        info, "http.handle_response", "continue", [&] { return std::to_string(resp.status); }, t0);
  }
  co_return rd;
}

HostPort original_destination(const ConnectionInfo& info) {
  return HostPort{info.local.ip().unmapped().to_string(), info.local.port()};
}

telemetry::ConnectionEvent connection_event(const ConnectionInfo& info,
                                            const ConnectionStats* closed) {
  telemetry::ConnectionEvent e;
  e.flow_id = info.id;
  e.endpoint = info.endpoint;
  e.worker = info.worker;
  e.src = info.client;
  e.dst = info.local;
  e.escalated = info.escalated;
  e.proto = info.transport == ConnectionInfo::Transport::kUdp ? "udp" : "tcp";
  e.time = std::chrono::system_clock::now();
  if (closed) {
    e.closed = true;
    e.bytes_from_client = closed->bytes_from_client;
    e.bytes_to_client = closed->bytes_to_client;
    e.close_reason = to_string(closed->reason);
    e.duration_ms = closed->duration.count() / 1000;
  }
  return e;
}

telemetry::EngineConnection Session::describe() const {
  telemetry::EngineConnection c;
  const ConnectionInfo& info = *view_.info;
  c.id = info.id;
  c.endpoint = info.endpoint;
  c.worker = info.worker;
  c.client = info.client;
  c.proxied_by = info.proxied_by;
  c.local = info.local;
  c.escalated = info.escalated;
  c.proto = info.transport == ConnectionInfo::Transport::kUdp ? IPPROTO_UDP : IPPROTO_TCP;
  c.state = to_string(state_);
  if (!view_.stats->upstream.empty()) c.upstream = SocketAddress::parse(view_.stats->upstream);
  c.bytes_from_client = view_.stats->bytes_from_client;
  c.bytes_to_client = view_.stats->bytes_to_client;
  if (const auto& relay = *view_.relay; relay && state_ == SessionState::kRelaying) {
    c.bytes_from_client += relay->bytes_from_client();
    c.bytes_to_client += relay->bytes_to_client();
  }
  c.age_ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(runtime::Clock::now() - *view_.started)
          .count());
  if (last_span_) {
    c.trace_id = telemetry::to_hex(last_span_->first.data(), last_span_->first.size());
    c.span_id = telemetry::to_hex(last_span_->second.data(), last_span_->second.size());
  }
  return c;
}

void Session::close_epilogue(int client_fd, const ConnectionInfo& info, ConnectionStats& stats,
                             std::optional<CloseReason> reason, runtime::Clock::time_point started,
                             void* ctx) {
  set_state(SessionState::kClosing);
  tcp_info ti{};
  socklen_t len = sizeof ti;
  if (::getsockopt(client_fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0) {
    stats.rtt = std::chrono::microseconds(ti.tcpi_rtt);
    stats.retransmits = ti.tcpi_total_retrans;
  }
  ::close(client_fd);
  stats.reason = reason.value_or(CloseReason::kCompleted);
  stats.duration =
      std::chrono::duration_cast<std::chrono::microseconds>(runtime::Clock::now() - started);
  counters_.add(Counter::bytes_from_client, static_cast<std::int64_t>(stats.bytes_from_client));
  counters_.add(Counter::bytes_to_client, static_cast<std::int64_t>(stats.bytes_to_client));
  switch (stats.reason) {
    case CloseReason::kIdleTimeout:
      counters_.add(Counter::idle_timeouts);
      break;
    case CloseReason::kMaxLifetime:
      counters_.add(Counter::max_lifetime_closes);
      break;
    case CloseReason::kShutdown:
      counters_.add(Counter::drain_forced_closes);
      break;
    default:
      break;
  }
  auto t0 = runtime::Clock::now();
  wc_.hooks.ingress_handle_connection_close(info, stats, ctx);
  trace_hook(info, "ingress.handle_connection_close", to_string(stats.reason), "", t0);
  wc_.access_log.record(info, stats);
  telemetry::event_feed().publish(connection_event(info, &stats));
  if (wc_.audit_log != nullptr && audit_.kind) {
    telemetry::AuditRecord r;
    r.kind = *audit_.kind;
    r.flow = info.id;
    r.endpoint = info.endpoint;
    r.client = info.client;
    r.proxied_by = info.proxied_by;
    r.local = info.local;
    r.target = audit_.target;
    r.upstream = stats.upstream;
    r.bytes_from_client = stats.bytes_from_client;
    r.bytes_to_client = stats.bytes_to_client;
    r.start = audit_.start;
    r.duration = stats.duration;
    r.reason = stats.reason;
    r.decisions = &audit_.decisions;
    r.tls = info.tls ? &*info.tls : nullptr;
    nlohmann::json kernel = datapath::connection_flow_json(wc_.datapath, info);
    r.kernel = &kernel;
    wc_.audit_log->write(telemetry::encode_audit_line(r));
  }
}

}  // namespace ramjet::proxy
