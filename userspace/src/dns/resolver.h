// Asynchronous DNS resolution on a worker's io_uring: c-ares builds, sends and parses
// queries; the worker watches c-ares' sockets (poll) and timers (sleep). No thread and
// no blocking call is involved after construction.
//
// resolve() asks for AAAA and A in parallel and returns following RFC 8305 section 3
// (Happy Eyeballs v2): as soon as a positive AAAA answer is in, or once a positive A
// answer has waited resolution_delay for AAAA, or when both are done. Answers that
// arrive after resolve() returned still fill the cache. Concurrent resolve() calls
// for one name share the questions in flight.
//
// One Resolver per worker, used only on that worker's thread.
#pragma once

#include <ares.h>

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dns/cache.h"
#include "ramjet/net.h"
#include "ramjet/result.h"
#include "ramjet/task.h"
#include "runtime/worker.h"

namespace ramjet::dns {

struct ResolverSettings {
  std::vector<SocketAddress> servers;           // empty: nameservers of /etc/resolv.conf
  std::vector<SocketAddress> fallback_servers;  // asked when the primaries fail
  std::chrono::milliseconds timeout{1000};      // per try (c-ares doubles it per round)
  unsigned attempts = 2;
  unsigned cache_size = 4096;
  std::chrono::milliseconds min_ttl{0}, max_ttl{3600000}, negative_ttl{30000};
  std::chrono::milliseconds resolution_delay{50};  // RFC 8305 section 3
};

// Counters the engine maps onto its global stats.
struct ResolverStats {
  std::uint64_t queries = 0;        // questions sent upstream (one per family per channel)
  std::uint64_t cache_hits = 0;     // resolve() calls served entirely from the cache
  std::uint64_t cache_misses = 0;   // resolve() calls that needed at least one question
  std::uint64_t failures = 0;       // resolve() calls that returned an error
  std::uint64_t fallback_used = 0;  // questions re-asked on the fallback servers
};

class Resolver {
 public:
  // Reads /etc/resolv.conf when settings.servers is empty (construction is the only
  // place that may block). Does not touch the worker's ring until the first resolve().
  static Result<std::unique_ptr<Resolver>> create(runtime::Worker& worker,
                                                  ResolverSettings settings);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Addresses for host, IPv6 first. An IP literal (brackets allowed) is returned as
  // is. Errors are Error::upstream whose message starts with the RFC 9209 proxy-status
  // type: "dns_timeout: ..." or "dns_error: ..." (e.g. "dns_error: NXDOMAIN for x").
  Task<Result<std::vector<IpAddress>>> resolve(std::string host);

  // Stops the resolver: pending resolve() calls fail, and the returned task finishes
  // once every resolve() call and every socket/timer coroutine has ended. Await it
  // before destroying the Resolver or stopping the worker.
  Task<void> close();

  const ResolverStats& stats() const { return stats_; }
  Cache& cache() { return cache_; }

  struct Outcome;  // public only so resolver.cc's helpers can name it

 private:
  struct Question;
  struct Waiter;
  struct SocketWatch;
  struct ChannelCtx;
  struct QueryCtx;
  // What background coroutines may touch after the Resolver is gone.
  struct Shared {
    bool stopped = false;
    std::size_t live = 0;  // running watch/timer loops and suspended resolve() calls
    std::vector<std::coroutine_handle<>> closers;  // close() calls waiting for live == 0
  };

  Resolver(runtime::Worker& worker, ResolverSettings settings);
  Result<void> init_channel(ChannelCtx& ctx, const std::vector<SocketAddress>& servers);

  std::shared_ptr<Question> question_for(const std::string& name, RecordType type);
  void send(const std::shared_ptr<Question>& q, bool fallback);
  void finish(Question& q);
  void ensure_timer();

  static void on_answer(void* arg, int status, int timeouts, unsigned char* abuf, int alen);
  static void on_sock_state(void* data, ares_socket_t fd, int readable, int writable);
  static Task<void> watch_loop(Resolver* self, std::shared_ptr<Shared> shared,
                               std::shared_ptr<SocketWatch> watch);
  static Task<void> timer_loop(Resolver* self, std::shared_ptr<Shared> shared);
  static void leave(const std::shared_ptr<Shared>& shared);
  void destroy_channels();

  runtime::Worker& worker_;
  ResolverSettings settings_;
  Cache cache_;
  ResolverStats stats_;
  std::shared_ptr<Shared> shared_;
  std::unique_ptr<ChannelCtx> primary_;
  std::unique_ptr<ChannelCtx> fallback_;  // null when no fallback servers are set

  struct KeyHash {
    std::size_t operator()(const std::pair<std::string, RecordType>& k) const {
      return std::hash<std::string>{}(k.first) * 31 + static_cast<std::size_t>(k.second);
    }
  };
  std::unordered_map<std::pair<std::string, RecordType>, std::shared_ptr<Question>, KeyHash>
      in_flight_questions_;
  std::unordered_map<int, std::shared_ptr<SocketWatch>> watches_;
  std::size_t pending_queries_ = 0;  // ares_query callbacks still to come
  bool timer_running_ = false;
  runtime::CancelSlot* timer_slot_ = nullptr;
};

}  // namespace ramjet::dns
