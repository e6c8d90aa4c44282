#include "proxy/relay.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <utility>

namespace ramjet::proxy {

namespace {
// Large enough to carry a full loopback TSO burst per splice; pages are only
// pinned while data sits in the pipe, which backpressure keeps brief.
constexpr int kPipeSize = 1 << 20;
constexpr unsigned kSpliceChunk = 1 << 20;
constexpr auto kNoBufferBackoff = std::chrono::milliseconds(1);
// relay: auto moves a direction to splice after this many full receive buffers in a row
// (2 x 64 KiB): a request or a short answer never gets there, a download soon does.
constexpr unsigned kSpliceAfterFullBuffers = 2;

bool is_retry(int err) {
  return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}
}  // namespace

Relay::Relay(runtime::Worker& w, runtime::Stream& client, runtime::Stream& upstream,
             RelayMode mode, RelayLimits limits, runtime::BufferRing* buffers)
    : worker_(w),
      client_(client),
      upstream_(upstream),
      client_fd_(client.fd()),
      upstream_fd_(upstream.fd()),
      mode_(mode),
      limits_(limits),
      buffers_(buffers) {}

Task<void> Relay::run() {
  started_ = last_activity_ = runtime::Clock::now();
  Direction up{client_fd_,        upstream_fd_, &client_, &upstream_, &bytes_from_client_,
               CloseReason::kDownstreamError, CloseReason::kUpstreamError};
  Direction down{upstream_fd_, client_fd_,       &upstream_, &client_, &bytes_to_client_,
                 CloseReason::kUpstreamError, CloseReason::kDownstreamError};
  runtime::JoinSet pumps;
  if (!client_.plain() || !upstream_.plain()) {
    pumps.start(pump_stream(up));
    pumps.start(pump_stream(down));
  } else if (mode_ == RelayMode::kSplice) {
    pumps.start(pump_splice(up));
    pumps.start(pump_splice(down));
  } else {
    const unsigned splice_after = mode_ == RelayMode::kAuto ? kSpliceAfterFullBuffers : 0;
    pumps.start(pump_buffer(up, splice_after));
    pumps.start(pump_buffer(down, splice_after));
  }
  runtime::JoinSet timers;
  bool timed = limits_.idle_timeout.count() > 0 || limits_.max_lifetime.count() > 0;
  if (timed) timers.start(watchdog());
  co_await pumps.wait();
  closing_ = true;
  watchdog_slot_.cancel();
  co_await timers.wait();
}

void Relay::force_close(CloseReason why) {
  if (!reason_) reason_ = why;
  if (closing_) return;
  closing_ = true;
  // Shutting both sockets down wakes every pending poll/recv on them with EOF, so
  // both pumps finish promptly without cancelling operations one by one.
  ::shutdown(client_fd_, SHUT_RDWR);
  ::shutdown(upstream_fd_, SHUT_RDWR);
}

void Relay::fail(CloseReason why) {
  force_close(why);
}

Task<void> Relay::watchdog() {
  using namespace std::chrono;
  while (!closing_) {
    auto now = runtime::Clock::now();
    auto deadline = runtime::Clock::time_point::max();
    if (limits_.idle_timeout.count() > 0) deadline = last_activity_ + limits_.idle_timeout;
    if (limits_.max_lifetime.count() > 0)
      deadline = std::min(deadline, started_ + limits_.max_lifetime);
    if (now >= deadline) {
      bool lifetime = limits_.max_lifetime.count() > 0 && now >= started_ + limits_.max_lifetime;
      force_close(lifetime ? CloseReason::kMaxLifetime : CloseReason::kIdleTimeout);
      break;
    }
    int rc = co_await worker_.sleep(deadline - now, &watchdog_slot_);
    if (rc == -ECANCELED) break;
  }
}

Task<void> Relay::pump_splice(Direction d) {
  int pipefd[2];
  if (::pipe2(pipefd, O_NONBLOCK | O_CLOEXEC) != 0) {
    fail(CloseReason::kUpstreamError);
    co_return;
  }
  ::fcntl(pipefd[1], F_SETPIPE_SZ, kPipeSize);
  std::size_t in_pipe = 0;
  bool eof = false;
  while (!eof) {
    ssize_t n = ::splice(d.from, nullptr, pipefd[1], nullptr, kSpliceChunk,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      in_pipe += static_cast<std::size_t>(n);
      *d.counter += static_cast<std::uint64_t>(n);
      touch();
    } else if (n == 0) {
      eof = true;
    } else if (is_retry(errno)) {
      int ev = co_await worker_.poll(d.from, POLLIN | POLLRDHUP);
      if (ev < 0) {
        fail(d.read_error);
        break;
      }
      continue;
    } else {
      if (!closing_) fail(d.read_error);
      break;
    }
    // Write out everything read before reading more: this is the backpressure.
    bool write_failed = false;
    while (in_pipe > 0) {
      ssize_t m =
          ::splice(pipefd[0], nullptr, d.to, nullptr, in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (m > 0) {
        in_pipe -= static_cast<std::size_t>(m);
        continue;
      }
      if (m < 0 && is_retry(errno)) {
        int ev = co_await worker_.poll(d.to, POLLOUT);
        if (ev >= 0 && !(ev & (POLLERR | POLLHUP))) continue;
      }
      write_failed = true;
      break;
    }
    if (write_failed) {
      if (!closing_) fail(d.write_error);
      break;
    }
  }
  if (eof) ::shutdown(d.to, SHUT_WR);  // pass the half-close on
  ::close(pipefd[0]);
  ::close(pipefd[1]);
}

// Each received buffer is sent with the next receive linked behind the send, in one
// submission: a hop costs one io_uring_enter and one completion. The receive starts
// only once the send is done, so a slow receiver stops the reading (backpressure).
// With `splice_after` (relay: auto), a direction that fills that many buffers in a row
// is carrying bulk and moves to splice for the rest of its life: only connections that
// gain from it pay for the pipe pair and splice's extra syscalls per wake-up.
Task<void> Relay::pump_buffer(Direction d, unsigned splice_after) {
  const unsigned size = buffers_->buffer_size();
  std::optional<unsigned> sending;  // the buffer the linked send took, until the receive ends
  std::size_t sending_len = 0;
  unsigned full_in_a_row = 0;
  for (;;) {
    auto recv = sending ? worker_.send_then_recv_select(d.to, buffers_->buffer(*sending),
                                                        sending_len, d.from, buffers_->group(), size)
                        : worker_.recv_select(d.from, buffers_->group(), size);
    int n = co_await recv;
    if (sending) buffers_->recycle(*std::exchange(sending, std::nullopt));
    if (recv.send_error() != 0) {
      if (!closing_) fail(d.write_error);
      co_return;
    }
    if (n == -ENOBUFS) {
      // Every buffer is in flight elsewhere: wait a moment rather than spin.
      co_await worker_.sleep(kNoBufferBackoff);
      continue;
    }
    if (n == 0) {
      ::shutdown(d.to, SHUT_WR);  // everything sent: pass the half-close on
      co_return;
    }
    if (n < 0) {
      if (!closing_) fail(d.read_error);
      co_return;
    }
    *d.counter += static_cast<std::uint64_t>(n);
    touch();
    const unsigned id = recv.op.flags >> IORING_CQE_BUFFER_SHIFT;
    full_in_a_row = static_cast<unsigned>(n) == size ? full_in_a_row + 1 : 0;
    if (splice_after > 0 && full_in_a_row >= splice_after) {
      // This buffer first (in order), then the socket's queue through the pipe.
      const int sent = co_await worker_.send(d.to, buffers_->buffer(id),
                                             static_cast<std::size_t>(n),
                                             MSG_NOSIGNAL | MSG_WAITALL);
      buffers_->recycle(id);
      if (sent != n) {
        if (!closing_) fail(d.write_error);
        co_return;
      }
      ++spliced_directions_;
      co_await pump_splice(d);
      co_return;
    }
    sending = id;
    sending_len = static_cast<std::size_t>(n);
  }
}

// Through the streams (TLS on either side): read decrypts into `buf`, write_all
// encrypts and sends it all before the next read (the backpressure).
Task<void> Relay::pump_stream(Direction d) {
  // As much as a ring buffer holds: into TLS, 64 KiB make four records sent at once.
  constexpr std::size_t kChunk = 64 * 1024;
  // From a plain socket, with the worker's ring: the bytes go from the ring buffer they
  // were received into straight to the other stream (TLS encrypts them from there), not
  // through a copy of our own. That copy was a tenth of the CPU of bulk data into TLS.
  const bool from_ring = d.from_stream->plain() && buffers_ != nullptr;
  std::string buf;
  for (;;) {
    std::string_view data;
    std::optional<unsigned> ring_id;
    int n = -ENOBUFS;
    if (from_ring) {
      auto op = worker_.recv_select(d.from, buffers_->group(),
                                    std::min<std::size_t>(kChunk, buffers_->buffer_size()));
      n = co_await op;
      if (n > 0) {
        ring_id = op.op.flags >> IORING_CQE_BUFFER_SHIFT;
        data = {reinterpret_cast<const char*>(buffers_->buffer(*ring_id)),
                static_cast<std::size_t>(n)};
      }
    }
    if (n == -ENOBUFS) {  // no ring, or every ring buffer is in flight
      buf.clear();
      n = co_await d.from_stream->read(buf, kChunk, std::chrono::milliseconds(0));
      data = buf;
    }
    if (n == 0) {
      co_await d.to_stream->shutdown_write();  // pass the half-close on
      co_return;
    }
    if (n < 0) {
      if (!closing_) fail(d.read_error);
      co_return;
    }
    *d.counter += static_cast<std::uint64_t>(n);
    touch();
    const bool written = co_await d.to_stream->write_all(data);
    if (ring_id) buffers_->recycle(*ring_id);
    if (!written) {
      if (!closing_) fail(d.write_error);
      co_return;
    }
  }
}

}  // namespace ramjet::proxy
