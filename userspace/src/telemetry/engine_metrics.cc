#include "telemetry/engine_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <string>

namespace ramjet::telemetry {

namespace {

// The n-th space-separated field of `s` (0-based), or "".
std::string_view field(std::string_view s, std::size_t n) {
  std::size_t pos = 0;
  for (std::size_t i = 0;; ++i) {
    while (pos < s.size() && s[pos] == ' ') ++pos;
    std::size_t end = s.find(' ', pos);
    if (end == std::string_view::npos) end = s.size();
    if (pos >= s.size()) return {};
    if (i == n) return s.substr(pos, end - pos);
    pos = end;
  }
}

bool to_u64(std::string_view s, std::uint64_t& out) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && !s.empty();
}

std::string read_file(const char* path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Seconds since the epoch at which the system booted (/proc/stat btime).
std::optional<double> boot_time() {
  std::string text = read_file("/proc/stat");
  auto at = text.find("\nbtime ");
  if (at == std::string::npos) return std::nullopt;
  auto start = at + 7;
  auto end = text.find('\n', start);
  std::uint64_t v = 0;
  if (!to_u64(std::string_view(text).substr(start, end - start), v)) return std::nullopt;
  return static_cast<double>(v);
}

std::size_t open_fds() {
  std::size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    if (n > 0) --n;  // the descriptor opendir itself holds
  }
  return n;
}

}  // namespace

std::string engine_metric_name(Counter c) {
  auto i = static_cast<unsigned>(c);
  std::string name = "ramjet_";
  name += kCounterMetrics[i];
  if (kCounterKinds[i] == CounterKind::kCounter) name += "_total";
  return name;
}

void write_engine_counters(MetricsWriter& w, const StatsSnapshot& s) {
  for (std::size_t c = 0; c < kCounterCount; ++c) {
    auto counter = static_cast<Counter>(c);
    MetricType type =
        kCounterKinds[c] == CounterKind::kCounter ? MetricType::kCounter : MetricType::kGauge;
    if (!w.family(engine_metric_name(counter), type, kCounterHelp[c])) continue;
    for (std::size_t e = 0; e < s.endpoints.size(); ++e)
      w.sample({{"endpoint", s.endpoints[e]}}, static_cast<double>(s.per_endpoint[e][c]));
  }
}

void write_build_info(MetricsWriter& w, std::string_view app, std::string_view version) {
  if (w.family("ramjet_build_info", MetricType::kGauge,
               "Always 1; the labels name the running application and its version"))
    w.sample({{"app", app}, {"version", version}}, 1);
}

std::optional<ProcStat> parse_proc_stat(std::string_view line, double ticks_per_second) {
  // "pid (comm) state ppid ...": comm may contain anything, so fields are counted
  // from the last ')'. After it, field 0 is state (the 3rd field of the man page).
  auto close = line.rfind(')');
  if (close == std::string_view::npos || ticks_per_second <= 0) return std::nullopt;
  std::string_view rest = line.substr(close + 1);
  while (!rest.empty() && (rest.back() == '\n' || rest.back() == ' ')) rest.remove_suffix(1);
  // proc(5) numbers fields from 1: utime 14, stime 15, starttime 22, vsize 23, rss 24.
  auto at = [&](std::size_t man_index) { return field(rest, man_index - 3); };
  std::uint64_t utime = 0, stime = 0, start = 0, vsize = 0, rss = 0;
  if (!to_u64(at(14), utime) || !to_u64(at(15), stime) || !to_u64(at(22), start) ||
      !to_u64(at(23), vsize) || !to_u64(at(24), rss))
    return std::nullopt;
  ProcStat p;
  p.cpu_seconds = static_cast<double>(utime + stime) / ticks_per_second;
  p.start_ticks = static_cast<double>(start);
  p.virtual_bytes = vsize;
  p.resident_pages = rss;
  return p;
}

void write_process_metrics(MetricsWriter& w) {
  static const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  static const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  static const std::optional<double> booted = boot_time();

  if (auto p = parse_proc_stat(read_file("/proc/self/stat"), ticks)) {
    if (w.family("process_cpu_seconds_total", MetricType::kCounter,
                 "Total user and system CPU time spent in seconds."))
      w.sample(p->cpu_seconds);
    if (booted && w.family("process_start_time_seconds", MetricType::kGauge,
                           "Start time of the process since unix epoch in seconds."))
      w.sample(*booted + p->start_ticks / ticks);
    if (w.family("process_virtual_memory_bytes", MetricType::kGauge,
                 "Virtual memory size in bytes."))
      w.sample(static_cast<double>(p->virtual_bytes));
    if (w.family("process_resident_memory_bytes", MetricType::kGauge,
                 "Resident memory size in bytes."))
      w.sample(static_cast<double>(p->resident_pages) * page);
  }
  if (w.family("process_open_fds", MetricType::kGauge, "Number of open file descriptors."))
    w.sample(static_cast<double>(open_fds()));
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
      w.family("process_max_fds", MetricType::kGauge, "Maximum number of open file descriptors."))
    w.sample(static_cast<double>(rl.rlim_cur));
}

void register_engine_metrics(MetricsRegistry& registry, std::string_view app,
                             std::string_view version) {
  registry.add_source([app = std::string(app), version = std::string(version)](MetricsWriter& w) {
    write_build_info(w, app, version);
  });
  registry.add_source([](MetricsWriter& w) { write_engine_counters(w, stats().snapshot()); });
  registry.add_source([](MetricsWriter& w) { write_process_metrics(w); });
}

}  // namespace ramjet::telemetry
