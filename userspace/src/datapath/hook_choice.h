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

// The hook of `ifname`, whose rtnetlink kind is `link_kind` (empty: none).
HookChoice choose_hook(const config::DatapathSettings& settings, const std::string& ifname,
                       const std::string& link_kind);

// The rtnetlink kind of the device (IFLA_INFO_KIND: "veth", "bridge", ...), or
// empty for a device without one (a physical NIC's, loopback).
Result<std::string> link_kind(std::uint32_t ifindex);

std::string hook_name(config::FastpathHook hook);

}  // namespace ramjet::datapath
