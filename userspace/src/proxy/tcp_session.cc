#include "proxy/tcp_session.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "proxy/egress_chain.h"
#include "telemetry/access_log.h"

namespace ramjet::proxy {

using telemetry::Counter;

namespace {
std::chrono::microseconds since(runtime::Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::microseconds>(runtime::Clock::now() - t0);
}
}  // namespace

TcpSession::TcpSession(app::WorkerContext& wc, const config::Endpoint& ep, int client_fd,
                       ConnectionInfo info)
    : Session(wc), ep_(ep), client_fd_(client_fd), info_(std::move(info)) {
  started_ = runtime::Clock::now();
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
  trace_hook(info_, "ingress.handle_connection", blocked ? "block" : "allow", in.reason, t0);
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

Task<int> TcpSession::connect_upstream() {
  EgressChain chain(wc_, info_, ctx_.get(), ep_.connect_timeout);
  auto r = co_await chain.connect(*ep_.upstream);
  if (auto* e = std::get_if<EgressError>(&r)) {
    close_reason_ = e->close_reason();
    co_return -1;
  }
  const Upstream& up = std::get<Upstream>(r);
  stats_.upstream = up.address.to_string();
  co_return up.fd;
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
  trace_hook(info_, "ingress.handle_connection_close", to_string(stats_.reason), "", t0);
  wc_.access_log.record(info_, stats_);
}

}  // namespace ramjet::proxy
