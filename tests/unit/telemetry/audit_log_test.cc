#include "telemetry/audit_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

namespace ramjet::telemetry {
namespace {

using namespace std::chrono_literals;
using std::chrono::system_clock;

SocketAddress addr(const char* s) {
  return *SocketAddress::parse(s);
}

AuditRecord sample_record(const FlowDecisions& d) {
  AuditRecord r;
  r.kind = FlowKind::kConnect;
  r.flow = 42;
  r.endpoint = "front";
  r.client = addr("127.0.0.2:50000");
  r.local = addr("127.0.0.1:3128");
  r.target = "example.test:443";
  r.upstream = "192.0.2.7:443";
  r.bytes_from_client = 517;
  r.bytes_to_client = 4096;
  // 2024-05-01T12:34:56.789012Z
  r.start = system_clock::time_point(std::chrono::microseconds(1714566896789012));
  r.duration = 1500us;
  r.reason = CloseReason::kCompleted;
  r.decisions = &d;
  return r;
}

TEST(AuditLine, Rfc3339Utc) {
  EXPECT_EQ(format_rfc3339_utc(system_clock::time_point{}), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(
      format_rfc3339_utc(system_clock::time_point(std::chrono::microseconds(1714566896789012))),
      "2024-05-01T12:34:56.789012Z");
}

TEST(AuditLine, AllFieldsInOrder) {
  FlowDecisions d;
  d.ingress.decision = "allow";
  d.connect.decision = "allow";
  d.egress.decision = "direct";
  d.egress.target = "example.test:443";
  d.egress.upstream_ips = "guarded";
  std::string line = encode_audit_line(sample_record(d));
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);  // exactly one line
  EXPECT_EQ(line,
            R"({"flow":42,"kind":"connect","endpoint":"front","client":"127.0.0.2:50000",)"
            R"("local":"127.0.0.1:3128","target":"example.test:443","upstream":"192.0.2.7:443",)"
            R"("bytes_from_client":517,"bytes_to_client":4096,)"
            R"("start":"2024-05-01T12:34:56.789012Z","duration_ms":1.5,)"
            R"("close_reason":"completed","decisions":{"ingress":{"decision":"allow"},)"
            R"("connect":{"decision":"allow"},"egress":{"decision":"direct",)"
            R"("target":"example.test:443","upstream_ips":"guarded","block_reasons":[]}},)"
            R"("tls":null,"kernel":null})"
            "\n");
}

TEST(AuditLine, BlockedFlowHasReasonsAndNulls) {
  FlowDecisions d;
  d.ingress.decision = "allow";
  d.egress.decision = "block";
  d.egress.block_reasons = {"egress.handle_connection: not on the list"};
  AuditRecord r = sample_record(d);
  r.kind = FlowKind::kTcp;
  r.upstream = "";
  r.bytes_from_client = r.bytes_to_client = 0;
  r.reason = CloseReason::kBlockedEgress;
  auto j = nlohmann::json::parse(encode_audit_line(r));
  EXPECT_EQ(j["kind"], "tcp");
  EXPECT_TRUE(j["upstream"].is_null());
  EXPECT_EQ(j["close_reason"], "blocked_egress");
  EXPECT_TRUE(j["decisions"]["connect"].is_null());
  EXPECT_EQ(j["decisions"]["egress"]["decision"], "block");
  EXPECT_TRUE(j["decisions"]["egress"]["target"].is_null());
  EXPECT_EQ(j["decisions"]["egress"]["block_reasons"][0],
            "egress.handle_connection: not on the list");
  EXPECT_TRUE(j["kernel"].is_null());
}

TEST(AuditLine, KernelObjectIsEmbeddedLast) {
  FlowDecisions d;
  d.ingress.decision = "allow";
  AuditRecord r = sample_record(d);
  nlohmann::json kernel = {{"flow_id", 42}, {"verdict", "ESCALATE"}, {"packets", {5, 4}}};
  r.kernel = &kernel;
  std::string line = encode_audit_line(r);
  EXPECT_NE(line.find(R"(,"kernel":{"flow_id":42,"packets":[5,4],"verdict":"ESCALATE"}})"
                      "\n"),
            std::string::npos)
      << line;
  nlohmann::json null_kernel;  // what a flow the datapath did not escalate gets
  r.kernel = &null_kernel;
  EXPECT_TRUE(nlohmann::json::parse(encode_audit_line(r))["kernel"].is_null());
}

TEST(AuditLine, DeniedConnectAndIngressBlock) {
  FlowDecisions d;
  d.ingress.decision = "block";
  d.ingress.reason = "denied \"client\"\n";
  d.connect.decision = "deny";
  d.connect.status = 403;
  d.connect.reason = "no";
  auto j = nlohmann::json::parse(encode_audit_line(sample_record(d)));
  EXPECT_EQ(j["decisions"]["ingress"]["decision"], "block");
  EXPECT_EQ(j["decisions"]["ingress"]["reason"], "denied \"client\"\n");
  EXPECT_EQ(j["decisions"]["connect"]["status"], 403);
  EXPECT_TRUE(j["decisions"]["egress"].is_null());
}

TEST(AuditLine, InvalidUtf8IsReplacedNotFatal) {
  FlowDecisions d;
  d.ingress.decision = "block";
  d.ingress.reason = "bad \xff\xfe bytes";
  std::string line = encode_audit_line(sample_record(d));
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["decisions"]["ingress"]["reason"], "bad \xEF\xBF\xBD\xEF\xBF\xBD bytes");
}

// ---------------------------------------------------------------- the writer

class AuditLogFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ramjet_audit_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  static std::string read(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::filesystem::path dir_;
};

TEST_F(AuditLogFile, LinesReachTheFileAndDestructorFlushes) {
  auto path = dir_ / "audit.log";
  {
    auto log = AuditLog::open(path.string());
    ASSERT_TRUE(log.ok()) << log.error().message;
    for (int i = 0; i < 100; ++i) EXPECT_TRUE((*log)->write("line " + std::to_string(i) + "\n"));
  }
  std::string text = read(path);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 100);
  EXPECT_EQ(text.rfind("line 99\n"), text.size() - 8);
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::others_all,
            std::filesystem::perms::none);
}

TEST_F(AuditLogFile, ReopenAfterRenameLosesNothingAndKeepsOrder) {
  auto path = dir_ / "audit.log";
  auto rotated = dir_ / "audit.log.1";
  auto log = AuditLog::open(path.string());
  ASSERT_TRUE(log.ok());
  // Writers on several threads while the file is renamed and reopened.
  constexpr int kPerWriter = 20'000;
  std::atomic<int> sent{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kPerWriter; ++i) {
        ASSERT_TRUE((*log)->write("t" + std::to_string(t) + " " + std::to_string(i) + "\n"));
        ++sent;
      }
    });
  }
  while (sent < kPerWriter) std::this_thread::sleep_for(1ms);
  std::filesystem::rename(path, rotated);
  (*log)->write("marker\n");  // queued before the reopen: must land in the old file
  ASSERT_TRUE((*log)->reopen().ok());
  (*log)->write("after\n");  // queued after it: must land in the new file
  for (auto& w : writers) w.join();
  log->reset();  // flushes

  std::string old_text = read(rotated), new_text = read(path);
  EXPECT_NE(old_text.find("marker\n"), std::string::npos);
  EXPECT_EQ(new_text.find("marker\n"), std::string::npos);
  EXPECT_NE(new_text.find("after\n"), std::string::npos);
  EXPECT_EQ(old_text.find("after\n"), std::string::npos);
  auto lines = std::count(old_text.begin(), old_text.end(), '\n') +
               std::count(new_text.begin(), new_text.end(), '\n');
  EXPECT_EQ(lines, 4 * kPerWriter + 2);
  // Per writer, the sequence numbers run on without gaps across the two files.
  for (int t = 0; t < 4; ++t) {
    std::istringstream all(old_text + new_text);
    std::string line;
    int expect = 0;
    std::string prefix = "t" + std::to_string(t) + " ";
    while (std::getline(all, line)) {
      if (line.rfind(prefix, 0) != 0) continue;
      EXPECT_EQ(line, prefix + std::to_string(expect)) << "writer " << t;
      if (line != prefix + std::to_string(expect)) break;
      ++expect;
    }
  }
}

TEST_F(AuditLogFile, ReopenFailureKeepsTheOldFile) {
  auto sub = dir_ / "sub";
  std::filesystem::create_directories(sub);
  auto path = sub / "audit.log";
  auto log = AuditLog::open(path.string());
  ASSERT_TRUE(log.ok());
  (*log)->write("before\n");
  std::filesystem::rename(sub, dir_ / "gone");  // the path's directory disappears
  auto r = (*log)->reopen();
  EXPECT_FALSE(r.ok());
  (*log)->write("after\n");
  log->reset();
  EXPECT_EQ(read(dir_ / "gone" / "audit.log"), "before\nafter\n");
}

TEST_F(AuditLogFile, OpenFailureNamesTheSetting) {
  auto log = AuditLog::open((dir_ / "missing" / "audit.log").string());
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.error().message.find("telemetry.audit_log.path"), std::string::npos);
}

TEST_F(AuditLogFile, FullQueueDropsAndCounts) {
  auto log = AuditLog::open((dir_ / "audit.log").string(), /*max_queued_bytes=*/0);
  ASSERT_TRUE(log.ok());
  EXPECT_FALSE((*log)->write("x\n"));
  MetricsWriter w;
  (*log)->write_metrics(w);
  EXPECT_NE(w.text().find("ramjet_audit_lines_dropped_total 1\n"), std::string::npos) << w.text();
}

TEST(AuditLine, RecordsTheClientsTlsHandshake) {
  AuditRecord r;
  TlsInfo t;
  t.sni = "gate.example.test";
  t.alpn = "http/1.1";
  t.version = "TLSv1.3";
  t.cipher = "TLS_AES_128_GCM_SHA256";
  t.resumed = true;
  ClientCertificate c;
  c.subject = "CN=alice";
  c.sans = {"URI:spiffe://example.test/alice"};
  c.sha256 = "ab";
  c.verified = true;
  t.client_certificate = c;
  r.tls = &t;
  auto j = nlohmann::json::parse(encode_audit_line(r));
  EXPECT_EQ(j["tls"]["sni"], "gate.example.test");
  EXPECT_EQ(j["tls"]["version"], "TLSv1.3");
  EXPECT_EQ(j["tls"]["resumed"], true);
  EXPECT_EQ(j["tls"]["client_certificate"]["subject"], "CN=alice");
  EXPECT_EQ(j["tls"]["client_certificate"]["sans"][0], "URI:spiffe://example.test/alice");
  EXPECT_EQ(j["tls"]["client_certificate"]["verified"], true);
}

}  // namespace
}  // namespace ramjet::telemetry
