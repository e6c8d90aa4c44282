// A real ngtcp2 client (GnuTLS) against ServerConnection, datagrams passed in memory:
// the handshake with the tls layer's certificates (chosen by SNI), ALPN h3 required,
// server ids naming the worker, and the idle timeout, on a clock the test drives.
#include "quic/server_connection.h"

#include <arpa/inet.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <gtest/gtest.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <fstream>

#include "quic/packets.h"
#include "support/temp_dir.h"
#include "tls/server_context.h"
#include "tls/test_certs.h"

namespace ramjet::quic {
namespace {

constexpr Timestamp kMs = 1'000'000;

sockaddr_in v4(std::uint16_t port) {
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
  Client(const std::string& sni, const std::string& alpn, Timestamp now) {
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
    params.initial_max_stream_data_uni = 256 * 1024;
    params.initial_max_data = 1024 * 1024;
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
  std::vector<std::uint8_t> write(Timestamp now) {
    std::vector<std::uint8_t> out(1500);
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi{};
    ngtcp2_ssize n = ngtcp2_conn_write_pkt(conn_, &ps.path, &pi, out.data(), out.size(), now);
    out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return out;
  }
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
  sockaddr_in local_ = v4(50000);
  sockaddr_in server_ = v4(8443);
};

class QuicServerConnectionTest : public testing_support::TempDirTest, public ServerConnection::Events {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    config::TlsServerSettings s;
    s.certificates = {write("default", default_), write("named", named_)};
    std::string key, error;
    auto context = tls::ServerContext::create(s, key, error);
    ASSERT_TRUE(context) << key << ": " << error;
    credentials_ = ServerCredentials::create(context->pem_certificates(), error);
    ASSERT_TRUE(credentials_) << error;
    EXPECT_EQ(credentials_->size(), 2u);
    identity_.worker = 5;
    identity_.generation = 1;
    limits_.idle_timeout = std::chrono::milliseconds(2000);
  }

  config::TlsCertificate write(const std::string& name, const tls::testing::TestCert& c) {
    std::ofstream(dir_ + "/" + name + ".pem") << c.cert_pem;
    std::ofstream(dir_ + "/" + name + ".key") << c.key_pem;
    return {dir_ + "/" + name + ".pem", dir_ + "/" + name + ".key", ""};
  }

  static std::vector<std::uint8_t> der(const tls::testing::TestCert& c) {
    std::uint8_t* p = nullptr;
    int n = i2d_X509(c.cert.get(), &p);
    std::vector<std::uint8_t> out(p, p + n);
    OPENSSL_free(p);
    return out;
  }

  void on_connection_id(ServerConnection&, std::span<const std::uint8_t> cid, bool added) override {
    (added ? issued_ : retired_).emplace_back(cid.begin(), cid.end());
  }

  // Passes datagrams both ways until neither side has more (or the server closes).
  // Returns the server's last status.
  ServerConnection::Status exchange(Client& client) {
    ServerConnection::Status status = ServerConnection::Status::kOk;
    for (int round = 0; round < 20; ++round) {
      bool moved = false;
      for (auto d = client.write(now_); !d.empty(); d = client.write(now_)) {
        moved = true;
        if (!server_) {
          Decision decision = decide(d, datapath::kQuicCidLength, [](auto) { return false; });
          EXPECT_EQ(decision.action, Action::kAccept);
          std::string error;
          server_ = ServerConnection::accept(credentials_, identity_, limits_, this, d,
                                             client.server_side(), now_, error);
          if (!server_) {
            error_ = error;
            return ServerConnection::Status::kDrop;
          }
          if (server_->closing()) status = ServerConnection::Status::kClosing;
        } else {
          status = server_->receive(d, client.server_side(), 0, now_);
          if (status == ServerConnection::Status::kDrop) return status;
        }
      }
      std::vector<std::uint8_t> out(1500);
      sockaddr_storage to{};
      socklen_t to_len = 0;
      for (std::size_t n; (n = server_->write(out, to, to_len, now_)) > 0;) {
        moved = true;
        client.read(std::span(out.data(), n), now_);
        EXPECT_EQ(ntohs(reinterpret_cast<sockaddr_in&>(to).sin_port), 50000);
      }
      if (server_->write(out, to, to_len, now_) == 0 && status == ServerConnection::Status::kClosing)
        return status;
      if (!moved) break;
      now_ += kMs;
    }
    return status;
  }

  tls::testing::TestCert default_ = tls::testing::make_cert("default", "DNS:default.test", true);
  tls::testing::TestCert named_ = tls::testing::make_cert("named", "DNS:quic.test", true);
  std::shared_ptr<ServerCredentials> credentials_;
  ServerIdentity identity_;
  config::QuicSettings limits_;
  std::unique_ptr<ServerConnection> server_;
  std::vector<std::vector<std::uint8_t>> issued_, retired_;
  std::string error_;
  Timestamp now_ = 1'000'000 * kMs;
};

TEST_F(QuicServerConnectionTest, HandshakeWithH3AndTheCertificateForTheName) {
  Client client("quic.test", "h3", now_);
  EXPECT_EQ(exchange(client), ServerConnection::Status::kOk) << error_;
  ASSERT_TRUE(server_);
  EXPECT_TRUE(client.done());
  EXPECT_TRUE(server_->handshake_completed());
  EXPECT_EQ(server_->alpn(), "h3");
  EXPECT_EQ(server_->server_name(), "quic.test");
  EXPECT_EQ(client.peer_certificate_der(), der(named_));
}

TEST_F(QuicServerConnectionTest, WithoutSniTheFirstCertificateServes) {
  Client client("", "h3", now_);
  exchange(client);
  ASSERT_TRUE(client.done()) << error_;
  EXPECT_EQ(client.peer_certificate_der(), der(default_));
}

TEST_F(QuicServerConnectionTest, EveryIdWeIssueNamesTheWorkerAndTheClientUsesOne) {
  Client client("quic.test", "h3", now_);
  exchange(client);
  ASSERT_TRUE(client.done()) << error_;
  // Spare ids follow once the handshake is confirmed, on the next packets.
  now_ += 100 * kMs;
  exchange(client);
  // The first id, then spare ones up to the client's active_connection_id_limit.
  ASSERT_GE(issued_.size(), 2u);
  for (const auto& id : issued_) {
    EXPECT_EQ(datapath::quic_cid_worker(id), 5u);
    EXPECT_EQ(datapath::quic_cid_generation(id), 1u);
  }
  EXPECT_EQ(datapath::quic_cid_worker(client.server_id()), 5u);
  EXPECT_EQ(server_->ids().size(), issued_.size() - retired_.size());
  EXPECT_EQ(server_->original_dcid().size(), 18u);
}

TEST_F(QuicServerConnectionTest, AClientWithoutH3IsRefusedWithAConnectionClose) {
  Client client("quic.test", "h2", now_);
  EXPECT_EQ(exchange(client), ServerConnection::Status::kClosing);
  EXPECT_FALSE(client.done());
  EXPECT_FALSE(server_->handshake_completed());
  EXPECT_TRUE(client.closed_by_peer());
  EXPECT_EQ(client.close_error_code(), 0x100u + 120) << "CRYPTO_ERROR no_application_protocol";
}

TEST_F(QuicServerConnectionTest, AnIdleConnectionIsDroppedAtItsTimeout) {
  Client client("quic.test", "h3", now_);
  exchange(client);
  ASSERT_TRUE(client.done()) << error_;
  // Timers before the idle timeout (acks, PTO) keep it; the idle timeout drops it.
  ServerConnection::Status status = ServerConnection::Status::kOk;
  for (int i = 0; i < 100 && status == ServerConnection::Status::kOk; ++i) {
    Timestamp at = server_->expiry();
    ASSERT_NE(at, UINT64_MAX);
    now_ = std::max(now_, at);
    status = server_->on_expiry(now_);
    std::vector<std::uint8_t> out(1500);
    sockaddr_storage to{};
    socklen_t to_len = 0;
    while (status == ServerConnection::Status::kOk && server_->write(out, to, to_len, now_) > 0) {
    }
  }
  EXPECT_EQ(status, ServerConnection::Status::kDrop);
  EXPECT_EQ(server_->error(), std::string(ngtcp2_strerror(NGTCP2_ERR_IDLE_CLOSE)));
}

}  // namespace
}  // namespace ramjet::quic
