#include "telemetry/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

namespace ramjet::telemetry {
namespace {

TEST(MetricsWriter, FamilyHasHelpAndTypeThenSamples) {
  MetricsWriter w;
  ASSERT_TRUE(w.family("ramjet_x_total", MetricType::kCounter, "Things counted"));
  w.sample({{"endpoint", "front"}}, 3);
  w.sample({{"endpoint", "back"}}, 0);
  ASSERT_TRUE(w.family("ramjet_up", MetricType::kGauge, "Up"));
  w.sample(1);
  EXPECT_EQ(w.text(),
            "# HELP ramjet_x_total Things counted\n"
            "# TYPE ramjet_x_total counter\n"
            "ramjet_x_total{endpoint=\"front\"} 3\n"
            "ramjet_x_total{endpoint=\"back\"} 0\n"
            "# HELP ramjet_up Up\n"
            "# TYPE ramjet_up gauge\n"
            "ramjet_up 1\n");
  EXPECT_EQ(w.rejected(), 0u);
}

TEST(MetricsWriter, EscapesLabelValues) {
  MetricsWriter w;
  ASSERT_TRUE(w.family("m", MetricType::kUntyped, "h"));
  w.sample({{"a", "back\\slash"}, {"b", "say \"hi\""}, {"c", "two\nlines"}}, 1);
  EXPECT_EQ(w.text(),
            "# HELP m h\n# TYPE m untyped\n"
            "m{a=\"back\\\\slash\",b=\"say \\\"hi\\\"\",c=\"two\\nlines\"} 1\n");
}

TEST(MetricsWriter, EscapesHelpButNotQuotes) {
  std::string out;
  append_help_text(out, "a \\ b\nc \"d\"");
  EXPECT_EQ(out, "a \\\\ b\\nc \"d\"");
}

TEST(MetricsWriter, UnicodeLabelValuesPassThrough) {
  std::string out;
  append_label_value(out, "caf\xc3\xa9");
  EXPECT_EQ(out, "caf\xc3\xa9");
}

TEST(MetricsWriter, Values) {
  auto v = [](double d) {
    std::string s;
    append_value(s, d);
    return s;
  };
  EXPECT_EQ(v(0), "0");
  EXPECT_EQ(v(-0.0), "0");
  EXPECT_EQ(v(42), "42");
  EXPECT_EQ(v(-7), "-7");
  EXPECT_EQ(v(1e15), "1000000000000000");
  EXPECT_EQ(v(0.25), "0.25");
  EXPECT_EQ(v(1.5e300), "1.5e+300");
  EXPECT_EQ(v(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(v(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(v(std::nan("")), "NaN");
  // Shortest round trip, not a fixed precision.
  EXPECT_EQ(std::stod(v(0.1)), 0.1);
  EXPECT_EQ(v(0.1), "0.1");
}

TEST(MetricsWriter, Names) {
  EXPECT_TRUE(valid_metric_name("ramjet_a_total"));
  EXPECT_TRUE(valid_metric_name("ns:rule_1"));
  EXPECT_TRUE(valid_metric_name("_x"));
  EXPECT_FALSE(valid_metric_name(""));
  EXPECT_FALSE(valid_metric_name("1abc"));
  EXPECT_FALSE(valid_metric_name("a-b"));
  EXPECT_FALSE(valid_metric_name("a b"));
  EXPECT_TRUE(valid_label_name("endpoint"));
  EXPECT_TRUE(valid_label_name("_x1"));
  EXPECT_FALSE(valid_label_name("__name__"));
  EXPECT_FALSE(valid_label_name("a:b"));
  EXPECT_FALSE(valid_label_name("1a"));
  EXPECT_FALSE(valid_label_name(""));
}

TEST(MetricsWriter, RefusesBadAndRepeatedFamiliesAndTheirSamples) {
  MetricsWriter w;
  EXPECT_FALSE(w.family("bad-name", MetricType::kGauge, "h"));
  w.sample(1);  // dropped: no valid family
  EXPECT_TRUE(w.family("ok", MetricType::kGauge, "h"));
  w.sample(2);
  w.sample({{"bad-label", "x"}}, 3);  // dropped
  EXPECT_FALSE(w.family("ok", MetricType::kGauge, "again"));
  w.sample(4);  // dropped: would split the family
  EXPECT_EQ(w.text(), "# HELP ok h\n# TYPE ok gauge\nok 2\n");
  EXPECT_EQ(w.rejected(), 5u);
}

TEST(MetricsRegistry, CollectsSourcesInOrderAndForgetsRemovedOnes) {
  MetricsRegistry r;
  auto a = r.add_source([](MetricsWriter& w) {
    if (w.family("a", MetricType::kGauge, "A")) w.sample(1);
  });
  r.add_source([](MetricsWriter& w) {
    if (w.family("b", MetricType::kGauge, "B")) w.sample(2);
  });
  EXPECT_EQ(r.collect(), "# HELP a A\n# TYPE a gauge\na 1\n# HELP b B\n# TYPE b gauge\nb 2\n");
  r.remove_source(a);
  EXPECT_EQ(r.collect(), "# HELP b B\n# TYPE b gauge\nb 2\n");
}

TEST(MetricsRegistry, TwoSourcesCannotEmitTheSameFamilyTwice) {
  MetricsRegistry r;
  for (int i = 0; i < 2; ++i)
    r.add_source([i](MetricsWriter& w) {
      if (w.family("dup", MetricType::kGauge, "D")) w.sample(i);
    });
  EXPECT_EQ(r.collect(), "# HELP dup D\n# TYPE dup gauge\ndup 0\n");
}

}  // namespace
}  // namespace ramjet::telemetry
