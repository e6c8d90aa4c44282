// What hooks learn about a downstream connection and how it ended.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ramjet/hooks/proxy_protocol.h"
#include "ramjet/net.h"

namespace ramjet {

// One flow id names a connection everywhere: logs, hook traces, stats, ramjetctl.
using FlowId = std::uint64_t;

// The client certificate of a mutual-TLS connection, as the handshake saw it.
struct ClientCertificate {
  std::string subject;  // RFC 2253 text, e.g. "CN=alice,O=Example"
  std::string issuer;
  std::vector<std::string> sans;  // "DNS:...", "IP:...", "URI:...", "email:..."
  std::string serial;             // hex, upper case
  std::string sha256;             // fingerprint of the DER, hex, lower case
  bool verified = false;          // chained to tls.client_auth.ca
};

// What the TLS handshake of a downstream connection settled (absent on plaintext).
struct TlsInfo {
  std::string sni;      // the server name the client asked for ("" if none)
  std::string alpn;     // the negotiated protocol ("" if none)
  std::string version;  // "TLSv1.2" or "TLSv1.3"
  std::string cipher;   // e.g. "TLS_AES_128_GCM_SHA256"
  bool resumed = false;  // a session ticket was accepted
  std::optional<ClientCertificate> client_certificate;
};

struct ConnectionInfo {
  FlowId id = 0;
  std::string endpoint;  // the endpoint (tenant) name from config
  SocketAddress client;  // the downstream peer (the PROXY header's source, see proxied_by)
  SocketAddress local;   // the address the client connected to
  unsigned worker = 0;   // the worker thread that owns the connection
  // True when the eBPF datapath escalated this connection to a transparent
  // endpoint: `local` is then the original destination and `id` is the kernel
  // flow's id (the one `ramjetctl flows` shows).
  bool escalated = false;
  // Set when the connection is an IP flow that an IpFlowHook decapsulated (an ip
  // endpoint's TUN on-ramp handed it to this transparent endpoint): that flow's id
  // (IpFlow::id). `client` and `local` are the flow's original addresses.
  FlowId decapsulated_from = 0;
  // What the client speaks to this endpoint: TCP (tcp and http endpoints) or UDP (a udp
  // endpoint's session of one client address and port).
  enum class Transport : std::uint8_t { kTcp, kUdp };
  Transport transport = Transport::kTcp;
  // The endpoint's own `app:` settings, type-erased; read them with endpoint_settings<T>().
  const void* endpoint_app_settings = nullptr;
  // Set on TLS endpoints once the handshake is done, before IngressHook runs.
  std::optional<TlsInfo> tls;
  // Set when the connection began with a PROXY protocol header (endpoint proxy_protocol):
  // the header as parsed, and the real peer (the load balancer) when the header named
  // the client, which `client` then is. A LOCAL header leaves `client` the real peer.
  std::shared_ptr<const ProxyHeader> proxy_header;
  std::optional<SocketAddress> proxied_by;

  template <typename T>
  const T& endpoint_settings() const {
    return *static_cast<const T*>(endpoint_app_settings);
  }
};

// Why a connection ended, as counted and logged.
enum class CloseReason : std::uint8_t {
  kCompleted,        // both sides finished normally
  kBlockedIngress,   // IngressHook said Block
  kBlockedEgress,    // EgressHook said Block or the egress guard refused
  kDnsFailure,       // the upstream name did not resolve
  kConnectFailure,   // no upstream address accepted the connection
  kIdleTimeout,      // no bytes either way for endpoint.idle_timeout
  kMaxLifetime,      // endpoint.max_lifetime reached
  kDownstreamError,  // the client reset or failed
  kUpstreamError,    // the upstream reset or failed
  kShutdown,         // drain deadline passed during shutdown
  kKilled,           // an operator killed the flow (ramjetctl flows kill)
};

inline const char* to_string(CloseReason r) {
  switch (r) {
    case CloseReason::kCompleted:
      return "completed";
    case CloseReason::kBlockedIngress:
      return "blocked_ingress";
    case CloseReason::kBlockedEgress:
      return "blocked_egress";
    case CloseReason::kDnsFailure:
      return "dns_failure";
    case CloseReason::kConnectFailure:
      return "connect_failure";
    case CloseReason::kIdleTimeout:
      return "idle_timeout";
    case CloseReason::kMaxLifetime:
      return "max_lifetime";
    case CloseReason::kDownstreamError:
      return "downstream_error";
    case CloseReason::kUpstreamError:
      return "upstream_error";
    case CloseReason::kShutdown:
      return "shutdown";
    case CloseReason::kKilled:
      return "killed";
  }
  return "unknown";
}

struct ConnectionStats {
  std::uint64_t bytes_from_client = 0;  // downstream -> upstream
  std::uint64_t bytes_to_client = 0;    // upstream -> downstream
  std::chrono::microseconds duration{0};
  // From TCP_INFO on the downstream socket just before close.
  std::chrono::microseconds rtt{0};
  std::uint32_t retransmits = 0;
  CloseReason reason = CloseReason::kCompleted;
  std::string upstream;  // "ip:port" connected to, empty if none
};

}  // namespace ramjet
