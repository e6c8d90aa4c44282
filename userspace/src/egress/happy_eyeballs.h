// RFC 8305 (Happy Eyeballs v2) connection racing.
//
// The race is written against ConnectEnv so its timing can be tested with a fake
// clock; the engine's env connects real sockets on the worker.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "ramjet/net.h"
#include "ramjet/result.h"
#include "ramjet/task.h"
#include "runtime/worker.h"

namespace ramjet::egress {

enum class Preference : std::uint8_t { kIpv6, kIpv4 };

// RFC 8305 section 4: alternate address families, starting with the preferred one
// (First Address Family Count 1). Order within a family is kept; duplicates go.
std::vector<IpAddress> sort_for_happy_eyeballs(std::vector<IpAddress> addrs, Preference prefer);

class ConnectEnv {
 public:
  virtual ~ConnectEnv() = default;
  virtual runtime::Clock::time_point now() = 0;
  // One attempt to addr: completes with a connected fd (>= 0) or -errno. Must finish
  // promptly (-ECANCELED) after slot.cancel().
  virtual Task<int> attempt(const SocketAddress& addr, runtime::CancelSlot& slot) = 0;
  // Completes with 0 after d, or -ECANCELED promptly after slot.cancel().
  virtual Task<int> sleep(std::chrono::nanoseconds d, runtime::CancelSlot& slot) = 0;
  // For losers that connected after the winner.
  virtual void close_fd(int fd) = 0;
  // Starts a concurrent task on the same worker (it may run until its first suspension
  // before spawn returns).
  virtual void spawn(Task<void> t) = 0;
};

struct RaceSettings {
  std::chrono::milliseconds connection_attempt_delay{250};
  std::chrono::milliseconds connect_timeout{5000};
};

struct RaceResult {
  int fd;
  SocketAddress addr;
  unsigned attempts;                  // attempts started
  std::chrono::microseconds elapsed;  // until the winner connected
};

// Races connections to addrs in the given order (sort them first): the next attempt
// starts when connection_attempt_delay passes without success, or at once when an
// attempt fails (RFC 8305 section 5). The first connected attempt wins; the others
// are cancelled and awaited, and any fd they still produce is closed, so no attempt
// outlives the returned task.
//
// Errors (Error::upstream, message led by the RFC 9209 proxy-status type):
//   "connection_timeout: ..."         connect_timeout passed; code ETIMEDOUT, retryable
//   "connection_refused: ..."         every attempt failed; code = the last errno
//   "destination_ip_unroutable: ..."  likewise, when the last errno says unreachable,
//                                     or there was no address at all
Task<Result<RaceResult>> race_connect(ConnectEnv& env, std::vector<SocketAddress> addrs,
                                      RaceSettings s);

}  // namespace ramjet::egress
