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
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ramjet/net.h"
#include "runtime/stream.h"
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

  // An idle connection to one of `addresses` (tried in order); -1 if none. Sets
  // `which` to its address. With `probe`, only one the server has not closed (nor sent
  // anything on) meanwhile, at the cost of a recv(MSG_PEEK) system call; without, the
  // caller must be able to send its request again on a new connection.
  int take(const std::vector<SocketAddress>& addresses, SocketAddress& which, bool probe = true) {
    return take(addresses, which, probe, {}).fd;
  }
  // Keeps `fd` (at a message boundary, nothing unread) for reuse; closes it if full.
  void put(const SocketAddress& address, int fd) { put(address, fd, nullptr, {}); }

  // TLS connections are pooled with their session: `tls` is the stream over `fd`, and
  // `reuse_key` says what else the connection is bound to (see UpstreamLink::reuse_key);
  // take() hands one back only for the same key. A plaintext connection has tls ==
  // nullptr.
  struct Pooled {
    int fd = -1;
    std::unique_ptr<runtime::Stream> tls;
  };
  Pooled take(const std::vector<SocketAddress>& addresses, SocketAddress& which, bool probe,
              std::string_view reuse_key);
  void put(const SocketAddress& address, int fd, std::unique_ptr<runtime::Stream> tls,
           std::string reuse_key);
  std::size_t idle() const { return total_; }

 private:
  struct Idle {
    int fd;
    runtime::Clock::time_point since;
    std::unique_ptr<runtime::Stream> tls;
    std::string reuse_key;
  };
  // Keyed by the address itself: formatting it as text per request cost a malloc
  // and an inet_ntop (sprintf) on every keep-alive request.
  struct AddressHash {
    std::size_t operator()(const SocketAddress& a) const noexcept;
  };
  Limits limits_;
  std::unordered_map<SocketAddress, std::deque<Idle>, AddressHash> idle_;
  std::size_t total_ = 0;
};

}  // namespace ramjet::proxy
