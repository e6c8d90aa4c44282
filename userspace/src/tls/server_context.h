// ServerContext: what an endpoint with `tls:` needs to terminate TLS - its certificates
// (chosen per connection by SNI and by the key types the client accepts), ALPN, the
// version range, client-certificate verification, rotating ticket keys, OCSP staples
// and the optional key log. Built once at start, shared by every worker (BoringSSL's
// SSL_CTX is thread-safe once configured).
#pragma once

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ramjet/config/tls_settings.h"
#include "tls/boringssl.h"
#include "tls/certificate_set.h"
#include "tls/ticket_keys.h"

namespace ramjet::tls {

// Why a handshake failed, as counted (telemetry tls_failed_*) and logged.
enum class HandshakeFailure : std::uint8_t {
  kNone,
  kNoCertificate,      // strict_sni and no certificate for the name
  kNoSharedCipher,     // no common version, cipher suite, group or signature algorithm
  kClientCertificate,  // a required client certificate missing, or one that did not verify
  kTimeout,            // not finished within handshake_timeout
  kProtocol,           // anything else: malformed records, alerts, EOF mid-handshake
};
const char* to_string(HandshakeFailure f);

// Per-connection notes the context's callbacks leave for the stream (SSL app data).
struct HandshakeNotes {
  bool no_certificate = false;
};

class ServerContext {
 public:
  // Loads and checks every file. On failure returns null and sets `error_key` (the
  // setting at fault, relative to `tls`, e.g. "certificates[1].key") and `error`.
  static std::shared_ptr<ServerContext> create(const config::TlsServerSettings& s,
                                               std::string& error_key, std::string& error);
  ~ServerContext();

  // A server-side SSL for one connection; `notes` must outlive its handshake.
  bssl::UniquePtr<SSL> new_ssl(HandshakeNotes* notes) const;
  const config::TlsServerSettings& settings() const { return settings_; }
  // The certificates as loaded, for the endpoint's other TLS stack (QUIC's GnuTLS): the
  // same bytes, read once, already checked here.
  const CertificateSet& pem_certificates() const { return pem_; }

 private:
  struct Certificate {
    std::vector<bssl::UniquePtr<CRYPTO_BUFFER>> chain;  // DER, leaf first
    bssl::UniquePtr<EVP_PKEY> key;
    std::vector<std::string> names;  // lower case; "*.example.com" for wildcards
    bool ecdsa = false;
    std::string ocsp;
  };

  explicit ServerContext(const config::TlsServerSettings& s) : settings_(s) {}
  static ssl_select_cert_result_t on_client_hello(const SSL_CLIENT_HELLO* hello);
  static int on_alpn(SSL* ssl, const std::uint8_t** out, std::uint8_t* out_len,
                     const std::uint8_t* in, unsigned in_len, void* arg);
  static int on_ticket(SSL* ssl, std::uint8_t* name, std::uint8_t* iv, EVP_CIPHER_CTX* cipher,
                       HMAC_CTX* hmac, int encrypt);
  static void on_keylog(const SSL* ssl, const char* line);
  // Sets `cert`'s chain and key on an SSL_CTX or on one SSL.
  template <typename Target>
  static bool install(Target* target, const Certificate& cert);
  // The certificate for `sni` ("" = none sent) given whether the client takes ECDSA;
  // null when strict_sni finds none.
  const Certificate* choose(std::string_view sni, bool client_takes_ecdsa) const;

  config::TlsServerSettings settings_;
  bssl::UniquePtr<SSL_CTX> ctx_;
  std::vector<Certificate> certs_;
  CertificateSet pem_;
  std::unique_ptr<TicketKeys> tickets_;
  std::FILE* keylog_ = nullptr;
  mutable std::mutex keylog_mu_;
};

}  // namespace ramjet::tls
