#include "runtime/thread.h"

#include <pthread.h>

#include <spdlog/spdlog.h>

#include <exception>
#include <future>
#include <memory>
#include <mutex>

#include "runtime/worker.h"

namespace ramjet::runtime {

namespace {

std::mutex& handler_mu() {
  static std::mutex mu;
  return mu;
}

ThreadFailureHandler& handler() {
  static ThreadFailureHandler h;
  return h;
}

void report(std::string_view name, std::string_view what) noexcept {
  spdlog::error("{} thread failed: {}", name, what);
  ThreadFailureHandler h;
  {
    std::lock_guard lock(handler_mu());
    h = handler();
  }
  if (h) h(name, what);
}

}  // namespace

void set_thread_failure_handler(ThreadFailureHandler h) {
  std::lock_guard lock(handler_mu());
  handler() = std::move(h);
}

void run_guarded(std::string_view name, const std::function<void()>& body) noexcept {
  try {
    body();
  } catch (const std::exception& e) {
    report(name, e.what());
  } catch (...) {
    report(name, "unknown exception");
  }
}

Result<std::thread> start_worker_thread(Worker& worker, std::string name,
                                        std::function<void()> body) {
  // Shared: set_value may still be running on the thread when the caller returns.
  auto opened = std::make_shared<std::promise<Result<void>>>();
  auto ready = opened->get_future();
  std::thread t([&worker, opened, name = std::move(name), body = std::move(body)] {
    // Named for top -H, gdb and crash reports (the kernel keeps 15 characters).
    ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
    Result<void> r = worker.open();
    bool ok = r.ok();
    opened->set_value(std::move(r));
    if (ok) run_guarded(name, body);
  });
  Result<void> r = ready.get();
  if (!r.ok()) {
    t.join();
    return r.error();
  }
  return Result<std::thread>(std::move(t));
}

}  // namespace ramjet::runtime
