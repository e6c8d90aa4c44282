// Untrusted Proxy-Authorization values through the header parser (and a Preshared-only
// Authenticator, which runs no crypt). Must never crash or read out of bounds, and:
//   - an error has a reason and an offset inside the value; the reason is static text, never
//     a view into the input (that is how secrets stay out of logs);
//   - an accepted Basic credential re-encodes to exactly the token it came from (the decoder
//     is strict: one encoding per credential), has a non-empty user-id without ':' and no
//     control characters, and respects the limits;
//   - an accepted Preshared key is a token68 taken verbatim from the input.
//
// Input layout: byte 0 picks the limits (default or tight), the rest is the header value.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "http/auth/proxy_auth.h"

namespace {

using namespace ramjet::http::auth;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool inside(std::string_view view, std::string_view buf) {
  return view.data() >= buf.data() && view.data() < buf.data() + buf.size();
}

std::string base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < in.size(); i += 3) {
    const std::size_t n = in.size() - i < 3 ? in.size() - i : 3;
    std::uint32_t v = 0;
    for (std::size_t j = 0; j < 3; ++j) {
      v = v << 8 | (j < n ? static_cast<unsigned char>(in[i + j]) : 0u);
    }
    for (std::size_t j = 0; j < 4; ++j) {
      out.push_back(j <= n ? kAlphabet[(v >> (18 - 6 * j)) & 63] : '=');
    }
  }
  return out;
}

bool has_ctl(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  }
  return false;
}

const Authenticator& psk_authenticator() {
  static const Authenticator* a = [] {
    AuthConfig config;
    config.preshared_keys = {"fuzz-preshared-key-0001", "fuzz-preshared-key-0002=="};
    config.realm = "fuzz";
    auto r = Authenticator::create(config);
    check(r.ok());
    return new Authenticator(std::move(r).value());
  }();
  return *a;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  CredentialLimits limits;
  if (data[0] & 1) {  // tight limits so the fuzzer reaches every "too long" path
    limits.max_value = 96;
    limits.max_user = 8;
    limits.max_password = 16;
    limits.max_key = 24;
  }
  // A heap copy of exactly the value, so ASan sees any read past its end.
  const std::string value(reinterpret_cast<const char*>(data) + 1, size - 1);

  const CredentialParse r = parse_proxy_authorization(value, limits);
  if (!r.ok()) {
    check(r.error.offset <= value.size());
    check(value.empty() || !inside(r.error.reason, value));
  } else if (const auto* b = std::get_if<BasicCredential>(&r.credential)) {
    check(!b->user.empty() && b->user.find(':') == std::string::npos);
    check(!has_ctl(b->user) && !has_ctl(b->password));
    check(b->user.size() <= limits.max_user && b->password.size() <= limits.max_password);
    check(value.size() <= limits.max_value);
    const std::string token = base64(b->user + ":" + b->password);
    const std::size_t at = value.find(token);
    check(at != std::string::npos);
    // Nothing but OWS may follow the token.
    for (std::size_t i = at + token.size(); i < value.size(); ++i) {
      check(value[i] == ' ' || value[i] == '\t');
    }
  } else {
    const auto& p = std::get<PresharedCredential>(r.credential);
    check(!p.key.empty() && p.key.size() <= limits.max_key);
    check(value.find(p.key) != std::string::npos);
    check(!has_ctl(p.key) && p.key.find(' ') == std::string::npos);
  }

  // The Authenticator agrees with the parser and never leaks input into its reason.
  const AuthResult a = psk_authenticator().check(value);
  if (a.status == AuthStatus::kOk) {
    check(parse_proxy_authorization(value).ok() && a.user == "psk");
  } else {
    check(a.user.empty() && !a.reason.empty());
    check(value.empty() || !inside(a.reason, value));
  }
  return 0;
}
