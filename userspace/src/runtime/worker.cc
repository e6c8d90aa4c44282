#include "runtime/worker.h"

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

namespace ramjet::runtime {

namespace {
thread_local Worker* tls_current = nullptr;

// Why io_uring_setup failed, with the usual causes named.
std::string io_uring_unavailable(int err) {
  std::string why = std::string("io_uring is unavailable: io_uring_setup: ") + strerror(err);
  if (err != EPERM && err != ENOSYS) return why;
  char mode = '0';
  if (std::FILE* f = std::fopen("/proc/sys/kernel/io_uring_disabled", "r")) {
    mode = static_cast<char>(std::fgetc(f));
    std::fclose(f);
  }
  if (mode == '2') return why + " (sysctl kernel.io_uring_disabled=2)";
  if (mode == '1')
    return why + " (sysctl kernel.io_uring_disabled=1: only members of kernel.io_uring_group)";
  return why + " (a seccomp profile denies it, as container runtimes' defaults may; ramjet needs "
               "io_uring)";
}

__kernel_timespec to_timespec(std::chrono::nanoseconds d) {
  __kernel_timespec ts{};
  ts.tv_sec = d.count() / 1'000'000'000;
  ts.tv_nsec = d.count() % 1'000'000'000;
  return ts;
}
}  // namespace

// ---------------------------------------------------------------- OpAwaitable

OpAwaitable&& OpAwaitable::with_timeout(std::chrono::nanoseconds d) && {
  timed_ = true;
  timeout_ = d;
  return std::move(*this);
}

OpAwaitable& OpAwaitable::with_timeout(std::chrono::nanoseconds d) & {
  timed_ = true;
  timeout_ = d;
  return *this;
}

void OpAwaitable::await_suspend(std::coroutine_handle<> h) {
  op.waiter = h;
  if (slot != nullptr) {
    if (slot->cancelled_) {
      // Already cancelled: turn the prepared SQE into a no-op and report ECANCELED.
      pre_cancelled_ = true;
      io_uring_prep_nop(sqe);
    } else {
      slot->worker_ = worker;
      slot->op_ = &op;
    }
  }
  if (is_sleep_ && !pre_cancelled_) io_uring_prep_timeout(sqe, &sleep_ts_, 0, 0);
  io_uring_sqe_set_data(sqe, &op);
  if (head_sqe_ != nullptr) {
    head_op_.on_cqe = &OpAwaitable::on_head_failed;
    head_op_.owner = this;
    io_uring_sqe_set_data(head_sqe_, &head_op_);
  }
  if (timed_ && !pre_cancelled_) worker->add_deadline(this);
}

std::coroutine_handle<> OpAwaitable::on_head_failed(Op* op, int res, std::uint32_t) {
  auto* self = static_cast<OpAwaitable*>(op->owner);
  self->head_error_ = res < 0 ? res : -EPIPE;  // a short send also cuts the chain
  self->op.res = -ECANCELED;
  self->op.done = true;
  return self->op.waiter;
}

int OpAwaitable::await_resume() noexcept {
  if (slot != nullptr && slot->op_ == &op) slot->op_ = nullptr;
  if (dl_linked_) worker->remove_deadline(this);
  if (pre_cancelled_) return -ECANCELED;
  if (timed_out_ && op.res == -ECANCELED) return -ETIMEDOUT;
  return op.res;
}

void CancelSlot::cancel() {
  cancelled_ = true;
  // A completed op may not be resumed yet (same CQE batch): never cancel it, its
  // address may soon belong to a new operation.
  if (worker_ != nullptr && op_ != nullptr && !op_->done) worker_->cancel_op(op_);
}

// ---------------------------------------------------------------- Worker

Worker::Worker(unsigned index, unsigned ring_entries) : index_(index), ring_entries_(ring_entries) {
  // Blocking on purpose: io_uring then waits for a value instead of failing with EAGAIN.
  wake_fd_ = eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + strerror(errno));
}

Worker::~Worker() {
  if (wake_fd_ >= 0) ::close(wake_fd_);
  if (ring_ready_) io_uring_queue_exit(&ring_);
}

Result<void> Worker::open() {
  if (ring_ready_) return {};
  io_uring_params p{};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL;
  int rc = io_uring_queue_init_params(ring_entries_, &ring_, &p);
  if (rc < 0 && rc != -EPERM && rc != -ENOSYS) {
    // Kernels before 6.1 lack DEFER_TASKRUN: a plain ring works, a little slower.
    std::memset(&p, 0, sizeof p);
    rc = io_uring_queue_init_params(ring_entries_, &ring_, &p);
  }
  if (rc < 0) return Error::kernel(-rc, io_uring_unavailable(-rc));
  ring_ready_ = true;
  return {};
}
Result<void> probe_io_uring() {
  Worker probe(0, 8);
  return probe.open();
}

Worker* Worker::current() {
  return tls_current;
}

io_uring_sqe* Worker::get_sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

// ---------------------------------------------------------------- deadline wheel

namespace {
std::int64_t tick_of(Clock::time_point t) {
  return t.time_since_epoch() / Worker::kDeadlineTick;
}
}  // namespace

void Worker::add_deadline(OpAwaitable* a) {
  auto now = Clock::now();
  if (deadlines_ == 0) wheel_tick_ = tick_of(now);
  // Rounded up: a deadline never expires early.
  auto at = now + a->timeout_;
  a->dl_tick_ = tick_of(at) + ((at.time_since_epoch() % kDeadlineTick).count() != 0 ? 1 : 0);
  OpAwaitable*& head = wheel_[static_cast<std::size_t>(a->dl_tick_) % kWheelSlots];
  a->dl_prev_ = nullptr;
  a->dl_next_ = head;
  if (head != nullptr) head->dl_prev_ = a;
  head = a;
  a->dl_linked_ = true;
  ++deadlines_;
  if (!tick_armed_) arm_tick();
}

void Worker::remove_deadline(OpAwaitable* a) {
  if (a->dl_prev_ != nullptr) {
    a->dl_prev_->dl_next_ = a->dl_next_;
  } else {
    wheel_[static_cast<std::size_t>(a->dl_tick_) % kWheelSlots] = a->dl_next_;
  }
  if (a->dl_next_ != nullptr) a->dl_next_->dl_prev_ = a->dl_prev_;
  a->dl_prev_ = a->dl_next_ = nullptr;
  a->dl_linked_ = false;
  --deadlines_;
}

// Runs after a batch of completions is marked done and before any is resumed, so an
// operation whose completion is in the batch is never cancelled (its address may be
// a new operation's by the time a cancel reached the kernel).
void Worker::expire_deadlines() {
  std::int64_t now = tick_of(Clock::now());
  std::int64_t last = std::min(now, wheel_tick_ + static_cast<std::int64_t>(kWheelSlots));
  for (std::int64_t t = wheel_tick_ + 1; t <= last; ++t) {
    OpAwaitable* a = wheel_[static_cast<std::size_t>(t) % kWheelSlots];
    while (a != nullptr) {
      OpAwaitable* next = a->dl_next_;
      if (a->dl_tick_ <= now) {
        remove_deadline(a);
        if (!a->op.done) {
          a->timed_out_ = true;
          cancel_op(&a->op);
        }
      }
      a = next;
    }
  }
  wheel_tick_ = now;
}

void Worker::arm_tick() {
  tick_ts_ = to_timespec(kDeadlineTick);
  tick_op_.on_cqe = &Worker::on_tick;
  tick_op_.owner = this;
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_timeout(sqe, &tick_ts_, 0, 0);
  io_uring_sqe_set_data(sqe, &tick_op_);
  tick_armed_ = true;
}

std::coroutine_handle<> Worker::on_tick(Op* op, int, std::uint32_t) {
  auto* self = static_cast<Worker*>(op->owner);
  self->tick_armed_ = false;
  self->tick_fired_ = true;
  return {};
}

void Worker::cancel_op(Op* op) {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_cancel(sqe, op, 0);
  io_uring_sqe_set_data(sqe, nullptr);
}

void Worker::cancel_fd(int fd) {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
  io_uring_sqe_set_data(sqe, nullptr);
}

void Worker::post(std::function<void()> fn) {
  {
    std::lock_guard lock(posted_mu_);
    posted_.push_back(std::move(fn));
  }
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

void Worker::stop() {
  stopping_.store(true, std::memory_order_release);
  post([] {});
}

void Worker::spawn(Task<void> task) {
  if (!running_) {
    pending_spawn_.push_back(std::move(task));
    return;
  }
  detach(std::move(task));
}

void Worker::drain_posted() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard lock(posted_mu_);
    batch.swap(posted_);
  }
  for (auto& fn : batch) fn();
}

Task<void> Worker::wake_loop() {
  std::uint64_t value = 0;
  // stop() sets stopping_ before it writes the eventfd, so this loop always sees it.
  while (!stopping_.load(std::memory_order_acquire)) {
    int n = co_await read_wake(value);
    if (n < 0 && n != -EINTR) break;
    drain_posted();
  }
  wake_done_ = true;
}

OpAwaitable Worker::read_wake(std::uint64_t& value) {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_read(sqe, wake_fd_, &value, sizeof value, 0);
  return OpAwaitable{this, sqe};
}

void Worker::run() {
  if (auto r = open(); !r.ok()) throw std::runtime_error(r.error().message);
  tls_current = this;
  running_ = true;
  detach(wake_loop());
  for (auto& t : pending_spawn_) detach(std::move(t));
  pending_spawn_.clear();

  constexpr unsigned kBatch = 256;
  io_uring_cqe* cqes[kBatch];
  std::coroutine_handle<> ready[kBatch];
  unsigned looks = 0;
  while (!wake_done_) {
    int rc;
    if (!drained_.empty() && looks < kDrainLooks) {
      // Someone gathers: run the kernel's pending work (with DEFER_TASKRUN, receives on
      // ready sockets) and take what it completes, without waiting.
      ++looks;
      rc = io_uring_submit_and_get_events(&ring_);
    } else {
      run_drained();
      looks = 0;
      rc = io_uring_submit_and_wait(&ring_, 1);
    }
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) break;
    unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, kBatch);
    if (n == 0 && !drained_.empty()) {
      run_drained();  // nothing more came: the batch is over
      looks = 0;
      continue;
    }
    unsigned nready = 0;
    for (unsigned i = 0; i < n; ++i) {
      auto* op = static_cast<Op*>(io_uring_cqe_get_data(cqes[i]));
      if (op == nullptr) continue;  // cancel requests and linked timeouts
      if (op->on_cqe != nullptr) {
        if (auto h = op->on_cqe(op, cqes[i]->res, cqes[i]->flags)) ready[nready++] = h;
        continue;
      }
      op->res = cqes[i]->res;
      op->flags = cqes[i]->flags;
      op->done = true;
      ready[nready++] = op->waiter;
    }
    io_uring_cq_advance(&ring_, n);
    if (tick_fired_) {
      tick_fired_ = false;
      expire_deadlines();
      if (deadlines_ > 0) arm_tick();
    }
    // Resume after advancing: a resumed coroutine may submit and reap again.
    for (unsigned i = 0; i < nready; ++i) ready[i].resume();
    while (!deferred_.empty()) {
      std::vector<std::coroutine_handle<>> now;
      now.swap(deferred_);
      for (auto h : now) h.resume();
    }
  }
  run_drained();
  drain_posted();
  running_ = false;
  tls_current = nullptr;
}

void Worker::when_drained(Drainable* d) {
  if (d->queued_) return;
  d->queued_ = true;
  drained_.push_back(d);
}

void Worker::forget_drained(Drainable* d) {
  if (!d->queued_) return;
  d->queued_ = false;
  std::replace(drained_.begin(), drained_.end(), d, static_cast<Drainable*>(nullptr));
}

void Worker::run_drained() {
  // By index: a drained() may queue another (appended, run in this pass) or forget one
  // (its slot is cleared: its owner may be gone).
  for (std::size_t i = 0; i < drained_.size(); ++i) {
    Drainable* d = std::exchange(drained_[i], nullptr);
    if (d == nullptr) continue;
    d->queued_ = false;
    d->drained();
  }
  drained_.clear();
}

OpAwaitable Worker::accept(int fd, sockaddr* addr, socklen_t* len, int flags) {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_accept(sqe, fd, addr, len, flags);
  return OpAwaitable{this, sqe};
}

OpAwaitable Worker::connect(int fd, const sockaddr* addr, socklen_t len, CancelSlot* slot) {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_connect(sqe, fd, addr, len);
  return OpAwaitable{this, sqe, slot};
}

OpAwaitable Worker::recv(int fd, void* buf, std::size_t len, int flags) {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_recv(sqe, fd, buf, len, flags);
  return OpAwaitable{this, sqe};
}

OpAwaitable Worker::send(int fd, const void* buf, std::size_t len, int flags) {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_send(sqe, fd, buf, len, flags);
  return OpAwaitable{this, sqe};
}

OpAwaitable Worker::recvmsg(int fd, msghdr* msg, unsigned flags) {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_recvmsg(sqe, fd, msg, flags);
  return OpAwaitable{this, sqe};
}

OpAwaitable Worker::sendmsg(int fd, const msghdr* msg, unsigned flags) {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_sendmsg(sqe, fd, msg, flags);
  return OpAwaitable{this, sqe};
}

OpAwaitable Worker::recv_select(int fd, std::uint16_t group, std::size_t len) {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_recv(sqe, fd, nullptr, len, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = group;
  return OpAwaitable{this, sqe};
}

OpAwaitable Worker::send_then_recv_select(int send_fd, const void* buf, std::size_t len,
                                          int recv_fd, std::uint16_t group,
                                          std::size_t recv_len) {
  // Both SQEs in one submission: a link cut at a submission boundary would not hold.
  if (io_uring_sq_space_left(&ring_) < 2) io_uring_submit(&ring_);
  io_uring_sqe* send = get_sqe();
  io_uring_prep_send(send, send_fd, buf, len, MSG_NOSIGNAL | MSG_WAITALL);
  send->flags |= IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
  OpAwaitable a = recv_select(recv_fd, group, recv_len);
  a.head_sqe_ = send;  // its user data is set in await_suspend, at the final address
  return a;
}

OpAwaitable Worker::poll(int fd, short events, CancelSlot* slot) {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_poll_add(sqe, fd, static_cast<unsigned>(events));
  return OpAwaitable{this, sqe, slot};
}

OpAwaitable Worker::splice(int fd_in, int fd_out, unsigned len, unsigned flags) {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_splice(sqe, fd_in, -1, fd_out, -1, len, flags);
  return OpAwaitable{this, sqe};
}

OpAwaitable Worker::close(int fd) {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_close(sqe, fd);
  return OpAwaitable{this, sqe};
}

OpAwaitable Worker::sleep(std::chrono::nanoseconds d, CancelSlot* slot) {
  io_uring_sqe* sqe = get_sqe();
  OpAwaitable a{this, sqe, slot};
  // Prepared in await_suspend, once the awaitable (and its timespec) has its final address.
  a.is_sleep_ = true;
  a.sleep_ts_ = to_timespec(d);
  return a;
}

// ---------------------------------------------------------------- MultishotAccept

MultishotAccept::MultishotAccept(Worker& w, int listen_fd) : worker_(w), fd_(listen_fd) {
  op_.on_cqe = &MultishotAccept::on_cqe;
  op_.owner = this;
}

void MultishotAccept::arm() {
  if (armed_) return;
  io_uring_sqe* sqe = worker_.get_sqe();
  io_uring_prep_multishot_accept(sqe, fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  io_uring_sqe_set_data(sqe, &op_);
  armed_ = true;
}

void MultishotAccept::cancel() {
  if (armed_) worker_.cancel_op(&op_);
}

std::coroutine_handle<> MultishotAccept::on_cqe(Op* op, int res, std::uint32_t flags) {
  auto* self = static_cast<MultishotAccept*>(op->owner);
  if (!(flags & IORING_CQE_F_MORE)) self->armed_ = false;
  self->results_.push_back(res);
  return std::exchange(self->waiter_, {});
}

// ---------------------------------------------------------------- MultishotRecvmsg

MultishotRecvmsg::MultishotRecvmsg(Worker& w, int fd, std::uint16_t group, unsigned name_len)
    : worker_(w), fd_(fd), group_(group) {
  shape_.msg_namelen = name_len;
  op_.on_cqe = &MultishotRecvmsg::on_cqe;
  op_.owner = this;
}

void MultishotRecvmsg::arm() {
  if (armed_) return;
  io_uring_sqe* sqe = worker_.get_sqe();
  io_uring_prep_recvmsg_multishot(sqe, fd_, &shape_, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = group_;
  io_uring_sqe_set_data(sqe, &op_);
  armed_ = true;
}

void MultishotRecvmsg::cancel() {
  if (armed_) worker_.cancel_op(&op_);
}

std::coroutine_handle<> MultishotRecvmsg::on_cqe(Op* op, int res, std::uint32_t flags) {
  auto* self = static_cast<MultishotRecvmsg*>(op->owner);
  if (!(flags & IORING_CQE_F_MORE)) self->armed_ = false;
  self->results_.push_back({res, flags});
  return std::exchange(self->waiter_, {});
}

// ---------------------------------------------------------------- BufferRing

BufferRing::BufferRing(Worker& w, std::uint16_t group, unsigned count, unsigned size)
    : worker_(w), group_(group), count_(count), size_(size), mask_(count - 1) {
  if (count == 0 || (count & (count - 1)) != 0)
    throw std::invalid_argument("BufferRing count must be a power of two");
  ring_bytes_ = sizeof(io_uring_buf) * count;
  void* mem =
      mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) throw std::runtime_error("BufferRing: mmap failed");
  ring_ = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_ring_init(ring_);
  // liburing 2.3 has no io_uring_setup_buf_ring: register by hand.
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uint64_t>(ring_);
  reg.ring_entries = count;
  reg.bgid = group;
  int rc = io_uring_register_buf_ring(w.ring(), &reg, 0);
  if (rc < 0) {
    munmap(ring_, ring_bytes_);
    throw std::runtime_error(std::string("io_uring_register_buf_ring: ") + strerror(-rc));
  }
  base_ = static_cast<std::uint8_t*>(::operator new(std::size_t(count) * size));
  for (unsigned i = 0; i < count; ++i)
    io_uring_buf_ring_add(ring_, buffer(i), size, static_cast<unsigned short>(i), mask_,
                          static_cast<int>(i));
  io_uring_buf_ring_advance(ring_, static_cast<int>(count));
}

BufferRing::~BufferRing() {
  io_uring_unregister_buf_ring(worker_.ring(), group_);
  munmap(ring_, ring_bytes_);
  ::operator delete(base_);
}

void BufferRing::recycle(unsigned id) {
  io_uring_buf_ring_add(ring_, buffer(id), size_, static_cast<unsigned short>(id), mask_, 0);
  io_uring_buf_ring_advance(ring_, 1);
}

// ---------------------------------------------------------------- JoinSet, Event

void JoinSet::start(Task<void> child) {
  ++pending_;
  detach(run_child(std::move(child)));
}

Task<void> JoinSet::run_child(Task<void> child) {
  co_await std::move(child);
  if (--pending_ == 0 && waiter_) {
    auto w = std::exchange(waiter_, {});
    w.resume();
  }
}

void Event::set() {
  if (set_) return;
  set_ = true;
  auto waiters = std::move(waiters_);
  for (auto h : waiters) h.resume();
}

}  // namespace ramjet::runtime
