// One daemon per admin socket and per datapath instance.
//
// A second ramjetd started by mistake must not unlink the live daemon's admin
// socket, join its SO_REUSEPORT groups or take over its pinned maps. Each of
// those is guarded by an flock held for the life of the process: on
// <admin_socket>.lock, and on the datapath's pin directory <pin_root>/<instance>
// (bpffs holds no plain files, a directory takes an flock all the same). The
// kernel drops the lock when the process dies, so a crash leaves nothing stale;
// the lock file itself stays (deleting it would let two daemons lock two files).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "ramjet/result.h"

namespace ramjet::app {

class InstanceLock {
 public:
  // Locks the file `path` (created 0600 when missing; this process's pid is written
  // into it) or, when `path` is a directory, the directory. `what` names what the
  // lock guards, for the error: "<what> is in use by pid N (lock PATH)".
  static Result<InstanceLock> acquire(const std::string& path, std::string_view what);

  InstanceLock(InstanceLock&& other) noexcept;
  InstanceLock& operator=(InstanceLock&& other) noexcept;
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;
  ~InstanceLock();

  const std::string& path() const { return path_; }

  // For a directory this process created to lock it: removes it again on release when it
  // is still empty (a start refused before anything was pinned leaves nothing behind).
  void remove_empty_dir_on_release() { remove_empty_dir_ = true; }

 private:
  InstanceLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  void release();

  int fd_ = -1;
  std::string path_;
  bool remove_empty_dir_ = false;
};

// The pid holding an flock on the file open as `fd` (from /proc/locks), if any.
std::optional<pid_t> flock_holder(int fd);

}  // namespace ramjet::app
