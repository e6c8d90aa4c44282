// The kernel half of a datapath as ramjetd left it pinned under
// <pin_root>/<instance>/ (see Datapath): ramjetctl reads flows, stats, rules and
// the denylist from there, and kills flows and blocks sources, when ramjetd is not
// running (the programs keep working without it: ramjetd --keep-datapath).
//
// Maps are opened with bpf_obj_get on first use, once the pins' ABI stamp matches
// this build's (see abi_stamp.h). Errors say what is missing: the
// pin (no such instance), or the privilege (the pins are root's, and bpf() on
// them needs CAP_BPF); Error::code carries the errno.
//
// Not for use while ramjetd runs: the daemon owns the denylist count in the
// runtime map and recounts it every second (a concurrent edit could hide a block
// for up to that second). ramjetctl goes through the admin API then.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "datapath/fallback_state.h"
#include "datapath/kernel_flow.h"
#include "ramjet/net.h"
#include "ramjet/result.h"

namespace ramjet::datapath {

// Where `path` is closed to this user, for "permission denied" messages:
// "/sys/fs/bpf (0700, owned by root)" names the first component on the way that
// this user cannot pass, else the file itself.
std::string denied_detail(const std::string& path);

struct StatTotal {
  std::string_view name;  // as declared in ramjet/abi/stats.h ("RULE_DROP")
  std::string_view cls;   // "drop", "pass", "escalate", "fastpath", "event"
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
};

struct BlockEntry {
  Cidr prefix;
  std::uint64_t expires_ns = 0;  // CLOCK_MONOTONIC; 0 = never
  std::uint32_t tag = 0;
};

struct RuleSlot {
  std::uint32_t slot = 0;  // priority: lower wins
  std::uint32_t rule_id = 0;
  std::uint8_t action = 0;
  std::uint8_t proto = 0;  // 0 = any
  std::optional<Cidr> src, dst;
  std::uint16_t dst_port_min = 0, dst_port_max = 65535;
  std::uint32_t endpoint_id = 0;
  std::uint32_t ifindex = 0;
  std::uint32_t rate_pps = 0, burst = 0;
};

struct RuntimeState {
  std::uint64_t policy_generation = 0;
  std::uint64_t next_flow_id = 0;
  std::uint32_t rule_count = 0, deny_count = 0, class_count = 0;
  std::uint8_t default_action = 0;
};

class PinnedMaps {
 public:
  explicit PinnedMaps(std::string pin_dir) : dir_(std::move(pin_dir)) {}
  ~PinnedMaps();
  PinnedMaps(PinnedMaps&& other) noexcept;
  PinnedMaps& operator=(PinnedMaps&&) = delete;

  const std::string& pin_dir() const { return dir_; }

  // Slices of the flow table in map order (bpf_map_lookup_batch); `fn` returns
  // false to stop. Only one slice is in memory at a time.
  Result<void> for_each_flow(const std::function<bool(std::span<const KernelFlow>)>& fn);
  Result<std::size_t> delete_flows(const std::function<bool(const KernelFlow&)>& match);

  Result<std::vector<StatTotal>> stats();                // summed over CPUs, in declaration order
  Result<std::vector<FallbackCount>> fallback_counts();  // per rule, mode and cause
  Result<RuntimeState> runtime();
  Result<std::vector<RuleSlot>> rules();  // the non-empty slots

  Result<std::vector<BlockEntry>> blocks();
  // Adds or refreshes a denylist entry (duration 0: until removed), keeping the
  // runtime deny_count from ever reading 0 while an entry exists.
  Result<void> block(const Cidr& prefix, std::chrono::milliseconds duration, std::uint32_t tag);
  // false when the prefix was not blocked.
  Result<bool> unblock(const Cidr& prefix);

 private:
  // The pins' ABI stamp against this build's: misread maps are worse than none.
  Result<void> check_stamp();
  Result<int> fd(const std::string& name);
  // The runtime map, checked against this build's layout.
  struct RuntimeMap {
    int fd;
    std::uint32_t value_size;
    std::uint32_t map_flags;
  };
  Result<RuntimeMap> runtime_map();
  Result<std::uint32_t*> deny_count();  // in the mmapped runtime map

  std::string dir_;
  std::map<std::string, int> fds_;
  void* runtime_mem_ = nullptr;
  std::size_t runtime_len_ = 0;
  bool stamp_checked_ = false;
};

}  // namespace ramjet::datapath
