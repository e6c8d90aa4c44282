#include "runtime/thread.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <string>

#include "runtime/worker.h"

namespace ramjet::runtime {
namespace {

// Restores the default (no handler) however the test ends.
struct HandlerGuard {
  ~HandlerGuard() { set_thread_failure_handler(nullptr); }
};

TEST(RunGuarded, AnEscapingExceptionIsReportedWithTheThreadName) {
  HandlerGuard guard;
  std::string seen;
  set_thread_failure_handler([&](std::string_view name, std::string_view what) {
    seen = std::string(name) + ": " + std::string(what);
  });
  run_guarded("worker 3", [] { throw std::runtime_error("no ring"); });
  EXPECT_EQ(seen, "worker 3: no ring");
  seen.clear();
  run_guarded("quiet", [] {});
  EXPECT_EQ(seen, "");
}

TEST(StartWorkerThread, ARingThatCannotBeCreatedIsAnErrorAndNothingRuns) {
  // More entries than io_uring allows (32768) without IORING_SETUP_CLAMP: EINVAL,
  // the same path as EPERM under a seccomp profile, on any kernel.
  Worker w(0, 1u << 20);
  std::atomic<bool> ran{false};
  auto t = start_worker_thread(w, "too big", [&] { ran = true; });
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, EINVAL);
  EXPECT_EQ(t.error().message.rfind("io_uring is unavailable: io_uring_setup: ", 0), 0u)
      << t.error().message;
  EXPECT_FALSE(ran);
}

TEST(StartWorkerThread, TheBodyRunsOnTheThreadThatOwnsTheRing) {
  Worker w(0, 64);
  std::atomic<bool> stopped{false};
  w.spawn([](Worker& worker, std::atomic<bool>& flag) -> Task<void> {
    co_await worker.sleep(std::chrono::milliseconds(1));
    flag = true;
    worker.stop();
  }(w, stopped));
  auto t = start_worker_thread(w, "ok", [&] { w.run(); });
  ASSERT_TRUE(t.ok()) << t.error().message;
  t->join();
  EXPECT_TRUE(stopped);
}

TEST(ProbeIoUring, SucceedsWhereIoUringWorks) {
  auto r = probe_io_uring();
  EXPECT_TRUE(r.ok()) << r.error().message;
}

}  // namespace
}  // namespace ramjet::runtime
