// EgressHook: where a connection may go and how it gets there.
//
// Order for one upstream connection (each step may end it):
//   handle_connection -> dns_resolve_override (names only) -> DNS -> handle_upstream_ips
//   -> egress guard -> [per attempt: tcp_connect_override -> connect]
//   -> handle_connection_established
// A UDP session (onramp: udp) takes the same steps up to the guard, then
// udp_connect_override once for the first address, connect, handle_connection_established.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "ramjet/hooks/connection.h"
#include "ramjet/hooks/kernel.h"
#include "ramjet/hooks/proxy_protocol.h"
#include "ramjet/net.h"
#include "ramjet/task.h"

namespace ramjet {

struct EgressRequest {
  HostPort target;  // what config (or the on-ramp) asked for
};

struct EgressDecision {
  struct Block {
    std::string reason;
  };
  // Connect straight to this host:port (usually the requested one, maybe rewritten).
  struct ExternalDirect {
    HostPort target;
  };
  std::variant<Block, ExternalDirect> value;
  std::optional<KernelVerdict> kernel;  // also act in the datapath (see kernel.h)
  // Connect from this address instead of the endpoint's `source` (e.g. a tenant's own
  // egress address); only upstream addresses of its family are tried.
  std::optional<IpAddress> source;
  // More TLVs for the PROXY v2 header of endpoints with send_proxy_protocol.
  std::vector<ProxyTlv> proxy_protocol_tlvs;

  static EgressDecision block(std::string why) { return {Block{std::move(why)}, {}}; }
  static EgressDecision direct(HostPort to) { return {ExternalDirect{std::move(to)}, {}}; }
  EgressDecision with_kernel(KernelVerdict k) && {
    kernel = k;
    return std::move(*this);
  }
  EgressDecision from(IpAddress a) && {
    source = a;
    return std::move(*this);
  }
  EgressDecision with_proxy_protocol(std::vector<ProxyTlv> tlvs) && {
    proxy_protocol_tlvs = std::move(tlvs);
    return std::move(*this);
  }
  bool is_block() const { return std::holds_alternative<Block>(value); }
};

// The addresses a name resolved to; a hook may reorder, drop or add entries.
struct UpstreamIps {
  std::string host;
  std::vector<IpAddress> addresses;
};

// What the egress guard (SSRF protection) should do with the addresses.
enum class UpstreamIpsPolicy : std::uint8_t {
  kGuarded,       // apply egress.allow_private and the private-range guard (default)
  kAllowPrivate,  // this hook vouches for them: skip the private-range guard
  kBlock,         // refuse the connection
};

// Per connection attempt: go on, go elsewhere, or refuse this address.
struct ConnectOverride {
  struct Continue {};
  struct Redirect {
    SocketAddress to;
  };
  struct Refuse {
    std::string reason;
  };
  std::variant<Continue, Redirect, Refuse> value;

  static ConnectOverride proceed() { return {Continue{}}; }
  static ConnectOverride redirect(SocketAddress to) { return {Redirect{to}}; }
  static ConnectOverride refuse(std::string why) { return {Refuse{std::move(why)}}; }
};

struct EstablishedInfo {
  SocketAddress upstream;                     // the address that accepted
  SocketAddress local;                        // our side of the upstream connection
  std::chrono::microseconds connect_time{0};  // from first attempt to established
  unsigned attempts = 0;                      // connection attempts made (happy eyeballs)
};

template <typename Ctx>
class EgressHook {
 public:
  virtual ~EgressHook() = default;

  virtual Task<EgressDecision> handle_connection(const ConnectionInfo& /*conn*/,
                                                 const EgressRequest& req, Ctx& /*ctx*/) {
    co_return EgressDecision::direct(req.target);
  }

  // Answer a name without DNS: return addresses, or nullopt to resolve normally.
  virtual Task<std::optional<std::vector<IpAddress>>> dns_resolve_override(
      const ConnectionInfo& /*conn*/, const std::string& /*host*/, Ctx& /*ctx*/) {
    co_return std::nullopt;
  }

  virtual Task<UpstreamIpsPolicy> handle_upstream_ips(const ConnectionInfo& /*conn*/,
                                                      UpstreamIps& /*ips*/, Ctx& /*ctx*/) {
    co_return UpstreamIpsPolicy::kGuarded;
  }

  virtual Task<ConnectOverride> tcp_connect_override(const ConnectionInfo& /*conn*/,
                                                     const SocketAddress& /*addr*/, Ctx& /*ctx*/) {
    co_return ConnectOverride::proceed();
  }

  // UDP sessions: the address the session's upstream socket connects to (the first the
  // steps above left). Redirect replaces it (e.g. a per-client backend); Refuse drops
  // the session's datagrams. The egress guard has already passed; a redirect is trusted.
  virtual Task<ConnectOverride> udp_connect_override(const ConnectionInfo& /*conn*/,
                                                     const SocketAddress& /*addr*/, Ctx& /*ctx*/) {
    co_return ConnectOverride::proceed();
  }

  virtual void handle_connection_established(const ConnectionInfo& /*conn*/,
                                             const EstablishedInfo& /*info*/, Ctx& /*ctx*/) {}
};

}  // namespace ramjet
