#include "app/instance_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

namespace ramjet::app {

std::optional<pid_t> flock_holder(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return std::nullopt;
  // "1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF"; waiters' lines have "->" after the id.
  char dev_ino[64];
  std::snprintf(dev_ino, sizeof dev_ino, "%02x:%02x:%llu", major(st.st_dev), minor(st.st_dev),
                static_cast<unsigned long long>(st.st_ino));
  std::ifstream locks("/proc/locks");
  std::string line;
  while (std::getline(locks, line)) {
    std::istringstream in(line);
    std::string id, kind, mode, access, pid, file;
    in >> id >> kind;
    if (kind == "->" || kind != "FLOCK") continue;
    in >> mode >> access >> pid >> file;
    if (file == dev_ino) return static_cast<pid_t>(std::stol(pid));
  }
  return std::nullopt;
}

Result<InstanceLock> InstanceLock::acquire(const std::string& path, std::string_view what) {
  struct stat st {};
  bool dir = ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  int fd = dir ? ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
               : ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    int err = errno;
    return Error::kernel(err, std::string(what) + ": cannot open the lock " + path + ": " +
                                  strerror(err) + " (errno " + std::to_string(err) + ")");
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    std::optional<pid_t> holder = err == EWOULDBLOCK ? flock_holder(fd) : std::nullopt;
    ::close(fd);
    if (err != EWOULDBLOCK)
      return Error::kernel(err, std::string(what) + ": cannot lock " + path + ": " + strerror(err));
    std::string by = holder ? "pid " + std::to_string(*holder) : "another process";
    return Error::kernel(err, std::string(what) + " is in use by " + by + " (lock " + path +
                                  ")");
  }
  if (!dir) {
    // For people and scripts; the lock, not this text, is what counts.
    std::string pid = std::to_string(::getpid()) + "\n";
    [[maybe_unused]] bool noted =
        ::ftruncate(fd, 0) == 0 && ::pwrite(fd, pid.data(), pid.size(), 0) >= 0;
  }
  return InstanceLock(fd, path);
}

InstanceLock::InstanceLock(InstanceLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)),
      remove_empty_dir_(std::exchange(other.remove_empty_dir_, false)) {}

InstanceLock& InstanceLock::operator=(InstanceLock&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    remove_empty_dir_ = std::exchange(other.remove_empty_dir_, false);
  }
  return *this;
}

InstanceLock::~InstanceLock() {
  release();
}

void InstanceLock::release() {
  if (fd_ < 0) return;
  // rmdir while the lock is held, so no other daemon can have locked this directory yet;
  // it fails (ENOTEMPTY) when pins were left in it on purpose (--keep-datapath).
  if (remove_empty_dir_) ::rmdir(path_.c_str());
  ::close(fd_);
  fd_ = -1;
}

}  // namespace ramjet::app
