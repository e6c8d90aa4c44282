// Prometheus text exposition format 0.0.4: a writer that keeps the output valid,
// and the registry of sources a scrape asks for samples.
//
//   MetricsWriter w;
//   if (w.family("ramjet_connections_accepted_total", MetricType::kCounter, "Accepted"))
//     w.sample({{"endpoint", "front"}}, 12);
//   std::string body = std::move(w).text();
//
// Every family gets its # HELP and # TYPE lines once, and its samples follow them
// contiguously (the format requires it). Names are checked against the format's
// grammar and label values and help text are escaped, so no source can produce an
// exposition that a Prometheus server rejects: a bad or repeated family name is
// refused (family() returns false and its samples are skipped) and counted in
// rejected().
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace ramjet::telemetry {

enum class MetricType : std::uint8_t { kCounter, kGauge, kUntyped };

const char* to_string(MetricType t);

struct Label {
  std::string_view name;
  std::string_view value;
};

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool valid_metric_name(std::string_view name);
// [a-zA-Z_][a-zA-Z0-9_]*, and not starting with "__" (reserved by Prometheus).
bool valid_label_name(std::string_view name);
// Label values: backslash, double quote and line feed escaped.
void append_label_value(std::string& out, std::string_view value);
// HELP text: backslash and line feed escaped.
void append_help_text(std::string& out, std::string_view help);
// Sample values: integers exactly, others in the shortest round-trip form; NaN and
// infinities as +Inf, -Inf, NaN.
void append_value(std::string& out, double value);

class MetricsWriter {
 public:
  // Starts a family. false: the name is invalid or was used before in this
  // exposition; the samples written until the next family() are dropped.
  bool family(std::string_view name, MetricType type, std::string_view help);

  // One sample of the current family. Samples with an invalid label name are dropped.
  void sample(std::initializer_list<Label> labels, double value) {
    sample(std::span<const Label>(labels.begin(), labels.size()), value);
  }
  void sample(std::span<const Label> labels, double value);
  void sample(double value) { sample(std::span<const Label>(), value); }

  // Families and samples refused so far.
  std::size_t rejected() const { return rejected_; }

  const std::string& text() const& { return out_; }
  std::string text() && { return std::move(out_); }

 private:
  std::string out_;
  std::string current_;  // name of the family being written; "" = none or refused
  std::unordered_set<std::string> seen_;
  std::size_t rejected_ = 0;
};

// Sources of samples, asked in registration order at every scrape.
//
// A source runs on the metrics server's thread, not on a worker, so it must read
// only thread-safe state (atomics, or data under its own lock). A source that is
// removed is never called again once remove_source() returned.
class MetricsRegistry {
 public:
  using Source = std::function<void(MetricsWriter&)>;
  using SourceId = std::uint64_t;

  SourceId add_source(Source source);
  void remove_source(SourceId id);

  // One scrape: every source's families, in order.
  std::string collect() const;

 private:
  mutable std::mutex mu_;
  SourceId next_id_ = 1;
  std::vector<std::pair<SourceId, Source>> sources_;
};

// The Content-Type of the text exposition format.
inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace ramjet::telemetry
