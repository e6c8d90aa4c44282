#include "proxy/h2_session.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>
#include <utility>


namespace ramjet::proxy {

using telemetry::Counter;

namespace {
// How often a reader waiting for the client looks at the worker's drain flag.
constexpr std::chrono::milliseconds kDrainCheck{250};
constexpr std::size_t kReadSize = 64 * 1024;

http::h2::Limits limits_for(const config::Endpoint& ep) {
  http::h2::Limits l;
  l.max_concurrent_streams = ep.http.h2_max_concurrent_streams;
  l.max_header_list = ep.http.max_head;
  l.max_fields = ep.http.max_fields;
  l.reset_burst = ep.http.h2_reset_burst;
  l.reset_rate = ep.http.h2_reset_rate;
  return l;
}

Counter counter_for(http::h2::Defence d) {
  using http::h2::Defence;
  switch (d) {
    case Defence::kRapidReset:
      return Counter::h2_rapid_resets;
    case Defence::kContinuationFlood:
      return Counter::h2_continuation_floods;
    case Defence::kSettingsFlood:
      return Counter::h2_settings_floods;
    case Defence::kPingFlood:
      return Counter::h2_ping_floods;
    case Defence::kHeaderListTooLarge:
      return Counter::h2_header_lists_too_large;
    case Defence::kTooManyStreams:
      return Counter::h2_refused_streams;
    case Defence::kMalformedRequest:
      return Counter::h2_malformed_requests;
    case Defence::kContentLengthMismatch:
      return Counter::h2_content_length_mismatches;
    case Defence::kProtocolError:
      return Counter::h2_protocol_errors;
  }
  return Counter::h2_protocol_errors;
}
}  // namespace

Task<bool> client_preface_follows(runtime::Worker& worker, int fd,
                                  std::chrono::milliseconds timeout, const bool& draining) {
  constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  if (timeout.count() == 0) timeout = std::chrono::seconds(30);
  const auto deadline = runtime::Clock::now() + timeout;
  char buf[kPreface.size()];
  for (;;) {
    // In slices, so that a drain finds the connection in a session (which it can close)
    // rather than here.
    auto op = worker.recv(fd, buf, sizeof buf, MSG_PEEK);
    op.with_timeout(kDrainCheck);
    int n = co_await op;
    if (n == -ETIMEDOUT && !draining && runtime::Clock::now() < deadline) continue;
    if (n <= 0) co_return false;
    std::string_view got(buf, static_cast<std::size_t>(n));
    if (got != kPreface.substr(0, got.size())) co_return false;
    if (got.size() == kPreface.size()) co_return true;
    // A preface cut short by the network: look again once more has arrived.
    if (draining || runtime::Clock::now() >= deadline) co_return false;
    co_await worker.sleep(std::chrono::milliseconds(2));
  }
}

H2Session::H2Session(WorkerContext& wc, const config::Endpoint& ep, telemetry::CounterRow& counters,
                     runtime::Stream& client, ConnectionInfo info, std::string received)
    : StreamSession(wc, ep, counters, std::move(info), *this, HttpVersion::kHttp2,
                    Counter::h2_streams),
      client_(client),
      received_(std::move(received)),
      h2_(*this, limits_for(ep)) {}

H2Session::~H2Session() = default;

void H2Session::force_close(CloseReason why) {
  if (!close_reason_) close_reason_ = why;
  closing_ = true;
  // Pending receives on every socket end; the coroutines see it and finish.
  ::shutdown(client_.fd(), SHUT_RDWR);
  std::vector<std::int64_t> ids;
  for (auto& [id, x] : exchanges_) ids.push_back(id);
  // Abandoning may run a stream to its end: look each up again.
  for (std::int64_t id : ids)
    if (auto it = exchanges_.find(id); it != exchanges_.end()) abandon_upstream(*it->second);
}

void H2Session::on_request(std::int32_t stream, http::h2::RequestHead head) {
  stream_opened(stream, std::move(head));
}

void H2Session::on_data(std::int32_t stream, std::string_view data) {
  // An exchange that is over: the bytes go nowhere.
  if (!stream_data(stream, data)) h2_.consume(stream, data.size());
}

void H2Session::on_trailers(std::int32_t stream, std::vector<http::h2::Field> fields) {
  stream_trailers(stream, std::move(fields));
}

void H2Session::on_end_stream(std::int32_t stream) { stream_ended(stream); }

void H2Session::on_stream_close(std::int32_t stream, std::uint32_t error_code) {
  stream_closed(stream, error_code);
}

void H2Session::on_defence(http::h2::Defence d) {
  counters_.add(counter_for(d));
  spdlog::info("flow {}: http/2 {}", info_.id, http::h2::to_string(d));
}

bool H2Session::submit_response(std::int64_t stream, int status,
                                const std::vector<http::h2::Field>& fields, bool end_stream) {
  return h2_.submit_response(static_cast<std::int32_t>(stream), status, fields, end_stream);
}

void H2Session::submit_interim(std::int64_t stream, int status,
                               const std::vector<http::h2::Field>& fields) {
  h2_.submit_interim(static_cast<std::int32_t>(stream), status, fields);
}

void H2Session::send_data(std::int64_t stream, std::string_view data) {
  h2_.send_data(static_cast<std::int32_t>(stream), data);
}

void H2Session::end_data(std::int64_t stream, std::vector<http::h2::Field> trailers) {
  h2_.end_data(static_cast<std::int32_t>(stream), std::move(trailers));
}

std::size_t H2Session::buffered(std::int64_t stream) const {
  return h2_.buffered(static_cast<std::int32_t>(stream));
}

void H2Session::reset(std::int64_t stream, StreamError why) {
  std::uint32_t code = http::h2::kInternalError;
  switch (why) {
    case StreamError::kInternal:
      code = http::h2::kInternalError;
      break;
    case StreamError::kConnect:
      code = http::h2::kConnectError;
      break;
    case StreamError::kCancel:
      code = http::h2::kCancel;
      break;
    case StreamError::kProtocol:
      code = http::h2::kProtocolError;
      break;
  }
  h2_.reset(static_cast<std::int32_t>(stream), code);
}

void H2Session::consume(std::int64_t stream, std::size_t n) {
  h2_.consume(static_cast<std::int32_t>(stream), n);
}

void H2Session::kick() {
  // At the end of the loop's turn: every frame the streams produce meanwhile goes out in
  // one write (a response's HEADERS and DATA in one TLS record, not two).
  writer_wake_.notify_later(wc_.worker);
}

Task<void> H2Session::writer() {
  std::string out;
  while (!write_failed_) {
    out.clear();
    h2_.output(out);
    if (!out.empty()) {
      if (!co_await client_.write_all(out)) {
        write_failed_ = true;
        break;
      }
      // Frames went out: streams waiting on the client's window may go on.
      notify_windows();
      deliver_wakeups();
      continue;
    }
    deliver_wakeups();
    if (h2_.done() || (closing_ && exchanges_.empty())) break;
    co_await writer_wake_.wait();
  }
  writer_done_.set();
}

Task<void> H2Session::run() {
  ctx_ = wc_.hooks.make_connection_context();
  set_state(SessionState::kHooks);
  counters_.add(Counter::h2_connections);
  audit_.kind = telemetry::FlowKind::kHttp;  // CONNECT and WebSocket streams say otherwise
  if (co_await ingress_blocks(info_, ctx_.get())) {
    close_reason_ = CloseReason::kBlockedIngress;
  } else {
    runtime::JoinSet writing;
    writing.start(writer());
    set_state(SessionState::kRelaying);
    std::string buf = std::move(received_);
    auto idle_since = runtime::Clock::now();
    bool open = true;
    if (!buf.empty()) {
      open = h2_.recv(buf, runtime::Clock::now());
      deliver_wakeups();
      kick();
    }
    while (open && !closing_ && !write_failed_) {
      if (wc_.draining && !draining_sent_) {
        draining_sent_ = true;
        h2_.goaway();
        kick();
      }
      if (draining_sent_ && exchanges_.empty()) break;
      buf.clear();
      int n = co_await client_.read(buf, kReadSize, kDrainCheck);
      if (n == -ETIMEDOUT) {
        bool idle = exchanges_.empty() && ep_.idle_timeout.count() > 0 &&
                    runtime::Clock::now() - idle_since >= ep_.idle_timeout;
        if (idle) {
          close_reason_ = CloseReason::kIdleTimeout;
          counters_.add(Counter::idle_timeouts);
          h2_.goaway();
          kick();
          break;
        }
        continue;
      }
      if (n <= 0) {
        if (!close_reason_ && n < 0) close_reason_ = CloseReason::kDownstreamError;
        break;
      }
      idle_since = runtime::Clock::now();
      open = h2_.recv(buf, idle_since);
      deliver_wakeups();
      kick();
    }
    if (!open && !close_reason_) close_reason_ = CloseReason::kDownstreamError;
    // No more client bytes will come: the streams still running cannot finish normally.
    // The writer may be gone (the client stopped reading): wake the streams here.
    cancel_all_streams();
    kick();
    co_await streams_.wait();
    kick();
    co_await writer_done_.wait();
    co_await writing.wait();
    co_await client_.shutdown_write();
  }
  set_state(SessionState::kClosing);
  close_epilogue(client_.fd(), info_, stats_, close_reason_, started_, ctx_.get());
}

}  // namespace ramjet::proxy
