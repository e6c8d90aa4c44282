#include "proxy/upstream_pool.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace ramjet::proxy {

namespace {
// Open, and nothing waiting to be read: a server that closed (or sent something
// unasked) makes the connection unusable.
bool still_open(int fd) {
  char probe;
  ssize_t n = ::recv(fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}
}  // namespace

std::size_t UpstreamPool::AddressHash::operator()(const SocketAddress& a) const noexcept {
  // FNV-1a over the address bytes and the port.
  std::uint64_t h = 1469598103934665603ull;
  auto mix = [&h](std::uint8_t b) { h = (h ^ b) * 1099511628211ull; };
  for (std::size_t i = 0; i < a.ip().size(); ++i) mix(a.ip().data()[i]);
  mix(static_cast<std::uint8_t>(a.port() >> 8));
  mix(static_cast<std::uint8_t>(a.port()));
  return static_cast<std::size_t>(h);
}

UpstreamPool::~UpstreamPool() {
  for (auto& [addr, list] : idle_) {
    for (auto& i : list) {
      i.tls.reset();
      ::close(i.fd);
    }
  }
}

UpstreamPool::Pooled UpstreamPool::take(const std::vector<SocketAddress>& addresses,
                                        SocketAddress& which, bool probe,
                                        std::string_view reuse_key) {
  if (total_ == 0) return {};
  auto now = runtime::Clock::now();
  for (const auto& addr : addresses) {
    auto it = idle_.find(addr);
    if (it == idle_.end()) continue;
    auto& list = it->second;
    // Newest first: the one least likely to have been closed by the server.
    for (std::size_t k = list.size(); k-- > 0;) {
      if (list[k].reuse_key != reuse_key) continue;
      Idle i = std::move(list[k]);
      list.erase(list.begin() + static_cast<std::ptrdiff_t>(k));
      --total_;
      if (now - i.since <= limits_.max_idle_time && (!probe || still_open(i.fd))) {
        which = addr;
        return {i.fd, std::move(i.tls)};
      }
      i.tls.reset();
      ::close(i.fd);
    }
  }
  return {};
}

void UpstreamPool::put(const SocketAddress& address, int fd, std::unique_ptr<runtime::Stream> tls,
                       std::string reuse_key) {
  auto& list = idle_[address];
  if (total_ >= limits_.max_idle || list.size() >= limits_.per_address) {
    if (list.empty()) {
      tls.reset();
      ::close(fd);
      return;
    }
    list.front().tls.reset();
    ::close(list.front().fd);  // make room by dropping the oldest for this address
    list.pop_front();
    --total_;
  }
  list.push_back({fd, runtime::Clock::now(), std::move(tls), std::move(reuse_key)});
  ++total_;
}

}  // namespace ramjet::proxy
