#include "tls/server_context.h"

#include <openssl/bytestring.h>

#include <algorithm>
#include <type_traits>

#include "tls/pem_files.h"

namespace ramjet::tls {
namespace {

int version_number(config::TlsVersion v) {
  return v == config::TlsVersion::kTls13 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

// The host name of a ClientHello's server_name extension (RFC 6066 3), lower case.
std::string client_hello_sni(const SSL_CLIENT_HELLO* hello) {
  const std::uint8_t* data = nullptr;
  std::size_t len = 0;
  if (!SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_server_name, &data, &len)) return {};
  CBS ext, list;
  CBS_init(&ext, data, len);
  if (!CBS_get_u16_length_prefixed(&ext, &list)) return {};
  while (CBS_len(&list) > 0) {
    std::uint8_t type = 0;
    CBS name;
    if (!CBS_get_u8(&list, &type) || !CBS_get_u16_length_prefixed(&list, &name)) return {};
    if (type != TLSEXT_NAMETYPE_host_name) continue;
    std::string s(reinterpret_cast<const char*>(CBS_data(&name)), CBS_len(&name));
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
  }
  return {};
}

// Whether the client lists an ECDSA signature scheme (RFC 8446 4.2.3); a client that
// sends no signature_algorithms (TLS 1.2 only) is assumed to take what it offered
// in its cipher suites, which for every client alive includes ECDSA.
bool client_takes_ecdsa(const SSL_CLIENT_HELLO* hello) {
  const std::uint8_t* data = nullptr;
  std::size_t len = 0;
  if (!SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_signature_algorithms, &data, &len))
    return true;
  CBS ext, list;
  CBS_init(&ext, data, len);
  if (!CBS_get_u16_length_prefixed(&ext, &list)) return false;
  while (CBS_len(&list) >= 2) {
    std::uint16_t alg = 0;
    if (!CBS_get_u16(&list, &alg)) return false;
    if ((alg & 0xff) == 0x03) return true;  // ecdsa_*: 0x0403, 0x0503, 0x0603, 0x0203
  }
  return false;
}

bool name_matches(std::string_view pattern, std::string_view host) {
  if (pattern == host) return true;
  if (!pattern.starts_with("*.")) return false;
  // A wildcard stands for exactly one label (RFC 6125 6.4.3).
  auto dot = host.find('.');
  return dot != std::string_view::npos && dot > 0 && host.substr(dot) == pattern.substr(1);
}

int app_index() {
  static int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

const ServerContext* context_of(const SSL* ssl) {
  return static_cast<const ServerContext*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), app_index()));
}

}  // namespace

const char* to_string(HandshakeFailure f) {
  switch (f) {
    case HandshakeFailure::kNone:
      return "none";
    case HandshakeFailure::kNoCertificate:
      return "no_certificate";
    case HandshakeFailure::kNoSharedCipher:
      return "no_shared_cipher";
    case HandshakeFailure::kClientCertificate:
      return "client_certificate";
    case HandshakeFailure::kTimeout:
      return "timeout";
    case HandshakeFailure::kProtocol:
      return "protocol";
  }
  return "unknown";
}

std::shared_ptr<ServerContext> ServerContext::create(const config::TlsServerSettings& s,
                                                     std::string& error_key, std::string& error) {
  std::shared_ptr<ServerContext> c(new ServerContext(s));
  c->ctx_.reset(SSL_CTX_new(TLS_method()));
  SSL_CTX* ctx = c->ctx_.get();
  SSL_CTX_set_ex_data(ctx, app_index(), c.get());
  SSL_CTX_set_min_proto_version(ctx, static_cast<std::uint16_t>(version_number(s.min_version)));
  SSL_CTX_set_max_proto_version(ctx, static_cast<std::uint16_t>(version_number(s.max_version)));

  for (std::size_t i = 0; i < s.certificates.size(); ++i) {
    const config::TlsCertificate& cs = s.certificates[i];
    std::string at = "certificates[" + std::to_string(i) + "].";
    LoadedChain chain = load_chain(cs.cert, cs.key);
    if (!chain.error.empty()) {
      error_key = at + chain.error_key;
      error = chain.error;
      return nullptr;
    }
    Certificate cert;
    cert.names = dns_names(chain.certs.front().get());
    c->pem_.push_back(PemCertificate{std::move(chain.cert_pem), std::move(chain.key_pem), cert.names});
    cert.ecdsa = EVP_PKEY_id(chain.key.get()) == EVP_PKEY_EC;
    for (auto& x : chain.certs) {
      std::uint8_t* der = nullptr;
      int n = i2d_X509(x.get(), &der);
      if (n <= 0) {
        error_key = at + "cert";
        error = "cannot encode the certificate in " + cs.cert;
        return nullptr;
      }
      cert.chain.emplace_back(CRYPTO_BUFFER_new(der, static_cast<std::size_t>(n), nullptr));
      OPENSSL_free(der);
    }
    cert.key = std::move(chain.key);
    if (!cs.ocsp.empty() && !read_file(cs.ocsp, cert.ocsp, error)) {
      error_key = at + "ocsp";
      return nullptr;
    }
    c->certs_.push_back(std::move(cert));
  }
  // The default certificate's chain and key live in the SSL_CTX, so every SSL starts
  // with them and the ClientHello callback only swaps in another certificate when SNI
  // or the client's signature algorithms choose it: no connection re-installs (and
  // re-parses) the default one. OCSP staples stay per connection, so a certificate
  // without one never inherits the default's.
  if (!c->install(ctx, c->certs_.front())) {
    error_key = "certificates[0].key";
    error = "the key does not match the certificate (" + take_error_text() + ")";
    return nullptr;
  }
  SSL_CTX_set_select_certificate_cb(ctx, &ServerContext::on_client_hello);
  if (!s.alpn.empty()) SSL_CTX_set_alpn_select_cb(ctx, &ServerContext::on_alpn, c.get());

  if (s.client_auth.mode != config::ClientAuthMode::kOff) {
    if (!SSL_CTX_load_verify_locations(ctx, s.client_auth.ca.c_str(), nullptr)) {
      error_key = "client_auth.ca";
      error =
          "cannot load CA certificates from " + s.client_auth.ca + " (" + take_error_text() + ")";
      return nullptr;
    }
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(s.client_auth.ca.c_str()))
      SSL_CTX_set_client_CA_list(ctx, names);
    int mode = SSL_VERIFY_PEER;
    if (s.client_auth.mode == config::ClientAuthMode::kRequired)
      mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, nullptr);
  }

  // Stateless resumption only: tickets sealed with our rotating keys, no session cache.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (s.session_tickets.enabled) {
    c->tickets_ = std::make_unique<TicketKeys>(s.session_tickets.rotate);
    SSL_CTX_set_tlsext_ticket_key_cb(ctx, &ServerContext::on_ticket);
  } else {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  }

  if (!s.keylog_file.empty()) {
    c->keylog_ = std::fopen(s.keylog_file.c_str(), "a");
    if (c->keylog_ == nullptr) {
      error_key = "keylog_file";
      error = "cannot open " + s.keylog_file + " for appending";
      return nullptr;
    }
    SSL_CTX_set_keylog_callback(ctx, &ServerContext::on_keylog);
  }
  ERR_clear_error();
  return c;
}

ServerContext::~ServerContext() {
  if (keylog_ != nullptr) std::fclose(keylog_);
}

bssl::UniquePtr<SSL> ServerContext::new_ssl(HandshakeNotes* notes) const {
  bssl::UniquePtr<SSL> ssl(SSL_new(ctx_.get()));
  if (ssl) SSL_set_app_data(ssl.get(), notes);
  return ssl;
}

const ServerContext::Certificate* ServerContext::choose(std::string_view sni,
                                                        bool takes_ecdsa) const {
  // Every certificate valid for the name (exact names before wildcards), else the
  // default one and those for the same names.
  std::vector<const Certificate*> fit;
  for (int pass = 0; pass < 2 && fit.empty() && !sni.empty(); ++pass) {
    for (const Certificate& c : certs_) {
      for (const std::string& n : c.names) {
        bool wildcard = n.starts_with("*.");
        if ((pass == 0 && !wildcard && n == sni) ||
            (pass == 1 && wildcard && name_matches(n, sni))) {
          fit.push_back(&c);
          break;
        }
      }
    }
  }
  if (fit.empty()) {
    if (settings_.strict_sni) return nullptr;
    for (const Certificate& c : certs_) {
      if (c.names == certs_.front().names) fit.push_back(&c);
    }
  }
  for (const Certificate* c : fit) {
    if (c->ecdsa == takes_ecdsa) return c;
  }
  return fit.front();
}

ssl_select_cert_result_t ServerContext::on_client_hello(const SSL_CLIENT_HELLO* hello) {
  SSL* ssl = hello->ssl;
  const ServerContext* self = context_of(ssl);
  const Certificate* cert = self->choose(client_hello_sni(hello), client_takes_ecdsa(hello));
  if (cert == nullptr) {
    if (auto* notes = static_cast<HandshakeNotes*>(SSL_get_app_data(ssl)))
      notes->no_certificate = true;
    return ssl_select_cert_error;
  }
  // The default certificate's chain and key are the SSL_CTX's already.
  if (cert != &self->certs_.front() && !install(ssl, *cert)) return ssl_select_cert_error;
  if (!cert->ocsp.empty()) {
    SSL_set_ocsp_response(ssl, reinterpret_cast<const std::uint8_t*>(cert->ocsp.data()),
                          cert->ocsp.size());
  }
  return ssl_select_cert_success;
}

template <typename Target>
bool ServerContext::install(Target* target, const Certificate& cert) {
  std::vector<CRYPTO_BUFFER*> chain;
  chain.reserve(cert.chain.size());
  for (const auto& b : cert.chain) chain.push_back(b.get());
  if constexpr (std::is_same_v<Target, SSL_CTX>) {
    return SSL_CTX_set_chain_and_key(target, chain.data(), chain.size(), cert.key.get(), nullptr);
  } else {
    return SSL_set_chain_and_key(target, chain.data(), chain.size(), cert.key.get(), nullptr);
  }
}

int ServerContext::on_alpn(SSL*, const std::uint8_t** out, std::uint8_t* out_len,
                           const std::uint8_t* in, unsigned in_len, void* arg) {
  const auto* self = static_cast<const ServerContext*>(arg);
  // The server's order decides (RFC 7301 3.2 lets either side's order win).
  for (const std::string& want : self->settings_.alpn) {
    CBS list;
    CBS_init(&list, in, in_len);
    while (CBS_len(&list) > 0) {
      CBS name;
      if (!CBS_get_u8_length_prefixed(&list, &name)) return SSL_TLSEXT_ERR_NOACK;
      if (CBS_len(&name) == want.size() &&
          std::equal(want.begin(), want.end(), reinterpret_cast<const char*>(CBS_data(&name)))) {
        *out = CBS_data(&name);
        *out_len = static_cast<std::uint8_t>(CBS_len(&name));
        return SSL_TLSEXT_ERR_OK;
      }
    }
  }
  return SSL_TLSEXT_ERR_NOACK;  // nothing in common: carry on without ALPN
}

int ServerContext::on_ticket(SSL* ssl, std::uint8_t* name, std::uint8_t* iv, EVP_CIPHER_CTX* cipher,
                             HMAC_CTX* hmac, int encrypt) {
  const ServerContext* self = context_of(ssl);
  return self->tickets_->seal_or_open(name, iv, cipher, hmac, encrypt != 0);
}

void ServerContext::on_keylog(const SSL* ssl, const char* line) {
  const ServerContext* self = context_of(ssl);
  std::lock_guard lock(self->keylog_mu_);
  std::fprintf(self->keylog_, "%s\n", line);
  std::fflush(self->keylog_);
}

}  // namespace ramjet::tls
