// Made-up flow-table entries for benchmarks and tests of the control plane (the
// flow list at a million entries, bench/flows_list.py): written into the pinned
// `flows` map of an instance with bpf_map_update_batch. Not used by the daemon.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "ramjet/result.h"

namespace ramjet::datapath {

// Adds `count` TCP and UDP flows between 10.64.0.0/10 clients and a few servers,
// with ids from `first_id`, ages up to a minute, counters in the thousands, and
// every verdict. Returns how many the table holds afterwards.
Result<std::size_t> add_synthetic_flows(const std::string& pin_dir, std::size_t count,
                                        std::uint64_t first_id);

}  // namespace ramjet::datapath
