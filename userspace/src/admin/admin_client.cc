#include "admin/admin_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "datapath/pinned_maps.h"
#include "http/h1/parser.h"

namespace ramjet::admin {

namespace {

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

namespace h1 = http::h1;

// What the client needs of a response head.
struct ReplyHead {
  int status = 0;
  h1::BodyKind body = h1::BodyKind::kNone;
  std::uint64_t content_length = 0;
};

// Reads and parses the response head; the body bytes that came with it stay in `buf`.
Result<ReplyHead> read_head(int fd, std::string_view method, std::string& buf,
                            const std::string& path) {
  h1::HeadParser parser(h1::MessageKind::kResponse, {}, method);
  h1::Head head;
  char tmp[16384];
  for (;;) {
    auto r = parser.parse(buf, head);
    if (r.status == h1::ParseStatus::kDone) {
      ReplyHead out{head.status_code, head.body, head.content_length};
      buf.erase(0, r.consumed);
      return out;
    }
    if (r.status == h1::ParseStatus::kError)
      return Error::internal("malformed answer from " + path + ": " + std::string(r.error.reason));
    ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return Error::kernel(ETIMEDOUT, "ramjetd did not answer on " + path + " in time");
    // Nothing at all, then the end: the daemon has just died. Its listening socket can
    // outlive the process for a moment (io_uring releases a ring's files after the
    // process is gone, in a kernel worker), so a connect still succeeds and the
    // connection is then closed unanswered. That is "not running", like ECONNREFUSED a
    // moment later, so callers fall back to the pinned maps as they would then.
    if ((n == 0 || (n < 0 && errno == ECONNRESET)) && buf.empty())
      return Error::kernel(ECONNREFUSED, "ramjetd is not running (" + path +
                                             " was closed without an answer: it just exited)");
    if (n <= 0) return Error::internal("ramjetd closed " + path + " without an answer");
    buf.append(tmp, static_cast<std::size_t>(n));
  }
}

// Body bytes in order, whatever the framing (the h1 body decoders); `sink` returns
// false to stop.
class BodyReader {
 public:
  BodyReader(int fd, std::string initial, const ReplyHead& head)
      : fd_(fd), buf_(std::move(initial)), head_(head) {}

  // false on a framing error or a body cut short.
  bool run(const std::function<bool(std::string_view)>& sink) {
    switch (head_.body) {
      case h1::BodyKind::kNone:
        return true;
      case h1::BodyKind::kUntilClose:
      case h1::BodyKind::kTunnel:
        for (;;) {  // EOF ends the body
          if (!buf_.empty() && !sink(buf_)) return true;
          buf_.clear();
          if (!fill()) return true;
        }
      case h1::BodyKind::kContentLength: {
        h1::ContentLengthBody body(head_.content_length);
        return decode([&](std::string_view in) { return body.decode(in); }, sink);
      }
      case h1::BodyKind::kChunked: {
        h1::ChunkedDecoder body(h1::MessageKind::kResponse);
        std::vector<h1::Field> trailers;
        return decode([&](std::string_view in) { return body.decode(in, trailers); }, sink);
      }
    }
    return false;
  }

 private:
  template <typename Decode>
  bool decode(Decode&& step, const std::function<bool(std::string_view)>& sink) {
    for (;;) {
      h1::BodyResult r = step(buf_);
      switch (r.status) {
        case h1::BodyStatus::kData:
          if (!sink(r.data)) return true;
          buf_.erase(0, r.consumed);
          break;
        case h1::BodyStatus::kNeedMore:
          buf_.erase(0, r.consumed);
          if (!fill()) return false;
          break;
        case h1::BodyStatus::kDone:
          return true;
        case h1::BodyStatus::kError:
          return false;
      }
    }
  }

  bool fill() {
    char tmp[65536];
    for (;;) {
      ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      buf_.append(tmp, static_cast<std::size_t>(n));
      return true;
    }
  }

  int fd_;
  std::string buf_;
  ReplyHead head_;
};

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

bool daemon_not_running(const Error& e) {
  return e.source == ErrorSource::kKernel && (e.code == ENOENT || e.code == ECONNREFUSED);
}

bool permission_denied(const Error& e) {
  return e.code == EACCES || e.code == EPERM;
}

std::string error_text(const AdminReply& reply) {
  auto j = nlohmann::json::parse(reply.body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_string())
    return j["error"].get<std::string>();
  std::string s = reply.body;
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s.empty() ? "HTTP " + std::to_string(reply.status) : s;
}

Result<int> AdminClient::open_and_send(std::string_view method, std::string_view target,
                                       const std::string& body, int timeout_ms) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path_.size() >= sizeof sa.sun_path)
    return Error::config("admin socket path too long: " + path_);
  std::memcpy(sa.sun_path, path_.c_str(), path_.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error::kernel(errno, "socket: " + std::string(std::strerror(errno)));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    int err = errno;
    ::close(fd);
    if (err == ENOENT || err == ECONNREFUSED)
      return Error::kernel(err, "ramjetd is not running (nothing listens on " + path_ + ")");
    if (err == EACCES || err == EPERM)
      return Error::kernel(err, "permission denied on " + datapath::denied_detail(path_) +
                                    ": run as root (the admin socket is its owner's only)");
    return Error::kernel(err, path_ + ": " + std::strerror(err));
  }
  if (timeout_ms > 0) {
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  std::string req = std::string(method) + " " + std::string(target) +
                    " HTTP/1.1\r\nHost: ramjet\r\nConnection: close\r\n";
  if (!body.empty() || method == "POST" || method == "PUT")
    req +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  if (!send_all(fd, req)) {
    int err = errno;
    ::close(fd);
    return Error::kernel(err, "cannot send to " + path_ + ": " + std::strerror(err));
  }
  return fd;
}

Result<AdminReply> AdminClient::request(std::string_view method, std::string_view target,
                                        const std::string& body) {
  auto opened = open_and_send(method, target, body, timeout_ms_);
  if (!opened.ok()) return opened.error();
  Fd fd{*opened};
  std::string buf;
  auto head = read_head(fd.fd, method, buf, path_);
  if (!head.ok()) return head.error();
  AdminReply reply{head->status, {}};
  BodyReader reader(fd.fd, std::move(buf), *head);
  if (!reader.run([&](std::string_view s) {
        reply.body.append(s);
        return true;
      }))
    return Error::internal("truncated answer from " + path_);
  return reply;
}

Result<int> AdminClient::stream_lines(std::string_view method, std::string_view target,
                                      const std::function<bool(std::string_view)>& on_line,
                                      std::string* error_body) {
  auto opened = open_and_send(method, target, {}, 0);
  if (!opened.ok()) return opened.error();
  Fd fd{*opened};
  std::string buf;
  auto head = read_head(fd.fd, method, buf, path_);
  if (!head.ok()) return head.error();
  int status = head->status;
  BodyReader reader(fd.fd, std::move(buf), *head);
  if (status < 200 || status > 299) {
    std::string body;
    reader.run([&](std::string_view s) {
      body.append(s);
      return true;
    });
    if (error_body) *error_body = std::move(body);
    return status;
  }
  std::string partial;
  bool stopped = false;
  bool framed = reader.run([&](std::string_view s) {
    std::size_t start = 0;
    for (std::size_t nl; (nl = s.find('\n', start)) != std::string_view::npos; start = nl + 1) {
      bool go;
      if (partial.empty()) {
        go = on_line(s.substr(start, nl - start));
      } else {
        partial.append(s.substr(start, nl - start));
        go = on_line(partial);
        partial.clear();
      }
      if (!go) {
        stopped = true;
        return false;
      }
    }
    partial.append(s.substr(start));
    return true;
  });
  if (!stopped && !partial.empty()) on_line(partial);
  if (!framed && !stopped) return Error::internal("the answer from " + path_ + " broke off");
  return status;
}

}  // namespace ramjet::admin
