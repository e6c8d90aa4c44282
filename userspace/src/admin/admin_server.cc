#include "admin/admin_server.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "telemetry/hook_trace.h"
#include "telemetry/stats.h"

namespace ramjet::admin {

namespace {
constexpr std::size_t kMaxRequestHead = 8192;

std::string stats_json() {
  nlohmann::json counters = nlohmann::json::object();
  auto& reg = telemetry::stats();
  for (std::size_t i = 0; i < telemetry::kCounterCount; ++i)
    counters[std::string(telemetry::kCounterNames[i])] =
        reg.total(static_cast<telemetry::Counter>(i));
  return nlohmann::json{{"counters", counters}}.dump();
}

std::string trace_json() {
  nlohmann::json events = nlohmann::json::array();
  for (const auto& e : telemetry::hook_trace().snapshot()) {
    events.push_back({{"seq", e.seq},
                      {"hook", e.hook},
                      {"flow", e.flow},
                      {"endpoint", e.endpoint},
                      {"decision", e.decision},
                      {"detail", e.detail},
                      {"duration_us", e.duration.count()}});
  }
  return nlohmann::json{{"enabled", telemetry::hook_trace().enabled()}, {"events", events}}.dump();
}

void write_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

void respond(int fd, int status, const char* reason, const std::string& body) {
  std::string head =
      "HTTP/1.1 " + std::to_string(status) + " " + reason +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nConnection: close\r\n\r\n";
  write_all(fd, head + body);
}
}  // namespace

AdminServer::~AdminServer() {
  stop();
}

Result<void> AdminServer::start(const std::string& path) {
  path_ = path;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path)
    return Error::config("server.admin_socket: path too long: " + path);
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  ::unlink(path.c_str());
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return Error::kernel(errno, "admin socket: " + std::string(strerror(errno)));
  // Created 0600 from the start: no window in which others could connect.
  mode_t old = ::umask(0177);
  int rc = ::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  ::umask(old);
  if (rc != 0 || ::listen(fd_, 64) != 0) {
    int err = errno;
    ::close(fd_);
    fd_ = -1;
    return Error::kernel(err, "admin socket " + path + ": " + strerror(err));
  }
  thread_ = std::thread([this] { serve(); });
  return {};
}

void AdminServer::stop() {
  if (fd_ < 0) return;
  stopping_ = true;
  ::shutdown(fd_, SHUT_RDWR);  // wakes the blocked accept()
  if (thread_.joinable()) thread_.join();
  ::close(fd_);
  fd_ = -1;
  ::unlink(path_.c_str());
}

void AdminServer::serve() {
  while (!stopping_) {
    int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (stopping_) break;
      if (errno == EMFILE || errno == ENFILE) {
        ::usleep(100000);
        continue;
      }
      break;
    }
    timeval tv{2, 0};
    ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    handle(c);
    ::close(c);
  }
}

void AdminServer::handle(int fd) {
  std::string req;
  char buf[1024];
  while (req.find("\r\n\r\n") == std::string::npos) {
    if (req.size() > kMaxRequestHead)
      return respond(fd, 431, "Request Header Fields Too Large",
                     R"({"error":"request head too large"})");
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return;
    req.append(buf, static_cast<std::size_t>(n));
  }
  auto line_end = req.find("\r\n");
  std::string line = req.substr(0, line_end);
  auto sp1 = line.find(' ');
  auto sp2 = line.find(' ', sp1 == std::string::npos ? 0 : sp1 + 1);
  if (sp1 == std::string::npos || sp2 == std::string::npos)
    return respond(fd, 400, "Bad Request", R"({"error":"malformed request line"})");
  std::string method = line.substr(0, sp1);
  std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string query;
  if (auto q = target.find('?'); q != std::string::npos) {
    query = target.substr(q + 1);
    target.resize(q);
  }
  for (const auto& [path, handler] : routes_) {
    bool match = path.back() == '/' ? target.rfind(path, 0) == 0 : target == path;
    if (!match) continue;
    Response r = handler(method, target, query);
    const char* reason = r.status == 200   ? "OK"
                         : r.status == 400 ? "Bad Request"
                         : r.status == 404 ? "Not Found"
                         : r.status == 405 ? "Method Not Allowed"
                         : r.status == 409 ? "Conflict"
                         : r.status == 503 ? "Service Unavailable"
                                           : "Error";
    return respond(fd, r.status, reason, r.body);
  }
  if (method != "GET")
    return respond(fd, 405, "Method Not Allowed", R"({"error":"only GET is served"})");
  if (target == "/v1/stats") return respond(fd, 200, "OK", stats_json());
  if (target == "/v1/hooks/trace") return respond(fd, 200, "OK", trace_json());
  if (target == "/v1/status") return respond(fd, 200, "OK", status_());
  respond(fd, 404, "Not Found", nlohmann::json{{"error", "no such route: " + target}}.dump());
}

}  // namespace ramjet::admin
