// A QUIC client for tests: ngtcp2 with GnuTLS, as gtlsclient is (no certificate
// verification: tests compare the certificate they got), on addresses that exist only in
// memory; datagrams are passed by the test. With h3(), HTTP/3 over nghttp3 on its streams.
#pragma once

#include <arpa/inet.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <map>
#include <string>
#include <vector>

#include "http/h3/test_client.h"
#include "quic/server_connection.h"

namespace ramjet::quic::test_support {

inline constexpr Timestamp kMs = 1'000'000;

inline sockaddr_in v4(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// ngtcp2's client with GnuTLS, as gtlsclient is: no certificate verification (the
// test compares the certificate it got), ALPN and SNI as given.
class Client {
 public:
  // `max_datagram_frame_size`: nonzero offers DATAGRAM frames (RFC 9221).
  Client(const std::string& sni, const std::string& alpn, Timestamp now,
         std::uint64_t max_datagram_frame_size = 0) {
    gnutls_certificate_allocate_credentials(&cred_);
    gnutls_init(&tls_, GNUTLS_CLIENT | GNUTLS_NO_END_OF_EARLY_DATA);
    ngtcp2_crypto_gnutls_configure_client_session(tls_);
    gnutls_priority_set_direct(
        tls_, "NORMAL:-VERS-ALL:+VERS-TLS1.3:%DISABLE_TLS13_COMPAT_MODE", nullptr);
    gnutls_credentials_set(tls_, GNUTLS_CRD_CERTIFICATE, cred_);
    gnutls_datum_t proto{reinterpret_cast<unsigned char*>(const_cast<char*>(alpn.data())),
                         static_cast<unsigned>(alpn.size())};
    gnutls_alpn_set_protocols(tls_, &proto, 1, 0);
    if (!sni.empty()) gnutls_server_name_set(tls_, GNUTLS_NAME_DNS, sni.data(), sni.size());
    ref_.get_conn = [](ngtcp2_crypto_conn_ref* r) {
      return static_cast<Client*>(r->user_data)->conn_;
    };
    ref_.user_data = this;
    gnutls_session_set_ptr(tls_, &ref_);

    ngtcp2_callbacks cb{};
    set_crypto_callbacks(cb);
    cb.client_initial = ngtcp2_crypto_client_initial_cb;
    cb.recv_retry = ngtcp2_crypto_recv_retry_cb;
    cb.rand = [](std::uint8_t* d, std::size_t n, const ngtcp2_rand_ctx*) {
      gnutls_rnd(GNUTLS_RND_RANDOM, d, n);
    };
    cb.get_new_connection_id = [](ngtcp2_conn*, ngtcp2_cid* cid, std::uint8_t* token,
                                  std::size_t len, void*) {
      gnutls_rnd(GNUTLS_RND_RANDOM, cid->data, len);
      cid->datalen = len;
      gnutls_rnd(GNUTLS_RND_RANDOM, token, NGTCP2_STATELESS_RESET_TOKENLEN);
      return 0;
    };

    cb.recv_stream_data = [](ngtcp2_conn* conn, std::uint32_t flags, std::int64_t id,
                             std::uint64_t, const std::uint8_t* d, std::size_t n, void* user,
                             void*) {
      Client* c = static_cast<Client*>(user);
      if (c->h3_ == nullptr) return 0;
      nghttp3_ssize used =
          nghttp3_conn_read_stream(c->h3_, id, d, n, (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0);
      if (used < 0) return NGTCP2_ERR_CALLBACK_FAILURE;
      ngtcp2_conn_extend_max_stream_offset(conn, id, static_cast<std::uint64_t>(used));
      ngtcp2_conn_extend_max_offset(conn, static_cast<std::uint64_t>(used));
      return 0;
    };
    cb.acked_stream_data_offset = [](ngtcp2_conn*, std::int64_t id, std::uint64_t,
                                     std::uint64_t n, void* user, void*) {
      Client* c = static_cast<Client*>(user);
      if (c->h3_ != nullptr) nghttp3_conn_add_ack_offset(c->h3_, id, n);
      return 0;
    };
    cb.recv_datagram = [](ngtcp2_conn*, std::uint32_t, const std::uint8_t* d, std::size_t n,
                          void* user) {
      static_cast<Client*>(user)->datagrams.emplace_back(d, d + n);
      return 0;
    };
    cb.extend_max_stream_data = [](ngtcp2_conn*, std::int64_t id, std::uint64_t, void* user,
                                   void*) {
      Client* c = static_cast<Client*>(user);
      if (c->h3_ != nullptr) nghttp3_conn_unblock_stream(c->h3_, id);
      return 0;
    };

    ngtcp2_cid dcid, scid;
    dcid.datalen = 18;  // client-chosen ids need not be of our length
    gnutls_rnd(GNUTLS_RND_RANDOM, dcid.data, dcid.datalen);
    scid.datalen = 8;
    gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen);
    ngtcp2_settings settings;
    ngtcp2_settings_default(&settings);
    settings.initial_ts = now;
    ngtcp2_transport_params params;
    ngtcp2_transport_params_default(&params);
    params.initial_max_streams_uni = 3;
    params.initial_max_stream_data_bidi_local = 256 * 1024;
    params.initial_max_stream_data_uni = 256 * 1024;
    params.initial_max_data = 1024 * 1024;
    params.max_datagram_frame_size = max_datagram_frame_size;
    ngtcp2_path path = this->path();
    ngtcp2_conn_client_new(&conn_, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb, &settings,
                           &params, nullptr, this);
    ngtcp2_conn_set_tls_native_handle(conn_, tls_);
  }
  ~Client() {
    ngtcp2_conn_del(conn_);
    gnutls_deinit(tls_);
    gnutls_certificate_free_credentials(cred_);
  }

  ngtcp2_path path() {
    ngtcp2_path p{};
    p.local = {reinterpret_cast<sockaddr*>(&local_), sizeof local_};
    p.remote = {reinterpret_cast<sockaddr*>(&server_), sizeof server_};
    return p;
  }
  SocketPath server_side() {
    return {reinterpret_cast<const sockaddr*>(&server_), sizeof server_,
            reinterpret_cast<const sockaddr*>(&local_), sizeof local_};
  }
  // One datagram (HTTP/3 stream data first, when on), or none.
  std::vector<std::uint8_t> write(Timestamp now) {
    std::vector<std::uint8_t> out(1500);
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi{};
    for (;;) {
      std::int64_t id = -1;
      int fin = 0;
      nghttp3_vec vec[16];
      nghttp3_ssize count = 0;
      if (h3_ != nullptr) count = nghttp3_conn_writev_stream(h3_, &id, &fin, vec, 16);
      if (count < 0) count = 0;
      std::uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE | (fin ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0);
      ngtcp2_ssize taken = -1;
      ngtcp2_ssize n = ngtcp2_conn_writev_stream(conn_, &ps.path, &pi, out.data(), out.size(),
                                                 &taken, flags, id,
                                                 reinterpret_cast<const ngtcp2_vec*>(vec),
                                                 static_cast<std::size_t>(count), now);
      if (n == NGTCP2_ERR_WRITE_MORE) {
        nghttp3_conn_add_write_offset(h3_, id, static_cast<std::size_t>(taken));
        continue;
      }
      if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
        nghttp3_conn_block_stream(h3_, id);
        continue;
      }
      if (taken >= 0 && id >= 0) nghttp3_conn_add_write_offset(h3_, id, static_cast<std::size_t>(taken));
      out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
      return out;
    }
  }

  // A packet with one DATAGRAM frame carrying `payload` (empty: it could not be written).
  std::vector<std::uint8_t> write_datagram(std::span<const std::uint8_t> payload, Timestamp now) {
    std::vector<std::uint8_t> out(1500);
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi{};
    ngtcp2_vec v{const_cast<std::uint8_t*>(payload.data()), payload.size()};
    int accepted = 0;
    const ngtcp2_ssize n =
        ngtcp2_conn_writev_datagram(conn_, &ps.path, &pi, out.data(), out.size(), &accepted,
                                    NGTCP2_WRITE_DATAGRAM_FLAG_NONE, 0, &v, 1, now);
    out.resize(n > 0 && accepted != 0 ? static_cast<std::size_t>(n) : 0);
    return out;
  }

  // HTTP/3 from now on (the handshake must be done): its three streams, then requests.
  void start_h3() {
    h3.on_consumed = [this](std::int64_t id, std::size_t n) {
      ngtcp2_conn_extend_max_stream_offset(conn_, id, n);
      ngtcp2_conn_extend_max_offset(conn_, n);
    };
    h3_ = h3.conn;
    std::int64_t control = -1, encoder = -1, decoder = -1;
    ngtcp2_conn_open_uni_stream(conn_, &control, nullptr);
    ngtcp2_conn_open_uni_stream(conn_, &encoder, nullptr);
    ngtcp2_conn_open_uni_stream(conn_, &decoder, nullptr);
    h3.bind(control, encoder, decoder);
  }

  void request(const std::string& method, const std::string& path, const std::string& body) {
    std::int64_t id = -1;
    ngtcp2_conn_open_bidi_stream(conn_, &id, nullptr);
    h3.request(id, method, path, body);
  }

  http::h3::test_support::H3Client h3;
  std::vector<std::vector<std::uint8_t>> datagrams;  // DATAGRAM frame payloads received
  int read(std::span<const std::uint8_t> d, Timestamp now) {
    ngtcp2_path p = path();
    ngtcp2_pkt_info pi{};
    return ngtcp2_conn_read_pkt(conn_, &p, &pi, d.data(), d.size(), now);
  }
  bool done() { return ngtcp2_conn_get_handshake_completed(conn_) != 0; }
  // The server's CONNECTION_CLOSE arrived: the client drains.
  bool closed_by_peer() { return ngtcp2_conn_is_in_draining_period(conn_) != 0; }
  std::uint64_t close_error_code() {
    ngtcp2_connection_close_error e;
    ngtcp2_conn_get_connection_close_error(conn_, &e);
    return e.error_code;
  }
  std::vector<std::uint8_t> server_id() {
    const ngtcp2_cid* d = ngtcp2_conn_get_dcid(conn_);
    return {d->data, d->data + d->datalen};
  }
  std::vector<std::uint8_t> peer_certificate_der() {
    unsigned n = 0;
    const gnutls_datum_t* certs = gnutls_certificate_get_peers(tls_, &n);
    if (n == 0) return {};
    return {certs[0].data, certs[0].data + certs[0].size};
  }

 private:
  gnutls_certificate_credentials_t cred_ = nullptr;
  gnutls_session_t tls_ = nullptr;
  ngtcp2_crypto_conn_ref ref_{};
  ngtcp2_conn* conn_ = nullptr;
  nghttp3_conn* h3_ = nullptr;  // h3.conn once start_h3() ran
  sockaddr_in local_ = v4(50000);
  sockaddr_in server_ = v4(8443);
};

}  // namespace ramjet::quic::test_support
