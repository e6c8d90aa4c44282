// The value types of the ramjetd configuration (worker counts, listen addresses,
// port ranges) and its enums, with the codecs ramjet/settings.h reads and prints
// them with. The sections that use them are in ramjet/config/config.h.
#pragma once

#include <charconv>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ramjet/net.h"
#include "ramjet/settings.h"

namespace ramjet::config {

using std::chrono::milliseconds;

// "auto" (one worker per online CPU) or a positive count. 0 stores "auto".
struct WorkerCount {
  unsigned count = 0;

  bool is_auto() const { return count == 0; }
  friend bool operator==(const WorkerCount&, const WorkerCount&) = default;
};

// A listen address that can be turned off: ip:port, or "" for off.
struct OptionalListen {
  std::optional<SocketAddress> address;

  bool enabled() const { return address.has_value(); }
  friend bool operator==(const OptionalListen&, const OptionalListen&) = default;
};

enum class LogLevel : std::uint8_t { kTrace, kDebug, kInfo, kWarn, kError, kOff };
enum class AccessLogFormat : std::uint8_t { kText, kJson, kOff };
enum class IpFamily : std::uint8_t { kIpv6, kIpv4 };
enum class Onramp : std::uint8_t { kTcp, kHttp, kUdp, kIp };
// When a QUIC listener makes clients prove their address with a Retry first.
enum class QuicRetry : std::uint8_t { kAuto, kAlways, kNever };
enum class RelayMode : std::uint8_t { kSplice, kBuffer, kAuto };
enum class DatapathAction : std::uint8_t { kPass, kDrop, kFastpath, kEscalate, kRatelimit };
enum class RuleProto : std::uint8_t { kAny, kTcp, kUdp, kIcmp, kIcmpv6 };
enum class XdpMode : std::uint8_t { kAuto, kNative, kGeneric };
// Where the fast path forwards: XDP (xdp_frames, physical NICs) or tcx ingress
// (the skb keeps its GSO and checksum state: veth and other virtual devices).
enum class FastpathHook : std::uint8_t { kAuto, kXdp, kTc };
// What an escalate rule does with a new flow the engine cannot take (stopped,
// draining, crashed, accept queue full): bpf/include/ramjet/abi/fallback.h.
enum class EngineFallback : std::uint8_t { kPass, kReject, kDrop };

// An endpoint's upstream: host:port (tcp endpoints), or http://host[:port] /
// https://host[:port] (http endpoints in reverse-proxy mode; https speaks TLS to it).
struct UpstreamTarget {
  enum class Scheme : std::uint8_t { kNone, kHttp, kHttps };
  Scheme scheme = Scheme::kNone;
  HostPort target;

  bool tls() const { return scheme == Scheme::kHttps; }
  std::string to_string() const {
    const char* prefix = scheme == Scheme::kHttp ? "http://" : scheme == Scheme::kHttps ? "https://" : "";
    return prefix + target.to_string();
  }
  friend bool operator==(const UpstreamTarget&, const UpstreamTarget&) = default;
};

// A destination port or inclusive range: 80, "80", "8000-8100". Default: any.
struct PortRange {
  std::uint16_t min = 0;
  std::uint16_t max = 65535;

  bool is_any() const { return min == 0 && max == 65535; }
  friend bool operator==(const PortRange&, const PortRange&) = default;
};

}  // namespace ramjet::config

namespace ramjet::settings {

template <>
struct Codec<config::WorkerCount> {
  // Far above any core count; catches typos such as 80000.
  static constexpr unsigned kMax = 4096;

  static bool parse(const Node& node, config::WorkerCount& out, std::string& error) {
    const std::string* s = scalar_text(node, error);
    if (!s) return false;
    if (*s == "auto") {
      out.count = 0;
      return true;
    }
    unsigned v = 0;
    auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
    if (ec != std::errc() || end != s->data() + s->size() || s->empty() || v == 0 || v > kMax) {
      error = "invalid worker count \"" + *s + "\" (expected auto or 1 to " + std::to_string(kMax) +
              ")";
      return false;
    }
    out.count = v;
    return true;
  }
  static std::string format(const config::WorkerCount& v) {
    return v.is_auto() ? "auto" : std::to_string(v.count);
  }
};

template <>
struct Codec<config::OptionalListen> {
  static bool parse(const Node& node, config::OptionalListen& out, std::string& error) {
    const std::string* s = scalar_text(node, error);
    if (!s) return false;
    if (s->empty()) {
      out.address.reset();
      return true;
    }
    auto v = SocketAddress::parse(*s);
    if (!v) {
      error =
          "invalid socket address \"" + *s + "\" (expected ip:port, [ipv6]:port or \"\" for off)";
      return false;
    }
    out.address = *v;
    return true;
  }
  static std::string format(const config::OptionalListen& v) {
    return v.address ? quote_if_needed(v.address->to_string()) : "\"\"";
  }
};

template <>
struct Codec<config::UpstreamTarget> {
  static bool parse(const Node& node, config::UpstreamTarget& out, std::string& error) {
    const std::string* s = scalar_text(node, error);
    if (!s) return false;
    std::string_view text = *s;
    config::UpstreamTarget v;
    std::uint16_t default_port = 0;
    if (text.starts_with("http://")) {
      v.scheme = config::UpstreamTarget::Scheme::kHttp;
      default_port = 80;
      text.remove_prefix(7);
    } else if (text.starts_with("https://")) {
      v.scheme = config::UpstreamTarget::Scheme::kHttps;
      default_port = 443;
      text.remove_prefix(8);
    }
    if (default_port != 0 && text.ends_with("/")) text.remove_suffix(1);
    auto hp = HostPort::parse(text);
    if (!hp && default_port != 0 && HostPort::valid_host(text)) hp = HostPort{std::string(text), default_port};
    if (!hp) {
      error = "invalid upstream \"" + *s +
              "\" (expected host:port, http://host[:port] or https://host[:port])";
      return false;
    }
    v.target = *hp;
    out = v;
    return true;
  }
  static std::string format(const config::UpstreamTarget& v) { return quote_if_needed(v.to_string()); }
};

template <>
struct EnumNames<config::LogLevel> {
  static constexpr std::pair<config::LogLevel, std::string_view> values[] = {
      {config::LogLevel::kTrace, "trace"}, {config::LogLevel::kDebug, "debug"},
      {config::LogLevel::kInfo, "info"},   {config::LogLevel::kWarn, "warn"},
      {config::LogLevel::kError, "error"}, {config::LogLevel::kOff, "off"},
  };
};

template <>
struct EnumNames<config::AccessLogFormat> {
  static constexpr std::pair<config::AccessLogFormat, std::string_view> values[] = {
      {config::AccessLogFormat::kText, "text"},
      {config::AccessLogFormat::kJson, "json"},
      {config::AccessLogFormat::kOff, "off"},
  };
};

template <>
struct EnumNames<config::IpFamily> {
  static constexpr std::pair<config::IpFamily, std::string_view> values[] = {
      {config::IpFamily::kIpv6, "ipv6"},
      {config::IpFamily::kIpv4, "ipv4"},
  };
};

template <>
struct EnumNames<config::QuicRetry> {
  static constexpr std::pair<config::QuicRetry, std::string_view> values[] = {
      {config::QuicRetry::kAuto, "auto"},
      {config::QuicRetry::kAlways, "always"},
      {config::QuicRetry::kNever, "never"},
  };
};

template <>
struct EnumNames<config::Onramp> {
  static constexpr std::pair<config::Onramp, std::string_view> values[] = {
      {config::Onramp::kTcp, "tcp"},
      {config::Onramp::kHttp, "http"},
      {config::Onramp::kUdp, "udp"},
      {config::Onramp::kIp, "ip"},
  };
};

template <>
struct EnumNames<config::DatapathAction> {
  static constexpr std::pair<config::DatapathAction, std::string_view> values[] = {
      {config::DatapathAction::kPass, "pass"},
      {config::DatapathAction::kDrop, "drop"},
      {config::DatapathAction::kFastpath, "fastpath"},
      {config::DatapathAction::kEscalate, "escalate"},
      {config::DatapathAction::kRatelimit, "ratelimit"},
  };
};

template <>
struct EnumNames<config::RuleProto> {
  static constexpr std::pair<config::RuleProto, std::string_view> values[] = {
      {config::RuleProto::kAny, "any"},   {config::RuleProto::kTcp, "tcp"},
      {config::RuleProto::kUdp, "udp"},   {config::RuleProto::kIcmp, "icmp"},
      {config::RuleProto::kIcmpv6, "icmpv6"},
  };
};

template <>
struct EnumNames<config::EngineFallback> {
  static constexpr std::pair<config::EngineFallback, std::string_view> values[] = {
      {config::EngineFallback::kPass, "pass"},
      {config::EngineFallback::kReject, "reject"},
      {config::EngineFallback::kDrop, "drop"},
  };
};

template <>
struct EnumNames<config::XdpMode> {
  static constexpr std::pair<config::XdpMode, std::string_view> values[] = {
      {config::XdpMode::kAuto, "auto"},
      {config::XdpMode::kNative, "native"},
      {config::XdpMode::kGeneric, "generic"},
  };
};

template <>
struct EnumNames<config::FastpathHook> {
  static constexpr std::pair<config::FastpathHook, std::string_view> values[] = {
      {config::FastpathHook::kAuto, "auto"},
      {config::FastpathHook::kXdp, "xdp"},
      {config::FastpathHook::kTc, "tc"},
  };
};

template <>
struct Codec<config::PortRange> {
  static bool parse(const Node& node, config::PortRange& out, std::string& error) {
    const std::string* s = scalar_text(node, error);
    if (!s) return false;
    auto number = [](std::string_view t, std::uint16_t& v) {
      if (t.empty() || t.size() > 5) return false;
      unsigned n = 0;
      for (char c : t) {
        if (c < '0' || c > '9') return false;
        n = n * 10 + unsigned(c - '0');
      }
      if (n > 65535) return false;
      v = static_cast<std::uint16_t>(n);
      return true;
    };
    std::string_view text = *s;
    auto dash = text.find('-');
    config::PortRange r;
    bool ok = dash == std::string_view::npos
                  ? number(text, r.min) && (r.max = r.min, true)
                  : number(text.substr(0, dash), r.min) && number(text.substr(dash + 1), r.max);
    if (!ok || r.min > r.max) {
      error = "invalid port or range \"" + *s + "\" (expected e.g. 80 or 8000-8100)";
      return false;
    }
    out = r;
    return true;
  }
  static std::string format(const config::PortRange& v) {
    if (v.min == v.max) return std::to_string(v.min);
    return quote_if_needed(std::to_string(v.min) + "-" + std::to_string(v.max));
  }
};

template <>
struct EnumNames<config::RelayMode> {
  static constexpr std::pair<config::RelayMode, std::string_view> values[] = {
      {config::RelayMode::kSplice, "splice"},
      {config::RelayMode::kBuffer, "buffer"},
      {config::RelayMode::kAuto, "auto"},
  };
};

}  // namespace ramjet::settings
