// Edits of the denylist trie that keep the runtime `deny_count` honest: XDP skips
// the trie while the count is 0, so the count is raised before a new prefix
// appears and lowered after one is gone (bpf/lib/maps.h). Shared by the daemon
// (Datapath) and ramjetctl's pinned-map access (PinnedMaps); callers serialise
// their own writers.
#pragma once

#include <chrono>
#include <cstdint>

#include "ramjet/net.h"
#include "ramjet/result.h"

namespace ramjet::datapath {

// `count` is the deny_count field of the mmapped runtime map.
// expires_ns: CLOCK_MONOTONIC deadline, 0 = never.
Result<void> deny_put(int fd, std::uint32_t& count, const Cidr& prefix, std::uint64_t expires_ns,
                      std::uint32_t tag);
// false when the prefix was not in the trie.
Result<bool> deny_remove(int fd, std::uint32_t& count, const Cidr& prefix);

// The CLOCK_MONOTONIC deadline `d` from now; 0 for d == 0 (never expires).
std::uint64_t deadline_after(std::chrono::milliseconds d);

}  // namespace ramjet::datapath
