#include "proxy/tls_streams.h"

#include <spdlog/spdlog.h>

#include "tls/tls_stream.h"

namespace ramjet::proxy {

using telemetry::Counter;

namespace {

Counter failure_counter(tls::HandshakeFailure f) {
  switch (f) {
    case tls::HandshakeFailure::kNoCertificate:
      return Counter::tls_failed_no_certificate;
    case tls::HandshakeFailure::kNoSharedCipher:
      return Counter::tls_failed_no_shared_cipher;
    case tls::HandshakeFailure::kClientCertificate:
      return Counter::tls_failed_client_certificate;
    case tls::HandshakeFailure::kTimeout:
      return Counter::tls_failed_timeout;
    default:
      return Counter::tls_failed_protocol;
  }
}

}  // namespace

const tls::EndpointTls* endpoint_tls(const WorkerContext& wc, const config::Endpoint& ep) {
  return wc.tls != nullptr ? wc.tls->find(ep.name) : nullptr;
}

Task<std::unique_ptr<runtime::Stream>> open_client_stream(WorkerContext& wc,
                                                          const config::Endpoint& ep,
                                                          telemetry::CounterRow& counters, int fd,
                                                          ConnectionInfo& info) {
  const tls::EndpointTls* t = endpoint_tls(wc, ep);
  if (t == nullptr || !t->server)
    co_return std::make_unique<runtime::PlainStream>(wc.worker, fd, wc.buffers.get());
  auto s = tls::TlsStream::server(wc.worker, fd, *t->server, wc.buffers.get());
  tls::HandshakeFailure f = co_await s->handshake(ep.tls->handshake_timeout);
  if (f != tls::HandshakeFailure::kNone) {
    counters.add(failure_counter(f));
    spdlog::info("flow {}: TLS handshake with {} failed ({}): {}", info.id, info.client.to_string(),
                 tls::to_string(f), s->failure_detail());
    co_return nullptr;
  }
  counters.add(Counter::tls_handshakes);
  info.tls = s->info();
  if (info.tls->resumed) counters.add(Counter::tls_resumed);
  co_return s;
}

Task<std::unique_ptr<runtime::Stream>> open_upstream_tls(WorkerContext& wc,
                                                         const tls::ClientContext& ctx,
                                                         telemetry::CounterRow& counters, int fd,
                                                         std::string host,
                                                         std::chrono::milliseconds timeout,
                                                         FlowId flow, UpstreamTlsFailure& failure,
                                                         bool offer_h2) {
  auto s = tls::TlsStream::client(wc.worker, fd, ctx, host, wc.buffers.get(), offer_h2);
  tls::HandshakeFailure f = co_await s->handshake(timeout);
  if (f == tls::HandshakeFailure::kNone) co_return s;
  failure.certificate = s->certificate_rejected();
  failure.detail = s->failure_detail();
  counters.add(failure.certificate ? Counter::upstream_tls_certificate_errors
                                   : Counter::upstream_tls_protocol_errors);
  spdlog::info("flow {}: TLS to upstream {} failed: {}", flow, host, failure.detail);
  co_return nullptr;
}

}  // namespace ramjet::proxy
