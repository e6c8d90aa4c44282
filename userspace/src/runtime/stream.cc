#include "runtime/stream.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include "runtime/worker.h"

namespace ramjet::runtime {

Task<int> PlainStream::read(std::string& out, std::size_t max, std::chrono::milliseconds timeout) {
  if (buffers_ != nullptr) {
    auto op = worker_.recv_select(fd_, buffers_->group(),
                                  std::min<std::size_t>(max, buffers_->buffer_size()));
    if (timeout.count() > 0) op.with_timeout(timeout);
    int n = co_await op;
    if (n > 0) {
      unsigned id = op.op.flags >> IORING_CQE_BUFFER_SHIFT;
      out.append(reinterpret_cast<const char*>(buffers_->buffer(id)), static_cast<std::size_t>(n));
      buffers_->recycle(id);
      co_return n;
    }
    if (n != -ENOBUFS) co_return n;
    // Every ring buffer is in flight: a buffer of the caller's, this once.
  }
  std::size_t old = out.size();
  out.resize(old + max);
  auto op = worker_.recv(fd_, out.data() + old, max);
  if (timeout.count() > 0) op.with_timeout(timeout);
  int n = co_await op;
  out.resize(old + static_cast<std::size_t>(n > 0 ? n : 0));
  co_return n;
}

Task<bool> PlainStream::write_all(std::string_view data) {
  while (!data.empty()) {
    int n = co_await worker_.send(fd_, data.data(), data.size());
    if (n <= 0) co_return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  co_return true;
}

Task<void> PlainStream::shutdown_write() {
  ::shutdown(fd_, SHUT_WR);
  co_return;
}

}  // namespace ramjet::runtime
