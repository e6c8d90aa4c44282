// main() of every gtest binary (unit tests, BPF tests): gtest's, plus the skip policy.
//
// CI runs as root, where every test can run: there `.ci/run` sets RAMJET_NO_SKIP=1
// and a skipped test makes the binary fail, because a skip there means a broken
// machine or a broken test, not a missing privilege. Elsewhere a skip is allowed but
// never silent: with RAMJET_SKIP_LOG=FILE each one appends
// "<binary>: <Suite.Test>: <reason>" to FILE, which `make test` prints at the end.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

bool env_is(const char* name, const char* value) {
  const char* v = std::getenv(name);
  return v != nullptr && std::strcmp(v, value) == 0;
}

class SkipPolicy : public testing::EmptyTestEventListener {
 public:
  explicit SkipPolicy(std::string binary) : binary_(std::move(binary)) {}

  void OnTestPartResult(const testing::TestPartResult& r) override {
    if (!r.skipped()) return;
    // One line: "Skipped" headers dropped, the reason's lines joined.
    reason_.clear();
    std::string text = r.message();
    std::size_t start = 0;
    while (start <= text.size()) {
      std::size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      std::string part = text.substr(start, end - start);
      if (!part.empty() && part != "Skipped") reason_ += (reason_.empty() ? "" : "; ") + part;
      start = end + 1;
    }
  }

  void OnTestEnd(const testing::TestInfo& info) override {
    if (!info.result()->Skipped()) return;
    std::string line = binary_ + ": " + info.test_suite_name() + "." + info.name() + ": " +
                       (reason_.empty() ? "no reason given" : reason_);
    reason_.clear();
    skipped_.push_back(line);
    if (const char* log = std::getenv("RAMJET_SKIP_LOG"); log != nullptr && *log != '\0') {
      if (std::FILE* f = std::fopen(log, "a")) {
        std::fprintf(f, "%s\n", line.c_str());
        std::fclose(f);
      }
    }
  }

  const std::vector<std::string>& skipped() const { return skipped_; }

 private:
  std::string binary_;
  std::string reason_;
  std::vector<std::string> skipped_;
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  std::string binary = argc > 0 ? argv[0] : "gtest";
  if (auto slash = binary.rfind('/'); slash != std::string::npos) binary.erase(0, slash + 1);
  auto* policy = new SkipPolicy(binary);  // gtest owns its listeners
  testing::UnitTest::GetInstance()->listeners().Append(policy);
  int rc = RUN_ALL_TESTS();
  if (env_is("RAMJET_NO_SKIP", "1") && !policy->skipped().empty()) {
    std::fprintf(stderr, "\nRAMJET_NO_SKIP=1: %zu skipped test(s) count as failures here:\n",
                 policy->skipped().size());
    for (const auto& s : policy->skipped()) std::fprintf(stderr, "  %s\n", s.c_str());
    return 1;
  }
  return rc;
}
