#include "proxy/tcp_session.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "datapath/verdicts.h"
#include "proxy/egress_chain.h"
#include "proxy/tls_streams.h"
#include "telemetry/access_log.h"

namespace ramjet::proxy {

using telemetry::Counter;

TcpSession::TcpSession(WorkerContext& wc, const config::Endpoint& ep,
                       telemetry::CounterRow& counters, std::unique_ptr<runtime::Stream> client,
                       ConnectionInfo info)
    : Session(wc, counters),
      ep_(ep),
      client_fd_(client->fd()),
      client_(std::move(client)),
      info_(std::move(info)) {
  started_ = runtime::Clock::now();
  bind_view({&info_, &stats_, &relay_, &started_});
  audit_.kind = telemetry::FlowKind::kTcp;
  if (wc_.audit_log != nullptr) audit_.target = upstream_target().to_string();
}

HostPort TcpSession::upstream_target() const {
  // Transparent endpoints relay to where the client was going (the datapath kept it).
  if (ep_.transparent) return original_destination(info_);
  return ep_.upstream->target;
}

void TcpSession::force_close(CloseReason why) {
  if (!close_reason_) close_reason_ = why;
  if (relay_) relay_->force_close(why);
}

Task<void> TcpSession::run() {
  ctx_ = wc_.hooks.make_connection_context();

  set_state(SessionState::kHooks);
  if (co_await ingress_blocks(info_, ctx_.get())) close_reason_ = CloseReason::kBlockedIngress;

  bool connected = false;
  if (!close_reason_) {
    set_state(SessionState::kConnecting);
    connected = co_await connect_upstream();
  }

  if (connected && !close_reason_) {
    RelayLimits limits{ep_.idle_timeout, ep_.max_lifetime};
    relay_ = std::make_unique<Relay>(wc_.worker, *client_, *upstream_, relay_mode(ep_.relay), limits,
                                     wc_.buffers.get());
    set_state(SessionState::kRelaying);
    co_await relay_->run();
    stats_.bytes_from_client = relay_->bytes_from_client();
    stats_.bytes_to_client = relay_->bytes_to_client();
    counters_.add(Counter::relay_directions_spliced, relay_->spliced_directions());
    if (auto r = relay_->reason(); r && !close_reason_) close_reason_ = *r;
  }
  finish();
}

Task<bool> TcpSession::connect_upstream() {
  EgressChain chain(wc_, counters_, info_, ctx_.get(), ep_, audited_decisions());
  HostPort target = upstream_target();
  auto r = co_await chain.connect(target);
  if (auto* e = std::get_if<EgressError>(&r)) {
    close_reason_ = e->close_reason();
    co_return false;
  }
  const Upstream& up = std::get<Upstream>(r);
  stats_.upstream = up.address.to_string();
  upstream_fd_ = up.fd;
  const tls::EndpointTls* t = endpoint_tls(wc_, ep_);
  if (!ep_.upstream_tls || t == nullptr || !t->upstream) {
    upstream_ = std::make_unique<runtime::PlainStream>(wc_.worker, upstream_fd_, wc_.buffers.get());
    co_return true;
  }
  UpstreamTlsFailure failure;
  auto timeout = connect_timeout_for(wc_, ep_.connect_timeout);
  upstream_ = co_await open_upstream_tls(wc_, *t->upstream, counters_, upstream_fd_, target.host,
                                         timeout, info_.id, failure);
  if (!upstream_) close_reason_ = CloseReason::kUpstreamError;
  co_return upstream_ != nullptr;
}

void TcpSession::finish() {
  if (upstream_fd_ >= 0) ::close(upstream_fd_);
  close_epilogue(client_fd_, info_, stats_, close_reason_, started_, ctx_.get());
}

}  // namespace ramjet::proxy
