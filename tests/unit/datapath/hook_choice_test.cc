// datapath.fastpath_hook: which hook `auto` picks per device, and the overrides.
// (link_kind itself reads the kernel: the veth-defaults integration test covers it.)
#include "datapath/hook_choice.h"

#include <gtest/gtest.h>

namespace ramjet::datapath {
namespace {

using config::FastpathHook;

config::DatapathSettings settings(FastpathHook global) {
  config::DatapathSettings s;
  s.interfaces = {"eth0", "veth1"};
  s.fastpath_hook = global;
  return s;
}

TEST(HookChoice, AutoPicksTcOnVirtualDevicesAndXdpOnNics) {
  auto s = settings(FastpathHook::kAuto);
  for (const char* kind : {"veth", "bridge", "tun", "vxlan", "geneve", "macvlan", "ipvlan"}) {
    HookChoice c = choose_hook(s, "veth1", kind);
    EXPECT_EQ(c.hook, FastpathHook::kTc) << kind;
    EXPECT_EQ(c.reason, std::string("auto: ") + kind + " is a virtual device");
  }
  EXPECT_EQ(choose_hook(s, "eth0", "").hook, FastpathHook::kXdp);
  EXPECT_EQ(choose_hook(s, "lo", "").hook, FastpathHook::kTc);
}

TEST(HookChoice, ConfiguredHookWinsOverTheDevice) {
  auto s = settings(FastpathHook::kXdp);
  HookChoice c = choose_hook(s, "veth1", "veth");
  EXPECT_EQ(c.hook, FastpathHook::kXdp);
  EXPECT_EQ(c.reason, "configured");
  EXPECT_EQ(choose_hook(settings(FastpathHook::kTc), "eth0", "").hook, FastpathHook::kTc);
}

TEST(HookChoice, PerInterfaceOverride) {
  auto s = settings(FastpathHook::kAuto);
  s.fastpath_hooks = {{"veth1", FastpathHook::kXdp}, {"eth0", FastpathHook::kAuto}};
  EXPECT_EQ(choose_hook(s, "veth1", "veth").hook, FastpathHook::kXdp);
  EXPECT_EQ(choose_hook(s, "veth1", "veth").reason, "configured");
  // An override of auto defers to the device.
  EXPECT_EQ(choose_hook(s, "eth0", "").hook, FastpathHook::kXdp);
  EXPECT_EQ(choose_hook(s, "eth0", "").reason, "auto: a physical NIC (no link kind)");
}

TEST(HookChoice, Names) {
  EXPECT_EQ(hook_name(FastpathHook::kAuto), "auto");
  EXPECT_EQ(hook_name(FastpathHook::kXdp), "xdp");
  EXPECT_EQ(hook_name(FastpathHook::kTc), "tc");
}

}  // namespace
}  // namespace ramjet::datapath
