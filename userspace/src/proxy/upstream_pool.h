// Idle keep-alive upstream connections of one worker, by peer address.
//
// Reuse never skips a decision: the egress chain's decide() runs for every request
// (hooks, DNS, guard), and only a connection to one of the addresses it allowed is
// taken. What reuse saves is the TCP handshake (and tcp_connect_override /
// handle_connection_established, which run per new connection).
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "ramjet/net.h"
#include "runtime/worker.h"

namespace ramjet::proxy {

class UpstreamPool {
 public:
  struct Limits {
    std::size_t max_idle = 1024;   // per worker
    std::size_t per_address = 1024;  // per upstream address
    std::chrono::milliseconds max_idle_time{30'000};
  };

  UpstreamPool() = default;
  explicit UpstreamPool(Limits limits) : limits_(limits) {}
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // An idle connection to one of `addresses` (tried in order) that the server has
  // not closed meanwhile; -1 if none. Sets `which` to its address.
  int take(const std::vector<SocketAddress>& addresses, SocketAddress& which);
  // Keeps `fd` (at a message boundary, nothing unread) for reuse; closes it if full.
  void put(const SocketAddress& address, int fd);
  std::size_t idle() const { return total_; }

 private:
  struct Idle {
    int fd;
    runtime::Clock::time_point since;
  };
  Limits limits_;
  std::unordered_map<std::string, std::deque<Idle>> idle_;
  std::size_t total_ = 0;
};

}  // namespace ramjet::proxy
