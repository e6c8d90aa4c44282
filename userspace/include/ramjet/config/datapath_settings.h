// The `datapath:` section of the ramjetd configuration: the in-kernel fast path's
// interfaces, table sizes and rules (part of config::Config, ramjet/config/config.h).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ramjet/config/values.h"
#include "ramjet/net.h"
#include "ramjet/settings.h"

namespace ramjet::config {

// One datapath rule. Rules are tried in order; the first that matches a new flow
// sets its verdict. Unset match keys match anything.
struct DatapathRule {
  std::string name;
  std::optional<Cidr> src;
  std::optional<Cidr> dst;
  RuleProto proto = RuleProto::kAny;
  PortRange dst_port;
  std::string interface;
  DatapathAction action = DatapathAction::kPass;
  std::string endpoint;
  unsigned rate_pps = 0;
  unsigned burst = 0;
  std::optional<EngineFallback> on_engine_unavailable;

  static void describe(settings::Fields<DatapathRule>& f) {
    f.required("name", &DatapathRule::name,
               "Shown in ramjetctl, events and metrics ([a-z0-9_-]+, unique).");
    f("src", &DatapathRule::src, "Source CIDR (or address); unset = any.");
    f("dst", &DatapathRule::dst, "Destination CIDR (or address); unset = any.");
    f("proto", &DatapathRule::proto, "any, tcp, udp, icmp or icmpv6.");
    f("dst_port", &DatapathRule::dst_port,
      "Destination port or range (80, 8000-8100); only TCP and UDP match a port.");
    f("interface", &DatapathRule::interface,
      "Ingress interface name (one of datapath.interfaces); empty = any.");
    f.required("action", &DatapathRule::action,
               "fastpath (forward in the kernel), escalate (to `endpoint`), drop, ratelimit "
               "(token bucket per source address, then pass) or pass (to the kernel stack).");
    f("endpoint", &DatapathRule::endpoint,
      "escalate: the transparent endpoint that receives the flows (tcp for proto: tcp, udp "
      "for proto: udp).");
    f("rate_pps", &DatapathRule::rate_pps, "ratelimit: sustained packets per second per source.");
    f("burst", &DatapathRule::burst, "ratelimit: bucket depth in packets; 0 = rate_pps.");
    f("on_engine_unavailable", &DatapathRule::on_engine_unavailable,
      "escalate: what a new flow gets when the engine cannot take it (stopped, draining, "
      "crashed, accept queue full), decided in the kernel: pass (forward it as if no "
      "escalate rule matched), reject (answer with a TCP RST at once) or drop. Unset = "
      "datapath.on_engine_unavailable.");
  }
};

// One interface's fastpath_hook, overriding datapath.fastpath_hook.
struct FastpathHookOverride {
  std::string interface;
  FastpathHook hook = FastpathHook::kAuto;

  static void describe(settings::Fields<FastpathHookOverride>& f) {
    f.required("interface", &FastpathHookOverride::interface,
               "Interface name (one of datapath.interfaces).");
    f.required("hook", &FastpathHookOverride::hook, "auto, xdp or tc.");
  }
};

struct DatapathSettings {
  bool enabled = false;
  std::string instance = "default";
  std::string pin_root = "/sys/fs/bpf/ramjet";
  std::vector<std::string> interfaces;
  XdpMode xdp_mode = XdpMode::kAuto;
  FastpathHook fastpath_hook = FastpathHook::kAuto;
  std::vector<FastpathHookOverride> fastpath_hooks;
  DatapathAction default_action = DatapathAction::kPass;
  EngineFallback on_engine_unavailable = EngineFallback::kReject;
  std::vector<DatapathRule> rules;
  bool pass_fragments = true;
  unsigned flow_table_size = 65536;
  milliseconds tcp_timeout{300'000};
  milliseconds tcp_closed_timeout{10'000};
  milliseconds udp_timeout{60'000};
  milliseconds other_timeout{30'000};
  unsigned drop_sample_rate = 0;
  unsigned escalate_mark = 0x524a0000;
  // 0x524a, "RJ" as in escalate_mark: not a table any common tool uses (Tailscale 52,
  // wg-quick 51820, Cilium 2004/2005, kube-router 77-79, strongSwan 220).
  unsigned route_table = 21066;

  static void describe(settings::Fields<DatapathSettings>& f) {
    f("enabled", &DatapathSettings::enabled,
      "Attach the eBPF (XDP/TC) datapath. When false, everything runs in userspace. Needs "
      "CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN (bpffs).");
    f("instance", &DatapathSettings::instance,
      "Name of this datapath: maps are pinned under /sys/fs/bpf/ramjet/<instance>/ "
      "([a-z0-9_-]+).");
    f("pin_root", &DatapathSettings::pin_root,
      "Where maps and links are pinned (a bpffs; ramjetd mounts one if needed). Under `ip "
      "netns exec`, /sys/fs/bpf is private to the process: for --keep-datapath restarts there, "
      "point this at a bpffs that outlives it.");
    f("interfaces", &DatapathSettings::interfaces,
      "Interfaces to attach XDP and TC programs to.");
    f("xdp_mode", &DatapathSettings::xdp_mode,
      "auto (native, else generic with a log line), native or generic.");
    f("fastpath_hook", &DatapathSettings::fastpath_hook,
      "Where classification and forwarding run on each interface: xdp (XDP; for physical "
      "NICs), tc (tcx ingress: the skb keeps its GSO and checksum offload state, so veths "
      "with their default offloads work) or auto (tc on virtual devices - veth, bridge, "
      "tun/tap, vxlan, geneve, macvlan, ipvlan, ... - xdp on physical NICs). Both hooks "
      "share one implementation of parsing, policy, rate limits and the flow table.");
    f("fastpath_hooks", &DatapathSettings::fastpath_hooks,
      "Per-interface overrides of fastpath_hook: a list of {interface, hook}.");
    f("default_action", &DatapathSettings::default_action,
      "Verdict for flows no rule matches: pass, drop or fastpath.");
    f("on_engine_unavailable", &DatapathSettings::on_engine_unavailable,
      "Default of the escalate rules' on_engine_unavailable: pass, reject (a TCP RST, so "
      "clients fail in milliseconds instead of retrying for seconds) or drop.");
    f("rules", &DatapathSettings::rules,
      "Ordered rules (at most 256); reloaded on SIGHUP without detaching or losing flows.");
    f("pass_fragments", &DatapathSettings::pass_fragments,
      "IP fragments cannot be classified by port: pass them to the stack (true, so that "
      "turning the datapath on does not break fragmented traffic) or drop them (false, "
      "counted as FRAGMENT).");
    f("flow_table_size", &DatapathSettings::flow_table_size,
      "Flow table entries (LRU: the least recently used flow goes when full).");
    f("tcp_timeout", &DatapathSettings::tcp_timeout,
      "Remove a TCP flow idle this long.");
    f("tcp_closed_timeout", &DatapathSettings::tcp_closed_timeout,
      "Remove a TCP flow this long after FIN in both directions or an RST.");
    f("udp_timeout", &DatapathSettings::udp_timeout, "Remove a UDP flow idle this long.");
    f("other_timeout", &DatapathSettings::other_timeout,
      "Remove other flows (ICMP, ...) idle this long.");
    f("drop_sample_rate", &DatapathSettings::drop_sample_rate,
      "Send 1 in N dropped packets (first 128 bytes) to the event stream; 0 = none.");
    f("escalate_mark", &DatapathSettings::escalate_mark,
      "Packet mark of escalated packets; ramjetd routes it to the local table.");
    f("route_table", &DatapathSettings::route_table,
      "Routing table ramjetd owns for escalated packets (a local default route, when a rule "
      "escalates). It must be ramjet's alone: ramjetd refuses to start when the table holds "
      "routes or is looked up by rules that it did not add (Tailscale uses 52, wg-quick 51820), "
      "and on stop removes only its own. Not 0, 253, 254 or 255.");
  }
};

}  // namespace ramjet::config
