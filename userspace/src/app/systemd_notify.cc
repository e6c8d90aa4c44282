#include "app/systemd_notify.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

namespace ramjet::app {

namespace {

std::optional<long long> parse_positive(const char* s) {
  if (s == nullptr || *s == '\0') return std::nullopt;
  long long v = 0;
  const char* end = s + std::strlen(s);
  auto [p, ec] = std::from_chars(s, end, v);
  if (ec != std::errc() || p != end || v <= 0) return std::nullopt;
  return v;
}

}  // namespace

std::optional<std::chrono::microseconds> parse_watchdog(const char* usec, const char* pid,
                                                        long own_pid) {
  auto interval = parse_positive(usec);
  if (!interval) return std::nullopt;
  if (pid != nullptr) {
    auto p = parse_positive(pid);
    if (!p || *p != own_pid) return std::nullopt;
  }
  return std::chrono::microseconds(*interval);
}

SystemdNotifier SystemdNotifier::from_environment() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  std::string path = socket != nullptr ? socket : "";
  auto watchdog =
      parse_watchdog(std::getenv("WATCHDOG_USEC"), std::getenv("WATCHDOG_PID"), ::getpid());
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
  // Only unix sockets (a path or '@' for the abstract namespace); systemd 252 uses these.
  if (!path.empty() && path[0] != '/' && path[0] != '@') {
    spdlog::warn("NOTIFY_SOCKET={} is not a unix socket path: not notifying systemd", path);
    path.clear();
  }
  if (path.empty()) watchdog.reset();
  return SystemdNotifier(std::move(path), watchdog);
}

bool SystemdNotifier::notify(std::string_view state) const {
  if (!enabled()) return true;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path_.size() >= sizeof(addr.sun_path)) {
    spdlog::warn("NOTIFY_SOCKET {} is too long", socket_path_);
    return false;
  }
  std::memcpy(addr.sun_path, socket_path_.data(), socket_path_.size());
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
  const auto len =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path_.size());
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    spdlog::warn("systemd notification: socket: {}", std::strerror(errno));
    return false;
  }
  const ssize_t n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                             reinterpret_cast<const sockaddr*>(&addr), len);
  const int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(state.size())) {
    spdlog::warn("systemd notification to {} failed: {}", socket_path_, std::strerror(err));
    return false;
  }
  return true;
}

SystemdWatchdog::SystemdWatchdog(const SystemdNotifier& notifier,
                                 std::chrono::microseconds interval,
                                 std::function<bool()> healthy)
    : notifier_(notifier), period_(interval / 2), healthy_(std::move(healthy)) {
  thread_ = std::thread([this] { run(); });
}

SystemdWatchdog::~SystemdWatchdog() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SystemdWatchdog::run() {
  bool stalled = false;
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    const bool ok = healthy_();
    if (ok) notifier_.notify("WATCHDOG=1");
    if (!ok && !stalled)
      spdlog::warn("a worker did not answer its heartbeat: withholding systemd's watchdog ping");
    else if (ok && stalled)
      spdlog::info("every worker answers its heartbeat again: systemd's watchdog pings resume");
    stalled = !ok;
    lock.lock();
    cv_.wait_for(lock, period_, [this] { return stop_; });
  }
}

}  // namespace ramjet::app
