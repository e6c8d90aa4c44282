// The datapath's BPF links, pinned under <pin_dir>/links/<kind>-<interface> so that
// a restart (--keep-datapath) swaps programs without detaching.
//
// A pinned link is adopted only when it is attached to this very interface: the
// kernel reports the link's device (0 once the device is gone: "severed") and the
// interface, in this network namespace, runs the link's program. Anything else is
// stale (the interface was deleted and recreated, as a container restart does, or
// the pin names a device of another namespace) and is replaced: its pin removed,
// its last reference dropped, a new link created and pinned.
#pragma once

#include <cstdint>
#include <string>

#include "ramjet/result.h"

namespace ramjet::datapath {

// libbpf 1.1 predates the tcx helpers; the attach types are stable kernel ABI.
inline constexpr int kTcxIngress = 46;
inline constexpr int kTcxEgress = 47;

struct LinkSpec {
  std::string path;  // the pin
  std::string kind;  // "xdp", "tcx-ingress", "tcx-egress" (for messages)
  std::string ifname;
  std::uint32_t ifindex = 0;
  int attach_type = 0;  // BPF_XDP, kTcxIngress, kTcxEgress
  std::uint32_t xdp_flags = 0;
};

struct AttachedLink {
  int fd = -1;           // owned by the caller
  bool adopted = false;  // a pinned link, now running `prog_fd`
};

// Adopts, replaces or creates the link of `spec` so that it runs `prog_fd`.
Result<AttachedLink> attach_link(const LinkSpec& spec, int prog_fd);

}  // namespace ramjet::datapath
