// ProxyProtocolConnectionHook: a decision on the PROXY protocol header a trusted load
// balancer sent (the analogue of Oxy's hook of the same name).
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "ramjet/hooks/connection.h"
#include "ramjet/hooks/proxy_protocol.h"
#include "ramjet/task.h"

namespace ramjet {

struct ProxyProtocolDecision {
  enum class Action : std::uint8_t { kAllow, kBlock };
  Action action = Action::kAllow;
  std::string reason;  // logged and traced when blocking

  static ProxyProtocolDecision allow() { return {}; }
  static ProxyProtocolDecision block(std::string why) { return {Action::kBlock, std::move(why)}; }
};

// Ctx is the application's IngressConnectionContext: the same object IngressHook and the
// later hooks of the connection get.
template <typename Ctx>
class ProxyProtocolConnectionHook {
 public:
  virtual ~ProxyProtocolConnectionHook() = default;

  // Runs once per connection that carried a PROXY header, right before
  // IngressHook::handle_connection (on TLS endpoints: after the handshake, as IngressHook).
  // `conn.client` is already the header's source (for a PROXY command with an inet
  // address) and `conn.proxied_by` the load balancer; Block closes the connection.
  virtual Task<ProxyProtocolDecision> handle_connection(const ConnectionInfo& /*conn*/,
                                                        const ProxyHeader& /*header*/,
                                                        Ctx& /*ctx*/) {
    co_return ProxyProtocolDecision::allow();
  }
};

}  // namespace ramjet
