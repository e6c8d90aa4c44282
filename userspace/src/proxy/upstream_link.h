// How an HTTP request reaches its origin, for both HTTP on-ramps: after the egress
// decisions, a stream on the worker's HTTP/2 connection to that origin when there is
// one, else an idle pooled connection, else a new one (with TLS for an https origin;
// when the origin chooses h2 by ALPN the new connection becomes the worker's shared
// HTTP/2 connection to it, proxy/h2_upstream.h).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "proxy/egress_chain.h"
#include "proxy/h2_upstream.h"
#include "proxy/worker_context.h"
#include "runtime/stream.h"

namespace ramjet::proxy {

struct UpstreamLink {
  std::shared_ptr<H2Upstream> h2;  // the origin speaks HTTP/2: open a stream on this
  // Otherwise a connection of the request's own (to return to the pool when reusable):
  int fd = -1;
  std::unique_ptr<runtime::Stream> stream;  // TLS over fd, or fd as it is
  SocketAddress address;
  // What makes connections to one address interchangeable: the name TLS was verified
  // for ("" for plaintext) and the source addresses chosen for it (reuse_key_for).
  std::string reuse_key;
  bool reused = false;   // an idle pooled connection, or an existing HTTP/2 connection
};

// Why there is no link; the proxy answers it with `status` and Proxy-Status.
struct UpstreamFailure {
  int status;
  const char* proxy_status;  // RFC 9209 error type
  std::string details;
  CloseReason close_reason;
};

struct LinkOptions {
  bool reuse = true;   // an idle pooled connection (or a shared HTTP/2 one) may serve
  bool probe = true;   // a pooled connection is probed for a close first
  bool tls = false;    // an https origin
  bool h2 = true;      // HTTP/2 is acceptable (not for tunnels and upgrades)
};

// `chain` makes the decisions (hooks, DNS, guard) and the connection; `ep` gives the
// TLS client context and timeouts.
Task<std::variant<UpstreamLink, UpstreamFailure>> open_upstream_link(
    WorkerContext& wc, const config::Endpoint& ep, telemetry::CounterRow& counters,
    EgressChain& chain, FlowId flow, const HostPort& target, LinkOptions options);

// Back to the worker's pool: a connection at a message boundary, nothing unread.
void pool_upstream_link(WorkerContext& wc, UpstreamLink& link);

}  // namespace ramjet::proxy
