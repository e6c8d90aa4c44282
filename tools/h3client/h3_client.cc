#include "h3_client.h"

#include <arpa/inet.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <netdb.h>
#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <string_view>
#include <unordered_map>

#include "http/capsule.h"
#include "http/h3/datagram.h"
#include "http/h3/settings.h"
#include "quic/crypto_callbacks.h"

namespace ramjet::h3client {
namespace {

// TLS 1.3 with the AEADs QUIC has header protection for (RFC 9001 5.3), no
// middlebox-compatibility mode (RFC 9001 8.4): the server's list, seen from the client.
constexpr const char* kPriority =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:"
    "+AES-128-CCM:%DISABLE_TLS13_COMPAT_MODE";
constexpr std::string_view kAlpnH3 = "h3";
// Request body bytes read from their source but not yet acknowledged: past this, the
// source is not read until acknowledgements come back.
constexpr std::size_t kMaxUnacked = 1 << 20;
constexpr std::size_t kReadChunk = 16 * 1024;
// DATAGRAM frames we take (RFC 9221 3), as the server offers.
constexpr std::uint64_t kMaxDatagramFrameSize = 65535;
// DATAGRAM frames read from stdin and not yet in a packet: stdin waits past this.
constexpr std::size_t kMaxQueuedDatagrams = 256;

ngtcp2_tstamp now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<ngtcp2_tstamp>(ts.tv_sec) * NGTCP2_SECONDS +
         static_cast<ngtcp2_tstamp>(ts.tv_nsec);
}

std::string hex(std::uint64_t v) {
  char text[24];
  std::snprintf(text, sizeof text, "0x%llx", static_cast<unsigned long long>(v));
  return text;
}

// RFC 9114 8.1 and RFC 9204 6.
const char* h3_error_name(std::uint64_t code) {
  static constexpr std::array<const char*, 17> kH3{"H3_NO_ERROR",
                                                   "H3_GENERAL_PROTOCOL_ERROR",
                                                   "H3_INTERNAL_ERROR",
                                                   "H3_STREAM_CREATION_ERROR",
                                                   "H3_CLOSED_CRITICAL_STREAM",
                                                   "H3_FRAME_UNEXPECTED",
                                                   "H3_FRAME_ERROR",
                                                   "H3_EXCESSIVE_LOAD",
                                                   "H3_ID_ERROR",
                                                   "H3_SETTINGS_ERROR",
                                                   "H3_MISSING_SETTINGS",
                                                   "H3_REQUEST_REJECTED",
                                                   "H3_REQUEST_CANCELLED",
                                                   "H3_REQUEST_INCOMPLETE",
                                                   "H3_MESSAGE_ERROR",
                                                   "H3_CONNECT_ERROR",
                                                   "H3_VERSION_FALLBACK"};
  static constexpr std::array<const char*, 3> kQpack{
      "QPACK_DECOMPRESSION_FAILED", "QPACK_ENCODER_STREAM_ERROR", "QPACK_DECODER_STREAM_ERROR"};
  if (code >= NGHTTP3_H3_NO_ERROR && code - NGHTTP3_H3_NO_ERROR < kH3.size())
    return kH3[code - NGHTTP3_H3_NO_ERROR];
  if (code >= NGHTTP3_QPACK_DECOMPRESSION_FAILED &&
      code - NGHTTP3_QPACK_DECOMPRESSION_FAILED < kQpack.size())
    return kQpack[code - NGHTTP3_QPACK_DECOMPRESSION_FAILED];
  return nullptr;
}

// "H3_REQUEST_CANCELLED (0x10c)"; the number alone for a code HTTP/3 does not name.
std::string app_error(std::uint64_t code) {
  const char* name = h3_error_name(code);
  return name != nullptr ? std::string(name) + " (" + hex(code) + ")"
                         : "application error " + hex(code);
}

// RFC 9000 20.1; 0x100-0x1ff carry a TLS alert.
std::string transport_error(std::uint64_t code) {
  static constexpr std::array<const char*, 17> kNames{"NO_ERROR",
                                                      "INTERNAL_ERROR",
                                                      "CONNECTION_REFUSED",
                                                      "FLOW_CONTROL_ERROR",
                                                      "STREAM_LIMIT_ERROR",
                                                      "STREAM_STATE_ERROR",
                                                      "FINAL_SIZE_ERROR",
                                                      "FRAME_ENCODING_ERROR",
                                                      "TRANSPORT_PARAMETER_ERROR",
                                                      "CONNECTION_ID_LIMIT_ERROR",
                                                      "PROTOCOL_VIOLATION",
                                                      "INVALID_TOKEN",
                                                      "APPLICATION_ERROR",
                                                      "CRYPTO_BUFFER_EXCEEDED",
                                                      "KEY_UPDATE_ERROR",
                                                      "AEAD_LIMIT_REACHED",
                                                      "NO_VIABLE_PATH"};
  if (code < kNames.size()) return std::string(kNames[code]) + " (" + hex(code) + ")";
  if (code >= 0x100 && code <= 0x1ff) {
    const auto alert = static_cast<gnutls_alert_description_t>(code - 0x100);
    const char* name = gnutls_alert_get_name(alert);
    return "CRYPTO_ERROR (" + hex(code) + ", TLS alert " + std::to_string(code - 0x100) +
           (name != nullptr ? std::string(" ") + name : "") + ")";
  }
  return "transport error " + hex(code);
}

std::string describe(const ngtcp2_connection_close_error& e) {
  std::string text = e.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION
                         ? app_error(e.error_code)
                         : transport_error(e.error_code);
  if (e.reasonlen > 0)
    text += ": \"" + std::string(reinterpret_cast<const char*>(e.reason), e.reasonlen) + "\"";
  return text;
}

std::string seconds(std::chrono::milliseconds d) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", static_cast<double>(d.count()) / 1000);
  return text;
}

std::string_view text_of(nghttp3_rcbuf* b) {
  const nghttp3_vec v = nghttp3_rcbuf_get_buf(b);
  return {reinterpret_cast<const char*>(v.base), v.len};
}

bool is_ip_literal(const std::string& host) {
  std::array<unsigned char, sizeof(in6_addr)> buf{};
  return inet_pton(AF_INET, host.c_str(), buf.data()) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buf.data()) == 1;
}

ngtcp2_connection_close_error app_close(std::uint64_t code) {
  ngtcp2_connection_close_error e;
  ngtcp2_connection_close_error_default(&e);
  ngtcp2_connection_close_error_set_application_error(&e, code, nullptr, 0);
  return e;
}

// The request body: read from its source into chunks that stay put (nghttp3 points
// at them) until QUIC says they were acknowledged.
struct Upload {
  int fd = -1;
  bool started = false;  // may be read (a tunnel's waits for the 2xx head)
  bool eof = false;
  bool blocked = false;  // the reader said WOULDBLOCK: resume the stream on more data
  bool trailers_submitted = false;
  std::deque<std::string> chunks;
  std::size_t given = 0;        // chunks handed to nghttp3
  std::size_t acked_front = 0;  // acknowledged bytes of chunks.front()
  std::size_t unacked = 0;
};

// The response as nghttp3 reports it.
struct Response {
  Fields section;  // the header section being received
  int section_status = 0;
  bool head_done = false;
  int status = 0;
  bool ended = false;   // the server's side of the stream ended, all of it read
  bool closed = false;  // both sides of the stream are over
  std::uint64_t body_bytes = 0;
  bool stop_reading = false;  // Request::stop_reading_after reached: STOP_SENDING is due
  bool stopped_reading = false;
};

// What the connections of one load run share: the requests nobody sent yet, and the tally.
struct LoadShared {
  std::uint64_t concurrency = 1;
  std::uint64_t to_send = 0;
  LoadResult& result;
};

// Load mode takes response bodies only to count them.
class DiscardBody : public ResponseHandler {
 public:
  void on_head(int, const Fields&) override {}
  bool on_body(std::span<const std::uint8_t>) override { return true; }
  void on_trailers(const Fields&) override {}
};

class Exchange {
 public:
  // `load`: many requests of `request` on their own streams, no response to `handler`.
  Exchange(const ConnectOptions& options, const Request& request, ResponseHandler& handler,
           LoadShared* load = nullptr)
      : options_(options), request_(request), handler_(handler), load_(load) {
    upload_.fd = request.body_fd;
    upload_.eof = request.body_fd < 0;
  }
  ~Exchange();
  Result run();

  // run_load's loop drives many connections, one step of each at a time.
  bool start() { return open_socket() && start_tls() && start_quic(); }
  void send_step();
  void receive_step(bool readable);
  void finish();  // closes the connection; requests still in flight count as failed
  int fd() const { return fd_; }
  ngtcp2_tstamp expiry() const { return ngtcp2_conn_get_expiry(conn_); }
  bool ended() const { return result_.has_value(); }
  const Result& result() const { return *result_; }

 private:
  friend struct Callbacks;

  void end_with(Outcome outcome, std::string message,
                std::optional<ngtcp2_connection_close_error> close = std::nullopt) {
    if (result_) return;  // the first reason is the one that counts
    result_ = Result{outcome, std::move(message)};
    close_ = close;
  }
  Outcome before_or_after_handshake() const {
    return conn_ != nullptr && ngtcp2_conn_get_handshake_completed(conn_) != 0
               ? Outcome::kConnectionError
               : Outcome::kHandshakeError;
  }
  void fail_h3(int liberr, const char* where) {
    const std::uint64_t code = nghttp3_err_infer_quic_app_error_code(liberr);
    end_with(
        Outcome::kConnectionError,
        std::string(where) + ": " + nghttp3_strerror(liberr) + ", closing with " + app_error(code),
        app_close(code));
  }

  bool open_socket();
  bool start_tls();
  bool start_quic();
  bool start_h3();
  std::int64_t open_request(const nghttp3_data_reader* reader);
  void submit_request();
  void submit_load_requests();
  void on_load_head(std::int64_t stream, int status);
  void on_load_end(std::int64_t stream);
  void on_load_close(std::int64_t stream);
  bool submit_trailers();
  void write_packets();
  void read_packets();
  void read_body();
  void on_quic_error(int liberr);
  std::string tls_failure() const;
  bool over() const;
  void close_connection();
  void consumed(std::int64_t stream, std::size_t n) {
    ngtcp2_conn_extend_max_stream_offset(conn_, stream, n);
    ngtcp2_conn_extend_max_offset(conn_, n);
  }
  bool wants_body() const {
    return stream_ >= 0 && upload_.started && !upload_.eof && upload_.fd >= 0 &&
           upload_.unacked < kMaxUnacked && datagrams_out_.size() < kMaxQueuedDatagrams;
  }
  void start_tunnel();
  enum class DatagramWrite : std::uint8_t {
    kNext,     // written (a packet sent, or packed with more to come), or dropped: go on
    kBlocked,  // congestion: nothing goes now, the datagrams wait for acknowledgements
    kFailed,   // the connection failed (end_with said why)
  };
  DatagramWrite write_datagram(ngtcp2_path* path, ngtcp2_pkt_info* pi, ngtcp2_tstamp ts);
  void queue_datagram(std::vector<std::uint8_t> frame);
  void read_body_capsules(std::span<const std::uint8_t> bytes);
  void on_datagram(std::span<const std::uint8_t> frame);

  const ConnectOptions& options_;
  const Request& request_;
  ResponseHandler& handler_;
  LoadShared* load_ = nullptr;
  // Load mode: the request streams in flight, with their final status (0: none yet).
  std::unordered_map<std::int64_t, int> load_streams_;
  std::uint64_t load_opened_ = 0;

  int fd_ = -1;
  sockaddr_storage local_{};
  sockaddr_storage remote_{};
  ngtcp2_path path_{};
  gnutls_certificate_credentials_t cred_ = nullptr;
  gnutls_session_t tls_ = nullptr;
  ngtcp2_crypto_conn_ref ref_{};
  ngtcp2_conn* conn_ = nullptr;
  nghttp3_conn* h3_ = nullptr;
  std::vector<std::uint8_t> packet_;

  std::int64_t stream_ = -1;
  Upload upload_;
  // HTTP/3 datagrams (Request::datagrams): our SETTINGS rewritten to carry H3_DATAGRAM
  // (nghttp3 0.8 cannot send it), the server's read off its control stream.
  std::int64_t control_stream_ = -1;
  std::optional<http::h3::ControlStreamRewrite> control_rewrite_;
  http::h3::PeerSettings server_settings_;
  bool datagram_mode_ = false;  // decided at the 2xx: both sides offered datagrams
  http::CapsuleParser stdin_capsules_;
  std::deque<std::vector<std::uint8_t>> datagrams_out_;
  Response response_;
  std::optional<Result> result_;
  // What to tell the server when the connection ends; none when it closed already.
  std::optional<ngtcp2_connection_close_error> close_;
};

// ngtcp2's and nghttp3's callbacks; `user` is the Exchange.
struct Callbacks {
  static Exchange& self(void* user) { return *static_cast<Exchange*>(user); }

  // ---- ngtcp2

  static ngtcp2_conn* get_conn(ngtcp2_crypto_conn_ref* ref) { return self(ref->user_data).conn_; }
  static void rand(std::uint8_t* dest, std::size_t len, const ngtcp2_rand_ctx*) {
    gnutls_rnd(GNUTLS_RND_RANDOM, dest, len);
  }
  static int new_cid(ngtcp2_conn*, ngtcp2_cid* cid, std::uint8_t* token, std::size_t cidlen,
                     void*) {
    std::array<std::uint8_t, NGTCP2_MAX_CIDLEN> id{};
    if (cidlen > id.size() || gnutls_rnd(GNUTLS_RND_RANDOM, id.data(), cidlen) != 0 ||
        gnutls_rnd(GNUTLS_RND_RANDOM, token, NGTCP2_STATELESS_RESET_TOKENLEN) != 0)
      return NGTCP2_ERR_CALLBACK_FAILURE;
    ngtcp2_cid_init(cid, id.data(), cidlen);
    return 0;
  }
  // The 1-RTT keys: the server may send its control and QPACK streams from now on.
  static int rx_key(ngtcp2_conn*, ngtcp2_crypto_level level, void* user) {
    if (level != NGTCP2_CRYPTO_LEVEL_APPLICATION) return 0;
    return self(user).start_h3() ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
  }
  static int handshake_completed(ngtcp2_conn*, void* user) {
    Exchange& x = self(user);
    gnutls_datum_t alpn{};
    if (gnutls_alpn_get_selected_protocol(x.tls_, &alpn) != 0 ||
        std::string_view(reinterpret_cast<const char*>(alpn.data), alpn.size) != kAlpnH3) {
      ngtcp2_connection_close_error close;
      ngtcp2_connection_close_error_default(&close);
      ngtcp2_connection_close_error_set_transport_error_tls_alert(
          &close, GNUTLS_A_NO_APPLICATION_PROTOCOL, nullptr, 0);
      x.end_with(Outcome::kHandshakeError, "handshake failed: the server did not select ALPN h3",
                 close);
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
  }
  static int recv_stream_data(ngtcp2_conn*, std::uint32_t flags, std::int64_t stream, std::uint64_t,
                              const std::uint8_t* data, std::size_t len, void* user, void*) {
    Exchange& x = self(user);
    if (x.h3_ == nullptr) {  // stream data comes in 1-RTT packets, after rx_key
      x.end_with(Outcome::kConnectionError, "stream data before the 1-RTT keys");
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    // Server unidirectional streams (id & 3 == 3): its SETTINGS, for H3_DATAGRAM.
    if ((stream & 0x3) == 0x3) x.server_settings_.on_stream_data(stream, {data, len});
    const nghttp3_ssize n = nghttp3_conn_read_stream(
        x.h3_, stream, data, len, (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0 ? 1 : 0);
    if (n < 0) {
      x.fail_h3(static_cast<int>(n), "HTTP/3");
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    // What nghttp3 took in itself (frame headers, QPACK); DATA payloads go back as the
    // handler takes them (recv_data).
    x.consumed(stream, static_cast<std::size_t>(n));
    return 0;
  }
  static int acked_stream_data_offset(ngtcp2_conn*, std::int64_t stream, std::uint64_t,
                                      std::uint64_t len, void* user, void*) {
    Exchange& x = self(user);
    if (x.h3_ == nullptr) return 0;
    if (stream == x.control_stream_ && x.control_rewrite_) {
      len = x.control_rewrite_->acked(len);  // QUIC's offsets -> nghttp3's
      if (len == 0) return 0;
    }
    if (int rv = nghttp3_conn_add_ack_offset(x.h3_, stream, len); rv != 0) {
      x.fail_h3(rv, "HTTP/3 ack");
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
  }
  static int stream_close(ngtcp2_conn*, std::uint32_t flags, std::int64_t stream,
                          std::uint64_t code, void* user, void*) {
    Exchange& x = self(user);
    // Without an application error code the stream simply ended (RFC 9114 8.1).
    if ((flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET) == 0) code = NGHTTP3_H3_NO_ERROR;
    if (x.h3_ == nullptr) return 0;
    const int rv = nghttp3_conn_close_stream(x.h3_, stream, code);
    if (rv != 0 && rv != NGHTTP3_ERR_STREAM_NOT_FOUND) {
      x.fail_h3(rv, "HTTP/3 stream close");
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
  }
  static int stream_reset(ngtcp2_conn*, std::int64_t stream, std::uint64_t, std::uint64_t code,
                          void* user, void*) {
    Exchange& x = self(user);
    if (stream == x.stream_ && !x.response_.ended)
      x.end_with(Outcome::kStreamError, "stream reset by the server: " + app_error(code),
                 app_close(NGHTTP3_H3_NO_ERROR));
    if (x.h3_ != nullptr) nghttp3_conn_shutdown_stream_read(x.h3_, stream);
    return 0;
  }
  static int recv_datagram(ngtcp2_conn*, std::uint32_t, const std::uint8_t* data, std::size_t len,
                           void* user) {
    self(user).on_datagram({data, len});
    return 0;
  }
  static int extend_max_stream_data(ngtcp2_conn*, std::int64_t stream, std::uint64_t, void* user,
                                    void*) {
    Exchange& x = self(user);
    if (x.h3_ != nullptr) nghttp3_conn_unblock_stream(x.h3_, stream);
    return 0;
  }

  // ---- nghttp3

  static int h3_acked_stream_data(nghttp3_conn*, std::int64_t stream, std::uint64_t len, void* user,
                                  void*) {
    Exchange& x = self(user);
    if (stream != x.stream_) return 0;
    Upload& u = x.upload_;
    u.unacked -= std::min<std::size_t>(u.unacked, len);
    std::uint64_t left = len;
    while (left > 0 && !u.chunks.empty()) {
      const std::size_t rest = u.chunks.front().size() - u.acked_front;
      if (left < rest) {
        u.acked_front += left;
        break;
      }
      left -= rest;
      u.chunks.pop_front();
      u.acked_front = 0;
      --u.given;
    }
    return 0;
  }
  static int h3_stream_close(nghttp3_conn*, std::int64_t stream, std::uint64_t code, void* user,
                             void*) {
    Exchange& x = self(user);
    if (x.load_ != nullptr) x.on_load_close(stream);
    if (stream != x.stream_) return 0;
    x.response_.closed = true;
    if (code == NGHTTP3_H3_NO_ERROR) return 0;
    if (!x.response_.ended)
      x.end_with(Outcome::kStreamError,
                 "stream closed before the response ended: " + app_error(code),
                 app_close(NGHTTP3_H3_NO_ERROR));
    else if (x.request_.kind == ExchangeKind::kTunnel && x.upload_.started)
      x.end_with(Outcome::kStreamError, "tunnel stream closed with " + app_error(code),
                 app_close(NGHTTP3_H3_NO_ERROR));
    return 0;
  }
  static int recv_data(nghttp3_conn*, std::int64_t stream, const std::uint8_t* data,
                       std::size_t len, void* user, void*) {
    Exchange& x = self(user);
    if (stream == x.stream_ && !x.handler_.on_body({data, len})) {
      x.end_with(Outcome::kConnectionError,
                 std::string("cannot write the response body: ") + std::strerror(errno),
                 app_close(NGHTTP3_H3_REQUEST_CANCELLED));
      return NGHTTP3_ERR_CALLBACK_FAILURE;
    }
    if (x.load_ != nullptr) x.load_->result.body_bytes += len;
    if (stream == x.stream_) {
      x.response_.body_bytes += len;
      // Acted on in the loop, outside the libraries' callbacks.
      if (x.response_.body_bytes >= x.request_.stop_reading_after) x.response_.stop_reading = true;
    }
    x.consumed(stream, len);
    return 0;
  }
  static int deferred_consume(nghttp3_conn*, std::int64_t stream, std::size_t n, void* user,
                              void*) {
    self(user).consumed(stream, n);
    return 0;
  }
  static int begin_section(nghttp3_conn*, std::int64_t, void* user, void*) {
    Response& r = self(user).response_;
    r.section.clear();
    r.section_status = 0;
    return 0;
  }
  static int recv_field(nghttp3_conn*, std::int64_t, std::int32_t, nghttp3_rcbuf* name,
                        nghttp3_rcbuf* value, std::uint8_t, void* user, void*) {
    Response& r = self(user).response_;
    const std::string_view n = text_of(name);
    const std::string_view v = text_of(value);
    if (n == ":status") {
      // nghttp3 checked it is three digits (RFC 9114 4.3.2).
      r.section_status = std::atoi(std::string(v).c_str());
    } else if (!n.starts_with(':')) {
      r.section.push_back({std::string(n), std::string(v)});
    }
    return 0;
  }
  static int end_headers(nghttp3_conn*, std::int64_t stream, int, void* user, void*) {
    Exchange& x = self(user);
    Response& r = x.response_;
    if (x.load_ != nullptr && r.section_status / 100 != 1) x.on_load_head(stream, r.section_status);
    // Interim 1xx heads are not the response (RFC 9114 4.1).
    if (stream != x.stream_ || r.head_done || r.section_status / 100 == 1) return 0;
    r.head_done = true;
    r.status = r.section_status;
    x.handler_.on_head(r.status, r.section);
    if (x.request_.kind == ExchangeKind::kTunnel && r.status / 100 == 2) x.start_tunnel();
    return 0;
  }
  static int end_trailers(nghttp3_conn*, std::int64_t stream, int, void* user, void*) {
    Exchange& x = self(user);
    if (stream == x.stream_) x.handler_.on_trailers(x.response_.section);
    return 0;
  }
  static int end_stream(nghttp3_conn*, std::int64_t stream, void* user, void*) {
    Exchange& x = self(user);
    if (x.load_ != nullptr) x.on_load_end(stream);
    if (stream == x.stream_) x.response_.ended = true;
    return 0;
  }
  // nghttp3 wants a stream's reading or writing aborted (a malformed message, ...).
  static int stop_sending(nghttp3_conn*, std::int64_t stream, std::uint64_t code, void* user,
                          void*) {
    ngtcp2_conn_shutdown_stream_read(self(user).conn_, stream, code);
    return 0;
  }
  static int reset_stream(nghttp3_conn*, std::int64_t stream, std::uint64_t code, void* user,
                          void*) {
    ngtcp2_conn_shutdown_stream_write(self(user).conn_, stream, code);
    return 0;
  }
  static nghttp3_ssize read_body(nghttp3_conn*, std::int64_t, nghttp3_vec* vec, std::size_t veccnt,
                                 std::uint32_t* flags, void* user, void*) {
    Exchange& x = self(user);
    Upload& u = x.upload_;
    std::size_t n = 0;
    while (n < veccnt && u.given < u.chunks.size()) {
      std::string& chunk = u.chunks[u.given++];
      vec[n++] = {reinterpret_cast<std::uint8_t*>(chunk.data()), chunk.size()};
    }
    if (u.eof && u.given == u.chunks.size()) {
      *flags |= NGHTTP3_DATA_FLAG_EOF;
      if (!x.request_.trailers.empty()) {
        // The stream ends after the trailers' HEADERS frame instead.
        *flags |= NGHTTP3_DATA_FLAG_NO_END_STREAM;
        if (!u.trailers_submitted && !x.submit_trailers()) return NGHTTP3_ERR_CALLBACK_FAILURE;
        u.trailers_submitted = true;
      }
      return static_cast<nghttp3_ssize>(n);
    }
    if (n == 0) {
      u.blocked = true;
      return NGHTTP3_ERR_WOULDBLOCK;
    }
    return static_cast<nghttp3_ssize>(n);
  }
};

Exchange::~Exchange() {
  if (h3_ != nullptr) nghttp3_conn_del(h3_);
  if (conn_ != nullptr) ngtcp2_conn_del(conn_);
  if (tls_ != nullptr) gnutls_deinit(tls_);
  if (cred_ != nullptr) gnutls_certificate_free_credentials(cred_);
  if (fd_ >= 0) ::close(fd_);
}

bool Exchange::open_socket() {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (int rv = getaddrinfo(options_.host.c_str(), options_.port.c_str(), &hints, &found); rv != 0) {
    end_with(Outcome::kHandshakeError, "cannot resolve " + options_.host + ": " + gai_strerror(rv));
    return false;
  }
  std::string error = "no address";
  for (addrinfo* a = found; a != nullptr && fd_ < 0; a = a->ai_next) {
    fd_ = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd_ < 0 || connect(fd_, a->ai_addr, a->ai_addrlen) != 0) {
      error = std::strerror(errno);
      if (fd_ >= 0) ::close(fd_);
      fd_ = -1;
      continue;
    }
    std::memcpy(&remote_, a->ai_addr, a->ai_addrlen);
    path_.remote = {reinterpret_cast<ngtcp2_sockaddr*>(&remote_), a->ai_addrlen};
  }
  freeaddrinfo(found);
  socklen_t local_len = sizeof local_;
  if (fd_ < 0 || getsockname(fd_, reinterpret_cast<sockaddr*>(&local_), &local_len) != 0) {
    end_with(Outcome::kHandshakeError,
             "cannot connect a UDP socket to " + options_.host + ": " + error);
    return false;
  }
  path_.local = {reinterpret_cast<ngtcp2_sockaddr*>(&local_), local_len};
  return true;
}

bool Exchange::start_tls() {
  auto gnutls_failed = [&](const char* what, int rv) {
    end_with(Outcome::kHandshakeError, std::string(what) + ": " + gnutls_strerror(rv));
    return false;
  };
  if (int rv = gnutls_certificate_allocate_credentials(&cred_); rv != 0)
    return gnutls_failed("gnutls_certificate_allocate_credentials", rv);
  if (!options_.ca_file.empty()) {
    const int n = gnutls_certificate_set_x509_trust_file(cred_, options_.ca_file.c_str(),
                                                         GNUTLS_X509_FMT_PEM);
    if (n < 0) return gnutls_failed(("--ca " + options_.ca_file).c_str(), n);
    if (n == 0) {
      end_with(Outcome::kHandshakeError, "--ca " + options_.ca_file + ": no certificate in it");
      return false;
    }
  } else if (!options_.insecure) {
    if (int rv = gnutls_certificate_set_x509_system_trust(cred_); rv < 0)
      return gnutls_failed("the system's trust store", rv);
  }
  // Tickets and 0-RTT are not used: every run is a full handshake.
  if (int rv = gnutls_init(&tls_, GNUTLS_CLIENT | GNUTLS_NO_END_OF_EARLY_DATA); rv != 0)
    return gnutls_failed("gnutls_init", rv);
  if (int rv = gnutls_priority_set_direct(tls_, kPriority, nullptr); rv != 0)
    return gnutls_failed("gnutls_priority_set_direct", rv);
  if (ngtcp2_crypto_gnutls_configure_client_session(tls_) != 0) {
    end_with(Outcome::kHandshakeError, "ngtcp2_crypto_gnutls_configure_client_session failed");
    return false;
  }
  ref_.get_conn = &Callbacks::get_conn;
  ref_.user_data = this;
  gnutls_session_set_ptr(tls_, &ref_);
  if (int rv = gnutls_credentials_set(tls_, GNUTLS_CRD_CERTIFICATE, cred_); rv != 0)
    return gnutls_failed("gnutls_credentials_set", rv);
  gnutls_datum_t h3{reinterpret_cast<unsigned char*>(const_cast<char*>(kAlpnH3.data())),
                    static_cast<unsigned>(kAlpnH3.size())};
  if (int rv = gnutls_alpn_set_protocols(tls_, &h3, 1, GNUTLS_ALPN_MANDATORY); rv != 0)
    return gnutls_failed("gnutls_alpn_set_protocols", rv);
  const std::string& name = options_.sni.empty() ? options_.host : options_.sni;
  // RFC 6066 3: no IP literal in server_name; the certificate is still checked against it.
  if (!is_ip_literal(name)) {
    if (int rv = gnutls_server_name_set(tls_, GNUTLS_NAME_DNS, name.data(), name.size()); rv != 0)
      return gnutls_failed("gnutls_server_name_set", rv);
  }
  if (!options_.insecure) gnutls_session_set_verify_cert(tls_, name.c_str(), 0);
  return true;
}

bool Exchange::start_quic() {
  std::array<std::uint8_t, 18> dcid_bytes{};
  std::array<std::uint8_t, 16> scid_bytes{};
  gnutls_rnd(GNUTLS_RND_RANDOM, dcid_bytes.data(), dcid_bytes.size());
  gnutls_rnd(GNUTLS_RND_RANDOM, scid_bytes.data(), scid_bytes.size());
  ngtcp2_cid dcid;
  ngtcp2_cid scid;
  ngtcp2_cid_init(&dcid, dcid_bytes.data(), dcid_bytes.size());
  ngtcp2_cid_init(&scid, scid_bytes.data(), scid_bytes.size());

  ngtcp2_callbacks cb{};
  cb.client_initial = ngtcp2_crypto_client_initial_cb;
  cb.recv_retry = ngtcp2_crypto_recv_retry_cb;
  quic::set_crypto_callbacks(cb);
  cb.rand = &Callbacks::rand;
  cb.get_new_connection_id = &Callbacks::new_cid;
  cb.recv_rx_key = &Callbacks::rx_key;
  cb.handshake_completed = &Callbacks::handshake_completed;
  cb.recv_stream_data = &Callbacks::recv_stream_data;
  cb.acked_stream_data_offset = &Callbacks::acked_stream_data_offset;
  cb.stream_close = &Callbacks::stream_close;
  cb.stream_reset = &Callbacks::stream_reset;
  cb.extend_max_stream_data = &Callbacks::extend_max_stream_data;
  cb.recv_datagram = &Callbacks::recv_datagram;

  const auto timeout = static_cast<ngtcp2_duration>(options_.timeout.count()) * NGTCP2_MILLISECONDS;
  ngtcp2_settings settings;
  ngtcp2_settings_default(&settings);
  settings.initial_ts = now_ns();
  settings.handshake_timeout = timeout;
  packet_.resize(settings.max_tx_udp_payload_size);

  ngtcp2_transport_params params;
  ngtcp2_transport_params_default(&params);
  params.initial_max_stream_data_bidi_local = 1 << 20;  // the response on our stream
  params.initial_max_stream_data_uni = 256 * 1024;      // the server's control and QPACK streams
  params.initial_max_data = 4 << 20;
  params.initial_max_streams_bidi = 0;  // servers open no request streams
  params.initial_max_streams_uni = 16;
  params.max_idle_timeout = timeout;
  if (request_.datagrams) params.max_datagram_frame_size = kMaxDatagramFrameSize;

  if (int rv = ngtcp2_conn_client_new(&conn_, &dcid, &scid, &path_, NGTCP2_PROTO_VER_V1, &cb,
                                      &settings, &params, nullptr, this);
      rv != 0) {
    end_with(Outcome::kHandshakeError,
             std::string("ngtcp2_conn_client_new: ") + ngtcp2_strerror(rv));
    return false;
  }
  ngtcp2_conn_set_tls_native_handle(conn_, tls_);
  return true;
}

bool Exchange::start_h3() {
  nghttp3_callbacks cb{};
  cb.acked_stream_data = &Callbacks::h3_acked_stream_data;
  cb.stream_close = &Callbacks::h3_stream_close;
  cb.recv_data = &Callbacks::recv_data;
  cb.deferred_consume = &Callbacks::deferred_consume;
  cb.begin_headers = &Callbacks::begin_section;
  cb.recv_header = &Callbacks::recv_field;
  cb.end_headers = &Callbacks::end_headers;
  cb.begin_trailers = &Callbacks::begin_section;
  cb.recv_trailer = &Callbacks::recv_field;
  cb.end_trailers = &Callbacks::end_trailers;
  cb.stop_sending = &Callbacks::stop_sending;
  cb.end_stream = &Callbacks::end_stream;
  cb.reset_stream = &Callbacks::reset_stream;
  nghttp3_settings settings;
  nghttp3_settings_default(&settings);
  if (int rv = nghttp3_conn_client_new(&h3_, &cb, &settings, nghttp3_mem_default(), this);
      rv != 0) {
    fail_h3(rv, "nghttp3_conn_client_new");
    return false;
  }
  // RFC 9114 6.2: our control stream and QPACK encoder and decoder streams.
  std::array<std::int64_t, 3> ids{};
  for (std::int64_t& id : ids) {
    if (int rv = ngtcp2_conn_open_uni_stream(conn_, &id, nullptr); rv != 0) {
      end_with(Outcome::kConnectionError,
               std::string("cannot open HTTP/3's unidirectional streams: ") + ngtcp2_strerror(rv),
               app_close(NGHTTP3_H3_STREAM_CREATION_ERROR));
      return false;
    }
  }
  control_stream_ = ids[0];
  // nghttp3 0.8 cannot send SETTINGS_H3_DATAGRAM: its SETTINGS is rewritten on the way
  // to QUIC, as the server does it (http/h3/settings.h).
  if (request_.datagrams)
    control_rewrite_.emplace(http::h3::Setting{http::h3::kSettingsH3Datagram, 1});
  if (int rv = nghttp3_conn_bind_control_stream(h3_, ids[0]); rv != 0) {
    fail_h3(rv, "nghttp3_conn_bind_control_stream");
    return false;
  }
  if (int rv = nghttp3_conn_bind_qpack_streams(h3_, ids[1], ids[2]); rv != 0) {
    fail_h3(rv, "nghttp3_conn_bind_qpack_streams");
    return false;
  }
  return true;
}

std::vector<nghttp3_nv> field_vector(const Fields& fields) {
  std::vector<nghttp3_nv> nva;
  nva.reserve(fields.size());
  for (const Field& f : fields)
    nva.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(f.name.data())),
                   reinterpret_cast<std::uint8_t*>(const_cast<char*>(f.value.data())),
                   f.name.size(), f.value.size(), NGHTTP3_NV_FLAG_NONE});
  return nva;
}

// A new request stream with request_'s head on it; -1 when the server's MAX_STREAMS
// allows none now (it comes later) or the connection failed (end_with said why).
std::int64_t Exchange::open_request(const nghttp3_data_reader* reader) {
  std::int64_t id = -1;
  const int rv = ngtcp2_conn_open_bidi_stream(conn_, &id, nullptr);
  if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED) return -1;
  if (rv != 0) {
    end_with(Outcome::kConnectionError,
             std::string("cannot open the request stream: ") + ngtcp2_strerror(rv),
             app_close(NGHTTP3_H3_NO_ERROR));
    return -1;
  }
  const std::vector<nghttp3_nv> nva = field_vector(request_.fields);
  // Without a reader the HEADERS frame ends the stream.
  if (int e = nghttp3_conn_submit_request(h3_, id, nva.data(), nva.size(), reader, nullptr);
      e != 0) {
    fail_h3(e, "nghttp3_conn_submit_request");
    return -1;
  }
  return id;
}

void Exchange::submit_request() {
  const nghttp3_data_reader reader{&Callbacks::read_body};
  const bool body =
      request_.kind == ExchangeKind::kTunnel || request_.body_fd >= 0 || !request_.trailers.empty();
  const std::int64_t id = open_request(body ? &reader : nullptr);
  if (id < 0) return;
  stream_ = id;
  upload_.started = request_.kind == ExchangeKind::kRequest;
}

// As many requests as this connection may have in flight and the server lets it open:
// checked before every write, so a MAX_STREAMS that came in a packet is used at once
// (a client that waits for a callback instead stalls when it comes with nothing else).
void Exchange::submit_load_requests() {
  while (load_->to_send > 0 && load_streams_.size() < load_->concurrency &&
         ngtcp2_conn_get_streams_bidi_left(conn_) > 0 && !result_) {
    const std::int64_t id = open_request(nullptr);
    if (id < 0) return;
    load_streams_.emplace(id, 0);
    ++load_opened_;
    --load_->to_send;
  }
}

void Exchange::on_load_head(std::int64_t stream, int status) {
  if (auto it = load_streams_.find(stream); it != load_streams_.end() && it->second == 0)
    it->second = status;
}

// The response is complete: the request is done, its place free for the next one.
void Exchange::on_load_end(std::int64_t stream) {
  const auto it = load_streams_.find(stream);
  if (it == load_streams_.end()) return;
  ++load_->result.requests_ok;
  if (it->second / 100 == 2) ++load_->result.status_2xx;
  load_streams_.erase(it);
}

// Closed before its response ended: reset by the server, or cancelled.
void Exchange::on_load_close(std::int64_t stream) {
  if (load_streams_.erase(stream) > 0) ++load_->result.requests_failed;
}

bool Exchange::submit_trailers() {
  const std::vector<nghttp3_nv> nva = field_vector(request_.trailers);
  if (int rv = nghttp3_conn_submit_trailers(h3_, stream_, nva.data(), nva.size()); rv != 0) {
    fail_h3(rv, "nghttp3_conn_submit_trailers");
    return false;
  }
  return true;
}

void Exchange::write_packets() {
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi{};
  const ngtcp2_tstamp ts = now_ns();
  for (;;) {
    // DATAGRAM frames first: they are what a tunnel in datagram mode carries.
    if (!datagrams_out_.empty() && ngtcp2_conn_get_handshake_completed(conn_) != 0) {
      const DatagramWrite w = write_datagram(&ps.path, &pi, ts);
      if (w == DatagramWrite::kFailed) return;
      if (w == DatagramWrite::kBlocked) break;
      continue;
    }
    // What HTTP/3 has to send next (any stream), packed with ngtcp2's own frames.
    std::int64_t stream = -1;
    int fin = 0;
    std::array<nghttp3_vec, 16> h3vec{};
    nghttp3_ssize count = 0;
    if (h3_ != nullptr && ngtcp2_conn_get_handshake_completed(conn_) != 0 &&
        ngtcp2_conn_get_max_data_left(conn_) > 0) {
      count = nghttp3_conn_writev_stream(h3_, &stream, &fin, h3vec.data(), h3vec.size());
      if (count < 0) {
        fail_h3(static_cast<int>(count), "nghttp3_conn_writev_stream");
        return;
      }
    }
    std::vector<std::span<const std::uint8_t>> pieces;
    for (nghttp3_ssize i = 0; i < count; ++i) pieces.emplace_back(h3vec[i].base, h3vec[i].len);
    if (stream == control_stream_ && control_rewrite_) pieces = control_rewrite_->rewrite(pieces);
    std::array<ngtcp2_vec, 17> vec{};
    count = static_cast<nghttp3_ssize>(std::min(pieces.size(), vec.size()));
    for (nghttp3_ssize i = 0; i < count; ++i)
      vec[i] = {const_cast<std::uint8_t*>(pieces[i].data()), pieces[i].size()};
    std::uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
    if (fin != 0) flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
    ngtcp2_ssize taken = -1;
    const ngtcp2_ssize n =
        ngtcp2_conn_writev_stream(conn_, &ps.path, &pi, packet_.data(), packet_.size(), &taken,
                                  flags, stream, vec.data(), static_cast<std::size_t>(count), ts);
    if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
      nghttp3_conn_block_stream(h3_, stream);
      continue;
    }
    if (n == NGTCP2_ERR_STREAM_SHUT_WR) {
      nghttp3_conn_shutdown_stream_write(h3_, stream);
      continue;
    }
    std::size_t h3_taken = taken >= 0 ? static_cast<std::size_t>(taken) : 0;
    if (stream == control_stream_ && control_rewrite_ && taken >= 0) {
      h3_taken = control_rewrite_->written(h3_taken);  // QUIC's offsets -> nghttp3's
      if (h3_taken == 0) taken = -1;
    }
    if (taken >= 0 && stream >= 0) {
      if (int rv = nghttp3_conn_add_write_offset(h3_, stream, h3_taken); rv != 0) {
        fail_h3(rv, "nghttp3_conn_add_write_offset");
        return;
      }
    }
    if (n == NGTCP2_ERR_WRITE_MORE) continue;
    if (n < 0) {
      on_quic_error(static_cast<int>(n));
      return;
    }
    if (n == 0) break;  // nothing left, or congestion-limited until acks come
    if (send(fd_, packet_.data(), static_cast<std::size_t>(n), 0) < 0 && errno == ECONNREFUSED) {
      end_with(before_or_after_handshake(), "connection refused (ICMP port unreachable)");
      return;
    }
  }
  ngtcp2_conn_update_pkt_tx_time(conn_, ts);
}

// One DATAGRAM frame into the packet being built.
Exchange::DatagramWrite Exchange::write_datagram(ngtcp2_path* path, ngtcp2_pkt_info* pi,
                                                 ngtcp2_tstamp ts) {
  const std::vector<std::uint8_t>& d = datagrams_out_.front();
  ngtcp2_vec v{const_cast<std::uint8_t*>(d.data()), d.size()};
  int accepted = 0;
  const ngtcp2_ssize n =
      ngtcp2_conn_writev_datagram(conn_, path, pi, packet_.data(), packet_.size(), &accepted,
                                  NGTCP2_WRITE_DATAGRAM_FLAG_MORE, 0, &v, 1, ts);
  if (n == NGTCP2_ERR_WRITE_MORE) {
    datagrams_out_.pop_front();
    return DatagramWrite::kNext;
  }
  if (n == NGTCP2_ERR_INVALID_ARGUMENT || n == NGTCP2_ERR_INVALID_STATE) {
    std::fprintf(stderr, "h3client: a datagram of %zu bytes cannot go: %s\n", d.size(),
                 ngtcp2_strerror(static_cast<int>(n)));
    datagrams_out_.pop_front();
    return DatagramWrite::kNext;
  }
  if (n < 0) {
    on_quic_error(static_cast<int>(n));
    return DatagramWrite::kFailed;
  }
  if (accepted != 0) datagrams_out_.pop_front();
  if (n == 0) return DatagramWrite::kBlocked;
  if (send(fd_, packet_.data(), static_cast<std::size_t>(n), 0) < 0 && errno == ECONNREFUSED) {
    end_with(before_or_after_handshake(), "connection refused (ICMP port unreachable)");
    return DatagramWrite::kFailed;
  }
  return DatagramWrite::kNext;
}

void Exchange::queue_datagram(std::vector<std::uint8_t> frame) {
  // DATAGRAM frames are never split: one that cannot fit a packet of ours is dropped
  // (header, ids, packet number, AEAD tag and the frame's own header take ~60 bytes).
  if (frame.size() + 64 > packet_.size()) {
    std::fprintf(stderr, "h3client: a datagram of %zu bytes does not fit a packet: dropped\n",
                 frame.size());
    return;
  }
  datagrams_out_.push_back(std::move(frame));
}

void Exchange::start_tunnel() {
  upload_.started = true;
  const ngtcp2_transport_params* server = ngtcp2_conn_get_remote_transport_params(conn_);
  const bool frames = server != nullptr && server->max_datagram_frame_size > 0;
  if (request_.datagrams) {
    datagram_mode_ = frames && server_settings_.h3_datagram();
    if (!datagram_mode_)
      std::fprintf(stderr,
                   "h3client: the server did not offer HTTP/3 datagrams (%s): capsules on the "
                   "stream\n",
                   frames ? "no SETTINGS_H3_DATAGRAM = 1" : "no max_datagram_frame_size");
  }
  if (frames)
    for (const auto& raw : request_.raw_datagrams) queue_datagram(raw);
}

// Datagram mode: stdin's DATAGRAM capsules become DATAGRAM frames, other capsules go on
// the stream as they are.
void Exchange::read_body_capsules(std::span<const std::uint8_t> bytes) {
  std::string stream_bytes;
  for (;;) {
    const http::CapsuleResult r = stdin_capsules_.next(bytes);
    bytes = bytes.subspan(r.consumed);
    if (r.status == http::CapsuleStatus::kNeedMore) break;
    if (r.status == http::CapsuleStatus::kError) {
      end_with(Outcome::kConnectionError,
               std::string("stdin is no capsule stream: ") + std::string(http::to_string(r.error)),
               app_close(NGHTTP3_H3_REQUEST_CANCELLED));
      return;
    }
    if (r.capsule.type == http::kCapsuleDatagram) {
      queue_datagram(http::h3::encode_datagram(stream_, r.capsule.payload));
    } else {
      http::append_capsule_header(stream_bytes, r.capsule.type, r.capsule.payload.size());
      http::append_bytes(stream_bytes, r.capsule.payload);
    }
  }
  if (!stream_bytes.empty()) {
    upload_.unacked += stream_bytes.size();
    upload_.chunks.push_back(std::move(stream_bytes));
  }
}

// A DATAGRAM frame from the server: those of our stream to stdout as DATAGRAM capsules.
void Exchange::on_datagram(std::span<const std::uint8_t> frame) {
  const http::h3::ParsedDatagram d = http::h3::parse_datagram(frame);
  if (!d.ok || d.stream != stream_ || !upload_.started) return;
  std::string capsule;
  http::append_capsule_header(capsule, http::kCapsuleDatagram, d.payload.size());
  http::append_bytes(capsule, d.payload);
  if (!handler_.on_body(http::as_bytes(capsule)))
    end_with(Outcome::kConnectionError,
             std::string("cannot write a datagram: ") + std::strerror(errno),
             app_close(NGHTTP3_H3_REQUEST_CANCELLED));
}

void Exchange::read_packets() {
  std::array<std::uint8_t, 65536> buf;
  for (int i = 0; i < 64 && !result_; ++i) {
    const ssize_t n = recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      end_with(before_or_after_handshake(), errno == ECONNREFUSED
                                                ? "connection refused (ICMP port unreachable)"
                                                : std::string("recv: ") + std::strerror(errno));
      return;
    }
    ngtcp2_pkt_info pi{};
    const int rv =
        ngtcp2_conn_read_pkt(conn_, &path_, &pi, buf.data(), static_cast<std::size_t>(n), now_ns());
    if (rv != 0) {
      on_quic_error(rv);
      return;
    }
  }
}

void Exchange::read_body() {
  std::array<char, kReadChunk> buf;
  const ssize_t n = read(upload_.fd, buf.data(), buf.size());
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN) return;
    end_with(Outcome::kConnectionError,
             std::string("reading the request body: ") + std::strerror(errno),
             app_close(NGHTTP3_H3_REQUEST_CANCELLED));
    return;
  }
  if (n == 0) {
    upload_.eof = true;
  } else if (datagram_mode_ && !request_.send_capsules) {
    read_body_capsules(
        {reinterpret_cast<const std::uint8_t*>(buf.data()), static_cast<std::size_t>(n)});
  } else {
    upload_.chunks.emplace_back(buf.data(), static_cast<std::size_t>(n));
    upload_.unacked += static_cast<std::size_t>(n);
  }
  if (upload_.blocked) {
    upload_.blocked = false;
    nghttp3_conn_resume_stream(h3_, stream_);
  }
}

std::string Exchange::tls_failure() const {
  const unsigned status = gnutls_session_get_verify_cert_status(tls_);
  if (!options_.insecure && status != 0 && status != static_cast<unsigned>(-1)) {
    gnutls_datum_t out{};
    if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) == 0) {
      std::string text = "the server's certificate does not verify: " +
                         std::string(reinterpret_cast<const char*>(out.data), out.size);
      while (!text.empty() && (text.back() == ' ' || text.back() == '\0')) text.pop_back();
      gnutls_free(out.data);
      return text;
    }
  }
  const std::uint8_t alert = ngtcp2_conn_get_tls_alert(conn_);
  const char* name = gnutls_alert_get_name(static_cast<gnutls_alert_description_t>(alert));
  return "TLS failed, alert " + std::to_string(alert) +
         (name != nullptr ? std::string(" (") + name + ")" : "");
}

void Exchange::on_quic_error(int liberr) {
  if (result_) return;  // a callback failed and said why
  const Outcome where = before_or_after_handshake();
  const std::string prefix = where == Outcome::kHandshakeError ? "handshake failed: " : "";
  ngtcp2_connection_close_error close;
  ngtcp2_connection_close_error_default(&close);
  switch (liberr) {
    case NGTCP2_ERR_DRAINING: {  // the server's CONNECTION_CLOSE (or a stateless reset)
      ngtcp2_connection_close_error e;
      ngtcp2_conn_get_connection_close_error(conn_, &e);
      end_with(where, prefix + "connection closed by the server: " + describe(e));
      return;
    }
    case NGTCP2_ERR_IDLE_CLOSE:
      end_with(Outcome::kTimeout,
               "timed out: nothing from the server for " + seconds(options_.timeout) + " s");
      return;
    case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
      end_with(Outcome::kTimeout,
               "timed out: no handshake within " + seconds(options_.timeout) + " s");
      return;
    case NGTCP2_ERR_RECV_VERSION_NEGOTIATION:
    case NGTCP2_ERR_VERSION_NEGOTIATION_FAILURE:
      end_with(Outcome::kHandshakeError, "handshake failed: the server does not speak QUIC v1");
      return;
    case NGTCP2_ERR_CRYPTO:
      ngtcp2_connection_close_error_set_transport_error_tls_alert(
          &close, ngtcp2_conn_get_tls_alert(conn_), nullptr, 0);
      end_with(where, prefix + tls_failure(), close);
      return;
    default:
      ngtcp2_connection_close_error_set_transport_error_liberr(&close, liberr, nullptr, 0);
      end_with(where,
               prefix + "QUIC: " + ngtcp2_strerror(liberr) + ", closing with " + describe(close),
               close);
      return;
  }
}

bool Exchange::over() const {
  if (load_ != nullptr)
    return ngtcp2_conn_get_handshake_completed(conn_) != 0 && load_->to_send == 0 &&
           load_streams_.empty();
  if (!response_.ended) return false;
  if (request_.kind == ExchangeKind::kRequest) return true;
  // A tunnel: after a 2xx, our side too has to end, and be acknowledged.
  return !upload_.started || response_.closed;
}

void Exchange::close_connection() {
  if (conn_ == nullptr || !close_ || ngtcp2_conn_is_in_closing_period(conn_) ||
      ngtcp2_conn_is_in_draining_period(conn_))
    return;
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi{};
  const ngtcp2_ssize n = ngtcp2_conn_write_connection_close(conn_, &ps.path, &pi, packet_.data(),
                                                            packet_.size(), &*close_, now_ns());
  if (n > 0) (void)send(fd_, packet_.data(), static_cast<std::size_t>(n), 0);
}

Result Exchange::run() {
  if (open_socket() && start_tls() && start_quic()) {
    while (!result_) {
      if (h3_ != nullptr && stream_ < 0 && ngtcp2_conn_get_handshake_completed(conn_) != 0)
        submit_request();
      if (!result_) write_packets();
      if (result_) break;

      std::array<pollfd, 2> fds{};
      fds[0] = {fd_, POLLIN, 0};
      nfds_t nfds = 1;
      if (wants_body()) fds[nfds++] = {upload_.fd, POLLIN, 0};
      // The timer as precise as ngtcp2 keeps it: pacing works in microseconds.
      const ngtcp2_tstamp expiry = ngtcp2_conn_get_expiry(conn_);
      ngtcp2_tstamp now = now_ns();
      timespec wait{};
      if (expiry > now) {
        const ngtcp2_tstamp d = std::min<ngtcp2_tstamp>(expiry - now, 60 * NGTCP2_SECONDS);
        wait.tv_sec = static_cast<time_t>(d / NGTCP2_SECONDS);
        wait.tv_nsec = static_cast<long>(d % NGTCP2_SECONDS);
      }
      if (ppoll(fds.data(), nfds, &wait, nullptr) < 0 && errno != EINTR) {
        end_with(Outcome::kConnectionError, std::string("poll: ") + std::strerror(errno));
        break;
      }
      if ((fds[0].revents & (POLLIN | POLLERR)) != 0) read_packets();
      if (!result_ && response_.stop_reading && !response_.stopped_reading) {
        response_.stopped_reading = true;
        nghttp3_conn_shutdown_stream_read(h3_, stream_);
        ngtcp2_conn_shutdown_stream_read(conn_, stream_, NGHTTP3_H3_REQUEST_CANCELLED);
      }
      if (!result_ && nfds > 1 && fds[1].revents != 0) read_body();
      now = now_ns();
      if (!result_ && ngtcp2_conn_get_expiry(conn_) <= now) {
        if (int rv = ngtcp2_conn_handle_expiry(conn_, now); rv != 0) on_quic_error(rv);
      }
      if (!result_ && over()) end_with(Outcome::kDone, "", app_close(NGHTTP3_H3_NO_ERROR));
    }
  }
  close_connection();
  return *result_;
}

void Exchange::send_step() {
  if (h3_ != nullptr && ngtcp2_conn_get_handshake_completed(conn_) != 0) submit_load_requests();
  if (!result_) write_packets();
}

void Exchange::receive_step(bool readable) {
  if (readable) read_packets();
  const ngtcp2_tstamp now = now_ns();
  if (!result_ && ngtcp2_conn_get_expiry(conn_) <= now) {
    if (int rv = ngtcp2_conn_handle_expiry(conn_, now); rv != 0) on_quic_error(rv);
  }
  if (!result_ && over()) end_with(Outcome::kDone, "", app_close(NGHTTP3_H3_NO_ERROR));
}

void Exchange::finish() {
  close_connection();
  if (load_ == nullptr) return;
  load_->result.requests_failed += load_streams_.size();
  load_streams_.clear();
  if (!result_ || result_->outcome == Outcome::kDone || !load_->result.first_error.empty()) return;
  load_->result.first_error = result_->message;
  // Idle with requests to send and no stream allowed: the server's MAX_STREAMS never grew.
  if (result_->outcome == Outcome::kTimeout && load_->to_send > 0 &&
      ngtcp2_conn_get_streams_bidi_left(conn_) == 0)
    load_->result.first_error += " (stalled after " + std::to_string(load_opened_) +
                                 " request streams: the server did not raise MAX_STREAMS)";
}

double seconds_since(ngtcp2_tstamp start) {
  return static_cast<double>(now_ns() - start) / static_cast<double>(NGTCP2_SECONDS);
}

}  // namespace

LoadResult run_load(const ConnectOptions& options, const Request& request,
                    const LoadOptions& load) {
  LoadResult result;
  LoadShared shared{std::max<std::uint64_t>(load.concurrency, 1), load.requests, result};
  DiscardBody discard;
  const ngtcp2_tstamp start = now_ns();
  std::vector<std::unique_ptr<Exchange>> live;
  for (std::uint64_t i = 0; i < load.connections; ++i) {
    auto x = std::make_unique<Exchange>(options, request, discard, &shared);
    if (x->start()) {
      live.push_back(std::move(x));
    } else {
      x->finish();
    }
  }
  std::vector<pollfd> fds;
  while (!live.empty()) {
    for (auto& x : live) x->send_step();
    fds.clear();
    ngtcp2_tstamp expiry = UINT64_MAX;
    for (auto& x : live) {
      fds.push_back({x->fd(), POLLIN, 0});
      expiry = std::min(expiry, x->expiry());
    }
    const ngtcp2_tstamp now = now_ns();
    timespec wait{};
    if (expiry > now) {
      const ngtcp2_tstamp d = std::min<ngtcp2_tstamp>(expiry - now, 60 * NGTCP2_SECONDS);
      wait.tv_sec = static_cast<time_t>(d / NGTCP2_SECONDS);
      wait.tv_nsec = static_cast<long>(d % NGTCP2_SECONDS);
    }
    // A connection ended by send_step() is not waited for: wait 0 and reap it below.
    for (auto& x : live)
      if (x->ended()) wait = {};
    if (ppoll(fds.data(), fds.size(), &wait, nullptr) < 0 && errno != EINTR) {
      if (result.first_error.empty())
        result.first_error = std::string("poll: ") + std::strerror(errno);
      break;
    }
    for (std::size_t i = 0; i < live.size(); ++i)
      if (!live[i]->ended()) live[i]->receive_step((fds[i].revents & (POLLIN | POLLERR)) != 0);
    for (auto& x : live)
      if (x->ended()) x->finish();
    std::erase_if(live, [](const std::unique_ptr<Exchange>& x) { return x->ended(); });
  }
  for (auto& x : live) x->finish();  // only after a poll failure
  result.seconds = seconds_since(start);
  result.requests_failed += shared.to_send;  // never sent: every connection failed
  return result;
}

Result run_exchange(const ConnectOptions& options, const Request& request,
                    ResponseHandler& handler) {
  Exchange exchange(options, request, handler);
  return exchange.run();
}

}  // namespace ramjet::h3client
