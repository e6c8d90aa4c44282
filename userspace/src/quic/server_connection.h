// One server-side QUIC connection: ngtcp2 with GnuTLS, free of I/O. The worker that owns
// it (proxy/quic_onramp) hands it the datagrams whose destination id it issued, asks it
// for datagrams to send, and arms a timer at expiry(); the connection tells the worker
// through Events which ids it issues and retires, so the worker's id table (and the
// kernel's steering, abi/quic.h) always find it. Times are CLOCK_MONOTONIC nanoseconds.
#pragma once

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "datapath/quic_cid.h"
#include "quic/datagram_queued.h"
#include "quic/server_credentials.h"
#include "ramjet/config/config.h"

namespace ramjet::quic {

using Timestamp = std::uint64_t;  // ns, CLOCK_MONOTONIC (ngtcp2_tstamp)

Timestamp now_ns();

// What every connection of one worker shares: the worker's index and the daemon's
// generation (named in the ids it issues) and the secret stateless-reset tokens are
// derived from (the same in every worker, so any of them can reset any id).
struct ServerIdentity {
  unsigned worker = 0;
  unsigned generation = 0;
  std::array<std::uint8_t, 32> reset_secret{};
  std::array<std::uint8_t, 32> token_secret{};  // Retry tokens (one per daemon)
};

// The stateless-reset token of one of our ids (RFC 9000 10.3.2).
bool reset_token(const ServerIdentity& identity, std::span<const std::uint8_t> cid,
                 std::span<std::uint8_t, 16> token);

// The callbacks of ngtcp2's crypto helper that every connection, server or client, uses
// (packet protection, key update, path challenges, compatible version negotiation).
void set_crypto_callbacks(ngtcp2_callbacks& cb);

// A connection id in the layout the kernel steers by, with random bits from GnuTLS.
datapath::QuicCid new_server_cid(const ServerIdentity& identity);

struct SocketPath {
  const sockaddr* local = nullptr;
  socklen_t local_len = 0;
  const sockaddr* remote = nullptr;
  socklen_t remote_len = 0;
};

// Bytes of one stream ready to send: their pieces, and whether the stream ends there.
struct StreamOutput {
  std::int64_t stream = -1;  // -1: no stream data to send
  std::vector<std::span<const std::uint8_t>> pieces;
  bool fin = false;
};

// What runs on the connection's streams (HTTP/3: the proxy binds http::h3 here, so this
// layer knows nothing of HTTP). Stream data flows in through on_stream_data and out
// through next_output / on_written; flow control is QUIC's (ServerConnection::consumed).
class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  // Open the server's own streams here (open_uni_stream).
  virtual void on_handshake_completed() {}
  // The client may now open this many request streams in all (its initial limit at
  // the handshake, then each time it grows): HTTP/3 checks the stream ids it is told
  // about (PRIORITY_UPDATE, GOAWAY) against it.
  virtual void on_client_bidi_streams(std::uint64_t /*max*/) {}
  // Client stream bytes; returns how many the handler consumed now (more later through
  // ServerConnection::consumed), or a negative value to close the connection.
  virtual std::int64_t on_stream_data(std::int64_t stream, std::span<const std::uint8_t> data,
                                      bool fin) = 0;
  // The peer acknowledged `n` more bytes of the stream: they may be freed.
  virtual void on_stream_acked(std::int64_t stream, std::uint64_t n) = 0;
  virtual void on_stream_close(std::int64_t stream, std::uint64_t app_error_code) = 0;
  // The stream's send window opened: offer it again after on_blocked.
  virtual void on_stream_window(std::int64_t stream) = 0;
  virtual StreamOutput next_output() = 0;
  // `n` bytes of what next_output() gave went into packets.
  virtual void on_written(std::int64_t stream, std::size_t n) = 0;
  // QUIC takes no more of the stream now (its send window is full).
  virtual void on_blocked(std::int64_t stream) = 0;
  // The stream's sending side is closed: the peer sent STOP_SENDING (ngtcp2 answers it
  // with RESET_STREAM). What next_output() offers of the stream can no longer go: it must
  // stop offering it. (ngtcp2's stream_stop_sending callback is not this: it reports our
  // own shutdown of the receiving side.)
  virtual void on_write_shut(std::int64_t stream) = 0;
  // The payload of a DATAGRAM frame (RFC 9221) from the client; only when accept() offered
  // max_datagram_frame_size.
  virtual void on_datagram(std::span<const std::uint8_t> /*payload*/) {}
};

// Address validation (RFC 9000 8.1.2): what the token of a client's Initial says.
struct RetryCheck {
  enum class Result : std::uint8_t {
    kNoToken,  // none (or a NEW_TOKEN kind we do not issue): the address is unproven
    kValid,    // a Retry token of ours, for this address, in time: odcid is the id the
               // client's first Initial went to
    kInvalid,  // a Retry token that fails: drop the Initial
  };
  Result result = Result::kNoToken;
  ngtcp2_cid odcid{};
};
// How long a Retry token stays good.
constexpr std::uint64_t kRetryTokenLifetimeNs = 10'000'000'000;
RetryCheck check_retry_token(std::span<const std::uint8_t> initial, const ServerIdentity& identity,
                             const SocketPath& path, Timestamp now);
// A Retry packet answering the Initial (a fresh id of this worker as the id to come back
// to, and a token naming the client's address): its length in `out`, 0 if none.
std::size_t write_retry(std::span<std::uint8_t> out, std::span<const std::uint8_t> initial,
                        const ServerIdentity& identity, const SocketPath& path, Timestamp now);

class ServerConnection {
 public:
  class Events {
   public:
    virtual ~Events() = default;
    // An id of ours now names this connection (true) or no longer does (false).
    virtual void on_connection_id(ServerConnection& c, std::span<const std::uint8_t> cid,
                                  bool added) = 0;
  };

  enum class Status : std::uint8_t {
    kOk,
    kClosing,  // send what write() gives (a CONNECTION_CLOSE), then drop the connection
    kDrop,     // drop it now, sending nothing (idle timeout, draining, fatal)
  };

  // A connection for the Initial in `datagram` (Decision::kAccept). Null with `error`.
  // `validated` is the Initial's valid Retry token (check_retry_token), if it had one.
  static std::unique_ptr<ServerConnection> accept(
      std::shared_ptr<const ServerCredentials> credentials, const ServerIdentity& identity,
      const config::QuicSettings& limits, Events* events, std::span<const std::uint8_t> datagram,
      const SocketPath& path, Timestamp now, std::string& error,
      const RetryCheck* validated = nullptr, std::uint64_t max_datagram_frame_size = 0);
  ~ServerConnection();
  ServerConnection(const ServerConnection&) = delete;
  ServerConnection& operator=(const ServerConnection&) = delete;

  Status receive(std::span<const std::uint8_t> datagram, const SocketPath& path,
                 std::uint32_t ecn, Timestamp now);
  // One datagram into `out`: its length (0: nothing to send now). `remote` gets the
  // address to send it to (it changes with migration).
  std::size_t write(std::span<std::uint8_t> out, sockaddr_storage& remote, socklen_t& remote_len,
                    Timestamp now);
  // When on_expiry() must run (UINT64_MAX: never).
  Timestamp expiry() const;
  Status on_expiry(Timestamp now);

  // Streams: what carries them (null: no stream data is read or written).
  void set_stream_handler(StreamHandler* h) { streams_ = h; }
  // A stream of ours, sending only (HTTP/3's control and QPACK streams); -1 when the
  // client's limit allows none.
  std::int64_t open_uni_stream();
  // The handler passed on `n` more bytes of a client stream: the client may send as many.
  void consumed(std::int64_t stream, std::size_t n);
  // DATAGRAM frames (RFC 9221): whether the client's transport parameters allow them
  // (and the handshake is done), and one to send. Unreliable: nothing waits without
  // bound, what cannot go is dropped and said so.
  bool datagrams_negotiated() const;
  DatagramQueued queue_datagram(std::span<const std::uint8_t> payload);
  static constexpr std::size_t kMaxQueuedDatagrams = 64;
  // Resets a stream both ways (RESET_STREAM and STOP_SENDING) with an application code.
  void shutdown_stream(std::int64_t stream, std::uint64_t app_error_code);
  // Closes the connection with an application code (CONNECTION_CLOSE 0x1d): write()
  // gives that packet, then closing() is true.
  void close(std::uint64_t app_error_code, std::string_view reason, Timestamp now);

  bool handshake_completed() const;
  // A CONNECTION_CLOSE is all it has left to send (accept() may return one so).
  bool closing() const { return closing_; }
  // The client closed the connection with CONNECTION_CLOSE and no error code.
  bool peer_closed() const;
  std::string alpn() const;
  std::string server_name() const;  // the client's SNI, "" when it sent none
  std::string cipher_suite() const;  // e.g. "TLS_AES_128_GCM_SHA256"
  // The ids of ours that name this connection now, and the id the client chose for its
  // first Initial (it may send more Initials to it until it sees ours).
  const std::vector<datapath::QuicCid>& ids() const { return ids_; }
  std::span<const std::uint8_t> original_dcid() const {
    return {original_dcid_.data, original_dcid_.datalen};
  }
  ngtcp2_conn* native() { return conn_; }
  const std::string& error() const { return error_; }

 private:
  ServerConnection() = default;
  Status fail(int liberr, Timestamp now);
  // Builds the CONNECTION_CLOSE that write() sends next; false when none could be made.
  bool make_close_packet(const ngtcp2_connection_close_error& error, Timestamp now);
  static ngtcp2_conn* get_conn(ngtcp2_crypto_conn_ref* ref);
  static int on_new_cid(ngtcp2_conn* conn, ngtcp2_cid* cid, std::uint8_t* token,
                        std::size_t cidlen, void* user_data);
  static int on_remove_cid(ngtcp2_conn* conn, const ngtcp2_cid* cid, void* user_data);
  static void on_rand(std::uint8_t* dest, std::size_t len, const ngtcp2_rand_ctx* ctx);
  friend struct StreamCallbacks;

  std::shared_ptr<const ServerCredentials> credentials_;
  ServerIdentity identity_;
  Events* events_ = nullptr;
  StreamHandler* streams_ = nullptr;
  ngtcp2_crypto_conn_ref ref_{};
  GnutlsSession tls_;
  ngtcp2_conn* conn_ = nullptr;
  std::vector<datapath::QuicCid> ids_;
  ngtcp2_cid original_dcid_{};
  sockaddr_storage close_remote_{};
  socklen_t close_remote_len_ = 0;
  std::deque<std::vector<std::uint8_t>> datagrams_;  // DATAGRAM payloads for write()
  std::vector<std::uint8_t> close_packet_;  // CONNECTION_CLOSE, sent by write() once closing
  bool close_sent_ = false;
  bool closing_ = false;
  std::string error_;
};

}  // namespace ramjet::quic
