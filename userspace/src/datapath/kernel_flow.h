// One kernel flow-table entry as the control plane shows it, in the originator's
// terms (src sent the first packet), free of the ABI structs so code outside
// datapath/ (the admin API, ramjetctl) can use it without the kernel headers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ramjet/hooks/connection.h"
#include "ramjet/net.h"

namespace ramjet::datapath {

enum class FlowDir : std::uint8_t { kOriginal = 0, kReply = 1 };

struct KernelFlow {
  FlowId id = 0;
  std::uint8_t proto = 0;  // IPPROTO_*
  SocketAddress src;       // the originator
  SocketAddress dst;
  std::uint8_t verdict = 0;  // see action_name()
  std::uint8_t reason = 0;   // see stat_name()
  bool escalated = false;
  bool has_rule = false;  // false: the default action decided
  std::uint32_t rule_id = 0;
  std::uint32_t endpoint_id = 0;  // ESCALATE: 1 + the endpoint's index in config
  std::uint32_t ifindex = 0;
  std::uint64_t packets[2] = {0, 0};  // [FlowDir]
  std::uint64_t bytes[2] = {0, 0};    // L2 frame bytes as XDP saw them
  std::uint8_t tcp_flags[2] = {0, 0};
  // The engine-unavailable fallback the flow took (see fallback_name()); 0: none.
  std::uint8_t fallback = 0;
  std::uint8_t fallback_cause = 0;  // see fallback_cause_name()
  std::uint64_t first_seen_ns = 0;  // CLOCK_MONOTONIC
  std::uint64_t last_seen_ns = 0;

  std::uint64_t total_packets() const { return packets[0] + packets[1]; }
  std::uint64_t total_bytes() const { return bytes[0] + bytes[1]; }
};

// Who made a denylist entry (ramjet_deny_entry.reason).
inline constexpr std::uint32_t kBlockTagIngressHook = 1;
inline constexpr std::uint32_t kBlockTagEgressHook = 2;
inline constexpr std::uint32_t kBlockTagOperator = 3;  // ramjetctl block / POST /v1/blocks
std::string block_tag_name(std::uint32_t tag);         // "ingress_hook", ..., or the number

// Rule ids are stable across reloads as long as the rule keeps its name
// (defined with the policy compiler, datapath/policy.cc).
std::uint32_t rule_id_for(const std::string& name);

// Names from the one declared lists in bpf/include/ramjet/abi (action.h, stats.h).
// An out-of-range value reads "?".
std::string_view action_name(std::uint8_t action);
std::string_view stat_name(std::uint32_t stat);
std::string_view stat_class_name(std::uint32_t stat);  // "drop", "pass", ...
// Lowercased names from ramjet/abi/fallback.h: "pass", "reject", "drop" (0: "none");
// "no_listener", "draining", "accept_queue_full", "assign_failed". Out of range: "?".
std::string_view fallback_name(std::uint8_t mode);
std::string_view fallback_cause_name(std::uint8_t cause);
std::optional<std::uint8_t> fallback_from_name(std::string_view name);
std::optional<std::uint8_t> fallback_cause_from_name(std::string_view name);
std::uint32_t stat_count();
// "fastpath" or "FASTPATH" -> the action value; nullopt for anything else.
std::optional<std::uint8_t> action_from_name(std::string_view name);

// "tcp", "udp", "icmp", "icmpv6" or the number; and back (nullopt if unknown).
std::string_view proto_name(std::uint8_t proto);
std::optional<std::uint8_t> proto_from_name(std::string_view name);

// TCP flags seen, as letters in the order S A P F R ("SAP").
std::string tcp_flags_text(std::uint8_t flags);

// CLOCK_MONOTONIC now, the clock of first_seen_ns / last_seen_ns and expiries.
std::uint64_t monotonic_now_ns();

}  // namespace ramjet::datapath
