// The certificates of an endpoint's `tls:` section as the files hold them: PEM text read
// once, checked once (by ServerContext, with BoringSSL), and handed as bytes to every TLS
// stack that serves the endpoint - BoringSSL for TCP, GnuTLS for QUIC (docs/decisions.md
// "Two TLS stacks"). No TLS library's types, so any layer may include it.
#pragma once

#include <string>
#include <vector>

namespace ramjet::tls {

struct PemCertificate {
  std::string cert_pem;  // the chain, leaf first, as in the `cert` file
  std::string key_pem;   // the private key, as in the `key` file
  std::vector<std::string> names;  // DNS names the leaf serves, lower case ("*.x" for wildcards)
};

// In the order of `certificates:`; the first is the default (no or unknown SNI).
using CertificateSet = std::vector<PemCertificate>;

}  // namespace ramjet::tls
