#include "datapath/sysctl.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace ramjet::datapath {

int read_sysctl(const std::string& path) {
  char buf[16] = {};
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  int err = errno;
  ::close(fd);
  return n > 0 ? std::atoi(buf) : -err;
}

int write_sysctl(const std::string& path, const char* value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  ssize_t n = ::write(fd, value, std::strlen(value));
  int err = errno;
  ::close(fd);
  return n > 0 ? 0 : -err;
}

}  // namespace ramjet::datapath
