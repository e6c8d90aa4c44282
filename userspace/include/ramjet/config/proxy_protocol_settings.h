// `proxy_protocol:` of tcp and http endpoints: accept the PROXY protocol header (v1/v2,
// docs/proxy_protocol.md) a load balancer in front of the endpoint sends, and take the
// client address from it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
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

// One TLV sent to upstreams: a custom type (0xE0-0xEF are for applications) and its
// bytes as written.
struct ProxyTlvSetting {
  unsigned type = 0;
  std::string value;

  static void describe(settings::Fields<ProxyTlvSetting>& f) {
    f.required("type", &ProxyTlvSetting::type, "TLV type, 0 to 255 (0xE0-0xEF: custom).");
    f("value", &ProxyTlvSetting::value, "The TLV's bytes.");
  }
};

// `send_proxy_protocol:` - a PROXY header at the start of every upstream connection,
// naming the client (the one an incoming header named, if any) and the address it
// connected to.
struct SendProxyProtocolSettings {
  unsigned version = 2;
  std::vector<ProxyTlvSetting> tlvs;
  bool crc32c = false;

  static void describe(settings::Fields<SendProxyProtocolSettings>& f) {
    f("version", &SendProxyProtocolSettings::version, "1 (text) or 2 (binary, with TLVs).");
    f("tlvs", &SendProxyProtocolSettings::tlvs,
      "v2 TLVs sent on every connection; EgressDecision::with_proxy_protocol adds more.");
    f("crc32c", &SendProxyProtocolSettings::crc32c, "v2: add a CRC32C TLV over the header.");
  }
};

}  // namespace ramjet::config
