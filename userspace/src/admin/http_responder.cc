#include "admin/http_responder.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <nlohmann/json.hpp>

#include "http/h1/parser.h"
#include "http/status.h"
#include "runtime/thread.h"

namespace ramjet::admin {

namespace {

constexpr auto kAcceptPause = std::chrono::milliseconds(100);
constexpr std::size_t kReadChunk = 4096;

}  // namespace

HttpResponse json_error(int status, std::string_view message) {
  return HttpResponse{status, nlohmann::json{{"error", message}}.dump()};
}

std::string render_response(const HttpResponse& r) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + http::reason_phrase(r.status) +
                    "\r\nContent-Type: " + r.content_type;
  if (!r.stream) out += "\r\nContent-Length: " + std::to_string(r.body.size());
  out += "\r\nConnection: close\r\n" + r.extra_fields + "\r\n";
  out += r.body;
  return out;
}

void Router::add(std::string method, std::string path, HttpHandler handler) {
  routes_[std::move(path)][std::move(method)] = std::move(handler);
}

const Router::Methods* Router::find(const std::string& path) const {
  if (auto exact = routes_.find(path); exact != routes_.end()) return &exact->second;
  const Methods* best = nullptr;
  std::size_t best_len = 0;
  for (const auto& [route, methods] : routes_) {
    if (route.back() == '/' && route.size() > best_len && path.starts_with(route)) {
      best = &methods;
      best_len = route.size();
    }
  }
  return best;
}

HttpResponse Router::dispatch(const HttpRequest& req) const {
  const Methods* methods = find(req.path);
  if (methods == nullptr) return json_error(404, "no such route: " + req.path);
  auto m = methods->find(req.method);
  if (m == methods->end()) {
    std::string allow;
    for (const auto& [method, h] : *methods) allow += (allow.empty() ? "" : ", ") + method;
    HttpResponse r = json_error(405, req.path + " takes " + allow);
    r.extra_fields = "Allow: " + allow + "\r\n";
    return r;
  }
  return m->second(req);
}

HttpResponder::HttpResponder(std::string name, HttpHandler handler, ResponderLimits limits)
    : name_(std::move(name)), handler_(std::move(handler)), limits_(limits), worker_(0, 64) {}

HttpResponder::~HttpResponder() {
  stop();
}

Result<void> HttpResponder::start(int listen_fd) {
  listen_fd_ = listen_fd;
  worker_.spawn(accept_loop());
  auto t = runtime::start_worker_thread(worker_, name_ + " server", [this] { worker_.run(); });
  if (!t.ok()) {
    ::close(listen_fd_);
    listen_fd_ = -1;
    return Error::kernel(t.error().code, name_ + " server: " + t.error().message);
  }
  thread_ = std::move(*t);
  return {};
}

void HttpResponder::stop() {
  if (listen_fd_ < 0) return;
  stopping_ = true;
  // Runs on the responder thread: the accept loop ends, then cancels live requests
  // and stops the worker once they are gone.
  worker_.post([this] {
    if (accept_ != nullptr) accept_->cancel();
  });
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
  listen_fd_ = -1;
}

Task<void> HttpResponder::accept_loop() {
  runtime::MultishotAccept acc(worker_, listen_fd_);
  runtime::JoinSet requests;
  accept_ = &acc;
  for (;;) {
    // Decide on re-arming only once the results reaped with the last CQE are read:
    // a batch may end with the multishot's end (e.g. EMFILE) behind accepted fds.
    if (acc.idle()) {
      if (stopping_) break;
      acc.arm();
    }
    int fd = co_await acc.next();
    if (fd >= 0) {
      if (stopping_)
        ::close(fd);
      else
        requests.start(serve(fd));
      continue;
    }
    if (acc.armed()) continue;  // a transient error inside a live multishot
    if (stopping_ || fd == -ECANCELED) break;
    if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
      spdlog::warn("{} server: accept paused for {}ms: {}", name_, kAcceptPause.count(),
                   strerror(-fd));
      co_await worker_.sleep(kAcceptPause);
    } else {
      spdlog::warn("{} server: accept failed: {}", name_, strerror(-fd));
    }
  }
  accept_ = nullptr;
  for (int fd : live_) worker_.cancel_fd(fd);
  co_await requests.wait();
  worker_.stop();
}

Task<bool> HttpResponder::read_some(int fd, std::string& buf, runtime::Clock::time_point deadline) {
  auto left = deadline - runtime::Clock::now();
  if (stopping_ || left <= std::chrono::nanoseconds::zero()) co_return false;
  std::size_t old = buf.size();
  buf.resize(old + kReadChunk);
  int n = co_await worker_.recv(fd, buf.data() + old, kReadChunk).with_timeout(left);
  buf.resize(old + static_cast<std::size_t>(n > 0 ? n : 0));
  co_return n > 0;
}

HttpResponse HttpResponder::handle(const HttpRequest& req) const {
  try {
    return handler_(req);
  } catch (const std::exception& e) {
    spdlog::error("{} server: {} {}: {}", name_, req.method, req.path, e.what());
    return json_error(500, "internal error");
  }
}

Task<void> HttpResponder::serve(int fd) {
  live_.insert(fd);
  const auto deadline = runtime::Clock::now() + limits_.deadline;
  http::h1::Limits limits;
  // Control-plane targets are short; a long one is answered 414 before the head fills.
  limits.max_start_line = std::min<std::size_t>(limits_.max_head / 2, 4096);
  limits.max_head = limits_.max_head;
  http::h1::HeadParser parser(http::h1::MessageKind::kRequest, limits);
  http::h1::Head head;
  std::string buf;
  std::optional<HttpResponse> reply;
  std::size_t head_len = 0;
  bool connected = true;

  while (!reply && head_len == 0) {
    if (!co_await read_some(fd, buf, deadline)) {
      connected = false;
      break;
    }
    auto r = parser.parse(buf, head);
    if (r.status == http::h1::ParseStatus::kError)
      reply = json_error(r.error.status, r.error.reason);
    else if (r.status == http::h1::ParseStatus::kDone)
      head_len = r.consumed;
  }

  HttpRequest req;
  if (connected && !reply) {
    req.method = std::string(head.method);
    std::string_view target = head.target;
    if (head.target_form != http::h1::TargetForm::kOrigin) {
      reply = json_error(400, "expected an origin-form target such as /v1/status");
    } else if (head.body == http::h1::BodyKind::kChunked) {
      reply = json_error(411, "send request bodies with Content-Length");
    } else if (head.body == http::h1::BodyKind::kContentLength &&
               head.content_length > limits_.max_body) {
      reply = json_error(413, "request body over " + std::to_string(limits_.max_body) + " bytes");
    } else {
      auto q = target.find('?');
      req.path = std::string(target.substr(0, q));
      if (q != std::string_view::npos) req.query = std::string(target.substr(q + 1));
      std::size_t body_len =
          head.body == http::h1::BodyKind::kContentLength ? head.content_length : 0;
      // The head's views die with the buffer's growth: everything needed is copied above.
      while (connected && buf.size() < head_len + body_len)
        connected = co_await read_some(fd, buf, deadline);
      if (connected) req.body = buf.substr(head_len, body_len);
    }
  }

  if (connected) {
    HttpResponse answer = reply ? std::move(*reply) : handle(req);
    bool sent = co_await send_all(fd, render_response(answer), deadline);
    if (sent && answer.stream) co_await send_stream(fd, answer);
    if (reply && sent) {
      // An error may leave request bytes unread, and closing over unread bytes sends
      // a RST that can destroy the answer before the client reads it. Send FIN and
      // discard what the client still sends until it closes (or the deadline).
      ::shutdown(fd, SHUT_WR);
      std::string sink;
      while (co_await read_some(fd, sink, deadline)) sink.clear();
    }
  }
  live_.erase(fd);
  ::close(fd);
}

Task<bool> HttpResponder::send_all(int fd, std::string_view rest,
                                   runtime::Clock::time_point deadline) {
  while (!rest.empty()) {
    auto left = deadline - runtime::Clock::now();
    if (left <= std::chrono::nanoseconds::zero()) co_return false;
    int n = co_await worker_.send(fd, rest.data(), rest.size()).with_timeout(left);
    if (n <= 0) co_return false;
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  co_return true;
}

Task<void> HttpResponder::send_stream(int fd, const HttpResponse& r) {
  while (!stopping_) {
    std::optional<std::string> piece;
    try {
      piece = r.stream();
    } catch (const std::exception& e) {
      spdlog::error("{} server: stream: {}", name_, e.what());
      co_return;
    }
    if (!piece) co_return;
    if (!piece->empty()) {
      if (!co_await send_all(fd, *piece, runtime::Clock::now() + limits_.stream_send)) co_return;
      continue;
    }
    // Nothing to send: is the client still there? (EOF or an error ends the stream.)
    char probe;
    ssize_t n = ::recv(fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) co_return;
    co_await worker_.sleep(limits_.stream_poll);
  }
}

}  // namespace ramjet::admin
