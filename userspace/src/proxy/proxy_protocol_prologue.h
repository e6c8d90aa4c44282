// The PROXY protocol prologue of an accepted connection (endpoint `proxy_protocol:`,
// docs/proxy_protocol.md): before TLS, HTTP or the relay see a byte, read the header
// the load balancer sent and make its source the connection's client.
#pragma once

#include "proxy/worker_context.h"
#include "proxy_protocol/reason.h"
#include "ramjet/hooks/connection.h"
#include "ramjet/task.h"

namespace ramjet::proxy {

// Reads the header at the start of `fd` with MSG_PEEK and then consumes exactly its
// bytes, so whatever follows stays in the socket for the next layer. On success
// `info` gets proxy_header, and client/proxied_by when the header names the client.
// False: the connection is to be closed (counted as proxy_protocol_<reason>, logged).
// With the endpoint's proxy_protocol off it returns true at once.
// The counter proxy_protocol_<reason> of `r`.
telemetry::Counter proxy_protocol_counter(proxy_protocol::Reason r);

Task<bool> read_proxy_protocol(WorkerContext& wc, const config::Endpoint& ep,
                               telemetry::CounterRow& counters, int fd, ConnectionInfo& info);

}  // namespace ramjet::proxy
