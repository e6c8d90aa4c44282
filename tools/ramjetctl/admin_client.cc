#include "admin_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "datapath/pinned_maps.h"

namespace ramjet::ctl {

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

// Reads the response head into `buf`; what follows it stays in `buf`.
Result<std::pair<int, std::string>> read_head(int fd, std::string& buf, const std::string& path) {
  char tmp[16384];
  std::size_t end;
  while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
    ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return Error::kernel(ETIMEDOUT, "ramjetd did not answer on " + path + " in time");
    if (n <= 0) return Error::internal("ramjetd closed " + path + " without an answer");
    buf.append(tmp, static_cast<std::size_t>(n));
    if (buf.size() > 65536) return Error::internal("malformed answer from " + path);
  }
  std::string head = buf.substr(0, end);
  buf.erase(0, end + 4);
  if (head.compare(0, 9, "HTTP/1.1 ") != 0 && head.compare(0, 9, "HTTP/1.0 ") != 0)
    return Error::internal("malformed answer from " + path);
  int status = std::atoi(head.c_str() + 9);
  // Header names are case-insensitive: compare on a lower-cased copy.
  std::string lower = head;
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return std::make_pair(status, lower);
}

std::optional<std::size_t> header_number(const std::string& lower_head, const char* name) {
  auto pos = lower_head.find(std::string("\r\n") + name + ":");
  if (pos == std::string::npos) return std::nullopt;
  pos += std::strlen(name) + 3;
  while (pos < lower_head.size() && lower_head[pos] == ' ') ++pos;
  std::size_t v = 0;
  auto [p, ec] = std::from_chars(lower_head.data() + pos, lower_head.data() + lower_head.size(), v);
  if (ec != std::errc()) return std::nullopt;
  return v;
}

// Body bytes in order, whatever the framing; `sink` returns false to stop.
class BodyReader {
 public:
  BodyReader(int fd, std::string initial, const std::string& head)
      : fd_(fd), buf_(std::move(initial)) {
    chunked_ = head.find("\r\ntransfer-encoding: chunked") != std::string::npos;
    if (!chunked_) length_ = header_number(head, "content-length");
  }

  // false on a framing error.
  bool run(const std::function<bool(std::string_view)>& sink) {
    if (!chunked_) {
      std::size_t left = length_.value_or(SIZE_MAX);
      for (;;) {
        std::size_t take = std::min(left, buf_.size());
        if (take && !sink(std::string_view(buf_).substr(0, take))) return true;
        left -= take;
        buf_.clear();
        if (left == 0) return true;
        if (!fill()) return !length_;  // EOF ends a close-delimited body
      }
    }
    for (;;) {
      std::size_t eol;
      while ((eol = buf_.find("\r\n")) == std::string::npos)
        if (!fill()) return false;
      std::size_t size = 0;
      auto [p, ec] = std::from_chars(buf_.data(), buf_.data() + eol, size, 16);
      if (ec != std::errc()) return false;
      buf_.erase(0, eol + 2);
      if (size == 0) return true;
      while (buf_.size() < size + 2)
        if (!fill()) return false;
      if (!sink(std::string_view(buf_).substr(0, size))) return true;
      buf_.erase(0, size + 2);
    }
  }

 private:
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
  bool chunked_ = false;
  std::optional<std::size_t> length_;
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
  auto head = read_head(fd.fd, buf, path_);
  if (!head.ok()) return head.error();
  AdminReply reply{head->first, {}};
  BodyReader reader(fd.fd, std::move(buf), head->second);
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
  auto head = read_head(fd.fd, buf, path_);
  if (!head.ok()) return head.error();
  int status = head->first;
  BodyReader reader(fd.fd, std::move(buf), head->second);
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

}  // namespace ramjet::ctl
