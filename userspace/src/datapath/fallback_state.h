// The engine-unavailable fallback's maps (bpf/include/ramjet/abi/fallback.h) by fd,
// shared by the daemon (Datapath) and ramjetctl's pinned-map access (PinnedMaps):
// the per-rule counts of flows that fell back, and the per-endpoint engine state
// (the draining mark). Internal to datapath/: it speaks the ABI structs.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ramjet/result.h"

namespace ramjet::datapath {

// New flows of one rule that took one fallback for one cause (non-zero only).
struct FallbackCount {
  std::uint32_t rule_id = 0;  // 0: flows without a rule (hook-issued classes)
  std::uint8_t mode = 0;      // enum ramjet_fallback_mode (fallback_name())
  std::uint8_t cause = 0;     // enum ramjet_fallback_cause (fallback_cause_name())
  std::uint64_t flows = 0;    // summed over CPUs
};

// Reads `fallback_counts` (a per-CPU hash), sorted by rule id, mode, cause.
Result<std::vector<FallbackCount>> read_fallback_counts(int fd);

// Endpoint ids whose RAMJET_ENGINE_DRAINING flag is set in `engine_state`.
Result<std::vector<std::uint32_t>> draining_engines(int fd);

// Sets (draining) or clears RAMJET_ENGINE_DRAINING in `engine_state` for each id.
Result<void> set_engines_draining(int fd, std::span<const std::uint32_t> endpoint_ids,
                                  bool draining);

}  // namespace ramjet::datapath
