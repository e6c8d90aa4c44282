#include "telemetry/stats.h"

namespace ramjet::telemetry {

void StatsRegistry::configure(unsigned workers, std::vector<std::string> endpoints) {
  workers_ = workers;
  endpoints_ = std::move(endpoints);
  std::size_t rows = std::size_t(workers) * endpoints_.size();
  // make_unique<T[]> value-initialises: every counter starts at zero.
  rows_ = rows > 0 ? std::make_unique<CounterRow[]>(rows) : nullptr;
}

std::int64_t StatsRegistry::total(Counter c) const {
  std::int64_t sum = 0;
  std::size_t rows = std::size_t(workers_) * endpoints_.size();
  for (std::size_t i = 0; i < rows; ++i) sum += rows_[i].get(c);
  return sum;
}

StatsSnapshot StatsRegistry::snapshot() const {
  StatsSnapshot s;
  s.endpoints = endpoints_;
  s.per_endpoint.assign(endpoints_.size(), {});
  for (unsigned w = 0; w < workers_; ++w) {
    for (std::size_t e = 0; e < endpoints_.size(); ++e) {
      const CounterRow& row = rows_[std::size_t(w) * endpoints_.size() + e];
      for (std::size_t c = 0; c < kCounterCount; ++c)
        s.per_endpoint[e][c] += row.values[c].load(std::memory_order_relaxed);
    }
  }
  return s;
}

StatsRegistry& stats() {
  static StatsRegistry registry;
  return registry;
}

}  // namespace ramjet::telemetry
