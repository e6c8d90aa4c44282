// The one way into BoringSSL: its headers come from Debian's android-libboringssl-dev
// (/usr/include/android, set by the boringssl CMake target). Including OpenSSL 3's
// headers by mistake would compile and then crash at run time, so this refuses to.
#pragma once

#include <openssl/base.h>

#ifndef OPENSSL_IS_BORINGSSL
#error "ramjet's tls layer needs BoringSSL (android-libboringssl-dev), not OpenSSL"
#endif

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <string>

namespace ramjet::tls {

// The text of the oldest queued BoringSSL error (and clears the queue): "" if none.
inline std::string take_error_text() {
  std::uint32_t e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return {};
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

}  // namespace ramjet::tls
