// Reading the PEM files named in the config: certificate chains and private keys, with
// errors worded for the operator ("no certificate in FILE", "the key does not match").
#pragma once

#include <string>
#include <vector>

#include "tls/boringssl.h"

namespace ramjet::tls {

struct LoadedChain {
  std::vector<bssl::UniquePtr<X509>> certs;  // leaf first
  bssl::UniquePtr<EVP_PKEY> key;
  std::string cert_pem;  // the files' text, kept for the other TLS stack (certificate_set.h)
  std::string key_pem;
  std::string error;  // set when loading failed
  std::string error_key;  // "cert" or "key": which setting the error is about
};

// Reads the chain in `cert_path` and the key in `key_path` (each file once), and checks
// they belong together.
LoadedChain load_chain(const std::string& cert_path, const std::string& key_path);

// The whole file, or an error text.
bool read_file(const std::string& path, std::string& out, std::string& error);

// The DNS names a server certificate is valid for: its subjectAltName DNS entries,
// else its common name; lower case.
std::vector<std::string> dns_names(X509* cert);

}  // namespace ramjet::tls
