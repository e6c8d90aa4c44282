// GnuTLS for QUIC's handshake (ngtcp2's GnuTLS crypto helper): one credentials object per
// endpoint, built from the certificates its `tls:` section names as the tls layer loaded
// them (tls/certificate_set.h), so the PEM files are read once for both TLS stacks.
// GnuTLS picks among several certificates by SNI itself; the first is the default.
#pragma once

#include <gnutls/gnutls.h>

#include <memory>
#include <string>

#include "tls/certificate_set.h"

struct ngtcp2_crypto_conn_ref;

namespace ramjet::quic {

// The one ALPN of the QUIC on-ramp (RFC 9114 3.1).
inline constexpr std::string_view kAlpnH3 = "h3";

struct GnutlsSessionDeleter {
  void operator()(gnutls_session_t s) const { gnutls_deinit(s); }
};
using GnutlsSession = std::unique_ptr<std::remove_pointer_t<gnutls_session_t>, GnutlsSessionDeleter>;

class ServerCredentials {
 public:
  // Null with `error` (naming the certificate, "certificates[i]") when GnuTLS refuses one.
  static std::shared_ptr<ServerCredentials> create(const tls::CertificateSet& certs,
                                                   std::string& error);
  ~ServerCredentials();
  ServerCredentials(const ServerCredentials&) = delete;
  ServerCredentials& operator=(const ServerCredentials&) = delete;

  // A server session for one connection: TLS 1.3 only, QUIC's cipher suites, ALPN h3
  // required (a client without it fails with no_application_protocol, RFC 9001 8.1),
  // wired to ngtcp2 through `ref` (which must outlive the session). Null with `error`.
  GnutlsSession new_session(ngtcp2_crypto_conn_ref* ref, std::string& error) const;

  std::size_t size() const { return count_; }

 private:
  ServerCredentials() = default;
  gnutls_certificate_credentials_t cred_ = nullptr;
  gnutls_priority_t priority_ = nullptr;
  std::size_t count_ = 0;
};

}  // namespace ramjet::quic
