#include "telemetry/audit_log.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>

#include "runtime/thread.h"

namespace ramjet::telemetry {

namespace {

int open_append(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

nlohmann::ordered_json string_or_null(std::string_view s) {
  return s.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(s);
}

nlohmann::ordered_json decisions_json(const FlowDecisions* d) {
  using J = nlohmann::ordered_json;
  J out = J::object();
  if (d == nullptr) return out;
  if (d->ingress.decision.empty()) {
    out["ingress"] = nullptr;
  } else {
    J in = {{"decision", d->ingress.decision}};
    if (!d->ingress.reason.empty()) in["reason"] = d->ingress.reason;
    out["ingress"] = std::move(in);
  }
  if (d->connect.decision.empty()) {
    out["connect"] = nullptr;
  } else {
    J c = {{"decision", d->connect.decision}};
    if (d->connect.status != 0) c["status"] = d->connect.status;
    if (!d->connect.reason.empty()) c["reason"] = d->connect.reason;
    out["connect"] = std::move(c);
  }
  if (d->egress.decision.empty()) {
    out["egress"] = nullptr;
  } else {
    J e = {{"decision", d->egress.decision}};
    e["target"] = string_or_null(d->egress.target);
    e["upstream_ips"] = string_or_null(d->egress.upstream_ips);
    e["block_reasons"] = d->egress.block_reasons;
    out["egress"] = std::move(e);
  }
  return out;
}

}  // namespace

const char* to_string(FlowKind k) {
  switch (k) {
    case FlowKind::kTcp:
      return "tcp";
    case FlowKind::kConnect:
      return "connect";
    case FlowKind::kWebSocket:
      return "websocket";
    case FlowKind::kHttp:
      return "http";
    case FlowKind::kConnectUdp:
      return "connect-udp";
  }
  return "unknown";
}

std::string format_rfc3339_utc(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  auto us = duration_cast<microseconds>(t.time_since_epoch()).count();
  auto secs = static_cast<std::time_t>(us / 1'000'000);
  auto frac = us % 1'000'000;
  if (frac < 0) {  // before 1970: floor, so the fraction stays positive
    frac += 1'000'000;
    --secs;
  }
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[96];  // sized for any int the compiler can imagine, not just real dates
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(frac));
  return buf;
}

static nlohmann::ordered_json tls_json(const TlsInfo* t) {
  if (t == nullptr) return nullptr;
  nlohmann::ordered_json j;
  j["sni"] = t->sni;
  j["alpn"] = t->alpn;
  j["version"] = t->version;
  j["cipher"] = t->cipher;
  j["resumed"] = t->resumed;
  if (const auto& c = t->client_certificate) {
    nlohmann::ordered_json cj;
    cj["subject"] = c->subject;
    cj["issuer"] = c->issuer;
    cj["sans"] = c->sans;
    cj["serial"] = c->serial;
    cj["sha256"] = c->sha256;
    cj["verified"] = c->verified;
    j["client_certificate"] = std::move(cj);
  } else {
    j["client_certificate"] = nullptr;
  }
  return j;
}

std::string encode_audit_line(const AuditRecord& r) {
  nlohmann::ordered_json j;
  j["flow"] = r.flow;
  j["kind"] = to_string(r.kind);
  j["endpoint"] = r.endpoint;
  j["client"] = r.client.to_string();
  if (r.proxied_by) j["proxied_by"] = r.proxied_by->to_string();
  j["local"] = r.local.to_string();
  j["target"] = string_or_null(r.target);
  j["upstream"] = string_or_null(r.upstream);
  j["bytes_from_client"] = r.bytes_from_client;
  j["bytes_to_client"] = r.bytes_to_client;
  j["start"] = format_rfc3339_utc(r.start);
  j["duration_ms"] = static_cast<double>(r.duration.count()) / 1000.0;
  j["close_reason"] = to_string(r.reason);
  j["decisions"] = decisions_json(r.decisions);
  j["tls"] = tls_json(r.tls);
  if (r.kernel != nullptr)
    j["kernel"] = nlohmann::ordered_json(*r.kernel);
  else
    j["kernel"] = nullptr;
  std::string line = j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  line += '\n';
  return line;
}

// ---------------------------------------------------------------- AuditLog

Result<std::unique_ptr<AuditLog>> AuditLog::open(const std::string& path,
                                                 std::size_t max_queued_bytes,
                                                 LineFileNames names) {
  int fd = open_append(path);
  if (fd < 0) {
    int err = errno;
    return Error::config(std::string(names.config_key) + ": cannot open " + path + ": " +
                         strerror(err));
  }
  return std::unique_ptr<AuditLog>(new AuditLog(path, fd, max_queued_bytes, names));
}

AuditLog::AuditLog(std::string path, int fd, std::size_t max_queued_bytes, LineFileNames names)
    : path_(std::move(path)), max_queued_bytes_(max_queued_bytes), names_(names), fd_(fd) {
  thread_ = std::thread([this] { runtime::run_guarded(names_.thread, [this] { run(); }); });
}

AuditLog::~AuditLog() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
  ::close(fd_);
}

bool AuditLog::write(std::string line) {
  {
    std::lock_guard lock(mu_);
    if (queued_bytes_ + line.size() > max_queued_bytes_) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    queued_bytes_ += line.size();
    queue_.push_back(Entry{std::move(line)});
  }
  wake_.notify_one();
  return true;
}

Result<void> AuditLog::reopen() {
  std::unique_lock lock(mu_);
  std::uint64_t ticket = next_ticket_++;
  queue_.push_back(Entry{std::string(), ticket});
  wake_.notify_one();
  done_.wait(lock, [&] { return reopened_ticket_ >= ticket; });
  if (!reopen_error_.empty()) return Error::kernel(EIO, reopen_error_);
  return {};
}

void AuditLog::write_batch(const std::string& data, std::size_t lines) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd_, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // Logged once per failing batch; the counter says how often.
      write_errors_.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("audit log {}: write failed: {}", path_,
                   n < 0 ? strerror(errno) : "short write");
      return;
    }
    off += static_cast<std::size_t>(n);
  }
  written_.fetch_add(lines, std::memory_order_relaxed);
}

void AuditLog::run() {
  std::deque<Entry> batch;
  std::string data;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything is written
      batch.swap(queue_);
      queued_bytes_ = 0;
    }
    // Consecutive lines go out in one write(2); a reopen marker splits the batch.
    std::size_t lines = 0;
    for (auto& e : batch) {
      if (!e.line.empty()) {
        data += e.line;
        ++lines;
        continue;
      }
      write_batch(data, lines);
      data.clear();
      lines = 0;
      std::string error;
      int fd = open_append(path_);
      if (fd < 0) {
        error = "cannot reopen " + path_ + ": " + strerror(errno) + "; still writing the old file";
        spdlog::warn("audit log: {}", error);
      } else {
        ::close(fd_);
        fd_ = fd;
      }
      {
        std::lock_guard lock(mu_);
        reopened_ticket_ = e.ticket;
        reopen_error_ = std::move(error);
      }
      done_.notify_all();
    }
    write_batch(data, lines);
    data.clear();
    batch.clear();
  }
}

void AuditLog::write_metrics(MetricsWriter& w) const {
  const std::string prefix = names_.metric_prefix;
  const std::string what = names_.what;
  if (w.family(prefix + "_lines_written_total", MetricType::kCounter,
               what + " lines written to the file"))
    w.sample(static_cast<double>(written_.load(std::memory_order_relaxed)));
  if (w.family(prefix + "_lines_dropped_total", MetricType::kCounter,
               what + " lines dropped because the writer fell behind"))
    w.sample(static_cast<double>(dropped_.load(std::memory_order_relaxed)));
  if (w.family(prefix + "_write_errors_total", MetricType::kCounter,
               what + " write errors (each loses the lines it carried)"))
    w.sample(static_cast<double>(write_errors_.load(std::memory_order_relaxed)));
}

}  // namespace ramjet::telemetry
