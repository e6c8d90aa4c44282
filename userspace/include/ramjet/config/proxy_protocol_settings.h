// `proxy_protocol:` of tcp and http endpoints: accept the PROXY protocol header (v1/v2,
// docs/proxy_protocol.md) a load balancer in front of the endpoint sends, and take the
// client address from it.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "ramjet/net.h"
#include "ramjet/settings.h"

namespace ramjet::config {

enum class ProxyProtocolMode : std::uint8_t { kOff, kOptional, kRequired };

}  // namespace ramjet::config

namespace ramjet::settings {

template <>
struct EnumNames<config::ProxyProtocolMode> {
  static constexpr std::pair<config::ProxyProtocolMode, std::string_view> values[] = {
      {config::ProxyProtocolMode::kOff, "off"},
      {config::ProxyProtocolMode::kOptional, "optional"},
      {config::ProxyProtocolMode::kRequired, "required"},
  };
};

}  // namespace ramjet::settings

namespace ramjet::config {

struct ProxyProtocolSettings {
  ProxyProtocolMode mode = ProxyProtocolMode::kOff;
  std::vector<unsigned> versions{1, 2};
  std::vector<Cidr> trusted;
  std::chrono::milliseconds timeout{3000};

  bool enabled() const { return mode != ProxyProtocolMode::kOff; }
  bool accepts(unsigned version) const {
    for (unsigned v : versions)
      if (v == version) return true;
    return false;
  }
  bool trusts(const IpAddress& peer) const {
    for (const Cidr& c : trusted)
      if (c.contains(peer)) return true;
    return false;
  }

  static void describe(settings::Fields<ProxyProtocolSettings>& f) {
    f("mode", &ProxyProtocolSettings::mode,
      "off; required: every connection from a trusted peer starts with a PROXY header (others "
      "are closed); optional: a header is read when the first bytes are one.");
    f("versions", &ProxyProtocolSettings::versions,
      "Header versions accepted: 1 (text), 2 (binary, with TLVs), or both.");
    f("trusted", &ProxyProtocolSettings::trusted,
      "Peers (CIDRs) allowed to send a header; required when mode is not off. A header from "
      "any other peer closes the connection; 0.0.0.0/0 and ::/0 trust every peer.");
    f("timeout", &ProxyProtocolSettings::timeout,
      "Time a peer has to send the whole header after connecting.");
  }
};

}  // namespace ramjet::config
