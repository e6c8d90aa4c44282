#include "app/systemd_notify.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "support/temp_dir.h"

namespace ramjet::app {
namespace {

using namespace std::chrono_literals;
using SystemdNotifyTest = testing_support::TempDirTest;

// A unix datagram socket standing in for systemd's notify socket.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
    auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len), 0) << std::strerror(errno);
    timeval tv{0, 500'000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~NotifySocket() { ::close(fd_); }
  // The next datagram, or "" after half a second.
  std::string next() {
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }

 private:
  std::string path_;
  int fd_ = -1;
};

TEST(SystemdWatchdogParse, AsSdWatchdogEnabledReadsIt) {
  EXPECT_EQ(parse_watchdog("30000000", nullptr, 42), std::chrono::microseconds(30'000'000));
  EXPECT_EQ(parse_watchdog("400000", "42", 42), std::chrono::microseconds(400'000));
  EXPECT_EQ(parse_watchdog("400000", "43", 42), std::nullopt) << "another process's watchdog";
  EXPECT_EQ(parse_watchdog(nullptr, nullptr, 42), std::nullopt);
  EXPECT_EQ(parse_watchdog("0", nullptr, 42), std::nullopt);
  EXPECT_EQ(parse_watchdog("-5", nullptr, 42), std::nullopt);
  EXPECT_EQ(parse_watchdog("12x", nullptr, 42), std::nullopt);
  EXPECT_EQ(parse_watchdog("400000", "x", 42), std::nullopt);
}

TEST_F(SystemdNotifyTest, SendsOneDatagramToAPathSocket) {
  NotifySocket sock(dir_ + "/notify");
  SystemdNotifier n(dir_ + "/notify");
  ASSERT_TRUE(n.enabled());
  EXPECT_TRUE(n.notify("READY=1\nSTATUS=serving"));
  EXPECT_EQ(sock.next(), "READY=1\nSTATUS=serving");
}

TEST_F(SystemdNotifyTest, SendsToTheAbstractNamespace) {
  const std::string name = "@ramjet-notify-test-" + std::to_string(::getpid());
  NotifySocket sock(name);
  SystemdNotifier n(name);
  EXPECT_TRUE(n.notify("STOPPING=1"));
  EXPECT_EQ(sock.next(), "STOPPING=1");
}

TEST_F(SystemdNotifyTest, WithoutASocketNothingIsSentAndNothingFails) {
  SystemdNotifier n;
  EXPECT_FALSE(n.enabled());
  EXPECT_TRUE(n.notify("READY=1"));
  EXPECT_EQ(n.watchdog_interval(), std::nullopt);
}

TEST_F(SystemdNotifyTest, AMissingSocketIsAFailedSend) {
  SystemdNotifier n(dir_ + "/nobody-listens");
  EXPECT_FALSE(n.notify("READY=1"));
}

TEST_F(SystemdNotifyTest, FromEnvironmentTakesAndUnsetsTheVariables) {
  NotifySocket sock(dir_ + "/notify");
  ::setenv("NOTIFY_SOCKET", (dir_ + "/notify").c_str(), 1);
  ::setenv("WATCHDOG_USEC", "2000000", 1);
  ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  auto n = SystemdNotifier::from_environment();
  EXPECT_EQ(std::getenv("NOTIFY_SOCKET"), nullptr);
  EXPECT_EQ(std::getenv("WATCHDOG_USEC"), nullptr);
  EXPECT_EQ(std::getenv("WATCHDOG_PID"), nullptr);
  EXPECT_EQ(n.watchdog_interval(), std::chrono::microseconds(2'000'000));
  EXPECT_TRUE(n.notify("READY=1"));
  EXPECT_EQ(sock.next(), "READY=1");
}

TEST_F(SystemdNotifyTest, WatchdogPingsWhileHealthyAndWithholdsWhileStalled) {
  NotifySocket sock(dir_ + "/notify");
  SystemdNotifier n(dir_ + "/notify");
  std::atomic<bool> healthy{true};
  std::atomic<int> checks{0};
  {
    SystemdWatchdog dog(n, 100ms, [&] {
      ++checks;
      return healthy.load();
    });
    // Every 50 ms while healthy.
    EXPECT_EQ(sock.next(), "WATCHDOG=1");
    EXPECT_EQ(sock.next(), "WATCHDOG=1");
    healthy = false;
    // A ping already on its way may land; after it, none while the check fails.
    while (sock.next() == "WATCHDOG=1") {
    }
    const int stalled_checks = checks.load();
    EXPECT_EQ(sock.next(), "") << "a ping while the heartbeat fails";
    EXPECT_GT(checks.load(), stalled_checks) << "the heartbeat is still being checked";
    healthy = true;
    EXPECT_EQ(sock.next(), "WATCHDOG=1");
  }
  // Destroyed: the thread is gone and sends nothing more.
  while (sock.next() == "WATCHDOG=1") {
  }
  EXPECT_EQ(sock.next(), "");
}

}  // namespace
}  // namespace ramjet::app
