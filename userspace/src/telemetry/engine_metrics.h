// The engine's own metric families: the engine counters (per endpoint), build info
// and the standard process_* metrics. Each writer is a plain function so that tests
// can feed it a snapshot; register_engine_metrics() adds them to a registry.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "telemetry/metrics.h"
#include "telemetry/stats.h"

namespace ramjet::telemetry {

// "ramjet_" + metric (+ "_total" for counters), e.g. ramjet_downstream_sent_bytes_total.
std::string engine_metric_name(Counter c);

// One family per engine counter (RAMJET_ENGINE_COUNTERS), one sample per endpoint.
void write_engine_counters(MetricsWriter& w, const StatsSnapshot& s);

// ramjet_build_info{app="...",version="..."} 1
void write_build_info(MetricsWriter& w, std::string_view app, std::string_view version);

// What the process metrics are made of, read from /proc/self/stat.
struct ProcStat {
  double cpu_seconds = 0;            // utime + stime
  double start_ticks = 0;            // since boot, in clock ticks
  std::uint64_t virtual_bytes = 0;   // vsize
  std::uint64_t resident_pages = 0;  // rss
};
// Parses the one line of /proc/<pid>/stat (the command name may hold spaces and
// parentheses). `ticks_per_second` is sysconf(_SC_CLK_TCK).
std::optional<ProcStat> parse_proc_stat(std::string_view line, double ticks_per_second);

// process_cpu_seconds_total, process_start_time_seconds, process_open_fds,
// process_max_fds, process_virtual_memory_bytes, process_resident_memory_bytes: the
// names every Prometheus client library uses, so standard dashboards work.
void write_process_metrics(MetricsWriter& w);

// The three families above (counters from telemetry::stats()), as registry sources.
void register_engine_metrics(MetricsRegistry& registry, std::string_view app,
                             std::string_view version);

}  // namespace ramjet::telemetry
