// Task<T>: a lazy C++20 coroutine. It starts when awaited and resumes its awaiter
// by symmetric transfer when it finishes. Hooks that may wait return Task<T>.
//
// Task is single-threaded: a task and its awaiter run on the same worker. Work for
// another worker goes through Worker::post().
#pragma once

#include <array>
#include <coroutine>
#include <cstddef>
#include <cstdlib>
#include <new>
#include <exception>
#include <optional>
#include <utility>

namespace ramjet {

template <typename T>
class Task;

namespace detail {

struct FinalAwaiter {
  bool await_ready() const noexcept { return false; }
  template <typename P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) const noexcept {
    auto next = h.promise().continuation_;
    return next ? next : std::noop_coroutine();
  }
  void await_resume() const noexcept {}
};

// Coroutine frames are allocated and freed for every call of a Task function, several
// per request on the data path, and the larger ones miss malloc's per-thread cache. So
// frames up to kMaxSize are kept for reuse in per-thread free lists, one per power-of-two
// size class (at most kKeep each); a frame freed on another thread joins that thread's.
class FrameCache {
 public:
  static constexpr std::size_t kMinShift = 6;  // 64 B
  static constexpr std::size_t kClasses = 9;   // ... 16 KiB
  static constexpr std::size_t kMaxSize = std::size_t{1} << (kMinShift + kClasses - 1);
  static constexpr unsigned kKeep = 256;

  static void* allocate(std::size_t n) {
    if (!enabled() || n > kMaxSize) return ::operator new(n);
    std::size_t c = size_class(n);
    Bin& bin = local().bins_[c];
    if (bin.head != nullptr) {
      Block* b = bin.head;
      bin.head = b->next;
      --bin.count;
      return b;
    }
    return ::operator new(std::size_t{1} << (kMinShift + c));
  }
  static void release(void* p, std::size_t n) noexcept {
    if (!enabled() || n > kMaxSize) return ::operator delete(p);
    Bin& bin = local().bins_[size_class(n)];
    if (bin.count >= kKeep) return ::operator delete(p);
    auto* b = static_cast<Block*>(p);
    b->next = bin.head;
    bin.head = b;
    ++bin.count;
  }

 private:
  struct Block {
    Block* next;
  };
  struct Bin {
    Block* head = nullptr;
    unsigned count = 0;
  };
  static std::size_t size_class(std::size_t n) {
    std::size_t c = 0;
    while ((std::size_t{1} << (kMinShift + c)) < n) ++c;
    return c;
  }
  // Off under AddressSanitizer (it must see every frame's use after free), and for a
  // frame freed while its thread is exiting, after the cache itself is gone.
  static bool& gone() {
    thread_local bool g = false;  // trivially destructible: valid to the thread's end
    return g;
  }
  static bool enabled() {
#if defined(__SANITIZE_ADDRESS__)
    return false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return false;
#else
    return !gone();
#endif
#else
    return !gone();
#endif
  }
  static FrameCache& local() {
    thread_local FrameCache cache;
    return cache;
  }
  ~FrameCache() {
    gone() = true;
    for (Bin& bin : bins_) {
      while (bin.head != nullptr) {
        Block* b = bin.head;
        bin.head = b->next;
        ::operator delete(b);
      }
    }
  }
  std::array<Bin, kClasses> bins_{};
};

struct PromiseBase {
  static void* operator new(std::size_t n) { return FrameCache::allocate(n); }
  static void operator delete(void* p, std::size_t n) noexcept { FrameCache::release(p, n); }
  std::coroutine_handle<> continuation_;
  std::suspend_always initial_suspend() const noexcept { return {}; }
  FinalAwaiter final_suspend() const noexcept { return {}; }
  // The data path does not throw; an escaped exception is a bug we want loudly.
  void unhandled_exception() const noexcept { std::terminate(); }
};

template <typename T>
struct Promise : PromiseBase {
  std::optional<T> value_;
  Task<T> get_return_object() noexcept;
  template <typename U>
  void return_value(U&& v) {
    value_.emplace(std::forward<U>(v));
  }
};

template <>
struct Promise<void> : PromiseBase {
  Task<void> get_return_object() noexcept;
  void return_void() const noexcept {}
};

}  // namespace detail

template <typename T = void>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::Promise<T>;
  using Handle = std::coroutine_handle<promise_type>;

  Task() = default;
  explicit Task(Handle h) : h_(h) {}
  Task(Task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  Task& operator=(Task&& o) noexcept {
    if (this != &o) {
      if (h_) h_.destroy();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() {
    if (h_) h_.destroy();
  }

  bool valid() const { return static_cast<bool>(h_); }

  auto operator co_await() && noexcept {
    struct Awaiter {
      Handle h;
      bool await_ready() const noexcept { return !h || h.done(); }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
        h.promise().continuation_ = awaiting;
        return h;
      }
      T await_resume() {
        if constexpr (!std::is_void_v<T>) return std::move(*h.promise().value_);
      }
    };
    return Awaiter{h_};
  }

  // Gives up ownership; used by detach().
  Handle release() { return std::exchange(h_, {}); }

 private:
  Handle h_;
};

namespace detail {
template <typename T>
Task<T> Promise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}
inline Task<void> Promise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}

// A fire-and-forget coroutine that owns itself and frees its frame when done.
struct Detached {
  struct promise_type {
    Detached get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() const noexcept { return {}; }
    std::suspend_never final_suspend() const noexcept { return {}; }
    void return_void() const noexcept {}
    void unhandled_exception() const noexcept { std::terminate(); }
  };
};

inline Detached run_detached(Task<void> t) {
  co_await std::move(t);
}
}  // namespace detail

// Starts a task now, on the calling thread; it owns itself until it finishes.
inline void detach(Task<void> t) {
  detail::run_detached(std::move(t));
}

// A Task that completes immediately with a value: handy for hook defaults.
template <typename T>
Task<T> ready(T value) {
  co_return value;
}

}  // namespace ramjet
