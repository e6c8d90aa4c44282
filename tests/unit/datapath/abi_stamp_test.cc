// The ABI stamp: what it digests, and how a start treats pins whose stamp or map
// definitions differ from this build's. The pin tests need root (CAP_BPF, bpffs)
// and are skipped otherwise.
#include "datapath/abi_stamp.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "datapath/datapath.h"

namespace ramjet::datapath {
namespace {

// The object the build embeds in libramjet, opened from bpf/build/ (the skeleton
// header is the datapath library's alone).
struct Object {
  bpf_object* obj =
      bpf_object__open_file(RAMJET_TESTDATA_DIR "/../../bpf/build/datapath.bpf.o", nullptr);
  ~Object() { bpf_object__close(obj); }
  bpf_map* map(const char* name) { return bpf_object__find_map_by_name(obj, name); }
};

TEST(AbiStamp, LayoutCoversEveryPinnedMapAndTheAbiValues) {
  Object o;
  ASSERT_NE(o.obj, nullptr);
  std::string layout = "\n" + abi_layout(o.obj);
  for (const char* map : {"flows: ", "rules: ", "rule_filters: ", "src_prefixes: ", "denylist: ",
                          "classes: ", "stats: ", "events: ", "listeners: ", "runtime: "})
    EXPECT_NE(layout.find(std::string("\n") + map), std::string::npos) << map << "\n" << layout;
  EXPECT_EQ(layout.find(".rodata"), std::string::npos) << "set per load, not pinned state";
  // Key and value layouts down to the members, the .data variables, enum values.
  EXPECT_NE(layout.find("flow_id@0 u64;"), std::string::npos) << layout;
  EXPECT_NE(layout.find("next_flow_id@8 u64;"), std::string::npos) << layout;
  EXPECT_NE(layout.find("\nstat RULE_DROP DROP\n"), std::string::npos) << layout;
  EXPECT_NE(layout.find("\naction FASTPATH 3\n"), std::string::npos) << layout;
  EXPECT_NE(layout.find("\nevent FLOW_NEW=1 "), std::string::npos) << layout;
}

TEST(AbiStamp, StampIsAPureFunctionOfTheLayout) {
  Object a, b;
  ASSERT_NE(a.obj, nullptr);
  ASSERT_NE(b.obj, nullptr);
  std::uint64_t stamp = abi_stamp_of(abi_layout(a.obj));
  EXPECT_EQ(stamp, abi_stamp_of(abi_layout(b.obj)));
  auto built = build_abi_stamp();
  ASSERT_TRUE(built.ok()) << built.error().message;
  EXPECT_EQ(*built, stamp) << "the embedded object is the one in bpf/build";
  EXPECT_EQ(stamp_text(0x1234), "0000000000001234");

  // Any change of a map definition changes it.
  bpf_map__set_max_entries(b.map("denylist"), 1024);
  EXPECT_NE(abi_stamp_of(abi_layout(b.obj)), stamp);
  EXPECT_NE(abi_stamp_of("x"), abi_stamp_of("y"));
}

class PinsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: creates BPF maps and pins them";
    instance_ = "unit-abi-" + std::to_string(::getpid());
    dir_ = std::string(kPinRoot) + "/" + instance_;
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // Starts a datapath with no interfaces and leaves it pinned.
  std::unique_ptr<Datapath> start(unsigned flow_table_size = 65536) {
    config::Config config;
    config.datapath.enabled = true;
    config.datapath.instance = instance_;
    config.datapath.flow_table_size = flow_table_size;
    StartOptions opts;
    opts.pin_root = kPinRoot;
    opts.keep_on_exit = true;
    auto dp = Datapath::start(config, opts);
    EXPECT_TRUE(dp.ok()) << dp.error().message;
    return dp.ok() ? std::move(*dp) : nullptr;
  }

  PinCheck check(unsigned flow_table_size = 65536) {
    Object o;
    std::uint64_t stamp = abi_stamp_of(abi_layout(o.obj));
    bpf_map__set_max_entries(o.map("flows"), flow_table_size);
    return check_pins(dir_, o.obj, stamp);
  }

  static constexpr const char* kPinRoot = "/sys/fs/bpf/ramjet";
  std::string instance_, dir_;
};

TEST_F(PinsTest, FreshThenAdoptThenEveryKindOfMismatch) {
  EXPECT_EQ(check().verdict, PinCheck::Verdict::kFresh);
  auto first = start();
  ASSERT_NE(first, nullptr);
  EXPECT_FALSE(first->adopted());
  first->stop();
  auto stamp = read_pinned_stamp(dir_);
  ASSERT_TRUE(stamp.ok()) << stamp.error().message;
  ASSERT_TRUE(stamp->has_value());
  EXPECT_EQ(**stamp, *build_abi_stamp());
  EXPECT_EQ(check().verdict, PinCheck::Verdict::kAdopt);

  PinCheck resized = check(131072);
  EXPECT_EQ(resized.verdict, PinCheck::Verdict::kRecreate);
  EXPECT_EQ(resized.reason,
            "the pinned map `flows` does not fit: pinned as type 9, key 40, value 152, "
            "max_entries 65536, flags 0; this build needs type 9, key 40, value 152, max_entries "
            "131072, flags 0 (datapath.flow_table_size changed?)");

  ASSERT_TRUE(write_pinned_stamp(dir_, 0x1234).ok());
  PinCheck other = check();
  EXPECT_EQ(other.verdict, PinCheck::Verdict::kRecreate);
  EXPECT_EQ(other.reason,
            "they were pinned by a build with ABI stamp 0000000000001234, this "
            "build's is " +
                stamp_text(*build_abi_stamp()));

  ASSERT_EQ(::unlink((dir_ + "/" + kAbiPinName).c_str()), 0);
  PinCheck none = check();
  EXPECT_EQ(none.verdict, PinCheck::Verdict::kRecreate);
  EXPECT_NE(none.reason.find("no ABI stamp"), std::string::npos) << none.reason;
}

TEST_F(PinsTest, AStartRecreatesPinsOfAnotherBuild) {
  auto first = start();
  ASSERT_NE(first, nullptr);
  first->stop();
  first.reset();
  std::uint32_t old_id = 0;
  {
    int fd = bpf_obj_get((dir_ + "/stats").c_str());
    ASSERT_GE(fd, 0);
    bpf_map_info info{};
    std::uint32_t len = sizeof info;
    ASSERT_EQ(bpf_obj_get_info_by_fd(fd, &info, &len), 0);
    old_id = info.id;
    ::close(fd);
  }
  ASSERT_TRUE(write_pinned_stamp(dir_, 0x1234).ok());

  auto second = start();
  ASSERT_NE(second, nullptr);
  EXPECT_FALSE(second->adopted());
  EXPECT_NE(second->recreated_because().find("ABI stamp 0000000000001234"), std::string::npos)
      << second->recreated_because();
  second->stop();
  int fd = bpf_obj_get((dir_ + "/stats").c_str());
  ASSERT_GE(fd, 0);
  bpf_map_info info{};
  std::uint32_t len = sizeof info;
  ASSERT_EQ(bpf_obj_get_info_by_fd(fd, &info, &len), 0);
  ::close(fd);
  EXPECT_NE(info.id, old_id) << "the stats map must be a new one";
  EXPECT_EQ(**read_pinned_stamp(dir_), *build_abi_stamp())
      << "the new pins carry this build's stamp";

  // And the start after that adopts them.
  auto third = start();
  ASSERT_NE(third, nullptr);
  EXPECT_TRUE(third->adopted());
  EXPECT_EQ(third->recreated_because(), "");
}

}  // namespace
}  // namespace ramjet::datapath
