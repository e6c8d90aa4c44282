#include "datapath/links.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

namespace ramjet::datapath {

namespace {

// Kernel ABI newer than the system's linux/bpf.h (6.1): BPF_LINK_TYPE_TCX. Its
// bpf_link_info member { ifindex; attach_type; } starts where xdp's { ifindex; }
// does, so info.xdp.ifindex reads either link's device.
constexpr std::uint32_t kLinkTypeTcx = 11;

std::string errno_text(int err) {
  std::string s = std::strerror(err);
  if (err == EPERM || err == EACCES) s += " (needs root: CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)";
  return s;
}

bool runs_program(const LinkSpec& spec, std::uint32_t prog_id) {
  if (spec.attach_type == BPF_XDP) {
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (bpf_xdp_query(static_cast<int>(spec.ifindex), 0, &q) != 0) return false;
    return q.prog_id == prog_id || q.drv_prog_id == prog_id || q.skb_prog_id == prog_id;
  }
  std::uint32_t ids[64] = {};
  std::uint32_t count = 64;
  if (bpf_prog_query(static_cast<int>(spec.ifindex), static_cast<bpf_attach_type>(spec.attach_type),
                     0, nullptr, ids, &count) != 0)
    return false;
  for (std::uint32_t i = 0; i < count && i < 64; ++i)
    if (ids[i] == prog_id) return true;
  return false;
}

// Why the pinned link `fd` cannot be adopted for `spec`; nullopt when it can.
std::optional<std::string> stale_reason(const LinkSpec& spec, int fd) {
  bpf_link_info info{};
  std::uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
    return std::string("cannot inspect it: ") + std::strerror(errno);
  std::uint32_t want =
      spec.attach_type == BPF_XDP ? static_cast<std::uint32_t>(BPF_LINK_TYPE_XDP) : kLinkTypeTcx;
  if (info.type != want)
    return "it is not an " + spec.kind + " link (type " + std::to_string(info.type) + ")";
  std::uint32_t ifindex = info.xdp.ifindex;
  if (ifindex == 0) return std::string("severed: the interface it was attached to is gone");
  if (ifindex != spec.ifindex)
    return "attached to ifindex " + std::to_string(ifindex) + ", and " + spec.ifname +
           " is ifindex " + std::to_string(spec.ifindex);
  if (!runs_program(spec, info.prog_id))
    return "attached to ifindex " + std::to_string(ifindex) + " of another network namespace";
  return std::nullopt;
}

// "program 17 (xdp_foo)" for the XDP program attached to the interface, if any.
std::string attached_xdp_program(std::uint32_t ifindex) {
  LIBBPF_OPTS(bpf_xdp_query_opts, q);
  if (bpf_xdp_query(static_cast<int>(ifindex), 0, &q) != 0) return {};
  std::uint32_t id = q.prog_id ? q.prog_id : (q.drv_prog_id ? q.drv_prog_id : q.skb_prog_id);
  if (!id) return {};
  std::string s = "program " + std::to_string(id);
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd >= 0) {
    bpf_prog_info info{};
    std::uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && info.name[0])
      s += " (" + std::string(info.name) + ")";
    ::close(fd);
  }
  return s;
}

}  // namespace

Result<AttachedLink> attach_link(const LinkSpec& spec, int prog_fd) {
  int fd = bpf_obj_get(spec.path.c_str());
  if (fd >= 0) {
    auto stale = stale_reason(spec, fd);
    if (!stale && bpf_link_update(fd, prog_fd, nullptr) == 0) return AttachedLink{fd, true};
    if (!stale) stale = std::string("cannot swap the program in: ") + std::strerror(errno);
    spdlog::warn("datapath: replacing the pinned {} link of {} ({}): {}", spec.kind, spec.ifname,
                 spec.path, *stale);
    // Our pin held the last reference of a stale link: dropping both releases it.
    ::unlink(spec.path.c_str());
    ::close(fd);
  }
  LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = spec.xdp_flags);
  fd = bpf_link_create(prog_fd, static_cast<int>(spec.ifindex),
                       static_cast<bpf_attach_type>(spec.attach_type), &opts);
  if (fd < 0) {
    int err = errno;
    std::string why =
        "datapath: cannot attach " + spec.kind + " to " + spec.ifname + ": " + errno_text(err);
    if (err == EBUSY && spec.attach_type == BPF_XDP) {
      std::string other = attached_xdp_program(spec.ifindex);
      why += " (another XDP " + (other.empty() ? std::string("program") : other) +
             " is attached; ramjet does not replace another tool's program: `ip link set dev " +
             spec.ifname + " xdp off` detaches it if it is not needed)";
    } else if (err == EBUSY) {
      why += " (another program is attached)";
    }
    return Error::kernel(err, why);
  }
  if (bpf_obj_pin(fd, spec.path.c_str()) != 0)
    spdlog::warn("datapath: cannot pin {}: {}", spec.path, std::strerror(errno));
  return AttachedLink{fd, false};
}

}  // namespace ramjet::datapath
