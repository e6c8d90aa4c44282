// Happy Eyeballs timing against a fake clock: every attempt and sleep completes when
// the test's scheduler advances fake time to it, so start times are exact.
#include "egress/happy_eyeballs.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ramjet::egress {
namespace {

using runtime::Clock;
using std::chrono::milliseconds;

class FakeEnv : public ConnectEnv {
 public:
  // What an attempt to one address does.
  struct Plan {
    milliseconds after{0};        // time from start to completion
    int result = -ECONNREFUSED;   // fd or -errno
    bool blackhole = false;       // never completes on its own
    bool ignores_cancel = false;  // completes with `result` even if cancelled (a CQE already
                                  // in flight when the cancel was asked for)
    bool synchronous = false;     // completes without suspending (e.g. no route)
  };
  struct Event {
    std::string addr;
    milliseconds at;
    int result = 0;
  };

  std::map<std::string, Plan> plans;
  std::vector<Event> started;
  std::vector<Event> finished;
  std::vector<int> closed;

  Clock::time_point now() override { return now_; }
  milliseconds elapsed() const { return std::chrono::duration_cast<milliseconds>(now_ - t0_); }

  Task<int> attempt(const SocketAddress& addr, runtime::CancelSlot& slot) override {
    std::string key = addr.to_string();
    started.push_back({key, elapsed()});
    Plan p;
    if (auto it = plans.find(key); it != plans.end()) p = it->second;
    int r = p.result;
    if (!p.synchronous)
      r = co_await Timer{this, now_ + p.after, p.blackhole, p.ignores_cancel, p.result, &slot};
    finished.push_back({key, elapsed(), r});
    co_return r;
  }

  Task<int> sleep(std::chrono::nanoseconds d, runtime::CancelSlot& slot) override {
    co_return co_await Timer{
        this, now_ + std::chrono::duration_cast<Clock::duration>(d), false, false, 0, &slot};
  }

  void close_fd(int fd) override { closed.push_back(fd); }
  void spawn(Task<void> t) override { detach(std::move(t)); }

  // Runs until *done: cancelled operations finish at the current instant, otherwise
  // time jumps to the earliest pending completion.
  void run_until(const bool& done) {
    while (!done) {
      Timer* pick = nullptr;
      for (Timer* t : timers_) {
        if (t->slot->cancelled() && !t->ignores_cancel) {
          pick = t;
          pick->res = -ECANCELED;
          break;
        }
      }
      if (pick == nullptr) {
        for (Timer* t : timers_) {
          if (!t->never && (pick == nullptr || t->at < pick->at)) pick = t;
        }
        if (pick == nullptr) {
          ADD_FAILURE() << "deadlock: nothing left to run";
          return;
        }
        now_ = std::max(now_, pick->at);
        pick->res = pick->result;
      }
      std::erase(timers_, pick);
      pick->h.resume();
    }
  }

  std::size_t pending() const { return timers_.size(); }

 private:
  // Lives in the awaiting coroutine's frame until resumed.
  struct Timer {
    FakeEnv* env;
    Clock::time_point at;
    bool never;
    bool ignores_cancel;
    int result;
    runtime::CancelSlot* slot;
    std::coroutine_handle<> h{};
    int res = 0;

    bool await_ready() {
      if (slot->cancelled() && !ignores_cancel) {
        res = -ECANCELED;
        return true;
      }
      return false;
    }
    void await_suspend(std::coroutine_handle<> handle) {
      h = handle;
      env->timers_.push_back(this);
    }
    int await_resume() const { return res; }
  };

  Clock::time_point t0_ = Clock::time_point{} + std::chrono::hours(1);
  Clock::time_point now_ = t0_;
  std::vector<Timer*> timers_;
};

Task<void> capture(Task<Result<RaceResult>> t, std::optional<Result<RaceResult>>* out, bool* done) {
  out->emplace(co_await std::move(t));
  *done = true;
}

SocketAddress addr(const char* s) {
  return *SocketAddress::parse(s);
}
IpAddress ip(const char* s) {
  return *IpAddress::parse(s);
}

Result<RaceResult> run_race(FakeEnv& env, std::vector<SocketAddress> addrs, RaceSettings s) {
  std::optional<Result<RaceResult>> out;
  bool done = false;
  detach(capture(race_connect(env, std::move(addrs), s), &out, &done));
  env.run_until(done);
  EXPECT_EQ(env.pending(), 0u) << "an operation outlived race_connect";
  if (!out) return Error::internal("race did not finish");
  return std::move(*out);
}

const char* kA = "192.0.2.1:443";
const char* kB = "[2001:db8::1]:443";
const char* kC = "192.0.2.3:443";

TEST(SortForHappyEyeballs, InterleavesStartingWithPreferredFamily) {
  std::vector<IpAddress> in = {ip("192.0.2.1"), ip("192.0.2.2"), ip("2001:db8::1"),
                               ip("2001:db8::2"), ip("192.0.2.3")};
  std::vector<IpAddress> v6_first = {ip("2001:db8::1"), ip("192.0.2.1"), ip("2001:db8::2"),
                                     ip("192.0.2.2"), ip("192.0.2.3")};
  std::vector<IpAddress> v4_first = {ip("192.0.2.1"), ip("2001:db8::1"), ip("192.0.2.2"),
                                     ip("2001:db8::2"), ip("192.0.2.3")};
  EXPECT_EQ(sort_for_happy_eyeballs(in, Preference::kIpv6), v6_first);
  EXPECT_EQ(sort_for_happy_eyeballs(in, Preference::kIpv4), v4_first);
}

TEST(SortForHappyEyeballs, OneFamilyDuplicatesAndMappedAddresses) {
  EXPECT_TRUE(sort_for_happy_eyeballs({}, Preference::kIpv6).empty());
  std::vector<IpAddress> only_v4 = {ip("192.0.2.1"), ip("192.0.2.2")};
  EXPECT_EQ(sort_for_happy_eyeballs(only_v4, Preference::kIpv6), only_v4);
  // ::ffff:192.0.2.1 is 192.0.2.1: an IPv4 destination, and a duplicate here.
  std::vector<IpAddress> in = {ip("192.0.2.1"), ip("::ffff:192.0.2.1"), ip("2001:db8::1"),
                               ip("2001:db8::1")};
  std::vector<IpAddress> want = {ip("2001:db8::1"), ip("192.0.2.1")};
  EXPECT_EQ(sort_for_happy_eyeballs(in, Preference::kIpv6), want);
}

TEST(RaceConnect, BlackholeThenNextAfterAttemptDelay) {
  FakeEnv env;
  env.plans[kA] = {.blackhole = true};
  env.plans[kB] = {.after = milliseconds(10), .result = 7};
  auto r = run_race(env, {addr(kA), addr(kB)}, {milliseconds(250), milliseconds(5000)});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->fd, 7);
  EXPECT_EQ(r->addr, addr(kB));
  EXPECT_EQ(r->attempts, 2u);
  EXPECT_EQ(r->elapsed, milliseconds(260));
  ASSERT_EQ(env.started.size(), 2u);
  EXPECT_EQ(env.started[0].at, milliseconds(0));
  EXPECT_EQ(env.started[1].at, milliseconds(250));
  // The blackholed attempt was cancelled when B won, and awaited.
  ASSERT_EQ(env.finished.size(), 2u);
  EXPECT_EQ(env.finished[1].addr, kA);
  EXPECT_EQ(env.finished[1].result, -ECANCELED);
  EXPECT_EQ(env.finished[1].at, milliseconds(260));
  EXPECT_TRUE(env.closed.empty());
}

TEST(RaceConnect, FailureStartsNextAttemptAtOnce) {
  FakeEnv env;
  env.plans[kA] = {.after = milliseconds(5), .result = -ECONNREFUSED};
  env.plans[kB] = {.after = milliseconds(10), .result = 8};
  auto r = run_race(env, {addr(kA), addr(kB)}, {});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->fd, 8);
  ASSERT_EQ(env.started.size(), 2u);
  EXPECT_EQ(env.started[1].at, milliseconds(5));
  EXPECT_EQ(r->elapsed, milliseconds(15));
}

TEST(RaceConnect, AttemptDelayRestartsFromAFailureTriggeredStart) {
  FakeEnv env;
  env.plans[kA] = {.after = milliseconds(5), .result = -ECONNREFUSED};
  env.plans[kB] = {.blackhole = true};
  env.plans[kC] = {.after = milliseconds(10), .result = 9};
  auto r = run_race(env, {addr(kA), addr(kB), addr(kC)}, {});
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(env.started.size(), 3u);
  EXPECT_EQ(env.started[1].at, milliseconds(5));
  EXPECT_EQ(env.started[2].at, milliseconds(255));
  EXPECT_EQ(r->elapsed, milliseconds(265));
  EXPECT_EQ(r->attempts, 3u);
}

TEST(RaceConnect, FailureOfAnOlderAttemptAlsoStartsTheNext) {
  FakeEnv env;
  env.plans[kA] = {.after = milliseconds(300), .result = -EHOSTUNREACH};
  env.plans[kB] = {.blackhole = true};
  env.plans[kC] = {.after = milliseconds(10), .result = 9};
  auto r = run_race(env, {addr(kA), addr(kB), addr(kC)}, {});
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(env.started.size(), 3u);
  EXPECT_EQ(env.started[1].at, milliseconds(250));
  EXPECT_EQ(env.started[2].at, milliseconds(300));
  EXPECT_EQ(r->elapsed, milliseconds(310));
}

TEST(RaceConnect, SynchronousFailureMovesOn) {
  FakeEnv env;
  env.plans[kA] = {.result = -ENETUNREACH, .synchronous = true};
  env.plans[kB] = {.after = milliseconds(10), .result = 4};
  auto r = run_race(env, {addr(kA), addr(kB)}, {});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(env.started[1].at, milliseconds(0));
  EXPECT_EQ(r->elapsed, milliseconds(10));
}

TEST(RaceConnect, OverallTimeoutCancelsEverything) {
  FakeEnv env;
  for (const char* a : {kA, kB, kC}) env.plans[a] = {.blackhole = true};
  auto r = run_race(env, {addr(kA), addr(kB), addr(kC)}, {milliseconds(250), milliseconds(600)});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message.rfind("connection_timeout: ", 0), 0u) << r.error().message;
  EXPECT_EQ(r.error().code, ETIMEDOUT);
  EXPECT_TRUE(r.error().retryable);
  EXPECT_EQ(r.error().source, ErrorSource::kUpstream);
  ASSERT_EQ(env.started.size(), 3u);
  EXPECT_EQ(env.started[0].at, milliseconds(0));
  EXPECT_EQ(env.started[1].at, milliseconds(250));
  EXPECT_EQ(env.started[2].at, milliseconds(500));
  ASSERT_EQ(env.finished.size(), 3u);
  for (const auto& f : env.finished) {
    EXPECT_EQ(f.result, -ECANCELED);
    EXPECT_EQ(f.at, milliseconds(600));
  }
}

TEST(RaceConnect, AllFailedReportsLastErrno) {
  FakeEnv env;
  env.plans[kA] = {.after = milliseconds(5), .result = -ECONNREFUSED};
  env.plans[kB] = {.after = milliseconds(3), .result = -ECONNREFUSED};
  auto r = run_race(env, {addr(kA), addr(kB)}, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message.rfind("connection_refused: ", 0), 0u) << r.error().message;
  EXPECT_NE(r.error().message.find("ECONNREFUSED"), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().code, ECONNREFUSED);
  EXPECT_EQ(env.elapsed(), milliseconds(8));

  FakeEnv env2;
  env2.plans[kA] = {.after = milliseconds(5), .result = -ECONNREFUSED};
  env2.plans[kB] = {.after = milliseconds(3), .result = -ENETUNREACH};
  auto r2 = run_race(env2, {addr(kA), addr(kB)}, {});
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().message.rfind("destination_ip_unroutable: ", 0), 0u) << r2.error().message;
  EXPECT_EQ(r2.error().code, ENETUNREACH);
}

TEST(RaceConnect, LoserThatConnectsAfterTheWinnerIsClosed) {
  FakeEnv env;
  env.plans[kA] = {.after = milliseconds(300), .result = 5, .ignores_cancel = true};
  env.plans[kB] = {.after = milliseconds(10), .result = 6};
  auto r = run_race(env, {addr(kA), addr(kB)}, {});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->fd, 6);
  EXPECT_EQ(r->elapsed, milliseconds(260));
  EXPECT_EQ(env.closed, std::vector<int>{5});
  // race_connect returned only once the loser had reported.
  EXPECT_EQ(env.elapsed(), milliseconds(300));
}

TEST(RaceConnect, SingleAddressAndNoAddress) {
  FakeEnv env;
  env.plans[kA] = {.after = milliseconds(42), .result = 3};
  auto r = run_race(env, {addr(kA)}, {});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->attempts, 1u);
  EXPECT_EQ(r->elapsed, milliseconds(42));

  FakeEnv env2;
  auto none = run_race(env2, {}, {});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().message.rfind("destination_ip_unroutable: ", 0), 0u);
}

}  // namespace
}  // namespace ramjet::egress
