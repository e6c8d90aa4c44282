#include "tls/client_context.h"

#include <arpa/inet.h>

#include "ramjet/net.h"

namespace ramjet::tls {

std::shared_ptr<ClientContext> ClientContext::create(const config::TlsClientSettings& s,
                                                     std::string& error_key, std::string& error) {
  std::shared_ptr<ClientContext> c(new ClientContext(s));
  c->ctx_.reset(SSL_CTX_new(TLS_method()));
  SSL_CTX* ctx = c->ctx_.get();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (s.verify) {
    std::string ca = s.ca == "system" ? kSystemCaFile : s.ca;
    if (!SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr)) {
      error_key = "ca";
      error = "cannot load CA certificates from " + ca + " (" + take_error_text() + ")";
      return nullptr;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  if (s.client_cert) {
    if (!SSL_CTX_use_certificate_chain_file(ctx, s.client_cert->cert.c_str())) {
      error_key = "client_cert.cert";
      error = "cannot load a certificate chain from " + s.client_cert->cert + " (" +
              take_error_text() + ")";
      return nullptr;
    }
    if (!SSL_CTX_use_PrivateKey_file(ctx, s.client_cert->key.c_str(), SSL_FILETYPE_PEM) ||
        !SSL_CTX_check_private_key(ctx)) {
      error_key = "client_cert.key";
      error = "cannot use the key in " + s.client_cert->key + " with its certificate (" +
              take_error_text() + ")";
      return nullptr;
    }
  }
  for (const std::string& p : s.alpn) {
    std::string token = static_cast<char>(p.size()) + p;
    c->alpn_wire_ += token;
    if (p != "h2") c->alpn_wire_no_h2_ += token;
  }
  // Client sessions are not cached: upstream connections are pooled instead.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  ERR_clear_error();
  return c;
}

bssl::UniquePtr<SSL> ClientContext::new_ssl(std::string_view host, bool offer_h2) const {
  bssl::UniquePtr<SSL> ssl(SSL_new(ctx_.get()));
  if (!ssl) return ssl;
  std::string name = server_name(host);
  bool is_ip = IpAddress::parse(name).has_value();
  if (!is_ip) SSL_set_tlsext_host_name(ssl.get(), name.c_str());
  if (settings_.verify) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
    if (is_ip) {
      X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
    } else {
      // A length of 0 would mean "no check" to some versions: always pass it.
      X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
    }
  }
  const std::string& alpn = offer_h2 ? alpn_wire_ : alpn_wire_no_h2_;
  if (!alpn.empty()) {
    SSL_set_alpn_protos(ssl.get(), reinterpret_cast<const std::uint8_t*>(alpn.data()),
                        alpn.size());
  }
  return ssl;
}

}  // namespace ramjet::tls
