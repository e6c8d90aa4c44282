#include "telemetry/engine_metrics.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

namespace ramjet::telemetry {
namespace {

TEST(EngineMetrics, NamesFollowPrometheusConventions) {
  for (std::size_t i = 0; i < kCounterCount; ++i) {
    auto c = static_cast<Counter>(i);
    std::string name = engine_metric_name(c);
    EXPECT_TRUE(valid_metric_name(name)) << name;
    EXPECT_EQ(name.rfind("ramjet_", 0), 0u) << name;
    bool total = name.ends_with("_total");
    EXPECT_EQ(total, kCounterKinds[i] == CounterKind::kCounter) << name;
    // Byte counts carry the unit right before _total.
    if (kCounterNames[i].find("bytes") != std::string_view::npos) {
      EXPECT_TRUE(name.ends_with("_bytes_total")) << name;
    }
  }
  EXPECT_EQ(engine_metric_name(Counter::connections_active), "ramjet_connections_active");
  EXPECT_EQ(engine_metric_name(Counter::bytes_to_client), "ramjet_downstream_sent_bytes_total");
}

TEST(EngineMetrics, EveryCounterIsDocumented) {
  std::ifstream in(std::string(RAMJET_TESTDATA_DIR) + "/../../docs/metrics.md");
  ASSERT_TRUE(in) << "docs/metrics.md";
  std::stringstream ss;
  ss << in.rdbuf();
  for (std::size_t i = 0; i < kCounterCount; ++i) {
    std::string row = "| `" + engine_metric_name(static_cast<Counter>(i)) + "`";
    EXPECT_NE(ss.str().find(row), std::string::npos) << row << " missing from docs/metrics.md";
    EXPECT_NE(ss.str().find(" | " + std::string(kCounterNames[i]) + " | "), std::string::npos)
        << kCounterNames[i];
  }
}

TEST(EngineMetrics, OneSamplePerEndpoint) {
  StatsSnapshot s;
  s.endpoints = {"front", "back"};
  s.per_endpoint.assign(2, {});
  s.per_endpoint[0][static_cast<unsigned>(Counter::connections_accepted)] = 5;
  s.per_endpoint[1][static_cast<unsigned>(Counter::connections_accepted)] = 7;
  s.per_endpoint[1][static_cast<unsigned>(Counter::connections_active)] = 2;
  MetricsWriter w;
  write_engine_counters(w, s);
  const std::string& t = w.text();
  EXPECT_NE(t.find("# HELP ramjet_connections_accepted_total Downstream connections accepted\n"
                   "# TYPE ramjet_connections_accepted_total counter\n"
                   "ramjet_connections_accepted_total{endpoint=\"front\"} 5\n"
                   "ramjet_connections_accepted_total{endpoint=\"back\"} 7\n"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("# TYPE ramjet_connections_active gauge\n"
                   "ramjet_connections_active{endpoint=\"front\"} 0\n"
                   "ramjet_connections_active{endpoint=\"back\"} 2\n"),
            std::string::npos)
      << t;
  EXPECT_EQ(w.rejected(), 0u);
}

TEST(EngineMetrics, StatsRegistrySumsWorkersPerEndpoint) {
  StatsRegistry r;
  r.configure(2, {"a", "b"});
  r.worker(0).endpoint(0).add(Counter::dns_queries, 2);
  r.worker(1).endpoint(0).add(Counter::dns_queries, 3);
  r.worker(1).endpoint(1).add(Counter::dns_queries);
  auto s = r.snapshot();
  ASSERT_EQ(s.endpoints, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(s.per_endpoint[0][static_cast<unsigned>(Counter::dns_queries)], 5);
  EXPECT_EQ(s.per_endpoint[1][static_cast<unsigned>(Counter::dns_queries)], 1);
  EXPECT_EQ(s.total(Counter::dns_queries), 6);
  EXPECT_EQ(r.total(Counter::dns_queries), 6);
}

TEST(EngineMetrics, BuildInfo) {
  MetricsWriter w;
  write_build_info(w, "ramjetd", "1.2.3");
  EXPECT_NE(w.text().find("ramjet_build_info{app=\"ramjetd\",version=\"1.2.3\"} 1\n"),
            std::string::npos)
      << w.text();
}

TEST(EngineMetrics, ParsesProcStatWithAwkwardCommandNames) {
  // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
  // utime stime cutime cstime priority nice threads itrealvalue starttime vsize rss ...
  std::string line =
      "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 12345 "
      "104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
  auto p = parse_proc_stat(line, 100);
  ASSERT_TRUE(p.has_value());
  EXPECT_DOUBLE_EQ(p->cpu_seconds, 3.0);
  EXPECT_DOUBLE_EQ(p->start_ticks, 12345);
  EXPECT_EQ(p->virtual_bytes, 104857600u);
  EXPECT_EQ(p->resident_pages, 2560u);
  EXPECT_FALSE(parse_proc_stat("4242 (x) S 1 2", 100).has_value());
  EXPECT_FALSE(parse_proc_stat("garbage", 100).has_value());
}

TEST(EngineMetrics, ProcessMetricsOfThisProcess) {
  MetricsWriter w;
  write_process_metrics(w);
  for (const char* name :
       {"process_cpu_seconds_total", "process_start_time_seconds", "process_open_fds",
        "process_max_fds", "process_virtual_memory_bytes", "process_resident_memory_bytes"})
    EXPECT_NE(w.text().find(std::string("\n") + name + " "), std::string::npos) << name;
  EXPECT_EQ(w.rejected(), 0u);
}

}  // namespace
}  // namespace ramjet::telemetry
