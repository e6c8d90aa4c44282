// datapath::PinnedMaps against a real instance: created as ramjetd creates one
// (Datapath::start with no interfaces, left pinned), filled with synthetic flows.
// Needs root (CAP_BPF, bpffs); skipped otherwise.
#include "datapath/pinned_maps.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "datapath/datapath.h"
#include "datapath/synthetic_flows.h"

namespace ramjet::datapath {
namespace {

class PinnedMapsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: creates BPF maps and pins them";
    instance_ = "unit-" + std::to_string(::getpid());
    config::Config config;
    config.datapath.enabled = true;
    config.datapath.instance = instance_;
    config.datapath.flow_table_size = 65536;
    StartOptions opts;
    opts.pin_root = kPinRoot;
    opts.keep_on_exit = true;
    auto dp = Datapath::start(config, opts);
    ASSERT_TRUE(dp.ok()) << dp.error().message;
    (*dp)->stop();
    dir_ = std::string(kPinRoot) + "/" + instance_;
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  static constexpr const char* kPinRoot = "/sys/fs/bpf/ramjet";
  std::string instance_, dir_;
};

TEST_F(PinnedMapsTest, FlowsStreamInBatchesAndDeleteByPredicate) {
  auto held = add_synthetic_flows(dir_, 10'000, 500);
  ASSERT_TRUE(held.ok()) << held.error().message;
  EXPECT_EQ(*held, 10'000u);

  PinnedMaps maps(dir_);
  std::size_t seen = 0, batches = 0, largest = 0;
  FlowId min_id = ~FlowId{0}, max_id = 0;
  ASSERT_TRUE(maps.for_each_flow([&](std::span<const KernelFlow> batch) {
                    ++batches;
                    largest = std::max(largest, batch.size());
                    for (const auto& f : batch) {
                      min_id = std::min(min_id, f.id);
                      max_id = std::max(max_id, f.id);
                      EXPECT_TRUE(f.src.ip().is_v4());
                      EXPECT_GE(f.last_seen_ns, f.first_seen_ns);
                    }
                    seen += batch.size();
                    return true;
                  })
                  .ok());
  EXPECT_EQ(seen, 10'000u);
  EXPECT_GE(batches, 3u);     // 10 000 entries do not fit one 4096-entry batch
  EXPECT_LE(largest, 4096u);  // and no batch is larger than that
  EXPECT_EQ(min_id, 500u);
  EXPECT_EQ(max_id, 10'499u);

  auto deleted = maps.delete_flows([](const KernelFlow& f) { return f.id < 600; });
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 100u);
  seen = 0;
  ASSERT_TRUE(maps.for_each_flow([&](auto batch) {
                    seen += batch.size();
                    return true;
                  })
                  .ok());
  EXPECT_EQ(seen, 9'900u);
}

TEST_F(PinnedMapsTest, BlockAndUnblockKeepTheDenyCount) {
  PinnedMaps maps(dir_);
  auto before = maps.runtime();
  ASSERT_TRUE(before.ok()) << before.error().message;
  EXPECT_EQ(before->deny_count, 0u);

  auto a = *Cidr::parse("10.10.1.2/32"), b = *Cidr::parse("fd00::/8");
  ASSERT_TRUE(maps.block(a, std::chrono::seconds(5), kBlockTagOperator).ok());
  ASSERT_TRUE(maps.block(b, std::chrono::milliseconds(0), kBlockTagOperator).ok());
  ASSERT_TRUE(maps.block(a, std::chrono::seconds(9), kBlockTagOperator).ok());  // refresh
  EXPECT_EQ(maps.runtime()->deny_count, 2u);

  auto blocks = maps.blocks();
  ASSERT_TRUE(blocks.ok());
  ASSERT_EQ(blocks->size(), 2u);
  for (const auto& e : *blocks) {
    EXPECT_EQ(e.tag, kBlockTagOperator);
    if (e.prefix == a)
      EXPECT_GT(e.expires_ns, monotonic_now_ns() + 8'000'000'000ull);
    else
      EXPECT_EQ(e.expires_ns, 0u);
  }

  EXPECT_EQ(*maps.unblock(a), true);
  EXPECT_EQ(*maps.unblock(a), false);  // not blocked any more
  EXPECT_EQ(maps.runtime()->deny_count, 1u);
  EXPECT_EQ(*maps.unblock(b), true);
  EXPECT_EQ(maps.runtime()->deny_count, 0u);
}

TEST_F(PinnedMapsTest, StatsAndRulesReadAnEmptyInstance) {
  PinnedMaps maps(dir_);
  auto stats = maps.stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->size(), stat_count() - 1);  // NONE is not a stat
  EXPECT_EQ(stats->front().name, "TRUNCATED_ETH");
  EXPECT_EQ(stats->front().cls, "drop");
  auto rules = maps.rules();
  ASSERT_TRUE(rules.ok());
  EXPECT_TRUE(rules->empty());
}

TEST(PinnedMaps, AMissingInstanceSaysWhereItLooked) {
  PinnedMaps maps("/sys/fs/bpf/ramjet/no-such-instance-here");
  auto r = maps.stats();
  ASSERT_FALSE(r.ok());
  if (::geteuid() != 0) return;  // without root the reason may be the privilege
  EXPECT_EQ(r.error().code, ENOENT);
  EXPECT_NE(
      r.error().message.find("no datapath is pinned in /sys/fs/bpf/ramjet/no-such-instance-here"),
      std::string::npos)
      << r.error().message;
}

}  // namespace
}  // namespace ramjet::datapath
