// The egress guard (SSRF protection): by default the proxy does not connect to
// loopback, private, link-local, CGNAT, ULA and other special-purpose ranges, so a
// client cannot use it to reach the proxy host's own network.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "ramjet/net.h"

namespace ramjet::egress {

class EgressGuard {
 public:
  explicit EgressGuard(std::vector<Cidr> allow_private) : allow_(std::move(allow_private)) {}

  // nullopt: allowed. Otherwise the name of the protected range that refuses it.
  std::optional<std::string_view> refusal(const IpAddress& ip) const;

 private:
  std::vector<Cidr> allow_;
};

}  // namespace ramjet::egress
