#include "datapath/metrics.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

namespace ramjet::datapath {
namespace {

TEST(DatapathMetrics, VerdictsAndReasonsFromTheAbiList) {
  StatArray v{};
  v[RAMJET_STAT_RULE_DROP] = {12, 840};
  v[RAMJET_STAT_FASTPATH_REDIRECT] = {3, 4500};
  v[RAMJET_STAT_FLOW_NEW] = {5, 0};
  v[RAMJET_STAT_NONE] = {99, 99};  // never exported
  telemetry::MetricsWriter w;
  write_datapath_metrics(w, v);
  const std::string& t = w.text();
  EXPECT_NE(t.find("# TYPE ramjet_datapath_packets_total counter\n"), std::string::npos);
  EXPECT_NE(t.find("ramjet_datapath_packets_total{verdict=\"drop\",reason=\"rule_drop\"} 12\n"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("ramjet_datapath_bytes_total{verdict=\"drop\",reason=\"rule_drop\"} 840\n"),
            std::string::npos);
  EXPECT_NE(
      t.find("ramjet_datapath_packets_total{verdict=\"fastpath\",reason=\"fastpath_redirect\"}"
             " 3\n"),
      std::string::npos);
  EXPECT_NE(t.find("ramjet_datapath_packets_total{verdict=\"escalate\",reason=\"escalate\"} 0\n"),
            std::string::npos);
  EXPECT_NE(t.find("ramjet_datapath_events_total{event=\"flow_new\"} 5\n"), std::string::npos);
  EXPECT_EQ(t.find("\"none\""), std::string::npos);
  EXPECT_EQ(t.find("reason=\"flow_new\""), std::string::npos);  // events are not verdicts
  EXPECT_EQ(w.rejected(), 0u);
}

TEST(DatapathMetrics, HandoffResultsFromTheAbiList) {
  std::array<std::uint64_t, RAMJET_HANDOFF_STAT_COUNT> v{};
  v[RAMJET_HANDOFF_ASSIGNED] = 7;
  v[RAMJET_HANDOFF_NO_FLOW] = 2;
  telemetry::MetricsWriter w;
  write_handoff_metrics(w, v);
  const std::string& t = w.text();
  EXPECT_NE(t.find("# TYPE ramjet_tun_handoff_packets_total counter\n"), std::string::npos) << t;
  EXPECT_NE(t.find("ramjet_tun_handoff_packets_total{result=\"assigned\"} 7\n"), std::string::npos);
  EXPECT_NE(t.find("ramjet_tun_handoff_packets_total{result=\"no_flow\"} 2\n"), std::string::npos);
  for (const char* zero : {"own_socket", "no_socket", "assign_failed", "unsupported", "malformed"})
    EXPECT_NE(t.find(std::string("{result=\"") + zero + "\"} 0\n"), std::string::npos) << zero;
  EXPECT_EQ(w.rejected(), 0u);
}

TEST(DatapathMetrics, FallbacksByRuleVerdictAndCause) {
  std::vector<FallbackCount> counts = {
      {7, RAMJET_FALLBACK_REJECT, RAMJET_FALLBACK_CAUSE_DRAINING, 3},
      {7, RAMJET_FALLBACK_REJECT, RAMJET_FALLBACK_CAUSE_ACCEPT_QUEUE_FULL, 1},
      {0, RAMJET_FALLBACK_DROP, RAMJET_FALLBACK_CAUSE_NO_LISTENER, 2},
  };
  telemetry::MetricsWriter w;
  write_fallback_metrics(w, counts, [](std::uint32_t id) { return id == 7 ? "web" : "?"; });
  const std::string& t = w.text();
  EXPECT_NE(t.find("# TYPE ramjet_datapath_fallbacks_total counter\n"), std::string::npos) << t;
  EXPECT_NE(t.find("ramjet_datapath_fallbacks_total{rule=\"web\",verdict=\"reject\","
                   "cause=\"draining\"} 3\n"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("ramjet_datapath_fallbacks_total{rule=\"web\",verdict=\"reject\","
                   "cause=\"accept_queue_full\"} 1\n"),
            std::string::npos);
  EXPECT_NE(t.find("ramjet_datapath_fallbacks_total{rule=\"\",verdict=\"drop\","
                   "cause=\"no_listener\"} 2\n"),
            std::string::npos)
      << "flows without a rule have an empty rule label";
  EXPECT_EQ(w.rejected(), 0u);
}

TEST(DatapathMetrics, EveryStatHasOneSample) {
  StatArray v{};
  telemetry::MetricsWriter w;
  write_datapath_metrics(w, v);
  std::size_t packets = 0, events = 0;
  for (std::size_t pos = 0;
       (pos = w.text().find("\nramjet_datapath_packets_total{", pos)) != std::string::npos; ++pos)
    ++packets;
  for (std::size_t pos = 0;
       (pos = w.text().find("\nramjet_datapath_events_total{", pos)) != std::string::npos; ++pos)
    ++events;
  EXPECT_EQ(packets + events + 1, std::size_t(RAMJET_STAT__COUNT));  // + NONE
}

TEST(DatapathMetrics, ShortInputExportsWhatItHas) {
  // A map read from an older program may have fewer slots than this build's list.
  std::array<StatValue, RAMJET_STAT_TRUNCATED_ETH + 1> v{};
  v[RAMJET_STAT_TRUNCATED_ETH] = {1, 60};
  telemetry::MetricsWriter w;
  write_datapath_metrics(w, v);
  EXPECT_NE(w.text().find("reason=\"truncated_eth\"} 1\n"), std::string::npos) << w.text();
  EXPECT_EQ(w.text().find("reason=\"event_lost\""), std::string::npos);
}

TEST(DatapathMetrics, FlowTableGauge) {
  telemetry::MetricsWriter w;
  write_flow_table_metrics(w, 1234);
  EXPECT_NE(w.text().find("# TYPE ramjet_datapath_flows gauge\n"), std::string::npos) << w.text();
  EXPECT_NE(w.text().find("\nramjet_datapath_flows 1234\n"), std::string::npos) << w.text();
  EXPECT_EQ(w.rejected(), 0u);
}

}  // namespace
}  // namespace ramjet::datapath
