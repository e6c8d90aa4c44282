// Certificates made in the test process with BoringSSL: no files checked in, no
// openssl CLI. Each is self-signed unless an issuer is given.
#pragma once

#include <openssl/ec_key.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <string>
#include <vector>

#include "tls/boringssl.h"

namespace ramjet::tls::testing {

struct TestCert {
  bssl::UniquePtr<X509> cert;
  bssl::UniquePtr<EVP_PKEY> key;
  std::string cert_pem;
  std::string key_pem;
};

inline bssl::UniquePtr<EVP_PKEY> make_key(bool ecdsa) {
  bssl::UniquePtr<EVP_PKEY> pkey(EVP_PKEY_new());
  if (ecdsa) {
    EC_KEY* ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    EC_KEY_generate_key(ec);
    EVP_PKEY_assign_EC_KEY(pkey.get(), ec);
  } else {
    RSA* rsa = RSA_new();
    bssl::UniquePtr<BIGNUM> e(BN_new());
    BN_set_word(e.get(), RSA_F4);
    RSA_generate_key_ex(rsa, 2048, e.get(), nullptr);
    EVP_PKEY_assign_RSA(pkey.get(), rsa);
  }
  return pkey;
}

inline std::string pem_of(X509* x) {
  bssl::UniquePtr<BIO> b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(b.get(), x);
  const std::uint8_t* d;
  std::size_t n;
  BIO_mem_contents(b.get(), &d, &n);
  return std::string(reinterpret_cast<const char*>(d), n);
}

inline std::string pem_of(EVP_PKEY* k) {
  bssl::UniquePtr<BIO> b(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr);
  const std::uint8_t* d;
  std::size_t n;
  BIO_mem_contents(b.get(), &d, &n);
  return std::string(reinterpret_cast<const char*>(d), n);
}

// `sans`: "DNS:a.test,DNS:*.b.test,URI:spiffe://x/y,IP:10.0.0.1".
inline TestCert make_cert(const std::string& cn, const std::string& sans, bool ecdsa,
                          const TestCert* issuer = nullptr, bool ca = false) {
  TestCert t;
  t.key = make_key(ecdsa);
  t.cert.reset(X509_new());
  X509* x = t.cert.get();
  X509_set_version(x, 2);
  static long serial = 1000;
  ASN1_INTEGER_set(X509_get_serialNumber(x), ++serial);
  X509_gmtime_adj(X509_get_notBefore(x), -3600);
  X509_gmtime_adj(X509_get_notAfter(x), 86400);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer->cert.get()) : name);
  X509_set_pubkey(x, t.key.get());
  if (!sans.empty()) {
    GENERAL_NAMES* names = sk_GENERAL_NAME_new_null();
    std::size_t begin = 0;
    while (begin < sans.size()) {
      std::size_t end = sans.find(',', begin);
      if (end == std::string::npos) end = sans.size();
      std::string item = sans.substr(begin, end - begin);
      begin = end + 1;
      std::size_t colon = item.find(':');
      std::string kind = item.substr(0, colon);
      std::string value = item.substr(colon + 1);
      GENERAL_NAME* g = GENERAL_NAME_new();
      if (kind == "IP") {
        GENERAL_NAME_set0_value(g, GEN_IPADD, a2i_IPADDRESS(value.c_str()));
      } else {
        ASN1_IA5STRING* str = ASN1_IA5STRING_new();
        ASN1_STRING_set(str, value.data(), static_cast<int>(value.size()));
        GENERAL_NAME_set0_value(g, kind == "URI" ? GEN_URI : GEN_DNS, str);
      }
      sk_GENERAL_NAME_push(names, g);
    }
    X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT);
    GENERAL_NAMES_free(names);
  }
  if (ca) {
    BASIC_CONSTRAINTS* bc = BASIC_CONSTRAINTS_new();
    bc->ca = 0xff;
    X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1, X509V3_ADD_DEFAULT);
    BASIC_CONSTRAINTS_free(bc);
  }
  X509_sign(x, issuer ? issuer->key.get() : t.key.get(), EVP_sha256());
  t.cert_pem = pem_of(x);
  t.key_pem = pem_of(t.key.get());
  return t;
}

}  // namespace ramjet::tls::testing
