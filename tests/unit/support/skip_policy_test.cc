// A test that skips when asked, for the ctest entries skip_policy.* (tests/CMakeLists.txt)
// that check what tests/support/gtest_main.cc does with a skip.
#include <gtest/gtest.h>

#include <cstdlib>

namespace {

TEST(SkipPolicy, SkipsOnRequest) {
  if (std::getenv("RAMJET_TEST_FORCE_SKIP") != nullptr) GTEST_SKIP() << "forced by the test";
  SUCCEED();
}

}  // namespace
