#include "datapath/kernel_flow.h"

#include <netinet/in.h>
#include <time.h>

#include <array>
#include <charconv>
#include <string>

#include "datapath/metrics.h"
#include "ramjet/abi/ramjet.h"

namespace ramjet::datapath {

std::string_view action_name(std::uint8_t action) {
  return action < RAMJET_ACTION__COUNT ? ramjet_action_names[action] : "?";
}

std::string_view stat_name(std::uint32_t stat) {
  return stat < RAMJET_STAT__COUNT ? ramjet_stat_names[stat] : "?";
}

std::string_view stat_class_name(std::uint32_t stat) {
  if (stat >= RAMJET_STAT__COUNT) return "?";
  return stat_class_label(ramjet_stat_classes[stat]);
}

namespace {

template <std::size_t N>
std::array<std::string, N> lowercased(const char* const (&names)[N]) {
  std::array<std::string, N> out;
  for (std::size_t i = 0; i < N; ++i) {
    out[i] = names[i];
    for (char& c : out[i])
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

const auto& fallback_names() {
  static const auto names = lowercased(ramjet_fallback_names);
  return names;
}

const auto& fallback_cause_names() {
  static const auto names = lowercased(ramjet_fallback_cause_names);
  return names;
}

template <std::size_t N>
std::optional<std::uint8_t> index_of(const std::array<std::string, N>& names,
                                     std::string_view name) {
  for (std::size_t i = 0; i < N; ++i)
    if (names[i] == name) return static_cast<std::uint8_t>(i);
  return std::nullopt;
}

}  // namespace

std::string_view fallback_name(std::uint8_t mode) {
  return mode < RAMJET_FALLBACK__COUNT ? std::string_view(fallback_names()[mode]) : "?";
}

std::string_view fallback_cause_name(std::uint8_t cause) {
  return cause < RAMJET_FALLBACK_CAUSE__COUNT ? std::string_view(fallback_cause_names()[cause])
                                              : "?";
}

std::optional<std::uint8_t> fallback_from_name(std::string_view name) {
  return index_of(fallback_names(), name);
}

std::optional<std::uint8_t> fallback_cause_from_name(std::string_view name) {
  return index_of(fallback_cause_names(), name);
}

std::uint32_t stat_count() {
  return RAMJET_STAT__COUNT;
}

std::optional<std::uint8_t> action_from_name(std::string_view name) {
  for (std::uint8_t a = 1; a < RAMJET_ACTION__COUNT; ++a) {
    std::string_view n = ramjet_action_names[a];
    if (n.size() != name.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < n.size() && same; ++i)
      same = n[i] == name[i] || (name[i] >= 'a' && name[i] <= 'z' && n[i] == name[i] - 'a' + 'A');
    if (same) return a;
  }
  return std::nullopt;
}

std::string_view proto_name(std::uint8_t p) {
  static const std::array<std::string, 256> names = [] {
    std::array<std::string, 256> n;
    for (unsigned i = 0; i < n.size(); ++i) n[i] = std::to_string(i);
    n[IPPROTO_TCP] = "tcp";
    n[IPPROTO_UDP] = "udp";
    n[IPPROTO_ICMP] = "icmp";
    n[IPPROTO_ICMPV6] = "icmpv6";
    return n;
  }();
  return names[p];
}

std::optional<std::uint8_t> proto_from_name(std::string_view name) {
  if (name == "tcp") return IPPROTO_TCP;
  if (name == "udp") return IPPROTO_UDP;
  if (name == "icmp") return IPPROTO_ICMP;
  if (name == "icmpv6") return IPPROTO_ICMPV6;
  unsigned v = 0;
  auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), v);
  if (name.empty() || ec != std::errc() || p != name.data() + name.size() || v > 255)
    return std::nullopt;
  return static_cast<std::uint8_t>(v);
}

std::string tcp_flags_text(std::uint8_t f) {
  std::string s;
  if (f & RAMJET_TCP_SYN) s += 'S';
  if (f & RAMJET_TCP_ACK) s += 'A';
  if (f & RAMJET_TCP_PSH) s += 'P';
  if (f & RAMJET_TCP_FIN) s += 'F';
  if (f & RAMJET_TCP_RST) s += 'R';
  return s;
}

std::string block_tag_name(std::uint32_t tag) {
  switch (tag) {
    case kBlockTagIngressHook:
      return "ingress_hook";
    case kBlockTagEgressHook:
      return "egress_hook";
    case kBlockTagOperator:
      return "operator";
    default:
      return std::to_string(tag);
  }
}

std::uint64_t monotonic_now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::uint64_t(ts.tv_sec) * 1'000'000'000ull + std::uint64_t(ts.tv_nsec);
}

}  // namespace ramjet::datapath
