#include "datapath/denylist.h"

#include <bpf/bpf.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "datapath/kernel_flow.h"
#include "datapath/policy.h"

namespace ramjet::datapath {

Result<void> deny_put(int fd, std::uint32_t& count_field, const Cidr& prefix,
                      std::uint64_t expires_ns, std::uint32_t tag) {
  std::atomic_ref<std::uint32_t> count(count_field);
  ramjet_lpm_key key = lpm_key(prefix);
  ramjet_deny_entry entry{};
  entry.expires_ns = expires_ns;
  entry.reason = tag;
  ramjet_deny_entry old{};
  bool existed = bpf_map_lookup_elem(fd, &key, &old) == 0;
  if (!existed) count.fetch_add(1);
  if (bpf_map_update_elem(fd, &key, &entry, BPF_ANY) != 0) {
    int err = errno;
    if (!existed) count.fetch_sub(1);
    return Error::kernel(err, "cannot block " + prefix.to_string() + ": " + std::strerror(err));
  }
  return {};
}

Result<bool> deny_remove(int fd, std::uint32_t& count_field, const Cidr& prefix) {
  ramjet_lpm_key key = lpm_key(prefix);
  if (bpf_map_delete_elem(fd, &key) != 0) {
    int err = errno;
    if (err == ENOENT) return false;
    return Error::kernel(err, "cannot unblock " + prefix.to_string() + ": " + std::strerror(err));
  }
  std::atomic_ref<std::uint32_t> count(count_field);
  std::uint32_t c = count.load();
  while (c > 0 && !count.compare_exchange_weak(c, c - 1)) {
  }
  return true;
}

std::uint64_t deadline_after(std::chrono::milliseconds d) {
  return d.count() == 0 ? 0 : monotonic_now_ns() + std::uint64_t(d.count()) * 1'000'000ull;
}

}  // namespace ramjet::datapath
