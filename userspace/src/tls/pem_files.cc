#include "tls/pem_files.h"

#include <openssl/pem.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace ramjet::tls {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

bool read_file(const std::string& path, std::string& out, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read " + path + ": " + std::strerror(errno);
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

LoadedChain load_chain(const std::string& cert_path, const std::string& key_path) {
  LoadedChain r;
  std::string pem;
  if (!read_file(cert_path, pem, r.error)) {
    r.error_key = "cert";
    return r;
  }
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) r.certs.emplace_back(x);
  ERR_clear_error();  // the end of the file reads as an error
  if (r.certs.empty()) {
    r.error = "no PEM certificate in " + cert_path;
    r.error_key = "cert";
    return r;
  }
  r.cert_pem = std::move(pem);
  pem.clear();
  if (!read_file(key_path, pem, r.error)) {
    r.error_key = "key";
    return r;
  }
  bio.reset(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  r.key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!r.key) {
    r.error = "no PEM private key in " + key_path + " (" + take_error_text() + ")";
    r.error_key = "key";
    return r;
  }
  r.key_pem = std::move(pem);
  if (!X509_check_private_key(r.certs.front().get(), r.key.get())) {
    ERR_clear_error();
    r.error = "the key in " + key_path + " does not match the certificate in " + cert_path;
    r.error_key = "key";
  }
  return r;
}

std::vector<std::string> dns_names(X509* cert) {
  std::vector<std::string> names;
  auto* sans = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (std::size_t i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
      if (g->type != GEN_DNS) continue;
      const ASN1_IA5STRING* s = g->d.dNSName;
      names.push_back(lower(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                        static_cast<std::size_t>(ASN1_STRING_length(s)))));
    }
    GENERAL_NAMES_free(sans);
  }
  if (names.empty()) {
    char cn[256];
    int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
    if (n > 0) names.push_back(lower(std::string(cn, static_cast<std::size_t>(n))));
  }
  return names;
}

}  // namespace ramjet::tls
