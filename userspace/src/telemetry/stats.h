// Engine counters, declared once. The same list feeds the admin API, the logs,
// (later) Prometheus and the tests, which assert on these names.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

namespace ramjet::telemetry {

// X(name, help)
#define RAMJET_ENGINE_COUNTERS(X)                                                       \
  X(connections_accepted, "Downstream connections accepted")                            \
  X(connections_active, "Downstream connections open now (gauge)")                      \
  X(connections_closed, "Downstream connections closed, for any reason")                \
  X(connections_rejected, "Connections closed at once: server.max_connections reached") \
  X(accept_paused, "Times accepting paused because file descriptors ran out")           \
  X(ingress_blocked, "Connections an IngressHook blocked")                              \
  X(egress_blocked, "Connections an EgressHook blocked")                                \
  X(egress_refused_private, "Connections the egress guard refused (private ranges)")    \
  X(dns_queries, "DNS questions sent (A and AAAA count separately)")                    \
  X(dns_cache_hits, "Name resolutions answered from the cache")                         \
  X(dns_cache_misses, "Name resolutions that needed the network")                       \
  X(dns_failures, "Name resolutions that failed")                                       \
  X(dns_fallback_used, "Questions re-asked of the fallback servers")                    \
  X(connect_attempts, "Upstream connection attempts (one per address tried)")           \
  X(connect_failures, "Connections for which every upstream attempt failed")            \
  X(connect_timeouts, "Connections whose upstream connect timed out")                   \
  X(idle_timeouts, "Connections closed for idleness")                                   \
  X(max_lifetime_closes, "Connections closed at endpoint.max_lifetime")                 \
  X(drain_forced_closes, "Connections closed because the drain deadline passed")        \
  X(bytes_from_client, "Bytes relayed from downstream to upstream")                     \
  X(bytes_to_client, "Bytes relayed from upstream to downstream")                       \
  X(http_requests, "HTTP requests received on http endpoints (CONNECT included)")       \
  X(http_connect_tunnels, "CONNECT tunnels established")                                \
  X(upstream_reused, "Requests sent on an idle keep-alive upstream connection")         \
  X(http_client_errors, "Requests the proxy refused itself: 4xx, 501, 505")             \
  X(http_upstream_errors, "Requests failed upstream, answered 502 or 504 by the proxy")

enum class Counter : unsigned {
#define RAMJET_X(name, help) name,
  RAMJET_ENGINE_COUNTERS(RAMJET_X)
#undef RAMJET_X
      kCount
};

inline constexpr std::size_t kCounterCount = static_cast<std::size_t>(Counter::kCount);

inline constexpr std::array<std::string_view, kCounterCount> kCounterNames = {
#define RAMJET_X(name, help) #name,
    RAMJET_ENGINE_COUNTERS(RAMJET_X)
#undef RAMJET_X
};

inline constexpr std::array<std::string_view, kCounterCount> kCounterHelp = {
#define RAMJET_X(name, help) help,
    RAMJET_ENGINE_COUNTERS(RAMJET_X)
#undef RAMJET_X
};

// One block per worker, written only by that worker (relaxed), read by anyone.
struct alignas(64) WorkerStats {
  std::array<std::atomic<std::int64_t>, kCounterCount> values{};

  void add(Counter c, std::int64_t n = 1) {
    values[static_cast<unsigned>(c)].fetch_add(n, std::memory_order_relaxed);
  }
};

// All workers' blocks; workers register at start-up, before any reader runs.
class StatsRegistry {
 public:
  static constexpr unsigned kMaxWorkers = 256;
  WorkerStats& worker(unsigned i) { return blocks_[i]; }
  void set_worker_count(unsigned n) { workers_ = n; }
  std::int64_t total(Counter c) const {
    std::int64_t sum = 0;
    for (unsigned i = 0; i < workers_; ++i)
      sum += blocks_[i].values[static_cast<unsigned>(c)].load(std::memory_order_relaxed);
    return sum;
  }

 private:
  std::array<WorkerStats, kMaxWorkers> blocks_{};
  unsigned workers_ = 0;
};

StatsRegistry& stats();

}  // namespace ramjet::telemetry
