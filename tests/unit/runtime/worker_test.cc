#include "runtime/worker.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

namespace ramjet::runtime {
namespace {

using namespace std::chrono_literals;

// Runs `body` as a task on a fresh worker and returns when the worker stops.
template <typename F>
void run_on_worker(F body) {
  Worker w(0, 256);
  w.spawn(body(w));
  w.run();
}

TEST(Worker, SleepWaitsAtLeastTheDuration) {
  std::chrono::nanoseconds elapsed{};
  run_on_worker([&](Worker& w) -> Task<void> {
    auto t0 = Clock::now();
    int rc = co_await w.sleep(30ms);
    EXPECT_EQ(rc, -ETIME);  // io_uring reports an expired timeout as -ETIME
    elapsed = Clock::now() - t0;
    w.stop();
  });
  EXPECT_GE(elapsed, 30ms);
  EXPECT_LT(elapsed, 2s);
}

Task<void> cancel_after(Worker& w, CancelSlot& slot, std::chrono::milliseconds d) {
  co_await w.sleep(d);
  slot.cancel();
}

TEST(Worker, CancelSlotEndsASleepEarly) {
  std::chrono::nanoseconds elapsed{};
  int result = 0;
  run_on_worker([&](Worker& w) -> Task<void> {
    CancelSlot slot;
    w.spawn(cancel_after(w, slot, 10ms));
    auto t0 = Clock::now();
    result = co_await w.sleep(10s, &slot);
    elapsed = Clock::now() - t0;
    w.stop();
  });
  EXPECT_EQ(result, -ECANCELED);
  EXPECT_LT(elapsed, 5s);
}

TEST(Worker, PreCancelledSlotCompletesAtOnce) {
  int result = 0;
  run_on_worker([&](Worker& w) -> Task<void> {
    CancelSlot slot;
    slot.cancel();
    result = co_await w.sleep(10s, &slot);
    w.stop();
  });
  EXPECT_EQ(result, -ECANCELED);
}

TEST(Worker, LinkedTimeoutGivesEtimedout) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  int result = 0;
  run_on_worker([&](Worker& w) -> Task<void> {
    char buf[8];
    result = co_await w.recv(fds[0], buf, sizeof buf).with_timeout(20ms);
    w.stop();
  });
  EXPECT_EQ(result, -ETIMEDOUT);
  ::close(fds[0]);
  ::close(fds[1]);
}

Task<void> recv_with_timeout(Worker& w, int fd, std::chrono::milliseconds d, int& result,
                             std::chrono::nanoseconds& elapsed) {
  char buf[8];
  auto t0 = Clock::now();
  result = co_await w.recv(fd, buf, sizeof buf).with_timeout(d);
  elapsed = Clock::now() - t0;
}

Task<void> send_after(Worker& w, int fd, std::chrono::milliseconds d) {
  co_await w.sleep(d);
  co_await w.send(fd, "x", 1);
}

// Deadlines share the worker's wheel: each expires on its own, never early, and an
// operation that completes in time keeps its result.
TEST(Worker, TimeoutsExpireIndependently) {
  int a[2], b[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
  int short_rc = 0, long_rc = 0, answered_rc = 0;
  std::chrono::nanoseconds short_t{}, long_t{}, answered_t{};
  int c[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, c), 0);
  run_on_worker([&](Worker& w) -> Task<void> {
    JoinSet js;
    js.start(recv_with_timeout(w, a[0], 30ms, short_rc, short_t));
    js.start(recv_with_timeout(w, b[0], 120ms, long_rc, long_t));
    js.start(recv_with_timeout(w, c[0], 5s, answered_rc, answered_t));
    js.start(send_after(w, c[1], 60ms));
    co_await js.wait();
    w.stop();
  });
  EXPECT_EQ(short_rc, -ETIMEDOUT);
  EXPECT_GE(short_t, 30ms);
  EXPECT_EQ(long_rc, -ETIMEDOUT);
  EXPECT_GE(long_t, 120ms);
  EXPECT_EQ(answered_rc, 1);
  EXPECT_LT(answered_t, 2s);
  for (int fd : {a[0], a[1], b[0], b[1], c[0], c[1]}) ::close(fd);
}

TEST(Worker, SendAndRecvOverASocketPair) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  std::string got;
  run_on_worker([&](Worker& w) -> Task<void> {
    const char msg[] = "hello ring";
    int n = co_await w.send(fds[0], msg, sizeof msg - 1);
    EXPECT_EQ(n, static_cast<int>(sizeof msg - 1));
    char buf[64];
    int m = co_await w.recv(fds[1], buf, sizeof buf);
    if (m > 0) got.assign(buf, static_cast<std::size_t>(m));
    w.stop();
  });
  EXPECT_EQ(got, "hello ring");
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(Worker, PostRunsOnTheWorkerThread) {
  Worker w(0, 64);
  std::thread::id ran_on;
  std::thread t([&] { w.run(); });
  auto worker_thread = t.get_id();
  w.post([&] {
    ran_on = std::this_thread::get_id();
    w.stop();
  });
  t.join();
  EXPECT_EQ(ran_on, worker_thread);
}

// Records how many datagrams had been received each time the ring was drained.
struct DrainRecorder final : Drainable {
  const int* seen = nullptr;
  std::vector<int> at;
  std::function<void()> then;
  void drained() override {
    at.push_back(*seen);
    if (then) then();
  }
};

TEST(Worker, WhenDrainedRunsOnceTheReadyCompletionsAreTaken) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM, 0, fds), 0);
  constexpr int kQueued = 100;
  for (int i = 0; i < kQueued; ++i) ASSERT_EQ(::send(fds[0], "x", 1, 0), 1);
  int seen = 0;
  DrainRecorder gather;
  gather.seen = &seen;
  DrainRecorder forgotten;
  forgotten.seen = &seen;
  run_on_worker([&](Worker& w) -> Task<void> {
    // One receive in flight at a time: each look of the loop completes one.
    gather.then = [&] {
      if (seen == kQueued) (void)::send(fds[0], "e", 1, 0);
    };
    char c = 0;
    while (c != 'e') {
      if (co_await w.recv(fds[1], &c, 1) != 1) break;
      if (c == 'x') ++seen;
      w.when_drained(&gather);
      w.when_drained(&forgotten);
      w.forget_drained(&forgotten);
    }
    w.stop();
  });
  ASSERT_FALSE(gather.at.empty());
  EXPECT_EQ(gather.at.back(), kQueued);
  // Never more than the look budget between two calls, though more was always ready.
  int prev = 0;
  for (int n : gather.at) {
    EXPECT_LE(n - prev, static_cast<int>(Worker::kDrainLooks) + 1);
    prev = n;
  }
  EXPECT_GE(gather.at.size(), kQueued / (Worker::kDrainLooks + 1));
  EXPECT_TRUE(forgotten.at.empty());
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(Worker, ProvidedBufferRingHandsOutAndRecyclesBuffers) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  std::vector<std::string> got;
  run_on_worker([&](Worker& w) -> Task<void> {
    BufferRing ring(w, 7, 2, 128);
    for (int i = 0; i < 5; ++i) {  // more receives than buffers: recycling must work
      std::string msg = "msg" + std::to_string(i);
      [[maybe_unused]] auto n = ::send(fds[0], msg.data(), msg.size(), 0);
      auto r = w.recv_select(fds[1], ring.group(), 128);
      int len = co_await r;
      EXPECT_GT(len, 0);
      if (len <= 0) break;
      unsigned id = r.op.flags >> IORING_CQE_BUFFER_SHIFT;
      got.emplace_back(reinterpret_cast<char*>(ring.buffer(id)), static_cast<std::size_t>(len));
      ring.recycle(id);
    }
    w.stop();
  });
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[4], "msg4");
  ::close(fds[0]);
  ::close(fds[1]);
}

// A relay hop: the send and the receive behind it go in one submission.
TEST(Worker, SendThenReceiveRunsInOrder) {
  int out[2], in[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, out), 0);
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, in), 0);
  int result = 0, send_error = 0;
  std::string received;
  run_on_worker([&](Worker& w) -> Task<void> {
    BufferRing ring(w, 3, 2, 64);
    [[maybe_unused]] auto n = ::send(in[0], "reply", 5, 0);
    auto r = w.send_then_recv_select(out[0], "request", 7, in[1], ring.group(), 64);
    result = co_await r;
    send_error = r.send_error();
    if (result > 0)
      received.assign(reinterpret_cast<char*>(ring.buffer(r.op.flags >> IORING_CQE_BUFFER_SHIFT)),
                      static_cast<std::size_t>(result));
    w.stop();
  });
  EXPECT_EQ(result, 5);
  EXPECT_EQ(send_error, 0);
  EXPECT_EQ(received, "reply");
  char buf[16];
  EXPECT_EQ(::recv(out[1], buf, sizeof buf, MSG_DONTWAIT), 7);
  for (int fd : {out[0], out[1], in[0], in[1]}) ::close(fd);
}

// The kernel posts nothing for a receive linked behind a failed send; the awaitable
// must still end, with the send's error.
TEST(Worker, SendThenReceiveEndsWhenTheSendFails) {
  int out[2], in[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, out), 0);
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, in), 0);
  ::close(out[1]);
  int result = 0, send_error = 0;
  run_on_worker([&](Worker& w) -> Task<void> {
    BufferRing ring(w, 3, 2, 64);
    auto r = w.send_then_recv_select(out[0], "request", 7, in[1], ring.group(), 64);
    result = co_await r;
    send_error = r.send_error();
    w.stop();
  });
  EXPECT_EQ(result, -ECANCELED);
  EXPECT_EQ(send_error, -EPIPE);
  for (int fd : {out[0], in[0], in[1]}) ::close(fd);
}

TEST(Worker, MultishotAcceptYieldsEveryConnection) {
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(lfd, 16), 0);
  socklen_t len = sizeof sa;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &len);
  std::vector<int> clients;
  for (int i = 0; i < 3; ++i) {
    int c = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(::connect(c, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    clients.push_back(c);
  }
  int accepted = 0;
  bool ended_on_cancel = false;
  run_on_worker([&](Worker& w) -> Task<void> {
    MultishotAccept acc(w, lfd);
    acc.arm();
    while (accepted < 3) {
      int fd = co_await acc.next();
      EXPECT_GE(fd, 0);
      if (fd < 0) break;
      ::close(fd);
      ++accepted;
    }
    acc.cancel();
    while (acc.armed()) {
      int r = co_await acc.next();
      if (r == -ECANCELED) ended_on_cancel = true;
    }
    w.stop();
  });
  EXPECT_EQ(accepted, 3);
  EXPECT_TRUE(ended_on_cancel);
  for (int c : clients) ::close(c);
  ::close(lfd);
}

Task<void> child(Worker& w, int& counter, std::chrono::milliseconds d) {
  co_await w.sleep(d);
  ++counter;
}

TEST(JoinSet, WaitsForAllChildren) {
  int counter = 0;
  run_on_worker([&](Worker& w) -> Task<void> {
    JoinSet js;
    js.start(child(w, counter, 5ms));
    js.start(child(w, counter, 15ms));
    js.start(child(w, counter, 1ms));
    co_await js.wait();
    EXPECT_EQ(counter, 3);
    w.stop();
  });
  EXPECT_EQ(counter, 3);
}

}  // namespace
}  // namespace ramjet::runtime
