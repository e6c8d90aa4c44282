#include "proxy/self_address.h"

#include <sys/socket.h>
#include <unistd.h>

namespace ramjet::proxy {
namespace {

bool is_wildcard(const IpAddress& ip) {
  for (std::size_t i = 0; i < ip.size(); ++i) {
    if (ip.data()[i] != 0) return false;
  }
  return true;
}

bool is_host_address(const IpAddress& ip) {
  const SocketAddress probe(ip, 0);
  sockaddr_storage ss;
  const socklen_t len = probe.to_sockaddr(ss);
  const int fd = ::socket(probe.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool bound = ::bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) == 0;
  ::close(fd);
  return bound;
}

}  // namespace

bool addressed_to_listener(const SocketAddress& bound, const SocketAddress& local) {
  if (local.port() != bound.port()) return false;
  const IpAddress mine = local.ip().unmapped();
  const IpAddress listen = bound.ip().unmapped();
  if (is_wildcard(listen)) return is_host_address(mine);
  return mine == listen || mine == *IpAddress::parse(listen.is_v4() ? "::1" : "127.0.0.1");
}

}  // namespace ramjet::proxy
