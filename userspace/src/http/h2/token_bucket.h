// A token bucket over a caller-supplied clock: `burst` tokens at first and at most,
// `rate` more per second. Sans-I/O code passes the time in, so tests control it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace ramjet::http::h2 {

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  TokenBucket(std::uint32_t burst, std::uint32_t rate)
      : burst_(burst), rate_(rate), tokens_(burst) {}

  // Takes one token; false when none is left (the caller's limit is exceeded).
  bool take(Clock::time_point now) {
    refill(now);
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
  }

 private:
  void refill(Clock::time_point now) {
    if (last_ != Clock::time_point{} && now > last_) {
      double seconds = std::chrono::duration<double>(now - last_).count();
      tokens_ = std::min<double>(burst_, tokens_ + seconds * rate_);
    }
    last_ = now;
  }

  std::uint32_t burst_;
  std::uint32_t rate_;
  double tokens_;
  Clock::time_point last_{};
};

}  // namespace ramjet::http::h2
