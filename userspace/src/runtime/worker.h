// Worker: one thread, one io_uring, many coroutines.
//
// Every I/O operation is an awaitable whose completion token (Op) lives in the
// awaiting coroutine's frame. The frame cannot go away while the operation is in
// flight, because the coroutine stays suspended until the CQE arrives - even after a
// cancel, which only makes the CQE arrive sooner (with -ECANCELED). That is the whole
// lifetime rule; nothing is reference counted.
//
// Results follow the kernel's convention: >= 0 on success, -errno on failure.
#pragma once

#include <liburing.h>
#include <poll.h>

#include <array>
#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <vector>

#include "ramjet/result.h"
#include "ramjet/task.h"

namespace ramjet::runtime {

using Clock = std::chrono::steady_clock;

class Worker;

// The completion token of one submitted operation.
struct Op {
  std::coroutine_handle<> waiter;
  int res = 0;
  std::uint32_t flags = 0;  // CQE flags (IORING_CQE_F_BUFFER etc.)
  bool done = false;
  // Multishot operations see every CQE through this instead of the default
  // store-and-resume; it returns the coroutine to resume, if any.
  std::coroutine_handle<> (*on_cqe)(Op* self, int res, std::uint32_t flags) = nullptr;
  void* owner = nullptr;
};

// Lets one coroutine cancel another's in-flight operation (connect races, timers).
// Use one slot per operation: once cancelled, a slot stays cancelled.
// The awaiting side registers its Op while suspended; cancel() asks the kernel to
// finish it early. Cancelling when nothing is in flight only marks the slot, and
// the next operation started through it completes at once with -ECANCELED.
class CancelSlot {
 public:
  void cancel();
  bool cancelled() const { return cancelled_; }

 private:
  friend class Worker;
  friend struct OpAwaitable;
  Worker* worker_ = nullptr;
  Op* op_ = nullptr;
  bool cancelled_ = false;
};

// Awaitable for one io_uring operation. Worker methods prepare the SQE at once and
// return this; co_await it immediately (nothing may take another SQE in between).
struct [[nodiscard]] OpAwaitable {
  Worker* worker = nullptr;
  io_uring_sqe* sqe = nullptr;
  CancelSlot* slot = nullptr;
  Op op{};

  // Adds a timeout: if the operation is not done within d it is cancelled and the
  // result is -ETIMEDOUT. Deadlines are kept by the worker's deadline wheel (see
  // Worker), not by a kernel timer per operation: they expire up to one wheel tick late.
  OpAwaitable&& with_timeout(std::chrono::nanoseconds d) &&;
  // For an awaitable kept in a variable (to read op.flags after co_await it).
  OpAwaitable& with_timeout(std::chrono::nanoseconds d) &;

  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h);
  int await_resume() noexcept;

  // Internal state, public only so Worker methods can brace-initialise the awaitable.
  bool timed_ = false;
  bool is_sleep_ = false;
  bool pre_cancelled_ = false;
  bool timed_out_ = false;  // the deadline wheel cancelled it
  std::chrono::nanoseconds timeout_{};
  // The timespec is read by the kernel at submission, which happens while this
  // awaitable sits in the suspended coroutine's frame; so it lives here.
  __kernel_timespec sleep_ts_{};
  // send_then_recv_select: the send linked ahead of this receive. It completes only when
  // it fails, and then the kernel posts nothing for the receive (a skipped chain): the
  // send's completion ends this awaitable with -ECANCELED and send_error() set.
  io_uring_sqe* head_sqe_ = nullptr;
  Op head_op_{};
  int head_error_ = 0;
  int send_error() const { return head_error_; }
  static std::coroutine_handle<> on_head_failed(Op* op, int res, std::uint32_t flags);
  // Links in the worker's deadline wheel while the operation is in flight.
  OpAwaitable* dl_prev_ = nullptr;
  OpAwaitable* dl_next_ = nullptr;
  std::int64_t dl_tick_ = 0;
  bool dl_linked_ = false;
};

// Work a consumer gathered from many completions and sends at once (the UDP on-ramp's
// datagrams for one upstream, in one GSO send): see Worker::when_drained.
class Drainable {
 public:
  virtual void drained() = 0;

 protected:
  ~Drainable() = default;

 private:
  friend class Worker;
  bool queued_ = false;
};

// One thread's event loop. Timeouts on operations (with_timeout) live in a hashed
// wheel of kDeadlineTick buckets: adding and removing one is a few pointer writes, and
// one kernel timeout per tick is armed only while some deadline is pending. A kernel
// linked timeout per operation (two SQEs, an hrtimer and a second CQE for every
// receive) cost about 4% of the CPU of a keep-alive HTTP request.
class Worker {
 public:
  static constexpr std::chrono::milliseconds kDeadlineTick{10};
  static constexpr unsigned kWheelSlots = 256;  // 2.56 s a revolution; longer ones go round

  // The ring itself is created by run(), on the thread that will own it
  // (IORING_SETUP_SINGLE_ISSUER ties a ring to the thread that first submits).
  explicit Worker(unsigned index, unsigned ring_entries = 4096);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // The worker whose loop is running on this thread, or nullptr.
  static Worker* current();
  unsigned index() const { return index_; }
  Clock::time_point now() const { return Clock::now(); }

  // Creates the ring on the calling thread, which must be the one that calls run()
  // (a no-op once done). The error says why io_uring is unavailable (e.g.
  // kernel.io_uring_disabled, a seccomp profile).
  Result<void> open();
  // Runs the event loop on the calling thread until stop(). Tasks started with
  // spawn() before run() begin when the loop starts. Opens the ring first if
  // open() was not called; throws std::runtime_error if that fails.
  void run();
  // Thread-safe: ends run() after the current batch of completions.
  void stop();
  // Thread-safe: runs fn on this worker's thread, inside its loop.
  void post(std::function<void()> fn);
  // Starts a task on this worker (call from this worker's thread, or before run()).
  void spawn(Task<void> task);
  // Resumes `h` once the coroutines woken by this turn of the loop have run (this
  // worker's thread only): what they produce meanwhile is seen by `h` at once, e.g. a
  // writer sends every frame of the turn in one write.
  void defer(std::coroutine_handle<> h) { deferred_.push_back(h); }
  // Calls d->drained() once the loop has handed out every completion the kernel has
  // ready: it looks again without waiting (at most kDrainLooks times, which bounds the
  // delay) and calls it before it waits. What many completions gathered leaves as one
  // batch, as large as the load makes it (a NAPI budget, in userspace). Once per call;
  // forget_drained() before `d` goes away.
  static constexpr unsigned kDrainLooks = 8;
  void when_drained(Drainable* d);
  void forget_drained(Drainable* d);

  // --- operations (call from this worker's thread) ---
  OpAwaitable accept(int fd, sockaddr* addr, socklen_t* len, int flags = SOCK_CLOEXEC);
  OpAwaitable connect(int fd, const sockaddr* addr, socklen_t len, CancelSlot* slot = nullptr);
  OpAwaitable recv(int fd, void* buf, std::size_t len, int flags = 0);
  OpAwaitable send(int fd, const void* buf, std::size_t len, int flags = MSG_NOSIGNAL);
  // One datagram with its address (`msg` and what it points to live in the caller's frame).
  OpAwaitable recvmsg(int fd, msghdr* msg, unsigned flags = 0);
  OpAwaitable sendmsg(int fd, const msghdr* msg, unsigned flags = MSG_NOSIGNAL);
  // Receive into a buffer chosen by the kernel from `group` (see BufferRing).
  // On success res is the length and the buffer id is (flags >> IORING_CQE_BUFFER_SHIFT).
  OpAwaitable recv_select(int fd, std::uint16_t group, std::size_t len);
  // Sends all of [buf, buf + len) on send_fd, then receives as recv_select on recv_fd once
  // the send is done, in one submission: a relay hop costs one io_uring_enter and one
  // completion. When the send fails the result is -ECANCELED and the awaitable's
  // send_error() says why. When it completes, the send is over either way.
  OpAwaitable send_then_recv_select(int send_fd, const void* buf, std::size_t len, int recv_fd,
                                    std::uint16_t group, std::size_t recv_len);
  // One-shot readiness: returns the revents mask, or -errno.
  OpAwaitable poll(int fd, short events, CancelSlot* slot = nullptr);
  OpAwaitable splice(int fd_in, int fd_out, unsigned len, unsigned flags);
  OpAwaitable close(int fd);
  // Completes with 0 when the time has passed, -ECANCELED if cancelled via slot.
  OpAwaitable sleep(std::chrono::nanoseconds d, CancelSlot* slot = nullptr);
  // Cancels every operation in flight on fd (their CQEs report -ECANCELED).
  void cancel_fd(int fd);

  io_uring* ring() { return &ring_; }

 private:
  friend struct OpAwaitable;
  friend class CancelSlot;
  friend class MultishotAccept;
  friend class MultishotRecvmsg;
  io_uring_sqe* get_sqe();
  void cancel_op(Op* op);
  void add_deadline(OpAwaitable* a);
  void remove_deadline(OpAwaitable* a);
  void expire_deadlines();
  void arm_tick();
  static std::coroutine_handle<> on_tick(Op* op, int res, std::uint32_t flags);
  void drain_posted();
  Task<void> wake_loop();
  OpAwaitable read_wake(std::uint64_t& value);

  unsigned index_;
  unsigned ring_entries_;
  io_uring ring_{};
  bool ring_ready_ = false;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::mutex posted_mu_;
  std::vector<std::function<void()>> posted_;
  std::vector<Task<void>> pending_spawn_;
  std::vector<std::coroutine_handle<>> deferred_;
  std::vector<Drainable*> drained_;
  void run_drained();
  bool running_ = false;
  bool wake_done_ = false;
  // The deadline wheel: bucket t % kWheelSlots holds the operations whose deadline is
  // tick t (ticks of kDeadlineTick on the steady clock), doubly linked.
  std::array<OpAwaitable*, kWheelSlots> wheel_{};
  std::size_t deadlines_ = 0;
  std::int64_t wheel_tick_ = 0;  // every tick up to this one has been expired
  Op tick_op_{};
  __kernel_timespec tick_ts_{};
  bool tick_armed_ = false;
  bool tick_fired_ = false;
};

// Creates and closes a ring on the calling thread: whether io_uring is usable here
// at all (see Worker::open), checked before anything else starts.
Result<void> probe_io_uring();

// Multishot accept on one listening socket: one SQE yields a CQE per accepted
// connection. next() returns the next fd (or -errno). The kernel ends the stream on
// an error or cancel, and after a success it could not follow up (a full CQ ring);
// armed() turns false when that CQE is reaped, possibly with earlier results still
// queued for next(). The owner re-arms or stops once idle(). The owner
// must not destroy it while armed().
class MultishotAccept {
 public:
  MultishotAccept(Worker& w, int listen_fd);
  MultishotAccept(const MultishotAccept&) = delete;
  MultishotAccept& operator=(const MultishotAccept&) = delete;

  void arm();
  void cancel();
  bool armed() const { return armed_; }
  // Nothing armed and nothing left for next(): awaiting next() now would never return.
  bool idle() const { return !armed_ && results_.empty(); }

  auto next() {
    struct Awaiter {
      MultishotAccept* a;
      bool await_ready() const noexcept { return !a->results_.empty(); }
      void await_suspend(std::coroutine_handle<> h) noexcept { a->waiter_ = h; }
      int await_resume() noexcept {
        int r = a->results_.front();
        a->results_.pop_front();
        return r;
      }
    };
    return Awaiter{this};
  }

 private:
  static std::coroutine_handle<> on_cqe(Op* op, int res, std::uint32_t flags);
  Worker& worker_;
  int fd_;
  Op op_;
  bool armed_ = false;
  std::deque<int> results_;
  std::coroutine_handle<> waiter_;
};

// Multishot recvmsg on one datagram socket with buffers from a BufferRing: one SQE yields
// a CQE per datagram, each in a buffer laid out as io_uring_recvmsg_out, then the source
// address (name_len bytes), then the payload (see liburing's io_uring_recvmsg_*). next()
// returns {res, flags}: res < 0 is an error, else the buffer id is
// flags >> IORING_CQE_BUFFER_SHIFT and the owner recycles it. Arming, idle() and
// armed() are as for MultishotAccept; -ENOBUFS (no free buffer) ends the stream.
class MultishotRecvmsg {
 public:
  // `name_len`: room for the source address (sizeof(sockaddr_storage) is plenty).
  MultishotRecvmsg(Worker& w, int fd, std::uint16_t group, unsigned name_len);
  MultishotRecvmsg(const MultishotRecvmsg&) = delete;
  MultishotRecvmsg& operator=(const MultishotRecvmsg&) = delete;

  void arm();
  void cancel();
  bool armed() const { return armed_; }
  bool idle() const { return !armed_ && results_.empty(); }
  // The header multishot receives were armed with, for io_uring_recvmsg_validate.
  msghdr* shape() { return &shape_; }

  struct Completion {
    int res;
    std::uint32_t flags;
  };
  auto next() {
    struct Awaiter {
      MultishotRecvmsg* m;
      bool await_ready() const noexcept { return !m->results_.empty(); }
      void await_suspend(std::coroutine_handle<> h) noexcept { m->waiter_ = h; }
      Completion await_resume() noexcept {
        Completion c = m->results_.front();
        m->results_.pop_front();
        return c;
      }
    };
    return Awaiter{this};
  }

 private:
  static std::coroutine_handle<> on_cqe(Op* op, int res, std::uint32_t flags);
  Worker& worker_;
  int fd_;
  std::uint16_t group_;
  msghdr shape_{};
  Op op_;
  bool armed_ = false;
  std::deque<Completion> results_;
  std::coroutine_handle<> waiter_;
};

// A provided-buffer ring (IORING_REGISTER_PBUF_RING): receives pick a free buffer
// only when data arrives, so idle connections hold no receive memory.
class BufferRing {
 public:
  BufferRing(Worker& w, std::uint16_t group, unsigned count, unsigned size);
  ~BufferRing();
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  std::uint16_t group() const { return group_; }
  unsigned buffer_size() const { return size_; }
  std::uint8_t* buffer(unsigned id) { return base_ + std::size_t(id) * size_; }
  // Hands buffer `id` back to the kernel once its contents are consumed.
  void recycle(unsigned id);

 private:
  Worker& worker_;
  io_uring_buf_ring* ring_ = nullptr;
  std::uint8_t* base_ = nullptr;
  std::size_t ring_bytes_ = 0;
  std::uint16_t group_;
  unsigned count_;
  unsigned size_;
  unsigned mask_;
};

// Waits for a group of child tasks started with start(); wait() resumes when all
// have finished. Children run on the current worker.
class JoinSet {
 public:
  void start(Task<void> child);
  auto wait() {
    struct Awaiter {
      JoinSet* js;
      bool await_ready() const noexcept { return js->pending_ == 0; }
      void await_suspend(std::coroutine_handle<> h) noexcept { js->waiter_ = h; }
      void await_resume() const noexcept {}
    };
    return Awaiter{this};
  }
  std::size_t pending() const { return pending_; }

 private:
  Task<void> run_child(Task<void> child);
  std::size_t pending_ = 0;
  std::coroutine_handle<> waiter_;
};

// A one-shot event between coroutines on one worker: wait() suspends until set().
class Event {
 public:
  void set();
  bool is_set() const { return set_; }
  auto wait() {
    struct Awaiter {
      Event* ev;
      bool await_ready() const noexcept { return ev->set_; }
      void await_suspend(std::coroutine_handle<> h) { ev->waiters_.push_back(h); }
      void await_resume() const noexcept {}
    };
    return Awaiter{this};
  }

 private:
  bool set_ = false;
  std::vector<std::coroutine_handle<>> waiters_;
};

}  // namespace ramjet::runtime
