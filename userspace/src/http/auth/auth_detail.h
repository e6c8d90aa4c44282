// Helpers the proxy authenticator (proxy_auth.cc) and the htpasswd reader
// (htpasswd.cc) share: secret scrubbing, randomness and RFC 9110 character classes.
// Internal to http/auth.
#pragma once

#include <string.h>

#include <cerrno>
#include <cstddef>
#include <string>

#include "runtime/siphash.h"

namespace ramjet::http::auth::detail {

// Best-effort scrubbing of secrets we copied (the optimizer may not drop explicit_bzero).
inline void wipe(std::string& s) {
  if (!s.empty()) explicit_bzero(s.data(), s.size());
  s.clear();
}

inline bool is_ows(char c) {
  return c == ' ' || c == '\t';
}
inline bool is_ctl(unsigned char c) {
  return c < 0x20 || c == 0x7f;
}
inline bool is_alpha(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}
inline bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

using runtime::fill_random;

}  // namespace ramjet::http::auth::detail
