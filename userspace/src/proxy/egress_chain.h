// The egress chain every on-ramp shares, from "connect me to host:port" to a
// connected socket: EgressHook::handle_connection, dns_resolve_override, DNS,
// handle_upstream_ips, the egress guard, happy eyeballs (with tcp_connect_override
// per attempt) and handle_connection_established. Counters and hook traces are
// recorded here, so every on-ramp reports the same way.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "proxy/worker_context.h"
#include "ramjet/hooks/connection.h"
#include "ramjet/net.h"
#include "ramjet/task.h"
#include "telemetry/audit_log.h"
#include "telemetry/hook_trace.h"

namespace ramjet::proxy {

// An endpoint's connect_timeout, or egress.connect_timeout when it sets none (0).
inline std::chrono::milliseconds connect_timeout_for(const WorkerContext& wc,
                                                     std::chrono::milliseconds endpoint) {
  return endpoint.count() > 0 ? endpoint : wc.egress.connect_timeout;
}

// Why no upstream connection was made; each maps onto an RFC 9209 error type.
enum class EgressFailure : std::uint8_t {
  kBlockedByHook,   // EgressHook said Block (handle_connection or handle_upstream_ips)
  kPrivateRefused,  // the egress guard refused every address
  kDnsError,        // NXDOMAIN, SERVFAIL, ...
  kDnsTimeout,      // no DNS answer in time
  kConnectRefused,  // every attempt failed (RST, unreachable, local errors)
  kConnectTimeout,  // connect_timeout passed
};

struct EgressError {
  EgressFailure kind;
  std::string message;  // for logs; starts with the RFC 9209 error type

  // The RFC 9209 Proxy-Status error type, e.g. "dns_timeout".
  const char* proxy_status() const;
  CloseReason close_reason() const;
};

struct Upstream {
  int fd = -1;
  SocketAddress address;
};

// A connected UDP socket to a target, and what its datagrams start with.
struct UdpUpstream {
  int fd = -1;
  SocketAddress address;
  // The PROXY header the decision asked for (send_proxy_protocol), or "".
  std::string proxy_header;
};

// Sends one datagram on a connected UDP upstream socket at once, without waiting (a full
// buffer drops it, as a router would); false when the kernel refused it. An ICMP error
// about an earlier datagram (ECONNREFUSED, reported once) does not cost this one.
bool send_udp_datagram(int fd, const void* data, std::size_t len);

class EgressChain {
 public:
  // `counters` is the flow's endpoint row; `decisions`, when not null, receives the
  // egress decisions for the audit log.
  // `ep` gives the connect timeout and the source addresses.
  EgressChain(WorkerContext& wc, telemetry::CounterRow& counters, const ConnectionInfo& info,
              void* ctx, const config::Endpoint& ep,
              telemetry::FlowDecisions* decisions = nullptr)
      : wc_(wc), counters_(counters), info_(info), ctx_(ctx), ep_(ep), decisions_(decisions) {}

  // decide() then connect_to().
  Task<std::variant<Upstream, EgressError>> connect(HostPort target);

  // Where a connection may go, after every decision hook, DNS and the guard: the
  // addresses in happy-eyeballs order. An on-ramp that keeps idle upstream
  // connections may reuse one to any of these instead of connecting.
  struct Destinations {
    HostPort target;  // after EgressHook::handle_connection
    std::vector<SocketAddress> addresses;
    // Where connections are made from (at most one per family; empty: the kernel's
    // choice); every address above has a source of its family.
    std::vector<IpAddress> sources;
    // The PROXY header every connection starts with (send_proxy_protocol), or "".
    std::string proxy_header;
  };
  Task<std::variant<Destinations, EgressError>> decide(HostPort target);
  // Races connects to the addresses (tcp_connect_override per attempt) and runs
  // handle_connection_established.
  Task<std::variant<Upstream, EgressError>> connect_to(Destinations dest);
  // The UDP counterpart of connect(), for every on-ramp that relays datagrams (udp
  // sessions, connect-udp tunnels): decide(), then udp_connect_override for the first
  // address (a datagram has no handshake to race), then a non-blocking connected socket
  // (SO_MARK, the source address), then handle_connection_established.
  Task<std::variant<UdpUpstream, EgressError>> connect_udp(HostPort target);

 private:
  friend class ChainConnectEnv;
  Task<std::variant<std::vector<IpAddress>, EgressError>> resolve(const HostPort& target);

  // Records an egress block for the audit log (when it is on).
  void audit_block(std::string reason);

  WorkerContext& wc_;
  telemetry::CounterRow& counters_;
  const ConnectionInfo& info_;
  void* ctx_;
  const config::Endpoint& ep_;
  telemetry::FlowDecisions* decisions_;
  std::vector<IpAddress> sources_;  // of the connect under way
};

// The source address of `sources` for `to`'s family, if any.
std::optional<IpAddress> source_for(const std::vector<IpAddress>& sources, const SocketAddress& to);
// Prepares a new upstream socket `fd` for `to`: SO_MARK `mark` (when not 0), and a bind to
// the source address of `sources` for its family (port chosen at connect(),
// IP_BIND_ADDRESS_NO_PORT). 0, or -errno (-EAFNOSUPPORT: no source of that family).
int prepare_upstream_socket(int fd, std::uint32_t mark, const std::vector<IpAddress>& sources,
                            const SocketAddress& to);
// UpstreamLink::reuse_key: the verified TLS name ("" for plaintext), then the sources and
// the PROXY header the connection started with (which names one client connection).
std::string reuse_key_for(std::string tls_name, const EgressChain::Destinations& dest);

// The PROXY header `send` asks for on an upstream connection of `info`'s client, with
// the decision's extra TLVs; `transport` is kDgram for the datagrams of a udp endpoint.
std::string upstream_proxy_header(
    const config::SendProxyProtocolSettings& send, const ConnectionInfo& info,
    const std::vector<ProxyTlv>& extra,
    ProxyHeader::Transport transport = ProxyHeader::Transport::kStream);

void record_hook(const ConnectionInfo& info, const char* hook, std::string_view decision,
                 std::string detail, std::chrono::steady_clock::time_point started);

// Records one hook invocation in the hook trace. `detail` is a string or a callable
// returning one; a callable is only called when tracing is on, so the hot path
// builds no strings.
template <typename Detail>
void trace_hook(const ConnectionInfo& info, const char* hook, std::string_view decision,
                Detail&& detail, std::chrono::steady_clock::time_point started) {
  if (!telemetry::hook_trace().enabled()) return;
  if constexpr (std::is_invocable_v<Detail>)
    record_hook(info, hook, decision, std::string(detail()), started);
  else
    record_hook(info, hook, decision, std::string(detail), started);
}

}  // namespace ramjet::proxy
