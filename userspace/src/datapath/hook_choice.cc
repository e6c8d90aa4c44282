#include "datapath/hook_choice.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include <unistd.h>

#include <cstring>

#include "datapath/netlink.h"

namespace ramjet::datapath {

std::string hook_name(config::FastpathHook hook) {
  return std::string(
      settings::EnumNames<config::FastpathHook>::values[static_cast<int>(hook)].second);
}

namespace {

HookChoice wanted_hook(const config::DatapathSettings& settings, const std::string& ifname,
                       const std::string& link_kind) {
  config::FastpathHook wanted = settings.fastpath_hook;
  for (const auto& o : settings.fastpath_hooks)
    if (o.interface == ifname) wanted = o.hook;
  if (wanted != config::FastpathHook::kAuto) return {wanted, "configured"};
  if (!link_kind.empty())
    return {config::FastpathHook::kTc, "auto: " + link_kind + " is a virtual device"};
  if (ifname == "lo") return {config::FastpathHook::kTc, "auto: lo is the loopback device"};
  return {config::FastpathHook::kXdp, "auto: a physical NIC (no link kind)"};
}

}  // namespace

HookChoice choose_hook(const config::DatapathSettings& settings, const std::string& ifname,
                       const std::string& link_kind, bool xdp_metadata) {
  HookChoice choice = wanted_hook(settings, ifname, link_kind);
  if (choice.hook == config::FastpathHook::kXdp && !xdp_metadata)
    return {config::FastpathHook::kTc,
            std::string(choice.reason == "configured" ? "xdp configured" : "auto") +
                ": this kernel refuses XDP metadata (bpf_xdp_adjust_meta)"};
  return choice;
}

bool kernel_allows_xdp_metadata() {
  // r2 = -8; call bpf_xdp_adjust_meta(ctx in r1, r2); r0 = XDP_PASS; exit
  const bpf_insn probe[] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_2, .imm = -8},
      {.code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_xdp_adjust_meta},
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_PASS},
      {.code = BPF_JMP | BPF_EXIT},
  };
  char log[4096] = {};
  LIBBPF_OPTS(bpf_prog_load_opts, opts, .log_level = 1, .log_size = sizeof log, .log_buf = log);
  const int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "ramjet_probe", "GPL", probe,
                               sizeof probe / sizeof probe[0], &opts);
  if (fd >= 0) {
    ::close(fd);
    return true;
  }
  return std::strstr(log, "cannot use helper") == nullptr;
}

Result<std::string> link_kind(std::uint32_t ifindex) {
  netlink::Request req(RTM_GETLINK, NLM_F_REQUEST);
  auto* ifi = req.body<ifinfomsg>();
  ifi->ifi_family = AF_UNSPEC;
  std::optional<std::string> kind;
  int rc = netlink::dump(req, [&](const nlmsghdr& msg) {
    if (msg.nlmsg_type != RTM_NEWLINK || msg.nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return;
    const auto* info = static_cast<const ifinfomsg*>(NLMSG_DATA(&msg));
    if (static_cast<std::uint32_t>(info->ifi_index) != ifindex) return;
    kind = std::string();
    netlink::Attributes attrs(msg, sizeof(ifinfomsg));
    auto linkinfo = attrs.get(IFLA_LINKINFO);
    if (!linkinfo) return;
    // Nested attributes: IFLA_INFO_KIND is a NUL-terminated string.
    const auto* a = reinterpret_cast<const rtattr*>(linkinfo->data());
    auto left = static_cast<unsigned>(linkinfo->size());
    for (; RTA_OK(a, left); a = RTA_NEXT(a, left)) {
      if ((a->rta_type & NLA_TYPE_MASK) != IFLA_INFO_KIND) continue;
      const char* s = static_cast<const char*>(RTA_DATA(a));
      kind = std::string(s, strnlen(s, RTA_PAYLOAD(a)));
    }
  });
  if (rc != 0) return Error::kernel(-rc, std::string("cannot list links: ") + std::strerror(-rc));
  if (!kind) return Error::config("no interface with ifindex " + std::to_string(ifindex));
  return *kind;
}

}  // namespace ramjet::datapath
