#include "datapath/fallback_state.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <tuple>

#include "datapath/flow_table.h"
#include "ramjet/abi/ramjet.h"

namespace ramjet::datapath {

Result<std::vector<FallbackCount>> read_fallback_counts(int fd) {
  auto keys = map_keys<std::uint32_t>(fd);
  if (!keys.ok()) return keys.error();
  int ncpu = libbpf_num_possible_cpus();
  std::vector<ramjet_fallback_count> per_cpu(static_cast<std::size_t>(ncpu > 0 ? ncpu : 1));
  std::vector<FallbackCount> out;
  for (std::uint32_t rule_id : *keys) {
    if (bpf_map_lookup_elem(fd, &rule_id, per_cpu.data()) != 0) continue;  // deleted meanwhile
    for (std::uint8_t m = 0; m < RAMJET_FALLBACK__COUNT; ++m) {
      for (std::uint8_t c = 0; c < RAMJET_FALLBACK_CAUSE__COUNT; ++c) {
        std::uint64_t n = 0;
        for (const auto& v : per_cpu) n += v.flows[m][c];
        if (n) out.push_back({rule_id, m, c, n});
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const FallbackCount& a, const FallbackCount& b) {
    return std::tie(a.rule_id, a.mode, a.cause) < std::tie(b.rule_id, b.mode, b.cause);
  });
  return out;
}

Result<std::vector<std::uint32_t>> draining_engines(int fd) {
  std::vector<std::uint32_t> out;
  for (std::uint32_t id = 0; id < RAMJET_MAX_ENDPOINTS; ++id) {
    std::uint32_t flags = 0;
    if (bpf_map_lookup_elem(fd, &id, &flags) != 0)
      return Error::kernel(errno, "engine_state: cannot read endpoint " + std::to_string(id) +
                                      ": " + std::strerror(errno));
    if (flags & RAMJET_ENGINE_DRAINING) out.push_back(id);
  }
  return out;
}

Result<void> set_engines_draining(int fd, std::span<const std::uint32_t> endpoint_ids,
                                  bool draining) {
  for (std::uint32_t id : endpoint_ids) {
    if (id >= RAMJET_MAX_ENDPOINTS) continue;
    std::uint32_t flags = 0;
    if (bpf_map_lookup_elem(fd, &id, &flags) != 0)
      return Error::kernel(errno, "engine_state: cannot read endpoint " + std::to_string(id) +
                                      ": " + std::strerror(errno));
    flags = draining ? flags | RAMJET_ENGINE_DRAINING : flags & ~RAMJET_ENGINE_DRAINING;
    if (bpf_map_update_elem(fd, &id, &flags, BPF_ANY) != 0)
      return Error::kernel(errno, "engine_state: cannot write endpoint " + std::to_string(id) +
                                      ": " + std::strerror(errno));
  }
  return {};
}

}  // namespace ramjet::datapath
