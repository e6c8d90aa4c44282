// The audit log: one JSON line per finished L4 flow or tunnel (TCP connections,
// HTTP CONNECT and WebSocket tunnels, and http connections blocked at ingress),
// with what the engine decided for it. Format: docs/audit-log.md.
//
// Writing never touches the disk on a worker: a worker encodes its line and queues
// it (a mutex and a deque push); one writer thread appends the queue to the file
// with write(2) as soon as it is woken, so a line is in the page cache within
// microseconds of the flow's close, and a slow disk stalls only that thread. The
// queue is bounded (max_queued_bytes); past it lines are dropped and counted
// (ramjet_audit_lines_dropped_total) rather than stalling the proxy.
//
// reopen() (SIGHUP, POST /v1/audit/reopen) is ordered with the lines: every line
// queued before it goes to the file that was open, every line queued after it to
// the file opened at `path`, so rotating by rename + reopen loses nothing.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ramjet/hooks/connection.h"
#include "ramjet/result.h"
#include "telemetry/metrics.h"

namespace ramjet::telemetry {

// What kind of flow a line describes.
enum class FlowKind : std::uint8_t {
  kTcp,        // a connection on a tcp endpoint
  kConnect,    // an HTTP CONNECT request and the tunnel it opened (or not)
  kWebSocket,  // an HTTP request upgraded to a WebSocket tunnel
  kHttp,       // an http endpoint connection blocked before any request
  kConnectUdp, // an HTTP/1.1 connect-udp request (RFC 9298) and the UDP tunnel it opened
};
const char* to_string(FlowKind k);

// The decisions the engine made for one flow, in the order they ran. An empty
// `decision` means the step never ran.
struct FlowDecisions {
  struct Ingress {
    std::string_view decision;  // "allow" | "block"
    std::string reason;
  } ingress;
  struct Connect {              // http.handle_proxy_connect_request
    std::string_view decision;  // "allow" | "deny"
    int status = 0;             // the status of a deny
    std::string reason;
  } connect;
  struct Egress {               // egress.handle_connection, egress.handle_upstream_ips, the guard
    std::string_view decision;  // "direct" | "block"
    std::string target;         // host:port chosen by EgressHook::handle_connection
    std::string_view upstream_ips;  // "guarded" | "allow_private" | "block"
    std::vector<std::string> block_reasons;
  } egress;
};

// What a session keeps for its audit line while it runs.
struct FlowAudit {
  std::optional<FlowKind> kind;  // unset: this connection gets no audit line
  std::string target;            // what the client asked for (host:port)
  FlowDecisions decisions;
  std::chrono::system_clock::time_point start;
};

// Everything one line holds.
struct AuditRecord {
  FlowKind kind = FlowKind::kTcp;
  FlowId flow = 0;
  std::string_view endpoint;
  SocketAddress client;
  std::optional<SocketAddress> proxied_by;  // the real peer when a PROXY header named client
  SocketAddress local;
  std::string_view target;    // "" = none
  std::string_view upstream;  // "" = never connected
  std::uint64_t bytes_from_client = 0;
  std::uint64_t bytes_to_client = 0;
  std::chrono::system_clock::time_point start;
  std::chrono::microseconds duration{0};
  CloseReason reason = CloseReason::kCompleted;
  const FlowDecisions* decisions = nullptr;
  const TlsInfo* tls = nullptr;  // the client's TLS handshake; null on plaintext
  // What the eBPF datapath saw of the flow (datapath::connection_flow_json); null
  // or nullptr for a flow it did not escalate.
  const nlohmann::json* kernel = nullptr;
};

// "2024-05-01T12:00:00.123456Z" (RFC 3339, UTC, microseconds).
std::string format_rfc3339_utc(std::chrono::system_clock::time_point t);
// One JSON object and a final '\n'. Strings that are not valid UTF-8 have the bad
// bytes replaced, so every line parses.
std::string encode_audit_line(const AuditRecord& r);

// What a line file is called in errors, metrics and thread names: the audit log's by
// default; the span file of telemetry.tracing is written by an AuditLog too.
struct LineFileNames {
  const char* config_key = "telemetry.audit_log.path";
  const char* metric_prefix = "ramjet_audit";  // _lines_written_total, ...
  const char* what = "Audit log";
  const char* thread = "audit log";
};

class AuditLog {
 public:
  static constexpr std::size_t kDefaultMaxQueuedBytes = 16 << 20;

  // Opens `path` for appending (created 0640 if missing) and starts the writer.
  static Result<std::unique_ptr<AuditLog>> open(
      const std::string& path, std::size_t max_queued_bytes = kDefaultMaxQueuedBytes,
      LineFileNames names = {});
  // Writes every queued line, then closes the file.
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Any thread. Queues one line (ending in '\n'); false when the queue is full and
  // the line was dropped.
  bool write(std::string line);
  // Any thread; returns once the writer has reopened the file. On error the old
  // file stays in use and the error says why.
  Result<void> reopen();

  const std::string& path() const { return path_; }
  // ramjet_audit_lines_written_total, _dropped_total, ramjet_audit_write_errors_total.
  void write_metrics(MetricsWriter& w) const;

 private:
  struct Entry {
    std::string line;  // empty: a reopen marker
    std::uint64_t ticket = 0;
  };

  AuditLog(std::string path, int fd, std::size_t max_queued_bytes, LineFileNames names);
  void run();
  void write_batch(const std::string& data, std::size_t lines);

  const std::string path_;
  const std::size_t max_queued_bytes_;
  const LineFileNames names_;
  int fd_;  // the writer thread's, after construction

  std::mutex mu_;
  std::condition_variable wake_;  // the writer: work queued or stopping
  std::condition_variable done_;  // reopen() callers: a reopen finished
  std::deque<Entry> queue_;
  std::size_t queued_bytes_ = 0;
  std::uint64_t next_ticket_ = 1;
  std::uint64_t reopened_ticket_ = 0;  // the last reopen marker the writer processed
  std::string reopen_error_;           // its outcome
  bool stopping_ = false;

  std::atomic<std::uint64_t> written_{0};
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<std::uint64_t> write_errors_{0};
  std::thread thread_;
};

}  // namespace ramjet::telemetry
