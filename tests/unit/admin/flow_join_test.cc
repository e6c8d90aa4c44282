// admin::join_flows: kernel flows and engine connections become one view per flow id,
// for the daemon and ramjetctl alike. The kernel half needs root (pinned maps).
#include "admin/flow_join.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include "datapath/datapath.h"
#include "datapath/pinned_maps.h"
#include "datapath/synthetic_flows.h"

namespace ramjet::admin {
namespace {

EngineConnection connection(FlowId id) {
  EngineConnection c;
  c.id = id;
  c.endpoint = "web";
  c.state = "relaying";
  return c;
}

TEST(FlowJoin, WithoutKernelFlowsEveryEngineConnectionIsAFlow) {
  auto engine = by_flow_id({connection(3), connection(9)});
  std::map<FlowId, FlowView> seen;
  auto r = join_flows(nullptr, engine, [&](FlowView&& v) {
    seen.emplace(v.id, std::move(v));
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_FALSE(seen[3].kernel);
  ASSERT_TRUE(seen[3].engine);
  EXPECT_EQ(seen[3].engine->id, 3u);
  EXPECT_EQ(seen[9].engine->id, 9u);
}

TEST(FlowJoin, EmitReturningFalseStops) {
  auto engine = by_flow_id({connection(1), connection(2), connection(3)});
  int calls = 0;
  auto r = join_flows(nullptr, engine, [&](FlowView&&) { return ++calls < 2; });
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(calls, 2);
}

TEST(FlowJoin, KernelFlowsCarryTheEngineConnectionOfTheirId) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: creates BPF maps and pins them";
  const std::string root = "/sys/fs/bpf/ramjet", instance = "join-" + std::to_string(::getpid());
  config::Config config;
  config.datapath.enabled = true;
  config.datapath.instance = instance;
  config.datapath.flow_table_size = 4096;
  datapath::StartOptions opts;
  opts.pin_root = root;
  opts.keep_on_exit = true;
  auto dp = datapath::Datapath::start(config, opts);
  ASSERT_TRUE(dp.ok()) << dp.error().message;
  (*dp)->stop();
  const std::string dir = root + "/" + instance;
  ASSERT_TRUE(datapath::add_synthetic_flows(dir, 100, 500).ok());
  datapath::PinnedMaps maps(dir);

  // Flow 500 has both halves; flow 7 only an engine connection.
  auto engine = by_flow_id({connection(500), connection(7)});
  std::map<FlowId, FlowView> seen;
  auto r = join_flows(&maps, engine, [&](FlowView&& v) {
    seen.emplace(v.id, std::move(v));
    return true;
  });
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(seen.size(), 101u);
  EXPECT_TRUE(seen[500].kernel && seen[500].engine);
  EXPECT_TRUE(seen[501].kernel && !seen[501].engine);
  EXPECT_TRUE(!seen[7].kernel && seen[7].engine);
}

}  // namespace
}  // namespace ramjet::admin
