#include "egress/happy_eyeballs.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

namespace ramjet::egress {

std::vector<IpAddress> sort_for_happy_eyeballs(std::vector<IpAddress> addrs, Preference prefer) {
  // One address (a configured upstream, a literal): nothing to order, and no lists to build
  // for every request.
  if (addrs.size() == 1) {
    addrs[0] = addrs[0].unmapped();
    return addrs;
  }
  std::vector<IpAddress> first;
  std::vector<IpAddress> second;
  const IpAddress::Family preferred =
      prefer == Preference::kIpv6 ? IpAddress::Family::kV6 : IpAddress::Family::kV4;
  for (const IpAddress& raw : addrs) {
    IpAddress a = raw.unmapped();
    auto& list = a.family() == preferred ? first : second;
    if (std::find(list.begin(), list.end(), a) == list.end()) list.push_back(a);
  }
  std::vector<IpAddress> out;
  out.reserve(first.size() + second.size());
  for (std::size_t i = 0; i < std::max(first.size(), second.size()); ++i) {
    if (i < first.size()) out.push_back(first[i]);
    if (i < second.size()) out.push_back(second[i]);
  }
  return out;
}

namespace {

using runtime::Clock;

// State shared by race_connect and its attempts; lives in race_connect's frame,
// which outlives every attempt because race_connect awaits them all.
struct Race {
  explicit Race(ConnectEnv& e, std::size_t n) : env(e), slots(new runtime::CancelSlot[n]) {}

  ConnectEnv& env;
  // One slot per address, so the winner can cancel the rest.
  std::unique_ptr<runtime::CancelSlot[]> slots;
  std::vector<bool> running;
  unsigned in_flight = 0;
  bool decided = false;       // a winner was taken, or the race gave up
  bool failure_seen = false;  // an attempt failed since the last start
  int winner_fd = -1;
  std::size_t winner = 0;
  Clock::time_point won_at;
  int last_error = 0;
  std::size_t last_error_index = 0;
  runtime::CancelSlot* main_slot = nullptr;  // race_connect's current sleep

  void wake_main() {
    if (main_slot != nullptr) main_slot->cancel();
  }
};

Task<void> run_attempt(Race* race, std::size_t index, SocketAddress addr) {
  int r = co_await race->env.attempt(addr, race->slots[index]);
  race->running[index] = false;
  --race->in_flight;
  if (r >= 0) {
    if (race->decided) {
      race->env.close_fd(r);  // connected after the race was over
    } else {
      race->decided = true;
      race->winner_fd = r;
      race->winner = index;
      race->won_at = race->env.now();
    }
  } else if (r != -ECANCELED || !race->decided) {
    race->last_error = -r;
    race->last_error_index = index;
    race->failure_seen = true;
  }
  race->wake_main();
}

const char* proxy_status_for(int err) {
  switch (err) {
    case ENETUNREACH:
    case EHOSTUNREACH:
    case EADDRNOTAVAIL:
    case EAFNOSUPPORT:
      return "destination_ip_unroutable";
    case ETIMEDOUT:
      return "connection_timeout";
    default:
      return "connection_refused";
  }
}

std::string errno_text(int err) {
  const char* name = strerrorname_np(err);
  return std::string(name != nullptr ? name : "errno " + std::to_string(err)) + " (" +
         strerror(err) + ")";
}

}  // namespace

Task<Result<RaceResult>> race_connect(ConnectEnv& env, std::vector<SocketAddress> addrs,
                                      RaceSettings s) {
  if (addrs.empty())
    co_return Error::upstream("destination_ip_unroutable: no address to connect to", EHOSTUNREACH);
  const std::size_t n = addrs.size();
  Race race(env, n);
  race.running.assign(n, false);
  const Clock::time_point start = env.now();
  const Clock::time_point deadline = start + s.connect_timeout;
  std::size_t next = 0;
  Clock::time_point last_start = start;
  bool timed_out = false;

  while (!race.decided) {
    Clock::time_point now = env.now();
    if (now >= deadline) {
      timed_out = true;
      break;
    }
    if (next < n &&
        (next == 0 || race.failure_seen || now >= last_start + s.connection_attempt_delay)) {
      race.failure_seen = false;
      last_start = now;
      race.running[next] = true;
      ++race.in_flight;
      // May finish before spawn() returns (e.g. no route): the loop re-checks.
      env.spawn(run_attempt(&race, next, addrs[next]));
      ++next;
      continue;
    }
    if (next == n && race.in_flight == 0) break;  // all failed
    Clock::time_point wake = deadline;
    if (next < n) wake = std::min(wake, last_start + s.connection_attempt_delay);
    runtime::CancelSlot slot;
    race.main_slot = &slot;
    co_await env.sleep(wake - now, slot);
    race.main_slot = nullptr;
  }
  race.decided = true;

  // Nothing may outlive us: cancel the rest and wait until each has reported.
  for (std::size_t i = 0; i < n; ++i) {
    if (race.running[i]) race.slots[i].cancel();
  }
  while (race.in_flight > 0) {
    runtime::CancelSlot slot;
    race.main_slot = &slot;
    co_await env.sleep(std::chrono::hours(1), slot);
    race.main_slot = nullptr;
  }

  if (race.winner_fd >= 0) {
    co_return RaceResult{
        race.winner_fd, addrs[race.winner], static_cast<unsigned>(next),
        std::chrono::duration_cast<std::chrono::microseconds>(race.won_at - start)};
  }
  if (timed_out) {
    std::string msg = "connection_timeout: no connection within " +
                      std::to_string(s.connect_timeout.count()) + "ms after " +
                      std::to_string(next) + " of " + std::to_string(n) + " attempts";
    if (race.last_error != 0)
      msg += "; last failure " + addrs[race.last_error_index].to_string() + ": " +
             errno_text(race.last_error);
    co_return Error::upstream(std::move(msg), ETIMEDOUT, true);
  }
  const int err = race.last_error;
  co_return Error::upstream(std::string(proxy_status_for(err)) + ": all " + std::to_string(n) +
                                " attempts failed, last " +
                                addrs[race.last_error_index].to_string() + ": " + errno_text(err),
                            err, err == ETIMEDOUT);
}

}  // namespace ramjet::egress
