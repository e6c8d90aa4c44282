// ClientContext: how an endpoint speaks TLS to its upstreams (`upstream_tls`, or the
// defaults for https:// upstreams): the trusted CAs, ALPN, an optional client
// certificate. Built once at start, shared by every worker.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "ramjet/config/tls_settings.h"
#include "tls/boringssl.h"

namespace ramjet::tls {

// The system's trust store (Debian's ca-certificates).
inline constexpr const char* kSystemCaFile = "/etc/ssl/certs/ca-certificates.crt";

class ClientContext {
 public:
  // Null with `error_key` (relative to upstream_tls) and `error` set when a file fails.
  static std::shared_ptr<ClientContext> create(const config::TlsClientSettings& s,
                                               std::string& error_key, std::string& error);

  // A client-side SSL for a connection to `host` (a name or an IP literal): SNI is
  // settings.sni or the host name; the certificate must be valid for that name (or IP).
  // Without `offer_h2` the ALPN list leaves h2 out (a request that needs HTTP/1.1: a
  // WebSocket upgrade).
  bssl::UniquePtr<SSL> new_ssl(std::string_view host, bool offer_h2 = true) const;
  // The name sent and verified for a connection to `host`: settings.sni, else the host.
  std::string server_name(std::string_view host) const {
    return settings_.sni.empty() ? std::string(host) : settings_.sni;
  }
  const config::TlsClientSettings& settings() const { return settings_; }

 private:
  explicit ClientContext(const config::TlsClientSettings& s) : settings_(s) {}
  config::TlsClientSettings settings_;
  bssl::UniquePtr<SSL_CTX> ctx_;
  std::string alpn_wire_;        // the ALPN list in wire format
  std::string alpn_wire_no_h2_;  // ... without h2
};

}  // namespace ramjet::tls
