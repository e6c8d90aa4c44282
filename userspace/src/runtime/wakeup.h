// Wakeup: a wake-up for one waiting coroutine that can be used again and again; a
// notify() with nobody waiting is kept for the next wait(). notify() resumes the waiter
// at once, inside the caller: call it where the caller's state may change under it
// (not from inside a library callback).
#pragma once

#include <coroutine>
#include <utility>

namespace ramjet::runtime {

class Wakeup {
 public:
  void notify() {
    if (waiter_) {
      std::exchange(waiter_, {}).resume();
    } else {
      pending_ = true;
    }
  }
  auto wait() {
    struct Awaiter {
      Wakeup* w;
      bool await_ready() const noexcept { return std::exchange(w->pending_, false); }
      void await_suspend(std::coroutine_handle<> h) noexcept { w->waiter_ = h; }
      void await_resume() const noexcept {}
    };
    return Awaiter{this};
  }
  bool waiting() const { return static_cast<bool>(waiter_); }
  // As notify(), but the waiter resumes at the end of the loop's turn (Worker::defer),
  // never inside the caller.
  template <typename Loop>
  void notify_later(Loop& loop) {
    if (waiter_) {
      loop.defer(std::exchange(waiter_, {}));
    } else {
      pending_ = true;
    }
  }

 private:
  std::coroutine_handle<> waiter_;
  bool pending_ = false;
};

}  // namespace ramjet::runtime
