#include "telemetry/tracing.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "telemetry/audit_log.h"

namespace ramjet::telemetry {
namespace {

constexpr const char* kExample = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(TraceParent, ReadsTheSpecificationsExample) {
  auto tp = parse_traceparent(kExample);
  ASSERT_TRUE(tp);
  EXPECT_EQ(to_hex(tp->trace_id.data(), 16), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(to_hex(tp->parent_id.data(), 8), "00f067aa0ba902b7");
  EXPECT_TRUE(tp->sampled());
  EXPECT_EQ(format_traceparent(*tp), kExample);
}

TEST(TraceParent, RefusesWhatTheSpecificationCallsInvalid) {
  for (const char* bad : {
           "",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",     // short
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",   // 00 has 55 chars
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",    // uppercase
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",    // zero trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",    // zero parent id
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // version ff
           "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // separator
           "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",    // not hex
           "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",   // later version, no '-'
       })
    EXPECT_FALSE(parse_traceparent(bad)) << bad;
}

TEST(TraceParent, ReadsALaterVersionAsVersion00AndKeepsOnlyTheSampledFlag) {
  auto tp = parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff-extra");
  ASSERT_TRUE(tp);
  EXPECT_EQ(tp->flags, 0x01);
  EXPECT_EQ(format_traceparent(*tp).substr(0, 3), "00-");
}

class TracerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = std::filesystem::temp_directory_path() /
            ("ramjet-tracing-" + std::to_string(::getpid()) + ".jsonl");
    std::filesystem::remove(path_);
    auto log = AuditLog::open(path_.string());
    ASSERT_TRUE(log.ok());
    sink_ = std::move(*log);
  }
  void TearDown() override { std::filesystem::remove(path_); }

  std::vector<nlohmann::json> lines() {
    sink_.reset();  // writes everything queued
    std::ifstream in(path_);
    std::vector<nlohmann::json> out;
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
    return out;
  }

  std::filesystem::path path_;
  std::unique_ptr<AuditLog> sink_;
};

TEST_F(TracerTest, ContinuesTheClientsTraceAndWritesOneOtlpLineWithTheHooksAsChildren) {
  Tracer t;
  t.configure(sink_.get(), 0.0);
  const std::string header = kExample;
  bool invalid = true;
  auto span = t.begin(header, "GET", invalid);
  ASSERT_TRUE(span);
  EXPECT_FALSE(invalid);
  EXPECT_TRUE(span->recording);
  const std::string up = span->traceparent();
  EXPECT_EQ(up.substr(0, 36), "00-4bf92f3577b34da6a3ce929d0e0e4736-");
  EXPECT_NE(up.substr(36, 16), "00f067aa0ba902b7");  // our span is the upstream's parent
  EXPECT_EQ(up.substr(52), "-01");
  span->add_hook("http.handle_request", "continue", std::chrono::steady_clock::now());
  span->status = 200;
  span->attributes.emplace_back("url.full", "http://origin.test/x");
  ConnectionInfo info;
  info.id = 7;
  info.endpoint = "front";
  info.client = *SocketAddress::parse("127.0.0.2:5000");
  t.end(*span, info);

  auto got = lines();
  ASSERT_EQ(got.size(), 1u);
  const auto& spans = got[0]["resourceSpans"][0]["scopeSpans"][0]["spans"];
  EXPECT_EQ(got[0]["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "ramjetd");
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0]["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(spans[0]["parentSpanId"], "00f067aa0ba902b7");
  EXPECT_EQ(spans[0]["spanId"], up.substr(36, 16));
  EXPECT_EQ(spans[0]["name"], "GET");
  EXPECT_EQ(spans[0]["kind"], 2);
  EXPECT_EQ(spans[0]["status"], nlohmann::json::object());
  bool status_seen = false;
  for (const auto& a : spans[0]["attributes"])
    if (a["key"] == "http.response.status_code") status_seen = a["value"]["intValue"] == "200";
  EXPECT_TRUE(status_seen);
  EXPECT_EQ(spans[1]["name"], "hook http.handle_request");
  EXPECT_EQ(spans[1]["parentSpanId"], spans[0]["spanId"]);
  EXPECT_EQ(spans[1]["traceId"], spans[0]["traceId"]);
  EXPECT_LE(std::stoll(spans[0]["startTimeUnixNano"].get<std::string>()),
            std::stoll(spans[1]["startTimeUnixNano"].get<std::string>()));
}

TEST_F(TracerTest, FollowsAnUnsampledParentAndSamplesNewTracesByTheConfiguredShare) {
  Tracer t;
  t.configure(sink_.get(), 0.0);
  const std::string unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
  bool invalid = false;
  auto s1 = t.begin(unsampled, "GET", invalid);
  ASSERT_TRUE(s1);
  EXPECT_FALSE(s1->recording);
  EXPECT_EQ(s1->traceparent().substr(52), "-00");
  auto s2 = t.begin(std::nullopt, "GET", invalid);  // sample 0: a new trace, not recorded
  ASSERT_TRUE(s2);
  EXPECT_FALSE(s2->recording);
  const std::string garbage = "hello";
  auto s3 = t.begin(garbage, "GET", invalid);
  EXPECT_TRUE(invalid);
  t.configure(sink_.get(), 1.0);
  auto s4 = t.begin(std::nullopt, "GET", invalid);
  ASSERT_TRUE(s4);
  EXPECT_TRUE(s4->recording);
  EXPECT_FALSE(s4->parent);
  EXPECT_NE(s4->trace_id, s2->trace_id);
  ConnectionInfo info;
  t.end(*s1, info);  // not recording: no line
  t.end(*s4, info);
  auto got = lines();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_FALSE(got[0]["resourceSpans"][0]["scopeSpans"][0]["spans"][0].contains("parentSpanId"));
}

TEST(Tracer, OffWithoutASink) {
  Tracer t;
  bool invalid = false;
  const std::string header = kExample;
  EXPECT_FALSE(t.begin(header, "GET", invalid));
}

}  // namespace
}  // namespace ramjet::telemetry
