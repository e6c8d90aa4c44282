#include "tls/server_context.h"

#include <gtest/gtest.h>

#include <fstream>

#include "support/temp_dir.h"
#include "tls/certificate_facts.h"
#include "tls/test_certs.h"

namespace ramjet::tls {
namespace {

using testing::make_cert;
using testing::TestCert;

// Drives a client SSL and a server SSL against each other over a BIO pair until both
// finish or one fails. Returns whether both completed.
bool handshake(SSL* client, SSL* server) {
  BIO* a = nullptr;
  BIO* b = nullptr;
  BIO_new_bio_pair(&a, 0, &b, 0);
  SSL_set_bio(client, a, a);
  SSL_set_bio(server, b, b);
  SSL_set_connect_state(client);
  SSL_set_accept_state(server);
  bool cdone = false, sdone = false;
  for (int i = 0; i < 50 && !(cdone && sdone); ++i) {
    if (!cdone) {
      int r = SSL_do_handshake(client);
      if (r == 1) cdone = true;
      else if (SSL_get_error(client, r) != SSL_ERROR_WANT_READ) return false;
    }
    if (!sdone) {
      int r = SSL_do_handshake(server);
      if (r == 1) sdone = true;
      else if (SSL_get_error(server, r) != SSL_ERROR_WANT_READ) return false;
    }
  }
  return cdone && sdone;
}

std::string peer_cn(SSL* client) {
  X509* x = SSL_get_peer_certificate(client);
  if (x == nullptr) return "";
  char cn[128] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
  X509_free(x);
  return cn;
}

class ServerContextTest : public testing_support::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    client_ctx_.reset(SSL_CTX_new(TLS_method()));
  }

  config::TlsCertificate write(const std::string& name, const TestCert& c) {
    std::ofstream(dir_ + "/" + name + ".pem") << c.cert_pem;
    std::ofstream(dir_ + "/" + name + ".key") << c.key_pem;
    return {dir_ + "/" + name + ".pem", dir_ + "/" + name + ".key", ""};
  }

  std::shared_ptr<ServerContext> make(const config::TlsServerSettings& s) {
    std::string key, error;
    auto ctx = ServerContext::create(s, key, error);
    EXPECT_TRUE(ctx) << key << ": " << error;
    return ctx;
  }

  // A handshake with `sni` ("" = none); the server's chosen certificate's CN, or "".
  std::string connect(const ServerContext& server, const std::string& sni,
                      HandshakeNotes* notes = nullptr, SSL_SESSION* session = nullptr,
                      bssl::UniquePtr<SSL_SESSION>* out_session = nullptr,
                      const std::vector<std::uint16_t>& sigalgs = {}) {
    HandshakeNotes local;
    bssl::UniquePtr<SSL> s = server.new_ssl(notes ? notes : &local);
    bssl::UniquePtr<SSL> c(SSL_new(client_ctx_.get()));
    if (!sni.empty()) SSL_set_tlsext_host_name(c.get(), sni.c_str());
    if (!sigalgs.empty()) SSL_set_verify_algorithm_prefs(c.get(), sigalgs.data(), sigalgs.size());
    if (!alpn_.empty())
      SSL_set_alpn_protos(c.get(), reinterpret_cast<const std::uint8_t*>(alpn_.data()), alpn_.size());
    if (session) SSL_set_session(c.get(), session);
    SSL_enable_ocsp_stapling(c.get());
    if (!handshake(c.get(), s.get())) return "";
    resumed_ = SSL_session_reused(s.get());
    const std::uint8_t* staple = nullptr;
    std::size_t staple_len = 0;
    SSL_get0_ocsp_response(c.get(), &staple, &staple_len);
    stapled_.assign(reinterpret_cast<const char*>(staple), staple_len);
    const std::uint8_t* p = nullptr;
    unsigned len = 0;
    SSL_get0_alpn_selected(s.get(), &p, &len);
    selected_alpn_.assign(reinterpret_cast<const char*>(p), len);
    if (out_session) out_session->reset(SSL_get1_session(c.get()));
    return peer_cn(c.get());
  }

  bssl::UniquePtr<SSL_CTX> client_ctx_;
  std::string alpn_;
  std::string selected_alpn_;
  std::string stapled_;  // the OCSP response the client got, "" for none
  bool resumed_ = false;
};

TEST_F(ServerContextTest, ChoosesByExactNameThenWildcardThenDefault) {
  config::TlsServerSettings s;
  s.certificates = {write("default", make_cert("default", "DNS:default.test", true)),
                    write("wild", make_cert("wild", "DNS:*.apps.test", true)),
                    write("exact", make_cert("exact", "DNS:api.apps.test", true))};
  auto ctx = make(s);
  EXPECT_EQ(connect(*ctx, "api.apps.test"), "exact");
  EXPECT_EQ(connect(*ctx, "web.apps.test"), "wild");
  EXPECT_EQ(connect(*ctx, "API.Apps.Test"), "exact");  // names compare without case
  EXPECT_EQ(connect(*ctx, "a.b.apps.test"), "default");  // a wildcard is one label
  EXPECT_EQ(connect(*ctx, "other.test"), "default");
  EXPECT_EQ(connect(*ctx, ""), "default");
}

// The default certificate is the SSL_CTX's and the others are set per connection; each
// comes with its own staple and never with another's.
TEST_F(ServerContextTest, StaplesEachCertificatesOwnOcspResponse) {
  config::TlsServerSettings s;
  s.certificates = {write("default", make_cert("default", "DNS:default.test", true)),
                    write("other", make_cert("other", "DNS:other.test", true))};
  std::ofstream(dir_ + "/default.ocsp") << "default-staple";
  s.certificates[0].ocsp = dir_ + "/default.ocsp";
  auto ctx = make(s);
  EXPECT_EQ(connect(*ctx, "default.test"), "default");
  EXPECT_EQ(stapled_, "default-staple");
  EXPECT_EQ(connect(*ctx, "other.test"), "other");
  EXPECT_EQ(stapled_, "");

  std::swap(s.certificates[0], s.certificates[1]);  // now only the second has a staple
  auto swapped = make(s);
  EXPECT_EQ(connect(*swapped, "other.test"), "other");
  EXPECT_EQ(stapled_, "");
  EXPECT_EQ(connect(*swapped, "default.test"), "default");
  EXPECT_EQ(stapled_, "default-staple");
}

TEST_F(ServerContextTest, StrictSniRefusesUnknownNames) {
  config::TlsServerSettings s;
  s.strict_sni = true;
  s.certificates = {write("a", make_cert("a", "DNS:a.test", true))};
  auto ctx = make(s);
  HandshakeNotes notes;
  EXPECT_EQ(connect(*ctx, "b.test", &notes), "");
  EXPECT_TRUE(notes.no_certificate);
  HandshakeNotes ok;
  EXPECT_EQ(connect(*ctx, "a.test", &ok), "a");
  EXPECT_FALSE(ok.no_certificate);
}

TEST_F(ServerContextTest, PrefersEcdsaButServesRsaToClientsWithoutIt) {
  config::TlsServerSettings s;
  s.certificates = {write("rsa", make_cert("rsa", "DNS:site.test", false)),
                    write("ec", make_cert("ec", "DNS:site.test", true))};
  auto ctx = make(s);
  EXPECT_EQ(connect(*ctx, "site.test"), "ec");
  const std::vector<std::uint16_t> rsa_only = {SSL_SIGN_RSA_PSS_RSAE_SHA256,
                                               SSL_SIGN_RSA_PKCS1_SHA256};
  EXPECT_EQ(connect(*ctx, "site.test", nullptr, nullptr, nullptr, rsa_only), "rsa");
}

TEST_F(ServerContextTest, AlpnFollowsTheServersOrder) {
  config::TlsServerSettings s;
  s.alpn = {"h2", "http/1.1"};
  s.certificates = {write("a", make_cert("a", "DNS:a.test", true))};
  auto ctx = make(s);
  alpn_ = std::string("\x08http/1.1\x02h2", 12);
  connect(*ctx, "a.test");
  EXPECT_EQ(selected_alpn_, "h2");
  alpn_ = std::string("\x03xyz", 4);
  EXPECT_EQ(connect(*ctx, "a.test"), "a");  // nothing shared: no ALPN, no failure
  EXPECT_EQ(selected_alpn_, "");
}

TEST_F(ServerContextTest, ResumesWithItsTicketsButNotAnotherEndpoints) {
  config::TlsServerSettings s;
  s.max_version = config::TlsVersion::kTls12;  // the ticket arrives within the handshake
  s.certificates = {write("a", make_cert("a", "DNS:a.test", true))};
  auto ctx = make(s);
  bssl::UniquePtr<SSL_SESSION> session;
  ASSERT_EQ(connect(*ctx, "a.test", nullptr, nullptr, &session), "a");
  EXPECT_FALSE(resumed_);
  ASSERT_TRUE(session);
  connect(*ctx, "a.test", nullptr, session.get());
  EXPECT_TRUE(resumed_);
  auto other = make(s);  // its own keys
  connect(*other, "a.test", nullptr, session.get());
  EXPECT_FALSE(resumed_);
}

TEST_F(ServerContextTest, NamesTheFileThatFails) {
  config::TlsServerSettings s;
  auto a = write("a", make_cert("a", "DNS:a.test", true));
  auto b = write("b", make_cert("b", "DNS:b.test", true));
  std::string key, error;
  s.certificates = {a, {b.cert, a.key, ""}};
  EXPECT_FALSE(ServerContext::create(s, key, error));
  EXPECT_EQ(key, "certificates[1].key");
  EXPECT_NE(error.find("does not match"), std::string::npos) << error;
  s.certificates = {{dir_ + "/missing.pem", a.key, ""}};
  EXPECT_FALSE(ServerContext::create(s, key, error));
  EXPECT_EQ(key, "certificates[0].cert");
  EXPECT_NE(error.find("missing.pem"), std::string::npos) << error;
  s.certificates = {a};
  s.client_auth = {config::ClientAuthMode::kRequired, dir_ + "/no-ca.pem"};
  EXPECT_FALSE(ServerContext::create(s, key, error));
  EXPECT_EQ(key, "client_auth.ca");
}

TEST(CertificateFacts, SubjectIssuerSansSerialFingerprint) {
  TestCert ca = make_cert("Test CA", "", true, nullptr, true);
  TestCert leaf = make_cert("alice", "DNS:alice.test,URI:spiffe://example.test/alice,IP:10.0.0.1",
                            true, &ca);
  ClientCertificate c = certificate_facts(leaf.cert.get(), true);
  EXPECT_EQ(c.subject, "CN=alice");
  EXPECT_EQ(c.issuer, "CN=Test CA");
  EXPECT_EQ(c.sans, (std::vector<std::string>{"DNS:alice.test", "URI:spiffe://example.test/alice",
                                               "IP:10.0.0.1"}));
  EXPECT_FALSE(c.serial.empty());
  EXPECT_EQ(c.sha256.size(), 64u);
  EXPECT_TRUE(c.verified);
}

}  // namespace
}  // namespace ramjet::tls
