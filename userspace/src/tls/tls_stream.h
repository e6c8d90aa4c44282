// TlsStream: TLS over a connected TCP socket, driven by the worker's io_uring loop.
// BoringSSL works on a BIO of ours over two strings (Wire); this class moves ciphertext
// between them and the socket: a read that wants more records receives (into the
// worker's buffer ring) and appends to Wire::in; whatever BoringSSL has written to
// Wire::out is sent, one send in flight at a time, in order. So a reader and a writer
// (the two directions of a relay) can share one connection.
#pragma once

#include <chrono>
#include <coroutine>
#include <memory>
#include <string>
#include <vector>

#include "ramjet/hooks/connection.h"
#include "runtime/stream.h"
#include "runtime/worker.h"
#include "tls/client_context.h"
#include "tls/server_context.h"

namespace ramjet::tls {

class TlsStream final : public runtime::Stream {
 public:
  // The server side of a client's connection, and the client side of an upstream one.
  // `buffers` (may be null) is the worker's ring, used for receives.
  static std::unique_ptr<TlsStream> server(runtime::Worker& w, int fd, const ServerContext& ctx,
                                           runtime::BufferRing* buffers);
  // `offer_h2`: h2 stays in the offered ALPN list (ClientContext::new_ssl).
  static std::unique_ptr<TlsStream> client(runtime::Worker& w, int fd, const ClientContext& ctx,
                                           std::string_view host, runtime::BufferRing* buffers,
                                           bool offer_h2 = true);
  ~TlsStream() override;

  // Ciphertext between BoringSSL and the socket: received and not yet read by BoringSSL
  // (in, from in_used on), and written by it and not yet sent (out).
  struct Wire {
    std::string in;
    std::size_t in_used = 0;
    std::string out;
  };

  // Runs the handshake; kNone when it succeeded. failure_detail() says more.
  Task<HandshakeFailure> handshake(std::chrono::milliseconds timeout);
  const std::string& failure_detail() const { return detail_; }
  // Client side: the peer's certificate did not verify (chain or name).
  bool certificate_rejected() const { return certificate_rejected_; }

  // After the handshake: what it settled, and the negotiated ALPN ("" if none).
  TlsInfo info() const;
  std::string alpn() const override;

  bool plain() const override { return false; }
  Task<int> read(std::string& out, std::size_t max, std::chrono::milliseconds timeout) override;
  Task<bool> write_all(std::string_view data) override;
  Task<void> shutdown_write() override;

 private:
  TlsStream(runtime::Worker& w, int fd, runtime::BufferRing* buffers);
  void attach(bssl::UniquePtr<SSL> ssl);
  // Receives once and feeds the input BIO: bytes fed, 0 at EOF, -errno.
  Task<int> feed(std::chrono::milliseconds timeout);
  // Sends everything BoringSSL has written so far; false when the peer is gone.
  Task<bool> flush();
  HandshakeFailure classify(std::uint32_t err) const;

  struct SendDone {
    TlsStream* s;
    bool await_ready() const noexcept { return !s->sending_; }
    void await_suspend(std::coroutine_handle<> h) { s->send_waiters_.push_back(h); }
    void await_resume() const noexcept {}
  };

  runtime::Worker& worker_;
  runtime::BufferRing* buffers_;
  Wire wire_;  // before ssl_: its BIO points here until SSL_free
  bssl::UniquePtr<SSL> ssl_;
  HandshakeNotes notes_;
  std::string batch_;  // ciphertext being sent (by the one flush() sending)
  bool sending_ = false;
  bool broken_ = false;
  bool server_ = false;
  bool certificate_rejected_ = false;
  std::vector<std::coroutine_handle<>> send_waiters_;
  std::string detail_;
};

}  // namespace ramjet::tls
