#include "admin/admin_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "admin/socket_path.h"
#include "telemetry/hook_trace.h"

namespace ramjet::admin {

nlohmann::json hook_event_json(const telemetry::HookEvent& e) {
  return {{"seq", e.seq},
          {"hook", e.hook},
          {"flow", e.flow},
          {"endpoint", e.endpoint},
          {"decision", e.decision},
          {"detail", e.detail},
          {"duration_us", e.duration.count()},
          {"ts_ns", e.ts_ns}};
}

AdminServer::~AdminServer() {
  stop();
}

void AdminServer::route(std::string method, std::string path, HttpHandler handler) {
  router_.add(std::move(method), std::move(path), std::move(handler));
}

Result<void> AdminServer::start(const std::string& path) {
  path_ = path;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path)
    return Error::config("server.admin_socket: path too long: " + path);
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (!dir.empty()) {
    if (auto r = ensure_directory(dir, "server.admin_socket"); !r.ok()) return r;
  }
  // Whoever used this path before is gone: the caller holds the instance lock.
  ::unlink(path.c_str());
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error::kernel(errno, "admin socket: " + std::string(strerror(errno)));
  // Created 0600 from the start: no window in which others could connect.
  mode_t old = ::umask(0177);
  int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  ::umask(old);
  if (rc != 0 || ::listen(fd, 64) != 0) {
    int err = errno;
    ::close(fd);
    return Error::kernel(err, "admin socket " + path + ": " + strerror(err));
  }
  responder_ = std::make_unique<HttpResponder>(
      "admin", [this](const HttpRequest& req) { return router_.dispatch(req); });
  return responder_->start(fd);
}

void AdminServer::stop() {
  if (!responder_) return;
  responder_->stop();
  responder_.reset();
  ::unlink(path_.c_str());
}

}  // namespace ramjet::admin
