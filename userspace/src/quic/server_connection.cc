#include "quic/server_connection.h"

#include <gnutls/crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <time.h>

#include <algorithm>
#include <cstring>

#include "quic/crypto_callbacks.h"

namespace ramjet::quic {
namespace {

constexpr std::uint64_t kNsPerMs = 1'000'000;
// Ids a client may hold for us at once: enough to migrate a few times without waiting
// for NEW_CONNECTION_ID (RFC 9000 5.1.1).
constexpr std::uint64_t kActiveConnectionIdLimit = 4;

ngtcp2_path path_of(const SocketPath& p) {
  ngtcp2_path path{};
  path.local.addr = const_cast<sockaddr*>(p.local);
  path.local.addrlen = p.local_len;
  path.remote.addr = const_cast<sockaddr*>(p.remote);
  path.remote.addrlen = p.remote_len;
  return path;
}

void copy_remote(const ngtcp2_addr& a, sockaddr_storage& out, socklen_t& out_len) {
  out_len = std::min<socklen_t>(a.addrlen, sizeof out);
  std::memcpy(&out, a.addr, out_len);
}

}  // namespace

// ngtcp2's stream callbacks, handed to the connection's StreamHandler.
struct StreamCallbacks {
  static StreamHandler* handler(void* user) { return static_cast<ServerConnection*>(user)->streams_; }

  static int handshake_completed(ngtcp2_conn* conn, void* user) {
    if (StreamHandler* h = handler(user)) {
      h->on_handshake_completed();
      h->on_client_bidi_streams(
          ngtcp2_conn_get_local_transport_params(conn)->initial_max_streams_bidi);
    }
    return 0;
  }
  static int more_client_bidi(ngtcp2_conn*, std::uint64_t max, void* user) {
    if (StreamHandler* h = handler(user)) h->on_client_bidi_streams(max);
    return 0;
  }
  static int recv_stream_data(ngtcp2_conn*, std::uint32_t flags, std::int64_t stream,
                              std::uint64_t, const std::uint8_t* data, std::size_t len,
                              void* user, void*) {
    StreamHandler* h = handler(user);
    if (h == nullptr) return 0;
    const std::int64_t n = h->on_stream_data(stream, {data, len},
                                             (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0);
    if (n < 0) return NGTCP2_ERR_CALLBACK_FAILURE;
    static_cast<ServerConnection*>(user)->consumed(stream, static_cast<std::size_t>(n));
    return 0;
  }
  static int acked(ngtcp2_conn*, std::int64_t stream, std::uint64_t, std::uint64_t len,
                   void* user, void*) {
    if (StreamHandler* h = handler(user)) h->on_stream_acked(stream, len);
    return 0;
  }
  static int stream_close(ngtcp2_conn* conn, std::uint32_t flags, std::int64_t stream,
                          std::uint64_t code, void* user, void*) {
    // A stream the client opened is done: it may open one more (MAX_STREAMS), so the
    // limit bounds streams at once, not streams over the connection's life. ngtcp2 sends
    // the credit back when it sees fit (it batches them).
    if (!ngtcp2_conn_is_local_stream(conn, stream)) {
      if (ngtcp2_is_bidi_stream(stream))
        ngtcp2_conn_extend_max_streams_bidi(conn, 1);
      else
        ngtcp2_conn_extend_max_streams_uni(conn, 1);
    }
    // Without an application code the stream simply ended: H3_NO_ERROR (RFC 9114 8.1).
    if ((flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET) == 0) code = 0x100;
    if (StreamHandler* h = handler(user)) h->on_stream_close(stream, code);
    return 0;
  }
  static int window(ngtcp2_conn*, std::int64_t stream, std::uint64_t, void* user, void*) {
    if (StreamHandler* h = handler(user)) h->on_stream_window(stream);
    return 0;
  }
  static int datagram(ngtcp2_conn*, std::uint32_t, const std::uint8_t* data, std::size_t len,
                      void* user) {
    if (StreamHandler* h = handler(user)) h->on_datagram({data, len});
    return 0;
  }
};

Timestamp now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<Timestamp>(ts.tv_sec) * 1'000'000'000u + static_cast<Timestamp>(ts.tv_nsec);
}

bool reset_token(const ServerIdentity& identity, std::span<const std::uint8_t> cid,
                 std::span<std::uint8_t, 16> token) {
  ngtcp2_cid c;
  ngtcp2_cid_init(&c, cid.data(), cid.size());
  return ngtcp2_crypto_generate_stateless_reset_token(token.data(), identity.reset_secret.data(),
                                                      identity.reset_secret.size(), &c) == 0;
}

datapath::QuicCid new_server_cid(const ServerIdentity& identity) {
  std::array<std::uint8_t, datapath::kQuicCidLength> random{};
  gnutls_rnd(GNUTLS_RND_NONCE, random.data(), random.size());
  return datapath::make_quic_cid(identity.worker, identity.generation, random);
}

std::unique_ptr<ServerConnection> ServerConnection::accept(
    std::shared_ptr<const ServerCredentials> credentials, const ServerIdentity& identity,
    const config::QuicSettings& limits, Events* events, std::span<const std::uint8_t> datagram,
    const SocketPath& socket_path, Timestamp now, std::string& error, const RetryCheck* validated,
    std::uint64_t max_datagram_frame_size) {
  ngtcp2_pkt_hd hd{};
  if (ngtcp2_accept(&hd, datagram.data(), datagram.size()) != 0) {
    error = "not an acceptable Initial";
    return nullptr;
  }
  std::unique_ptr<ServerConnection> c(new ServerConnection());
  c->credentials_ = std::move(credentials);
  c->identity_ = identity;
  c->events_ = events;
  c->ref_.get_conn = &ServerConnection::get_conn;
  c->ref_.user_data = c.get();
  c->original_dcid_ = hd.dcid;
  c->tls_ = c->credentials_->new_session(&c->ref_, error);
  if (!c->tls_) return nullptr;

  ngtcp2_callbacks cb{};
  set_crypto_callbacks(cb);
  cb.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
  cb.rand = &ServerConnection::on_rand;
  cb.get_new_connection_id = &ServerConnection::on_new_cid;
  cb.remove_connection_id = &ServerConnection::on_remove_cid;
  cb.handshake_completed = &StreamCallbacks::handshake_completed;
  cb.recv_stream_data = &StreamCallbacks::recv_stream_data;
  cb.acked_stream_data_offset = &StreamCallbacks::acked;
  cb.stream_close = &StreamCallbacks::stream_close;
  cb.extend_max_stream_data = &StreamCallbacks::window;
  cb.extend_max_remote_streams_bidi = &StreamCallbacks::more_client_bidi;
  cb.recv_datagram = &StreamCallbacks::datagram;

  ngtcp2_settings settings;
  ngtcp2_settings_default(&settings);
  settings.initial_ts = now;
  settings.handshake_timeout = static_cast<ngtcp2_duration>(limits.handshake_timeout.count()) * kNsPerMs;
  settings.max_stream_window = std::max<std::uint64_t>(limits.max_stream_data, 6 * 1024 * 1024);
  settings.max_window = std::max<std::uint64_t>(limits.max_data, 15 * 1024 * 1024);

  ngtcp2_transport_params params;
  ngtcp2_transport_params_default(&params);
  params.initial_max_stream_data_bidi_local = limits.max_stream_data;
  params.initial_max_stream_data_bidi_remote = limits.max_stream_data;
  params.initial_max_stream_data_uni = limits.max_stream_data;
  params.initial_max_data = limits.max_data;
  params.initial_max_streams_bidi = limits.max_streams_bidi;
  params.initial_max_streams_uni = limits.max_streams_uni;
  params.max_idle_timeout = static_cast<ngtcp2_duration>(limits.idle_timeout.count()) * kNsPerMs;
  params.active_connection_id_limit = kActiveConnectionIdLimit;
  // RFC 9221 3: nonzero offers DATAGRAM frames (HTTP/3 datagrams, RFC 9297).
  params.max_datagram_frame_size = max_datagram_frame_size;
  params.original_dcid = hd.dcid;
  if (validated != nullptr && validated->result == RetryCheck::Result::kValid) {
    // RFC 9000 7.3: after a Retry, original_destination_connection_id is the id of the
    // client's first Initial, and retry_source_connection_id the one the Retry gave.
    params.original_dcid = validated->odcid;
    params.retry_scid = hd.dcid;
    params.retry_scid_present = 1;
    settings.token = hd.token;  // the address is proven: no amplification limit
  }

  datapath::QuicCid first = new_server_cid(identity);
  ngtcp2_cid scid;
  ngtcp2_cid_init(&scid, first.data(), first.size());
  params.stateless_reset_token_present = 1;
  if (!reset_token(identity, first, params.stateless_reset_token)) {
    error = "cannot derive a stateless reset token";
    return nullptr;
  }

  ngtcp2_path path = path_of(socket_path);
  int rv = ngtcp2_conn_server_new(&c->conn_, &hd.scid, &scid, &path, hd.version, &cb, &settings,
                                  &params, nullptr, c.get());
  if (rv != 0) {
    error = std::string("ngtcp2_conn_server_new: ") + ngtcp2_strerror(rv);
    return nullptr;
  }
  ngtcp2_conn_set_tls_native_handle(c->conn_, c->tls_.get());
  c->ids_.push_back(first);
  if (c->events_) c->events_->on_connection_id(*c, first, true);

  if (c->receive(datagram, socket_path, 0, now) == Status::kDrop) {
    error = c->error_.empty() ? "the Initial was refused" : c->error_;
    return nullptr;
  }
  return c;
}

RetryCheck check_retry_token(std::span<const std::uint8_t> initial, const ServerIdentity& identity,
                             const SocketPath& path, Timestamp now) {
  RetryCheck out;
  ngtcp2_pkt_hd hd{};
  if (ngtcp2_accept(&hd, initial.data(), initial.size()) != 0 || hd.token.len == 0 ||
      hd.token.base[0] != NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY)
    return out;
  const int rv = ngtcp2_crypto_verify_retry_token(
      &out.odcid, hd.token.base, hd.token.len, identity.token_secret.data(),
      identity.token_secret.size(), hd.version, path.remote, path.remote_len, &hd.dcid,
      kRetryTokenLifetimeNs, now);
  out.result = rv == 0 ? RetryCheck::Result::kValid : RetryCheck::Result::kInvalid;
  return out;
}

std::size_t write_retry(std::span<std::uint8_t> out, std::span<const std::uint8_t> initial,
                        const ServerIdentity& identity, const SocketPath& path, Timestamp now) {
  ngtcp2_pkt_hd hd{};
  if (ngtcp2_accept(&hd, initial.data(), initial.size()) != 0) return 0;
  const datapath::QuicCid id = new_server_cid(identity);
  ngtcp2_cid scid;
  ngtcp2_cid_init(&scid, id.data(), id.size());
  std::uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN];
  const ngtcp2_ssize tokenlen = ngtcp2_crypto_generate_retry_token(
      token, identity.token_secret.data(), identity.token_secret.size(), hd.version, path.remote,
      path.remote_len, &scid, &hd.dcid, now);
  if (tokenlen < 0) return 0;
  const ngtcp2_ssize n =
      ngtcp2_crypto_write_retry(out.data(), out.size(), hd.version, &hd.scid, &scid, &hd.dcid,
                                token, static_cast<std::size_t>(tokenlen));
  return n > 0 ? static_cast<std::size_t>(n) : 0;
}

ServerConnection::~ServerConnection() {
  if (conn_ != nullptr) ngtcp2_conn_del(conn_);
}

ngtcp2_conn* ServerConnection::get_conn(ngtcp2_crypto_conn_ref* ref) {
  return static_cast<ServerConnection*>(ref->user_data)->conn_;
}

void ServerConnection::on_rand(std::uint8_t* dest, std::size_t len, const ngtcp2_rand_ctx*) {
  gnutls_rnd(GNUTLS_RND_RANDOM, dest, len);
}

int ServerConnection::on_new_cid(ngtcp2_conn*, ngtcp2_cid* cid, std::uint8_t* token,
                                 std::size_t cidlen, void* user_data) {
  auto* c = static_cast<ServerConnection*>(user_data);
  if (cidlen != datapath::kQuicCidLength) return NGTCP2_ERR_CALLBACK_FAILURE;
  datapath::QuicCid id = new_server_cid(c->identity_);
  ngtcp2_cid_init(cid, id.data(), id.size());
  if (!reset_token(c->identity_, id, std::span<std::uint8_t, 16>(token, 16)))
    return NGTCP2_ERR_CALLBACK_FAILURE;
  c->ids_.push_back(id);
  if (c->events_) c->events_->on_connection_id(*c, id, true);
  return 0;
}

int ServerConnection::on_remove_cid(ngtcp2_conn*, const ngtcp2_cid* cid, void* user_data) {
  auto* c = static_cast<ServerConnection*>(user_data);
  std::span<const std::uint8_t> gone(cid->data, cid->datalen);
  auto it = std::find_if(c->ids_.begin(), c->ids_.end(), [&](const datapath::QuicCid& id) {
    return std::equal(id.begin(), id.end(), gone.begin(), gone.end());
  });
  if (it == c->ids_.end()) return 0;
  datapath::QuicCid id = *it;
  c->ids_.erase(it);
  if (c->events_) c->events_->on_connection_id(*c, id, false);
  return 0;
}

ServerConnection::Status ServerConnection::receive(std::span<const std::uint8_t> datagram,
                                                   const SocketPath& socket_path,
                                                   std::uint32_t ecn, Timestamp now) {
  if (closing_) return Status::kClosing;
  ngtcp2_path path = path_of(socket_path);
  ngtcp2_pkt_info pi{};
  pi.ecn = ecn;
  int rv = ngtcp2_conn_read_pkt(conn_, &path, &pi, datagram.data(), datagram.size(), now);
  if (rv == 0) return Status::kOk;
  return fail(rv, now);
}

ServerConnection::Status ServerConnection::fail(int liberr, Timestamp now) {
  error_ = ngtcp2_strerror(liberr);
  if (liberr == NGTCP2_ERR_DRAINING || liberr == NGTCP2_ERR_DROP_CONN ||
      liberr == NGTCP2_ERR_IDLE_CLOSE || liberr == NGTCP2_ERR_HANDSHAKE_TIMEOUT ||
      ngtcp2_conn_is_in_closing_period(conn_) || ngtcp2_conn_is_in_draining_period(conn_))
    return Status::kDrop;
  ngtcp2_connection_close_error ccerr;
  ngtcp2_connection_close_error_default(&ccerr);
  if (liberr == NGTCP2_ERR_CRYPTO) {
    ngtcp2_connection_close_error_set_transport_error_tls_alert(
        &ccerr, ngtcp2_conn_get_tls_alert(conn_), nullptr, 0);
  } else {
    ngtcp2_connection_close_error_set_transport_error_liberr(&ccerr, liberr, nullptr, 0);
  }
  return make_close_packet(ccerr, now) ? Status::kClosing : Status::kDrop;
}

bool ServerConnection::make_close_packet(const ngtcp2_connection_close_error& error,
                                         Timestamp now) {
  close_packet_.resize(NGTCP2_MAX_UDP_PAYLOAD_SIZE);
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi{};
  ngtcp2_ssize n = ngtcp2_conn_write_connection_close(conn_, &ps.path, &pi, close_packet_.data(),
                                                      close_packet_.size(), &error, now);
  if (n <= 0) return false;
  close_packet_.resize(static_cast<std::size_t>(n));
  copy_remote(ps.path.remote, close_remote_, close_remote_len_);
  closing_ = true;
  return true;
}

void ServerConnection::close(std::uint64_t app_error_code, std::string_view reason, Timestamp now) {
  if (closing_ || ngtcp2_conn_is_in_closing_period(conn_) ||
      ngtcp2_conn_is_in_draining_period(conn_))
    return;
  ngtcp2_connection_close_error ccerr;
  ngtcp2_connection_close_error_default(&ccerr);
  ngtcp2_connection_close_error_set_application_error(
      &ccerr, app_error_code, reinterpret_cast<const std::uint8_t*>(reason.data()), reason.size());
  if (!make_close_packet(ccerr, now)) {
    // Nothing to send it in (the handshake is not far enough): the connection just ends.
    closing_ = true;
    close_sent_ = true;
  }
}

void ServerConnection::shutdown_stream(std::int64_t stream, std::uint64_t app_error_code) {
  ngtcp2_conn_shutdown_stream(conn_, stream, app_error_code);
}

std::size_t ServerConnection::write(std::span<std::uint8_t> out, sockaddr_storage& remote,
                                    socklen_t& remote_len, Timestamp now) {
  if (closing_) {
    if (close_sent_ || close_packet_.size() > out.size()) return 0;
    close_sent_ = true;
    std::memcpy(out.data(), close_packet_.data(), close_packet_.size());
    remote = close_remote_;
    remote_len = close_remote_len_;
    return close_packet_.size();
  }
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi{};
  // Stream data first, as much of it as fits in the packet (WRITE_MORE), then whatever
  // else ngtcp2 has (acks, control frames) - one datagram per call.
  for (int round = 0; round < 1024; ++round) {
    if (!datagrams_.empty() && ngtcp2_conn_get_handshake_completed(conn_)) {
      const std::vector<std::uint8_t>& d = datagrams_.front();
      ngtcp2_vec v{const_cast<std::uint8_t*>(d.data()), d.size()};
      int accepted = 0;
      const ngtcp2_ssize n =
          ngtcp2_conn_writev_datagram(conn_, &ps.path, &pi, out.data(), out.size(), &accepted,
                                      NGTCP2_WRITE_DATAGRAM_FLAG_MORE, 0, &v, 1, now);
      if (n == NGTCP2_ERR_WRITE_MORE) {  // in the packet; room for more
        datagrams_.pop_front();
        continue;
      }
      if (n == NGTCP2_ERR_INVALID_ARGUMENT || n == NGTCP2_ERR_INVALID_STATE) {
        // Checked when queued; the peer's limits cannot change after the handshake.
        datagrams_.pop_front();
        continue;
      }
      if (n < 0) {
        if (fail(static_cast<int>(n), now) == Status::kClosing)
          return write(out, remote, remote_len, now);
        return 0;
      }
      if (accepted != 0) datagrams_.pop_front();
      ngtcp2_conn_update_pkt_tx_time(conn_, now);
      // 0: congestion or amplification limit; the datagram waits (the queue is bounded).
      if (n == 0) return 0;
      copy_remote(ps.path.remote, remote, remote_len);
      return static_cast<std::size_t>(n);
    }
    StreamOutput o;
    if (streams_ != nullptr && ngtcp2_conn_get_handshake_completed(conn_)) o = streams_->next_output();
    std::vector<ngtcp2_vec> vec;
    vec.reserve(o.pieces.size());
    for (auto p : o.pieces) vec.push_back({const_cast<std::uint8_t*>(p.data()), p.size()});
    std::uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
    if (o.fin) flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
    ngtcp2_ssize taken = -1;
    ngtcp2_ssize n = ngtcp2_conn_writev_stream(conn_, &ps.path, &pi, out.data(), out.size(), &taken,
                                               flags, o.stream, vec.data(), vec.size(), now);
    if (n == NGTCP2_ERR_WRITE_MORE) {
      streams_->on_written(o.stream, static_cast<std::size_t>(taken));
      continue;
    }
    if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
      streams_->on_blocked(o.stream);
      continue;
    }
    if (n == NGTCP2_ERR_STREAM_SHUT_WR) {
      streams_->on_write_shut(o.stream);
      continue;
    }
    if (n < 0) {
      if (fail(static_cast<int>(n), now) == Status::kClosing)
        return write(out, remote, remote_len, now);
      return 0;
    }
    if (taken >= 0 && o.stream >= 0) streams_->on_written(o.stream, static_cast<std::size_t>(taken));
    ngtcp2_conn_update_pkt_tx_time(conn_, now);
    if (n == 0) return 0;
    copy_remote(ps.path.remote, remote, remote_len);
    return static_cast<std::size_t>(n);
  }
  return 0;
}

Timestamp ServerConnection::expiry() const {
  return closing_ ? UINT64_MAX : ngtcp2_conn_get_expiry(conn_);
}

ServerConnection::Status ServerConnection::on_expiry(Timestamp now) {
  if (closing_) return Status::kDrop;
  int rv = ngtcp2_conn_handle_expiry(conn_, now);
  if (rv == 0) return Status::kOk;
  return fail(rv, now);
}

std::int64_t ServerConnection::open_uni_stream() {
  std::int64_t id = -1;
  return ngtcp2_conn_open_uni_stream(conn_, &id, nullptr) == 0 ? id : -1;
}

void ServerConnection::consumed(std::int64_t stream, std::size_t n) {
  if (n == 0) return;
  ngtcp2_conn_extend_max_stream_offset(conn_, stream, n);
  ngtcp2_conn_extend_max_offset(conn_, n);
}

bool ServerConnection::datagrams_negotiated() const {
  if (!ngtcp2_conn_get_handshake_completed(conn_)) return false;
  const ngtcp2_transport_params* remote = ngtcp2_conn_get_remote_transport_params(conn_);
  return remote != nullptr && remote->max_datagram_frame_size > 0 &&
         ngtcp2_conn_get_local_transport_params(conn_)->max_datagram_frame_size > 0;
}

DatagramQueued ServerConnection::queue_datagram(std::span<const std::uint8_t> payload) {
  if (closing_ || !datagrams_negotiated()) return DatagramQueued::kNotNegotiated;
  // A DATAGRAM frame with a Length field: type (1) + varint length (up to 4 here).
  const std::uint64_t frame = 1 + 4 + payload.size();
  // What a 1-RTT packet leaves of the path's datagram size: first byte, the client's id
  // (up to 20), packet number (up to 4), AEAD tag (16). DATAGRAM frames are never split.
  constexpr std::size_t kPacketOverhead = 1 + NGTCP2_MAX_CIDLEN + 4 + 16;
  const std::size_t path = ngtcp2_conn_get_path_max_tx_udp_payload_size(conn_);
  if (frame > ngtcp2_conn_get_remote_transport_params(conn_)->max_datagram_frame_size ||
      path < kPacketOverhead || frame > path - kPacketOverhead)
    return DatagramQueued::kTooLarge;
  if (datagrams_.size() >= kMaxQueuedDatagrams) return DatagramQueued::kQueueFull;
  datagrams_.emplace_back(payload.begin(), payload.end());
  return DatagramQueued::kQueued;
}

bool ServerConnection::handshake_completed() const {
  return ngtcp2_conn_get_handshake_completed(conn_) != 0;
}

std::string ServerConnection::alpn() const {
  gnutls_datum_t p{};
  if (gnutls_alpn_get_selected_protocol(tls_.get(), &p) != 0) return "";
  return std::string(reinterpret_cast<const char*>(p.data), p.size);
}

bool ServerConnection::peer_closed() const {
  if (!ngtcp2_conn_is_in_draining_period(conn_)) return false;
  ngtcp2_connection_close_error e;
  ngtcp2_conn_get_connection_close_error(conn_, &e);
  // NO_ERROR, as a transport code or as HTTP/3's H3_NO_ERROR.
  return e.error_code == 0 ||
         (e.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION && e.error_code == 0x100);
}

std::string ServerConnection::cipher_suite() const {
  const char* name = gnutls_ciphersuite_get(tls_.get());
  return name != nullptr ? name : "";
}

std::string ServerConnection::server_name() const {
  char name[256];
  std::size_t len = sizeof name;
  unsigned type = 0;
  if (gnutls_server_name_get(tls_.get(), name, &len, &type, 0) != 0 || type != GNUTLS_NAME_DNS)
    return "";
  return std::string(name, len);
}

}  // namespace ramjet::quic
