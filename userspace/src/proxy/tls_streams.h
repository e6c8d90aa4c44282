// The streams a session reads and writes: the client's (TLS terminated here when the
// endpoint has `tls:`) and an upstream's (TLS originated when the upstream needs it).
// Handshakes are counted by outcome and a failure is logged once per connection.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "proxy/worker_context.h"
#include "ramjet/hooks/connection.h"
#include "runtime/stream.h"
#include "tls/endpoint_table.h"

namespace ramjet::proxy {

// The endpoint's TLS contexts (null when it has none).
const tls::EndpointTls* endpoint_tls(const WorkerContext& wc, const config::Endpoint& ep);

// The client's stream. On a TLS endpoint the handshake runs first and `info.tls` is set
// from it; null when it failed.
Task<std::unique_ptr<runtime::Stream>> open_client_stream(WorkerContext& wc,
                                                          const config::Endpoint& ep,
                                                          telemetry::CounterRow& counters, int fd,
                                                          ConnectionInfo& info);

struct UpstreamTlsFailure {
  bool certificate = false;  // the origin's certificate did not verify (else protocol)
  std::string detail;
  const char* proxy_status() const {
    return certificate ? "tls_certificate_error" : "tls_protocol_error";
  }
};

// TLS to an upstream on the connected socket `fd`, verified for `host`; null (with
// `failure` set) when the handshake failed.
Task<std::unique_ptr<runtime::Stream>> open_upstream_tls(WorkerContext& wc,
                                                         const tls::ClientContext& ctx,
                                                         telemetry::CounterRow& counters, int fd,
                                                         std::string host,
                                                         std::chrono::milliseconds timeout,
                                                         FlowId flow, UpstreamTlsFailure& failure,
                                                         bool offer_h2 = true);

}  // namespace ramjet::proxy
