// Which hook runs an interface's fast path (datapath.fastpath_hook).
//
// XDP forwards xdp_frames: right for a physical NIC, whose driver hands XDP the
// raw frame before any skb exists. On veth and other virtual devices the packet
// already is an skb, often a GSO one with CHECKSUM_PARTIAL (the veth default):
// XDP_REDIRECT turns it into an xdp_frame, losing both, so the receiver drops it
// for a bad checksum and bulk TCP runs one MTU-sized frame at a time. There the
// fast path runs in tcx ingress and forwards the skb itself. `auto` tells the two
// apart by the device's rtnetlink kind: every virtual device has one (veth,
// bridge, tun, vxlan, geneve, macvlan, ipvlan, vlan, bond, wireguard, ...), a NIC
// driver's device has none.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "ramjet/config/config.h"
#include "ramjet/result.h"

namespace ramjet::datapath {

struct HookChoice {
  config::FastpathHook hook = config::FastpathHook::kXdp;  // kXdp or kTc
  std::string reason;  // "configured", "auto: veth is a virtual device", ...
};

// The hook of `ifname`, whose rtnetlink kind is `link_kind` (empty: none). Without
// `xdp_metadata` (kernel_allows_xdp_metadata) an interface that would get xdp, configured
// or not, gets tc.
HookChoice choose_hook(const config::DatapathSettings& settings, const std::string& ifname,
                       const std::string& link_kind, bool xdp_metadata = true);

// Whether this kernel lets XDP programs call bpf_xdp_adjust_meta, the note XDP leaves
// TC ingress for the packets TC finishes (escalation, a missing neighbour). Some
// kernels refuse it ("program of this type cannot use helper"); there the XDP hook
// cannot escalate, so the fast path runs in tcx ingress everywhere. Loads a
// four-instruction probe program; a refusal for any other reason (no CAP_BPF) says
// yes, and the real load reports it.
bool kernel_allows_xdp_metadata();

// The rtnetlink kind of the device (IFLA_INFO_KIND: "veth", "bridge", ...), or
// empty for a device without one (a physical NIC's, loopback).
Result<std::string> link_kind(std::uint32_t ifindex);

std::string hook_name(config::FastpathHook hook);

}  // namespace ramjet::datapath
