#include "proxy/h2_upstream.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace ramjet::proxy {

using telemetry::Counter;

namespace {
constexpr std::size_t kReadSize = 64 * 1024;
// Request body bytes a stream may have queued beyond the origin's window before it waits.
constexpr std::size_t kHighWater = 64 * 1024;
// How often the reader looks for streams past their deadline and for idleness.
constexpr std::chrono::milliseconds kTick{1000};
}  // namespace

// --- H2Request ---

H2Request::H2Request(std::shared_ptr<H2Upstream> conn, std::int32_t id)
    : runtime::Stream(-1), conn_(std::move(conn)), id_(id) {}

H2Request::~H2Request() {
  conn_->requests_.erase(id_);
  if (!closed_) {
    conn_->conn_.reset(id_, http::h2::kCancel);
    conn_->kick();
  }
}

void H2Request::cancel() {
  if (closed_) return;
  closed_ = true;
  conn_->conn_.reset(id_, http::h2::kCancel);
  // Woken from the connection's writer, never inside the caller: the waiter may end
  // this request.
  conn_->to_wake_.push_back(id_);
  conn_->kick();
}

std::string H2Request::error() const {
  if (timed_out_) return "no response in time";
  if (lost_) return "the upstream HTTP/2 connection closed";
  if (refused_) return "the upstream refused the stream";
  return "the upstream reset the stream (HTTP/2 error " + std::to_string(error_code_) + ")";
}

Task<bool> H2Request::wait_input(std::chrono::milliseconds timeout) {
  if (timeout.count() > 0) deadline_ = runtime::Clock::now() + timeout;
  co_await input_.wait();
  deadline_ = {};
  co_return !timed_out_;
}

Task<std::optional<http::h2::ResponseHead>> H2Request::response(
    std::chrono::milliseconds timeout) {
  for (;;) {
    if (!heads_.empty()) {
      http::h2::ResponseHead head = std::move(heads_.front());
      heads_.erase(heads_.begin());
      co_return head;
    }
    if (closed_) co_return std::nullopt;
    co_await wait_input(timeout);
  }
}

Task<int> H2Request::read(std::string& out, std::size_t max, std::chrono::milliseconds timeout) {
  for (;;) {
    if (!body_.empty()) {
      std::size_t n = std::min(max, body_.size());
      out.append(body_, 0, n);
      body_.erase(0, n);
      // The origin may send as much again: the reader is the backpressure.
      conn_->conn_.consume(id_, n);
      conn_->kick();
      co_return static_cast<int>(n);
    }
    if (ended_) co_return 0;
    if (closed_) co_return timed_out_ ? -ETIMEDOUT : -ECONNRESET;
    co_await wait_input(timeout);
  }
}

Task<bool> H2Request::write_all(std::string_view data) {
  if (closed_) co_return false;
  if (data.empty()) co_return true;
  conn_->conn_.send_data(id_, data);
  conn_->kick();
  while (!closed_ && conn_->conn_.buffered(id_) > kHighWater) co_await window_.wait();
  co_return !closed_;
}

Task<void> H2Request::shutdown_write() {
  conn_->conn_.end_data(id_, std::move(trailers_out_));
  conn_->kick();
  co_return;
}

// --- H2Upstream ---

H2Upstream::H2Upstream(runtime::Worker& worker, int fd, std::unique_ptr<runtime::Stream> stream,
                       SocketAddress address, std::string reuse_key,
                       telemetry::CounterRow& counters, std::chrono::milliseconds max_idle)
    : worker_(worker),
      fd_(fd),
      stream_(std::move(stream)),
      address_(std::move(address)),
      reuse_key_(std::move(reuse_key)),
      counters_(counters),
      max_idle_(max_idle),
      conn_(*this, http::h2::ClientLimits{}) {}

H2Upstream::~H2Upstream() {
  stream_.reset();
  ::close(fd_);
}

H2Request* H2Upstream::find(std::int32_t id) {
  auto it = requests_.find(id);
  return it == requests_.end() ? nullptr : it->second;
}

std::unique_ptr<H2Request> H2Upstream::open(const http::h2::RequestHead& head) {
  if (!usable()) return nullptr;
  std::int32_t id = conn_.submit_request(head);
  if (id < 0) return nullptr;
  std::unique_ptr<H2Request> r(new H2Request(shared_from_this(), id));
  requests_[id] = r.get();
  kick();
  return r;
}

void H2Upstream::close() {
  ::shutdown(fd_, SHUT_RDWR);
}

void H2Upstream::on_response(std::int32_t stream, http::h2::ResponseHead head) {
  if (H2Request* r = find(stream)) {
    r->heads_.push_back(std::move(head));
    to_wake_.push_back(stream);
  }
}

void H2Upstream::on_data(std::int32_t stream, std::string_view data) {
  if (H2Request* r = find(stream)) {
    r->body_.append(data);
    to_wake_.push_back(stream);
  } else {
    conn_.consume(stream, data.size());  // its request is gone: the bytes go nowhere
  }
}

void H2Upstream::on_trailers(std::int32_t stream, std::vector<http::h2::Field> fields) {
  if (H2Request* r = find(stream)) r->trailers_in_ = std::move(fields);
}

void H2Upstream::on_end_stream(std::int32_t stream) {
  if (H2Request* r = find(stream)) {
    r->ended_ = true;
    to_wake_.push_back(stream);
  }
}

void H2Upstream::on_stream_close(std::int32_t stream, std::uint32_t error_code, bool refused) {
  if (H2Request* r = find(stream)) {
    r->closed_ = true;
    r->error_code_ = error_code;
    r->refused_ = refused;
    to_wake_.push_back(stream);
  }
}

void H2Upstream::on_goaway(std::int32_t last_stream_id, std::uint32_t error_code) {
  counters_.add(Counter::upstream_h2_goaways);
  spdlog::info("upstream {}: http/2 GOAWAY, last stream {}, error {}", address_.to_string(),
               last_stream_id, error_code);
}

void H2Upstream::deliver_wakeups() {
  std::vector<std::int32_t> ids;
  ids.swap(to_wake_);
  for (std::int32_t id : ids) {
    if (H2Request* r = find(id)) r->input_.notify();
    // notify() may have run the request to its end; look it up again.
    if (H2Request* r = find(id); r != nullptr && r->closed_) r->window_.notify();
  }
}

void H2Upstream::expire(runtime::Clock::time_point now) {
  for (auto& [id, r] : requests_) {
    if (r->closed_ || r->deadline_ == runtime::Clock::time_point{} || now < r->deadline_) continue;
    r->timed_out_ = true;
    r->closed_ = true;
    conn_.reset(id, http::h2::kCancel);
    to_wake_.push_back(id);
  }
  deliver_wakeups();
  kick();
}

Task<void> H2Upstream::writer() {
  std::string out;
  for (;;) {
    out.clear();
    conn_.output(out);
    if (!out.empty()) {
      if (!co_await stream_->write_all(out)) {
        dead_ = true;
        ::shutdown(fd_, SHUT_RDWR);  // the reader ends too
        break;
      }
      // Frames went out: requests waiting on the origin's window may go on.
      std::vector<std::int32_t> waiting;
      for (auto& [id, r] : requests_)
        if (r->window_.waiting()) waiting.push_back(id);
      for (std::int32_t id : waiting)
        if (H2Request* r = find(id)) r->window_.notify();
      deliver_wakeups();
      continue;
    }
    deliver_wakeups();
    if (dead_ || conn_.done()) break;
    co_await writer_wake_.wait();
  }
  writer_done_.set();
}

Task<void> H2Upstream::run() {
  runtime::JoinSet writing;
  writing.start(writer());  // the preface and our SETTINGS go first
  std::string buf;
  auto idle_since = runtime::Clock::now();
  auto expired_at = idle_since;
  while (!dead_) {
    buf.clear();
    int n = co_await stream_->read(buf, kReadSize, kTick);
    const auto now = runtime::Clock::now();
    if (!requests_.empty()) idle_since = now;
    // Also while other streams keep the connection busy.
    if (now - expired_at >= kTick) {
      expired_at = now;
      expire(now);
    }
    if (n == -ETIMEDOUT) {
      if (requests_.empty() && (now - idle_since >= max_idle_ || !conn_.accepting())) {
        conn_.goaway();
        break;
      }
      continue;
    }
    if (n <= 0) break;
    bool ok = conn_.recv(buf);
    deliver_wakeups();
    kick();  // the writer runs now: a GOAWAY nghttp2 answered with ends the connection
    if (!ok || conn_.done()) break;
  }
  // Whatever is still open ends with the connection.
  dead_ = true;
  for (auto& [id, r] : requests_) {
    if (r->closed_) continue;
    r->closed_ = true;
    r->lost_ = true;
    to_wake_.push_back(id);
  }
  deliver_wakeups();
  kick();
  co_await writer_done_.wait();
  co_await writing.wait();
  co_await stream_->shutdown_write();
}

// --- H2Upstreams ---

std::shared_ptr<H2Upstream> H2Upstreams::find(const std::vector<SocketAddress>& addresses,
                                              std::string_view reuse_key,
                                              SocketAddress& which) const {
  for (const auto& addr : addresses) {
    for (const auto& c : live_) {
      if (c->usable() && c->address() == addr && c->reuse_key() == reuse_key) {
        which = addr;
        return c;
      }
    }
  }
  return nullptr;
}

std::shared_ptr<H2Upstream> H2Upstreams::adopt(int fd, std::unique_ptr<runtime::Stream> stream,
                                               const SocketAddress& address, std::string reuse_key,
                                               telemetry::CounterRow& counters) {
  SocketAddress which;
  if (auto existing = find({address}, reuse_key, which)) {
    stream.reset();
    ::close(fd);
    return existing;
  }
  auto conn = std::make_shared<H2Upstream>(worker_, fd, std::move(stream), address,
                                           std::move(reuse_key), counters, max_idle_);
  counters.add(Counter::upstream_h2_connections);
  live_.push_back(conn);
  loops_.start(run(conn));
  return conn;
}

std::shared_ptr<H2Upstreams::Connecting> H2Upstreams::connecting(const SocketAddress& address,
                                                                std::string_view reuse_key) {
  std::erase_if(connecting_, [](const auto& w) { return w.expired(); });
  for (const auto& w : connecting_) {
    auto c = w.lock();
    if (c && !c->done.is_set() && c->address == address && c->reuse_key == reuse_key) return c;
  }
  return nullptr;
}

std::shared_ptr<H2Upstreams::Connecting> H2Upstreams::begin_connect(const SocketAddress& address,
                                                                   std::string reuse_key) {
  for (const auto& [a, name] : http1_)
    if (a == address && name == reuse_key) return nullptr;  // nobody needs to wait
  auto c = std::make_shared<Connecting>();
  c->address = address;
  c->reuse_key = std::move(reuse_key);
  connecting_.push_back(c);
  return c;
}

void H2Upstreams::learned_http1(const SocketAddress& address, const std::string& reuse_key) {
  for (const auto& [a, name] : http1_)
    if (a == address && name == reuse_key) return;
  if (http1_.size() < 1024) http1_.emplace_back(address, reuse_key);
}

Task<void> H2Upstreams::run(std::shared_ptr<H2Upstream> conn) {
  co_await conn->run();
  live_.erase(std::remove(live_.begin(), live_.end(), conn), live_.end());
}

Task<void> H2Upstreams::close() {
  for (const auto& c : live_) c->close();
  co_await loops_.wait();
}

}  // namespace ramjet::proxy
