#include "datapath/pinned_maps.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <pwd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <type_traits>
#include <utility>

#include "datapath.skel.h"
#include "datapath/abi_stamp.h"
#include "datapath/denylist.h"
#include "datapath/flow_table.h"
#include "datapath/policy.h"

namespace ramjet::datapath {

namespace {

// The layout of the `.data` map (pinned as `runtime`), as this build compiled it.
// The map's value is the section: the struct up to the end of its last member
// (bpf/lib/maps.h declares unhealthy_rules last), without tail padding.
using RuntimeData = std::remove_pointer_t<decltype(::datapath::data)>;
constexpr std::size_t kRuntimeSize =
    offsetof(RuntimeData, unhealthy_rules) + sizeof(RuntimeData::unhealthy_rules);
static_assert(offsetof(RuntimeData, unhealthy_rules) > offsetof(RuntimeData, default_fallback));

// Says why `path` could not be opened, naming the missing privilege.
Error pin_error(const std::string& dir, const std::string& path, int err) {
  namespace fs = std::filesystem;
  std::string what = "cannot open pinned map " + path + ": ";
  if (err == ENOENT) {
    std::error_code ec;
    if (!fs::exists(dir, ec))
      return Error::kernel(err, "no datapath is pinned in " + dir +
                                    " (ramjetd never ran there with the datapath enabled, or "
                                    "stopped without --keep-datapath; see --pin-root, --instance)");
    return Error::kernel(err, what + "no such pin (the pins in " + dir +
                                  " are incomplete or from another ramjet version)");
  }
  if (err == EACCES)
    return Error::kernel(err, what + "permission denied on " + denied_detail(path) +
                                  ": needs root (CAP_BPF and access to the pins)");
  if (err == EPERM)
    return Error::kernel(err, what + "operation not permitted: needs CAP_BPF (run as root)");
  return Error::kernel(err, what + std::strerror(err));
}

Error map_error(const std::string& path, const char* op, int err) {
  std::string why = std::strerror(err);
  if (err == EPERM || err == EACCES) why += ": needs CAP_BPF (run as root)";
  return Error::kernel(err, std::string(op) + " " + path + ": " + why);
}

}  // namespace

std::string denied_detail(const std::string& path) {
  namespace fs = std::filesystem;
  std::string blocked = path;
  struct stat st {};
  for (fs::path p = fs::path(path).parent_path(); !p.empty() && p != p.root_path();
       p = p.parent_path()) {
    if (::access(p.c_str(), X_OK) != 0 && ::stat(p.c_str(), &st) == 0) blocked = p.string();
  }
  if (::stat(blocked.c_str(), &st) != 0) return blocked;
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
  std::string owner = std::to_string(st.st_uid);
  if (passwd* pw = ::getpwuid(st.st_uid)) owner = pw->pw_name;
  return blocked + " (" + mode + ", owned by " + owner + ")";
}

PinnedMaps::PinnedMaps(PinnedMaps&& other) noexcept
    : dir_(std::move(other.dir_)),
      fds_(std::move(other.fds_)),
      runtime_mem_(std::exchange(other.runtime_mem_, nullptr)),
      runtime_len_(other.runtime_len_),
      stamp_checked_(other.stamp_checked_) {
  other.fds_.clear();
}

PinnedMaps::~PinnedMaps() {
  if (runtime_mem_) ::munmap(runtime_mem_, runtime_len_);
  for (auto& [name, fd] : fds_) ::close(fd);
}

Result<void> PinnedMaps::check_stamp() {
  if (stamp_checked_) return {};
  auto pinned = read_pinned_stamp(dir_);
  if (!pinned.ok()) {
    if (pinned.error().code != 0)
      return pin_error(dir_, dir_ + "/" + kAbiPinName, pinned.error().code);
    return pinned.error();
  }
  std::error_code ec;
  if (!*pinned && !std::filesystem::exists(dir_, ec))
    return pin_error(dir_, dir_ + "/flows", ENOENT);
  auto mine = build_abi_stamp();
  if (!mine.ok()) return mine.error();
  if (!*pinned)
    return Error::config("the pins in " + dir_ +
                         " carry no ABI stamp: they are from an older ramjet, whose maps this "
                         "ramjetctl may misread (the next ramjetd start re-creates them)");
  if (**pinned != *mine)
    return Error::config("the pins in " + dir_ + " are from another ramjet build (ABI stamp " +
                         stamp_text(**pinned) + ", this ramjetctl's is " + stamp_text(*mine) +
                         "): use the ramjetctl of the ramjetd that pinned them");
  stamp_checked_ = true;
  return {};
}

Result<int> PinnedMaps::fd(const std::string& name) {
  if (auto it = fds_.find(name); it != fds_.end()) return it->second;
  if (auto r = check_stamp(); !r.ok()) return r.error();
  std::string path = dir_ + "/" + name;
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) return pin_error(dir_, path, errno);
  fds_.emplace(name, fd);
  return fd;
}

Result<void> PinnedMaps::for_each_flow(const std::function<bool(std::span<const KernelFlow>)>& fn) {
  auto flows = fd("flows");
  if (!flows.ok()) return flows.error();
  std::vector<KernelFlow> decoded;
  decoded.reserve(kFlowBatch);
  auto r = read_flow_batches(*flows, [&](auto keys, auto values) {
    decoded.clear();
    for (std::size_t i = 0; i < keys.size(); ++i)
      decoded.push_back(decode_flow(keys[i], values[i]));
    return fn(decoded);
  });
  if (!r.ok() && (r.error().code == EPERM || r.error().code == EACCES))
    return map_error(dir_ + "/flows", "cannot read", r.error().code);
  return r;
}

Result<std::size_t> PinnedMaps::delete_flows(const std::function<bool(const KernelFlow&)>& match) {
  auto flows = fd("flows");
  if (!flows.ok()) return flows.error();
  return delete_flows_where(*flows, match);
}

Result<std::vector<StatTotal>> PinnedMaps::stats() {
  auto stats = fd("stats");
  if (!stats.ok()) return stats.error();
  int ncpu = libbpf_num_possible_cpus();
  std::vector<ramjet_stat_value> per_cpu(static_cast<std::size_t>(ncpu > 0 ? ncpu : 1));
  std::vector<StatTotal> out;
  for (std::uint32_t i = 1; i < RAMJET_STAT__COUNT; ++i) {
    if (bpf_map_lookup_elem(*stats, &i, per_cpu.data()) != 0)
      return map_error(dir_ + "/stats", "cannot read", errno);
    StatTotal t{stat_name(i), stat_class_name(i), 0, 0};
    for (const auto& v : per_cpu) {
      t.packets += v.packets;
      t.bytes += v.bytes;
    }
    out.push_back(t);
  }
  return out;
}

Result<std::vector<FallbackCount>> PinnedMaps::fallback_counts() {
  auto counts = fd("fallback_counts");
  if (!counts.ok()) return counts.error();
  auto r = read_fallback_counts(*counts);
  if (!r.ok()) return map_error(dir_ + "/fallback_counts", "cannot read", r.error().code);
  return r;
}

Result<PinnedMaps::RuntimeMap> PinnedMaps::runtime_map() {
  auto rt = fd("runtime");
  if (!rt.ok()) return rt.error();
  bpf_map_info info{};
  std::uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(*rt, &info, &len) != 0)
    return map_error(dir_ + "/runtime", "cannot inspect", errno);
  if (info.value_size != kRuntimeSize)
    return Error::config(dir_ + "/runtime holds " + std::to_string(info.value_size) +
                         " bytes, this ramjetctl expects " + std::to_string(kRuntimeSize) +
                         ": the pins are from another ramjet version");
  return RuntimeMap{*rt, info.value_size, info.map_flags};
}

Result<RuntimeState> PinnedMaps::runtime() {
  auto rt = runtime_map();
  if (!rt.ok()) return rt.error();
  RuntimeData d{};
  std::uint32_t zero = 0;
  if (bpf_map_lookup_elem(rt->fd, &zero, &d) != 0)
    return map_error(dir_ + "/runtime", "cannot read", errno);
  return RuntimeState{d.policy_generation, d.next_flow_id, d.rule_count,
                      d.deny_count,        d.class_count,  d.default_action};
}

Result<std::uint32_t*> PinnedMaps::deny_count() {
  if (!runtime_mem_) {
    auto rt = runtime_map();
    if (!rt.ok()) return rt.error();
    const RuntimeMap& info = *rt;
    // The programs update next_flow_id and the clock in the same value: only an
    // atomic on the mapped field is safe, never a read-modify-write of the value.
    if (!(info.map_flags & BPF_F_MMAPABLE))
      return Error::config(dir_ + "/runtime is not mmapable: cannot update deny_count safely");
    std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    runtime_len_ = (info.value_size + page - 1) / page * page;
    void* mem = ::mmap(nullptr, runtime_len_, PROT_READ | PROT_WRITE, MAP_SHARED, info.fd, 0);
    if (mem == MAP_FAILED) return map_error(dir_ + "/runtime", "cannot map", errno);
    runtime_mem_ = mem;
  }
  return reinterpret_cast<std::uint32_t*>(static_cast<char*>(runtime_mem_) +
                                          offsetof(RuntimeData, deny_count));
}

Result<std::vector<RuleSlot>> PinnedMaps::rules() {
  auto rules = fd("rules");
  if (!rules.ok()) return rules.error();
  std::vector<RuleSlot> out;
  for (std::uint32_t i = 0; i < RAMJET_MAX_RULES; ++i) {
    ramjet_rule r{};
    if (bpf_map_lookup_elem(*rules, &i, &r) != 0)
      return map_error(dir_ + "/rules", "cannot read", errno);
    if (r.action == RAMJET_ACTION_NONE) continue;
    RuleSlot s;
    s.slot = i;
    s.rule_id = r.rule_id;
    s.action = r.action;
    s.proto = r.proto;
    s.src = cidr_of(r.src);
    s.dst = cidr_of(r.dst);
    s.dst_port_min = r.dst_port_min_host;
    s.dst_port_max = r.dst_port_max_host;
    s.endpoint_id = r.endpoint_id;
    s.ifindex = r.ifindex;
    s.rate_pps = r.rate_pps;
    s.burst = r.rate_burst;
    out.push_back(s);
  }
  return out;
}

Result<std::vector<BlockEntry>> PinnedMaps::blocks() {
  auto deny = fd("denylist");
  if (!deny.ok()) return deny.error();
  std::vector<BlockEntry> out;
  auto keys = map_keys<ramjet_lpm_key>(*deny);
  if (!keys.ok()) return map_error(dir_ + "/denylist", "cannot read", keys.error().code);
  for (const auto& k : *keys) {
    ramjet_deny_entry e{};
    if (bpf_map_lookup_elem(*deny, &k, &e) == 0)  // else it expired meanwhile
      if (auto c = cidr_of(k)) out.push_back({*c, e.expires_ns, e.reason});
  }
  return out;
}

Result<void> PinnedMaps::block(const Cidr& prefix, std::chrono::milliseconds duration,
                               std::uint32_t tag) {
  auto deny = fd("denylist");
  if (!deny.ok()) return deny.error();
  auto count = deny_count();
  if (!count.ok()) return count.error();
  auto r = deny_put(*deny, **count, prefix, deadline_after(duration), tag);
  if (!r.ok()) return map_error(dir_ + "/denylist", "cannot write", r.error().code);
  return r;
}

Result<bool> PinnedMaps::unblock(const Cidr& prefix) {
  auto deny = fd("denylist");
  if (!deny.ok()) return deny.error();
  auto count = deny_count();
  if (!count.ok()) return count.error();
  auto r = deny_remove(*deny, **count, prefix);
  if (!r.ok()) return map_error(dir_ + "/denylist", "cannot write", r.error().code);
  return r;
}

}  // namespace ramjet::datapath
