// Hook trace: when telemetry.hook_trace is on, every hook invocation is recorded in
// order (hook, flow id, decision, duration), so tests and operators can see exactly
// which hooks ran and what they decided.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace ramjet::telemetry {

struct HookEvent {
  std::uint64_t seq = 0;
  std::string hook;  // e.g. "egress.handle_connection"
  std::uint64_t flow = 0;
  std::string endpoint;
  std::string decision;  // one word: "allow", "block", "direct", "continue", ... ("" for events)
  std::string detail;    // what the decision is about: a reason, an address
  std::chrono::microseconds duration{0};
  // When the hook was called: CLOCK_MONOTONIC (steady_clock) in ns, the clock of
  // the kernel's bpf_ktime_get_ns, so a trace lines up with datapath events.
  // 0 at record(): taken as "now - duration" (hooks are recorded when they return).
  std::uint64_t ts_ns = 0;
};

class HookTrace {
 public:
  void configure(bool enabled, std::size_t capacity) {
    enabled_ = enabled;
    capacity_ = capacity;
  }
  bool enabled() const { return enabled_; }

  void record(HookEvent ev) {
    if (ev.ts_ns == 0) {
      auto now = std::chrono::steady_clock::now().time_since_epoch() -
                 std::chrono::duration_cast<std::chrono::steady_clock::duration>(ev.duration);
      ev.ts_ns = static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(now).count());
    }
    std::lock_guard lock(mu_);
    ev.seq = ++seq_;
    events_.push_back(std::move(ev));
    while (events_.size() > capacity_) events_.pop_front();
  }
  std::vector<HookEvent> snapshot() const {
    std::lock_guard lock(mu_);
    return {events_.begin(), events_.end()};
  }

 private:
  bool enabled_ = false;
  std::size_t capacity_ = 10000;
  mutable std::mutex mu_;
  std::uint64_t seq_ = 0;
  std::deque<HookEvent> events_;
};

HookTrace& hook_trace();

}  // namespace ramjet::telemetry
