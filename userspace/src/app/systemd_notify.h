// systemd's service notification protocol (sd_notify(3)) and its watchdog, written by
// hand: a notification is one datagram of "KEY=VALUE\n" lines sent to the unix socket
// that $NOTIFY_SOCKET names, which is all libsystemd's sd_notify does for us (libsystemd
// is not a dependency for one sendto). Outside systemd (no NOTIFY_SOCKET) every call is
// a no-op.
//
// What ramjetd sends (config/ramjetd.service is Type=notify):
//   READY=1            listeners bound and workers accepting
//   RELOADING=1        a reload (SIGHUP, POST /v1/reload) began; READY=1 when it ended
//   STOPPING=1         draining began (SIGTERM, SIGINT, POST /v1/drain)
//   WATCHDOG=1         every WatchdogSec/2 while every worker answers a heartbeat
//   STATUS=...         a line for `systemctl status`
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

namespace ramjet::app {

class SystemdNotifier {
 public:
  // Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID, then unsets them so that no
  // child process (a hook's helper, say) speaks for this service.
  static SystemdNotifier from_environment();

  bool enabled() const { return !socket_path_.empty(); }
  // Sends `state` (lines of KEY=VALUE). False when the send failed (logged); true when it
  // was sent or there is no one to tell. Thread-safe.
  bool notify(std::string_view state) const;
  // The service's watchdog interval, when systemd asked this process for pings.
  std::optional<std::chrono::microseconds> watchdog_interval() const { return watchdog_; }

  // For tests: a notifier for `socket_path` ('@' first: the abstract namespace).
  explicit SystemdNotifier(std::string socket_path,
                           std::optional<std::chrono::microseconds> watchdog = std::nullopt)
      : socket_path_(std::move(socket_path)), watchdog_(watchdog) {}
  SystemdNotifier() = default;

 private:
  std::string socket_path_;
  std::optional<std::chrono::microseconds> watchdog_;
};

// Parses WATCHDOG_USEC and WATCHDOG_PID as sd_watchdog_enabled(3) does: pings are wanted
// when the interval is a positive number of microseconds and the pid, if given, is ours.
std::optional<std::chrono::microseconds> parse_watchdog(const char* usec, const char* pid,
                                                        long own_pid);

// Pings systemd's watchdog every interval/2 from a thread of its own, but only while
// `healthy()` (every worker answered a heartbeat) holds: a stalled worker withholds the
// pings and systemd acts after WatchdogSec (SIGABRT by default, then Restart=).
class SystemdWatchdog {
 public:
  SystemdWatchdog(const SystemdNotifier& notifier, std::chrono::microseconds interval,
                  std::function<bool()> healthy);
  ~SystemdWatchdog();  // stops and joins the thread
  SystemdWatchdog(const SystemdWatchdog&) = delete;
  SystemdWatchdog& operator=(const SystemdWatchdog&) = delete;

 private:
  void run();

  const SystemdNotifier& notifier_;
  std::chrono::microseconds period_;
  std::function<bool()> healthy_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace ramjet::app
