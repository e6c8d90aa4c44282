// datapath.fastpath_hook: which hook `auto` picks per device, and the overrides.
// (link_kind itself reads the kernel: the veth-defaults integration test covers it.)
#include "datapath/hook_choice.h"

#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

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

// A kernel that refuses bpf_xdp_adjust_meta to XDP: whatever would have been xdp is
// tc, saying why; what was tc already keeps its reason.
TEST(HookChoice, WithoutXdpMetadataEverythingIsTc) {
  HookChoice nic = choose_hook(settings(FastpathHook::kAuto), "eth0", "", false);
  EXPECT_EQ(nic.hook, FastpathHook::kTc);
  EXPECT_EQ(nic.reason, "auto: this kernel refuses XDP metadata (bpf_xdp_adjust_meta)");
  HookChoice forced = choose_hook(settings(FastpathHook::kXdp), "veth1", "veth", false);
  EXPECT_EQ(forced.hook, FastpathHook::kTc);
  EXPECT_EQ(forced.reason, "xdp configured: this kernel refuses XDP metadata (bpf_xdp_adjust_meta)");
  HookChoice veth = choose_hook(settings(FastpathHook::kAuto), "veth1", "veth", false);
  EXPECT_EQ(veth.reason, "auto: veth is a virtual device");
}

// The probe agrees with the kernel: the datapath object, with the helper call live
// (xdp_metadata on, as built), loads exactly when the probe says yes.
TEST(HookChoice, ProbeAgreesWithTheDatapathLoad) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: loads BPF programs";
  bpf_object* obj =
      bpf_object__open_file(RAMJET_TESTDATA_DIR "/../../bpf/build/datapath.bpf.o", nullptr);
  ASSERT_NE(obj, nullptr);
  const bool loaded = bpf_object__load(obj) == 0;
  bpf_object__close(obj);
  EXPECT_EQ(loaded, kernel_allows_xdp_metadata());
}

TEST(HookChoice, Names) {
  EXPECT_EQ(hook_name(FastpathHook::kAuto), "auto");
  EXPECT_EQ(hook_name(FastpathHook::kXdp), "xdp");
  EXPECT_EQ(hook_name(FastpathHook::kTc), "tc");
}

}  // namespace
}  // namespace ramjet::datapath
