#include "tls/tls_stream.h"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <utility>

#include "tls/certificate_facts.h"

namespace ramjet::tls {
namespace {

// Plaintext handed to one SSL_write: a few records, so a large write does not grow the
// output BIO without bound before it is sent.
constexpr std::size_t kWriteChunk = 64 * 1024;
constexpr std::size_t kRecordSize = 16 * 1024;
constexpr std::size_t kRecvSize = 17 * 1024;  // one full record with its overhead

// The BIOs under BoringSSL are ours, not memory BIOs: what it writes is appended straight
// to the stream's pending ciphertext, and it reads from the stream's received bytes. A
// memory BIO cost a copy each way (into the BIO, out of it) and, growing and shrinking,
// reallocations that BoringSSL's allocator zeroes on free. BIO_set_data points the BIO
// at the stream's Wire, which lives on the heap and outlives the SSL.
int bio_write(BIO* b, const char* data, int len) {
  static_cast<TlsStream::Wire*>(BIO_get_data(b))->out.append(data, static_cast<std::size_t>(len));
  return len;
}

int bio_read(BIO* b, char* data, int len) {
  auto* wire = static_cast<TlsStream::Wire*>(BIO_get_data(b));
  std::size_t n = std::min(wire->in.size() - wire->in_used, static_cast<std::size_t>(len));
  BIO_clear_retry_flags(b);
  if (n == 0) {
    BIO_set_retry_read(b);  // "more later", not end of file
    return -1;
  }
  std::memcpy(data, wire->in.data() + wire->in_used, n);
  wire->in_used += n;
  if (wire->in_used == wire->in.size()) {
    wire->in.clear();  // keeps its capacity for the next receive
    wire->in_used = 0;
  }
  return static_cast<int>(n);
}

long bio_ctrl(BIO*, int cmd, long, void*) {
  // BoringSSL flushes the write BIO after each flight or record; nothing else is asked.
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

const BIO_METHOD* wire_method() {
  static const BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_TYPE_SOURCE_SINK, "ramjet tls wire");
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    return m;
  }();
  return method;
}

}  // namespace

TlsStream::TlsStream(runtime::Worker& w, int fd, runtime::BufferRing* buffers)
    : Stream(fd), worker_(w), buffers_(buffers) {}

TlsStream::~TlsStream() = default;

void TlsStream::attach(bssl::UniquePtr<SSL> ssl) {
  ssl_ = std::move(ssl);
  if (!ssl_) return;
  // One BIO for both directions: reads take from wire_.in, writes append to wire_.out.
  BIO* bio = BIO_new(wire_method());
  BIO_set_data(bio, &wire_);
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl_.get(), bio, bio);  // takes the one reference for both
}

std::unique_ptr<TlsStream> TlsStream::server(runtime::Worker& w, int fd, const ServerContext& ctx,
                                             runtime::BufferRing* buffers) {
  std::unique_ptr<TlsStream> s(new TlsStream(w, fd, buffers));
  s->server_ = true;
  s->attach(ctx.new_ssl(&s->notes_));
  SSL_set_accept_state(s->ssl_.get());
  return s;
}

std::unique_ptr<TlsStream> TlsStream::client(runtime::Worker& w, int fd, const ClientContext& ctx,
                                             std::string_view host, runtime::BufferRing* buffers,
                                             bool offer_h2) {
  std::unique_ptr<TlsStream> s(new TlsStream(w, fd, buffers));
  s->attach(ctx.new_ssl(host, offer_h2));
  SSL_set_connect_state(s->ssl_.get());
  return s;
}

HandshakeFailure TlsStream::classify(std::uint32_t err) const {
  if (notes_.no_certificate) return HandshakeFailure::kNoCertificate;
  if (ERR_GET_LIB(err) != ERR_LIB_SSL) return HandshakeFailure::kProtocol;
  switch (ERR_GET_REASON(err)) {
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_GROUP:
    case SSL_R_NO_COMMON_SIGNATURE_ALGORITHMS:
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
    case SSL_R_TLSV1_ALERT_INSUFFICIENT_SECURITY:
      return HandshakeFailure::kNoSharedCipher;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
      return server_ ? HandshakeFailure::kClientCertificate : HandshakeFailure::kProtocol;
    default:
      return HandshakeFailure::kProtocol;
  }
}

Task<HandshakeFailure> TlsStream::handshake(std::chrono::milliseconds timeout) {
  auto deadline = runtime::Clock::now() + timeout;
  if (!ssl_) {
    detail_ = "cannot create a TLS session";
    co_return HandshakeFailure::kProtocol;
  }
  for (;;) {
    int r = SSL_do_handshake(ssl_.get());
    if (r == 1) {
      // A last flight of ours (a TLS 1.2 server's Finished, a client's) goes now.
      const bool flight = !wire_.out.empty();
      // BoringSSL holds a TLS 1.3 server's session tickets until its first write; a
      // zero-byte write queues them. They leave with the first thing sent, at the
      // latest before the first wait for the client (read() flushes before it waits),
      // so a client that only listens can resume too, and a request that came with
      // the client's Finished is answered in one send with them.
      if (server_) SSL_write(ssl_.get(), "", 0);
      if (!flight) co_return HandshakeFailure::kNone;
      if (co_await flush()) co_return HandshakeFailure::kNone;
      detail_ = "the peer left right after the handshake";
      co_return HandshakeFailure::kProtocol;
    }
    int err = SSL_get_error(ssl_.get(), r);
    if (err == SSL_ERROR_WANT_READ) {
      if (!co_await flush()) {
        detail_ = "the peer left during the handshake";
        co_return HandshakeFailure::kProtocol;
      }
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - runtime::Clock::now());
      int n = left.count() > 0 ? co_await feed(left) : -ETIMEDOUT;
      if (n == -ETIMEDOUT) {
        detail_ = "handshake not finished within " + std::to_string(timeout.count()) + " ms";
        co_return HandshakeFailure::kTimeout;
      }
      if (n <= 0) {
        detail_ = n == 0 ? "the peer closed the connection during the handshake"
                         : std::string("receive failed: ") + std::strerror(-n);
        co_return HandshakeFailure::kProtocol;
      }
      continue;
    }
    std::uint32_t code = ERR_peek_error();
    HandshakeFailure why = classify(code);
    if (!server_ && SSL_get_verify_result(ssl_.get()) != X509_V_OK) {
      certificate_rejected_ = true;
      detail_ = std::string("certificate verify failed: ") +
                X509_verify_cert_error_string(SSL_get_verify_result(ssl_.get()));
      ERR_clear_error();
    } else {
      detail_ = code != 0 ? take_error_text() : "handshake failed";
      if (why == HandshakeFailure::kNoCertificate)
        detail_ = "no certificate for the requested name";
    }
    co_await flush();  // the alert, if BoringSSL wrote one
    co_return why;
  }
}

Task<int> TlsStream::feed(std::chrono::milliseconds timeout) {
  if (wire_.in_used > 0) {  // what BoringSSL left of the last receive moves to the front
    wire_.in.erase(0, wire_.in_used);
    wire_.in_used = 0;
  }
  if (buffers_ != nullptr) {
    auto op = worker_.recv_select(fd_, buffers_->group(), kRecvSize);
    if (timeout.count() > 0) op.with_timeout(timeout);
    int n = co_await op;
    if (n > 0) {
      unsigned id = op.op.flags >> IORING_CQE_BUFFER_SHIFT;
      wire_.in.append(reinterpret_cast<const char*>(buffers_->buffer(id)),
                      static_cast<std::size_t>(n));
      buffers_->recycle(id);
      co_return n;
    }
    if (n != -ENOBUFS) co_return n;
  }
  // No ring, or every ring buffer is in flight: a buffer of our own, this once.
  auto buf = std::make_unique<char[]>(kRecvSize);
  auto op = worker_.recv(fd_, buf.get(), kRecvSize);
  if (timeout.count() > 0) op.with_timeout(timeout);
  int n = co_await op;
  if (n > 0) wire_.in.append(buf.get(), static_cast<std::size_t>(n));
  co_return n;
}

Task<bool> TlsStream::flush() {
  for (;;) {
    if (sending_) {
      co_await SendDone{this};
      continue;
    }
    if (wire_.out.empty() || broken_) co_return !broken_;
    sending_ = true;
    // The batch in flight is a member, so its buffer (and wire_.out's) is reused rather
    // than allocated for every send.
    batch_.swap(wire_.out);
    std::string_view rest = batch_;
    while (!rest.empty()) {
      int n = co_await worker_.send(fd_, rest.data(), rest.size());
      if (n <= 0) {
        broken_ = true;
        break;
      }
      rest.remove_prefix(static_cast<std::size_t>(n));
    }
    batch_.clear();
    sending_ = false;
    auto waiters = std::exchange(send_waiters_, {});
    for (auto h : waiters) h.resume();
    if (broken_) co_return false;
  }
}

Task<int> TlsStream::read(std::string& out, std::size_t max, std::chrono::milliseconds timeout) {
  for (;;) {
    // Decrypted into the thread's scratch record and appended: growing `out` by a record
    // for every attempt would zero 16 KiB each time, the attempts that find nothing too.
    thread_local std::array<char, kRecordSize> record;
    std::size_t want = std::min(max, kRecordSize);
    int n = SSL_read(ssl_.get(), record.data(), static_cast<int>(want));
    if (n > 0) {
      out.append(record.data(), static_cast<std::size_t>(n));
      co_return n;
    }
    int err = SSL_get_error(ssl_.get(), n);
    if (err == SSL_ERROR_ZERO_RETURN) co_return 0;  // close_notify
    if (err != SSL_ERROR_WANT_READ) {
      detail_ = take_error_text();
      co_await flush();
      co_return -EPROTO;
    }
    if (!co_await flush()) co_return -EPIPE;
    int r = co_await feed(timeout);
    // EOF without close_notify: the end, as far as a byte stream can tell. HTTP's own
    // framing catches a truncated message.
    if (r <= 0) co_return r;
  }
}

Task<bool> TlsStream::write_all(std::string_view data) {
  while (!data.empty()) {
    std::size_t n = std::min(data.size(), kWriteChunk);
    int w = SSL_write(ssl_.get(), data.data(), static_cast<int>(n));
    if (w <= 0) {
      detail_ = take_error_text();
      co_return false;
    }
    data.remove_prefix(static_cast<std::size_t>(w));
    if (!co_await flush()) co_return false;
  }
  co_return true;
}

Task<void> TlsStream::shutdown_write() {
  SSL_shutdown(ssl_.get());  // queues close_notify; the peer's is not waited for
  co_await flush();
  ::shutdown(fd_, SHUT_WR);
}

std::string TlsStream::alpn() const {
  const std::uint8_t* p = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(ssl_.get(), &p, &len);
  return std::string(reinterpret_cast<const char*>(p), len);
}

TlsInfo TlsStream::info() const {
  TlsInfo t;
  if (const char* sni = SSL_get_servername(ssl_.get(), TLSEXT_NAMETYPE_host_name)) t.sni = sni;
  t.alpn = alpn();
  t.version = SSL_get_version(ssl_.get());
  if (const SSL_CIPHER* c = SSL_get_current_cipher(ssl_.get()))
    t.cipher = SSL_CIPHER_standard_name(c);
  t.resumed = SSL_session_reused(ssl_.get()) != 0;
  if (X509* peer = SSL_get_peer_certificate(ssl_.get())) {
    t.client_certificate = certificate_facts(peer, SSL_get_verify_result(ssl_.get()) == X509_V_OK);
    X509_free(peer);
  }
  return t;
}

}  // namespace ramjet::tls
