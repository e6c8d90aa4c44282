// Stream: a connected byte stream as the sessions read and write it - a TCP socket as
// it is (PlainStream), or TLS over one (tls::TlsStream). Sessions that only move bytes
// take a Stream&; where a plain socket allows a faster path (splice, receiving into
// the worker's buffer ring) they ask plain() and use fd() themselves.
//
// One reader and one writer may be active at once (a relay runs both directions);
// two concurrent reads, or two concurrent writes, are not allowed.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "ramjet/task.h"

namespace ramjet::runtime {

class Worker;

class Stream {
 public:
  virtual ~Stream() = default;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // The socket underneath (owned by whoever made the stream, not by it).
  int fd() const { return fd_; }
  // True when the socket carries exactly the stream's bytes: splice(2) and receives
  // into the worker's buffer ring are then valid on fd().
  virtual bool plain() const = 0;

  // Appends what arrives (at least one byte, at most `max`) to `out`. Returns the
  // count, 0 at the peer's orderly end, or -errno (-ETIMEDOUT when nothing came
  // within `timeout`; 0 means no limit). TLS failures are -EPROTO.
  virtual Task<int> read(std::string& out, std::size_t max, std::chrono::milliseconds timeout) = 0;
  // Writes all of `data`; false when the peer is gone.
  virtual Task<bool> write_all(std::string_view data) = 0;
  // Ends our direction (TLS: close_notify first), leaving the other one open.
  virtual Task<void> shutdown_write() = 0;
  // The application protocol the peers agreed on (TLS ALPN), or "".
  virtual std::string alpn() const { return {}; }

 protected:
  explicit Stream(int fd) : fd_(fd) {}
  int fd_;
};

class BufferRing;

// A TCP socket as it is. With the worker's buffer ring, reads land in a ring buffer and
// only what arrived is appended: no `max`-byte buffer is allocated and zeroed per read
// (that was a tenth of a small HTTP/2 request's CPU).
class PlainStream final : public Stream {
 public:
  PlainStream(Worker& w, int fd, BufferRing* buffers = nullptr)
      : Stream(fd), worker_(w), buffers_(buffers) {}
  bool plain() const override { return true; }
  Task<int> read(std::string& out, std::size_t max, std::chrono::milliseconds timeout) override;
  Task<bool> write_all(std::string_view data) override;
  Task<void> shutdown_write() override;

 private:
  Worker& worker_;
  BufferRing* buffers_;
};

}  // namespace ramjet::runtime
