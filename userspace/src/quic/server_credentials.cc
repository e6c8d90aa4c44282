#include "quic/server_credentials.h"

#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

namespace ramjet::quic {
namespace {

// TLS 1.3 with the AEADs QUIC defines header protection for (RFC 9001 5.3; not CCM_8),
// and no middlebox-compatibility mode (RFC 9001 8.4).
constexpr const char* kPriority =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:"
    "+AES-128-CCM:%DISABLE_TLS13_COMPAT_MODE";

// After the ClientHello is read: a client that did not offer h3 is refused with
// no_application_protocol (RFC 9001 8.1); GnuTLS would otherwise go on without ALPN.
int require_h3(gnutls_session_t session, unsigned, unsigned, unsigned, const gnutls_datum_t*) {
  gnutls_datum_t selected{};
  if (gnutls_alpn_get_selected_protocol(session, &selected) != 0 ||
      std::string_view(reinterpret_cast<const char*>(selected.data), selected.size) != kAlpnH3)
    return GNUTLS_E_NO_APPLICATION_PROTOCOL;
  return 0;
}

gnutls_datum_t datum(const std::string& s) {
  return gnutls_datum_t{reinterpret_cast<unsigned char*>(const_cast<char*>(s.data())),
                        static_cast<unsigned>(s.size())};
}

}  // namespace

std::shared_ptr<ServerCredentials> ServerCredentials::create(const tls::CertificateSet& certs,
                                                             std::string& error) {
  std::shared_ptr<ServerCredentials> c(new ServerCredentials());
  if (certs.empty()) {
    error = "no certificate";
    return nullptr;
  }
  if (int rv = gnutls_certificate_allocate_credentials(&c->cred_); rv != 0) {
    error = std::string("gnutls_certificate_allocate_credentials: ") + gnutls_strerror(rv);
    return nullptr;
  }
  for (std::size_t i = 0; i < certs.size(); ++i) {
    gnutls_datum_t cert = datum(certs[i].cert_pem);
    gnutls_datum_t key = datum(certs[i].key_pem);
    int rv = gnutls_certificate_set_x509_key_mem2(c->cred_, &cert, &key, GNUTLS_X509_FMT_PEM,
                                                  nullptr, 0);
    if (rv < 0) {
      error = "certificates[" + std::to_string(i) + "]: GnuTLS refuses it (" +
              gnutls_strerror(rv) + ")";
      return nullptr;
    }
    ++c->count_;
  }
  if (int rv = gnutls_priority_init(&c->priority_, kPriority, nullptr); rv != 0) {
    error = std::string("gnutls_priority_init: ") + gnutls_strerror(rv);
    return nullptr;
  }
  return c;
}

ServerCredentials::~ServerCredentials() {
  if (priority_ != nullptr) gnutls_priority_deinit(priority_);
  if (cred_ != nullptr) gnutls_certificate_free_credentials(cred_);
}

GnutlsSession ServerCredentials::new_session(ngtcp2_crypto_conn_ref* ref,
                                             std::string& error) const {
  gnutls_session_t raw = nullptr;
  // Tickets are sent by ngtcp2's flow, never on their own; no 0-RTT yet.
  if (int rv = gnutls_init(&raw, GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET |
                                     GNUTLS_NO_END_OF_EARLY_DATA);
      rv != 0) {
    error = std::string("gnutls_init: ") + gnutls_strerror(rv);
    return nullptr;
  }
  GnutlsSession session(raw);
  if (ngtcp2_crypto_gnutls_configure_server_session(raw) != 0) {
    error = "ngtcp2_crypto_gnutls_configure_server_session failed";
    return nullptr;
  }
  gnutls_session_set_ptr(raw, ref);
  if (int rv = gnutls_priority_set(raw, priority_); rv != 0) {
    error = std::string("gnutls_priority_set: ") + gnutls_strerror(rv);
    return nullptr;
  }
  if (int rv = gnutls_credentials_set(raw, GNUTLS_CRD_CERTIFICATE, cred_); rv != 0) {
    error = std::string("gnutls_credentials_set: ") + gnutls_strerror(rv);
    return nullptr;
  }
  gnutls_datum_t h3{reinterpret_cast<unsigned char*>(const_cast<char*>(kAlpnH3.data())),
                    static_cast<unsigned>(kAlpnH3.size())};
  if (int rv = gnutls_alpn_set_protocols(raw, &h3, 1, GNUTLS_ALPN_MANDATORY); rv != 0) {
    error = std::string("gnutls_alpn_set_protocols: ") + gnutls_strerror(rv);
    return nullptr;
  }
  gnutls_handshake_set_hook_function(raw, GNUTLS_HANDSHAKE_CLIENT_HELLO, GNUTLS_HOOK_POST,
                                     &require_h3);
  return session;
}

}  // namespace ramjet::quic
