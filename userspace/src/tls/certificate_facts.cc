#include "tls/certificate_facts.h"

#include <openssl/bn.h>
#include <openssl/mem.h>

#include <cctype>
#include <cstdio>

namespace ramjet::tls {
namespace {

std::string name_text(X509_NAME* name) {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
  const std::uint8_t* data = nullptr;
  std::size_t len = 0;
  BIO_mem_contents(bio.get(), &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

std::string asn1_text(const ASN1_STRING* s) {
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<std::size_t>(ASN1_STRING_length(s)));
}

std::string ip_text(const ASN1_OCTET_STRING* s) {
  const std::uint8_t* b = ASN1_STRING_get0_data(s);
  int n = ASN1_STRING_length(s);
  char buf[64];
  if (n == 4) {
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
    return buf;
  }
  if (n == 16) {
    std::string out;
    for (int i = 0; i < 16; i += 2) {
      std::snprintf(buf, sizeof buf, "%s%x", i ? ":" : "", (b[i] << 8) | b[i + 1]);
      out += buf;
    }
    return out;
  }
  return "?";
}

std::vector<std::string> sans(X509* cert) {
  std::vector<std::string> out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return out;
  for (std::size_t i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
    switch (g->type) {
      case GEN_DNS:
        out.push_back("DNS:" + asn1_text(g->d.dNSName));
        break;
      case GEN_URI:
        out.push_back("URI:" + asn1_text(g->d.uniformResourceIdentifier));
        break;
      case GEN_EMAIL:
        out.push_back("email:" + asn1_text(g->d.rfc822Name));
        break;
      case GEN_IPADD:
        out.push_back("IP:" + ip_text(g->d.iPAddress));
        break;
      default:
        break;
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

}  // namespace

ClientCertificate certificate_facts(X509* cert, bool verified) {
  ClientCertificate c;
  c.subject = name_text(X509_get_subject_name(cert));
  c.issuer = name_text(X509_get_issuer_name(cert));
  c.sans = sans(cert);
  if (BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), nullptr)) {
    char* hex = BN_bn2hex(bn);
    c.serial = hex;
    for (char& ch : c.serial) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    OPENSSL_free(hex);
    BN_free(bn);
  }
  std::uint8_t md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len)) {
    static constexpr char kHex[] = "0123456789abcdef";
    for (unsigned i = 0; i < len; ++i) {
      c.sha256 += kHex[md[i] >> 4];
      c.sha256 += kHex[md[i] & 15];
    }
  }
  c.verified = verified;
  return c;
}

}  // namespace ramjet::tls
