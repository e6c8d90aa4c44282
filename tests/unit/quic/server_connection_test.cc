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
#include <functional>
#include <map>

#include "http/h3/server_connection.h"
#include "proxy/h3_transport.h"
#include "quic/packets.h"
#include "quic/test_client.h"
#include "support/temp_dir.h"
#include "tls/server_context.h"
#include "tls/test_certs.h"

namespace ramjet::quic {
namespace {

using test_support::Client;
using test_support::kMs;

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
                                             client.server_side(), now_, error, nullptr,
                                             max_datagram_frame_size_);
          if (!server_) {
            error_ = error;
            return ServerConnection::Status::kDrop;
          }
          if (server_->closing()) status = ServerConnection::Status::kClosing;
          if (on_accept_) on_accept_(*server_);
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
  std::function<void(ServerConnection&)> on_accept_;
  std::uint64_t max_datagram_frame_size_ = 0;  // what accept() offers
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

// An origin that echoes, where the request pipeline will be.
struct Echo : http::h3::Events {
  http::h3::ServerConnection h3{*this, http::h3::Limits{}};
  proxy::H3Transport* transport = nullptr;
  std::map<std::int64_t, http::h3::RequestHead> requests;
  std::map<std::int64_t, std::string> bodies;

  void on_request(std::int64_t stream, http::h3::RequestHead head) override {
    requests[stream] = std::move(head);
  }
  // Body bytes are passed on at once here: the window opens by as many.
  void on_data(std::int64_t stream, std::string_view data) override {
    bodies[stream] += data;
    transport->consumed(stream, data.size());
  }
  void on_trailers(std::int64_t, std::vector<http::h3::Field>) override {}
  void on_end_stream(std::int64_t stream) override {
    h3.submit_response(stream, 200, {{"content-type", "text/plain"}});
    h3.send_data(stream, requests[stream].method + " " + requests[stream].path + "\n");
    h3.send_data(stream, bodies[stream]);
    h3.end_data(stream);
  }
  void on_stream_close(std::int64_t, std::uint64_t) override {}
  void on_consumed(std::int64_t stream, std::size_t n) override { transport->consumed(stream, n); }
  void on_datagram(std::int64_t stream, std::span<const std::uint8_t> payload) override {
    datagrams.emplace_back(stream, std::string(payload.begin(), payload.end()));
  }
  void on_malformed_datagram() override { ++malformed_datagrams; }
  std::vector<std::pair<std::int64_t, std::string>> datagrams;
  int malformed_datagrams = 0;
};

TEST_F(QuicServerConnectionTest, Http3RequestsAndResponsesCrossTheStreams) {
  // One HTTP/3 connection (and its glue) per QUIC connection, as the on-ramp will have.
  std::unique_ptr<Echo> echo_holder;
  std::unique_ptr<proxy::H3Transport> transport;
  on_accept_ = [&](ServerConnection& s) {
    transport.reset();
    echo_holder = std::make_unique<Echo>();
    transport = std::make_unique<proxy::H3Transport>(s, echo_holder->h3);
    echo_holder->transport = transport.get();
  };
  Client client("quic.test", "h3", now_);
  exchange(client);
  ASSERT_TRUE(client.done()) << error_;
  client.start_h3();
  client.request("GET", "/hello", "");
  for (int i = 0; i < 5 && !client.h3.response_ended; ++i) {
    exchange(client);
    now_ += 10 * kMs;
  }
  ASSERT_FALSE(transport->failed());
  ASSERT_EQ(echo_holder->requests.size(), 1u);
  EXPECT_EQ(echo_holder->requests.begin()->second.path, "/hello");
  EXPECT_EQ(client.h3.response_fields[":status"], "200");
  EXPECT_EQ(client.h3.response_body, "GET /hello\n");

  // A body larger than the stream windows, both ways: flow control opens as bytes move.
  Client second("quic.test", "h3", now_);
  transport.reset();
  server_.reset();
  exchange(second);
  ASSERT_TRUE(second.done()) << error_;
  second.start_h3();
  const std::string body(1'000'000, 'p');
  second.request("POST", "/upload", body);
  for (int i = 0; i < 200 && !second.h3.response_ended; ++i) {
    exchange(second);
    now_ += 10 * kMs;
  }
  ASSERT_FALSE(transport->failed());
  ASSERT_EQ(echo_holder->bodies.size(), 1u);
  EXPECT_EQ(echo_holder->bodies.begin()->second.size(), body.size());
  EXPECT_EQ(second.h3.response_body, "POST /upload\n" + body);
  EXPECT_TRUE(second.h3.response_ended);
}

TEST_F(QuicServerConnectionTest, DatagramFramesCrossBothWaysWhenBothSidesOfferThem) {
  max_datagram_frame_size_ = 65535;
  std::unique_ptr<Echo> echo;
  std::unique_ptr<proxy::H3Transport> transport;
  on_accept_ = [&](ServerConnection& s) {
    echo = std::make_unique<Echo>();
    transport = std::make_unique<proxy::H3Transport>(s, echo->h3);
    echo->transport = transport.get();
  };
  Client client("quic.test", "h3", now_, 1200);
  exchange(client);
  ASSERT_TRUE(client.done()) << error_;
  ASSERT_TRUE(server_->datagrams_negotiated());

  // Server -> client: queued, then in the next packets.
  const std::vector<std::uint8_t> hello = {0x00, 0x00, 'h', 'i'};
  EXPECT_EQ(server_->queue_datagram(hello), DatagramQueued::kQueued);
  // (ngtcp2 paces packets: time has to pass, as the on-ramp's timer lets it.)
  for (int i = 0; i < 10 && client.datagrams.empty(); ++i) {
    exchange(client);
    now_ += 10 * kMs;
  }
  ASSERT_EQ(client.datagrams.size(), 1u);
  EXPECT_EQ(client.datagrams[0], hello);
  // Over the client's max_datagram_frame_size: refused at once, never queued.
  EXPECT_EQ(server_->queue_datagram(std::vector<std::uint8_t>(1300)), DatagramQueued::kTooLarge);
  // The queue is bounded: past kMaxQueuedDatagrams they are dropped, not kept.
  for (std::size_t i = 0; i < ServerConnection::kMaxQueuedDatagrams; ++i)
    EXPECT_EQ(server_->queue_datagram(hello), DatagramQueued::kQueued) << i;
  EXPECT_EQ(server_->queue_datagram(hello), DatagramQueued::kQueueFull);
  for (int i = 0; i < 20 && client.datagrams.size() <= ServerConnection::kMaxQueuedDatagrams; ++i) {
    exchange(client);
    now_ += 10 * kMs;
  }
  EXPECT_EQ(client.datagrams.size(), 1 + ServerConnection::kMaxQueuedDatagrams);

  // Client -> server: through H3Transport to HTTP/3, which reads the Quarter Stream ID.
  const std::vector<std::uint8_t> up = {0x01, 0x00, 'u'};  // stream 4, context 0, "u"
  ASSERT_NE(server_->receive(client.write_datagram(up, now_), client.server_side(), 0, now_),
            ServerConnection::Status::kDrop);
  const std::vector<std::uint8_t> cut = {0x40};  // a 2-byte varint cut short
  ASSERT_NE(server_->receive(client.write_datagram(cut, now_), client.server_side(), 0, now_),
            ServerConnection::Status::kDrop);
  ASSERT_EQ(echo->datagrams.size(), 1u);
  EXPECT_EQ(echo->datagrams[0].first, 4);
  EXPECT_EQ(echo->datagrams[0].second, std::string("\0u", 2));
  EXPECT_EQ(echo->malformed_datagrams, 1);
}

TEST_F(QuicServerConnectionTest, NoDatagramIsQueuedUnlessBothSidesOfferedThem) {
  max_datagram_frame_size_ = 65535;
  Client without("quic.test", "h3", now_);
  exchange(without);
  ASSERT_TRUE(without.done()) << error_;
  EXPECT_FALSE(server_->datagrams_negotiated());
  EXPECT_EQ(server_->queue_datagram(std::vector<std::uint8_t>{0, 0}),
            DatagramQueued::kNotNegotiated);

  max_datagram_frame_size_ = 0;  // a server that offers none, to a client that does
  server_.reset();
  Client with("quic.test", "h3", now_, 1200);
  exchange(with);
  ASSERT_TRUE(with.done()) << error_;
  EXPECT_FALSE(server_->datagrams_negotiated());
  EXPECT_EQ(server_->queue_datagram(std::vector<std::uint8_t>{0, 0}),
            DatagramQueued::kNotNegotiated);
}

}  // namespace
}  // namespace ramjet::quic
