// Proxy authentication for the forward-proxy endpoints (RFC 9110 section 11: the client sends
// Proxy-Authorization, a 407 carries Proxy-Authenticate).
//
// Three pieces, usable on their own:
//   Htpasswd                    `user:hash` files; hashes verified with libxcrypt crypt_rn().
//   parse_proxy_authorization   the header value -> Basic (RFC 7617) or Preshared credentials.
//   Authenticator               one endpoint's policy: check() a header, challenge() for a 407.
//
// Secrets (passwords, pre-shared keys, header values) never appear in an error or reason
// string produced here: every reason is static text, and config errors name the line or the
// list index, never the value.
//
// Verification is synchronous and, for yescrypt/bcrypt, slow (milliseconds of CPU by design).
// Authenticator keeps a small cache of recent successes (see AuthConfig::cache_ttl) so that
// keep-alive clients, which repeat the same header on every request, pay that cost once; where
// the call runs (worker vs. offload thread) is the caller's decision.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "ramjet/result.h"

namespace ramjet::http::auth {

// ----------------------------------------------------------------------------------------
// Types
// ----------------------------------------------------------------------------------------

// `Basic <base64(user-id ":" password)>` (RFC 7617).
struct BasicCredential {
  std::string user;
  std::string password;
};

// `Preshared <token68>`: a shared key instead of a user (the Oxy example's scheme).
struct PresharedCredential {
  std::string key;
};

using Credential = std::variant<BasicCredential, PresharedCredential>;

// Why a Proxy-Authorization value was rejected. `reason` is static text (never input bytes,
// so it is safe to log); `offset` indexes the header value as given.
struct CredentialError {
  std::size_t offset = 0;
  std::string_view reason;
};

struct CredentialParse {
  bool ok() const { return error.reason.empty(); }

  Credential credential;  // meaningful only when ok()
  CredentialError error;
};

// Bounds that keep a hostile client from making us decode or hash without limit.
struct CredentialLimits {
  std::size_t max_value = 4096;    // whole header value, before trimming
  std::size_t max_user = 256;      // decoded user-id bytes
  std::size_t max_password = 512;  // decoded password bytes (also bounds crypt's work)
  std::size_t max_key = 512;       // Preshared key bytes
};

enum class AuthStatus : std::uint8_t {
  kOk,       // AuthResult::user says who: the htpasswd user, or "psk"
  kMissing,  // no (or an empty) Proxy-Authorization: answer 407 with challenge()
  kInvalid,  // present but malformed, of a disabled scheme, or wrong: answer 407
};

struct AuthResult {
  AuthStatus status = AuthStatus::kInvalid;
  std::string user;         // kOk only
  std::string_view reason;  // kMissing/kInvalid: static text, safe to log, never a secret
};

// Counters, declared once; tests and metrics read them by name.
#define RAMJET_PROXY_AUTH_STATS(X)                                          \
  X(ok)         /* accepted (cache hits included) */                        \
  X(missing)    /* no credentials */                                        \
  X(malformed)  /* header failed to parse */                                \
  X(rejected)   /* parsed, but wrong credentials or a scheme not enabled */ \
  X(cache_hit)  /* accepted from the positive cache without crypt */        \
  X(cache_miss) /* looked up, not found or expired */                       \
  X(cache_evict)

struct AuthStats {
#define RAMJET_X(name) std::uint64_t name = 0;
  RAMJET_PROXY_AUTH_STATS(RAMJET_X)
#undef RAMJET_X
};

// One endpoint's auth settings (the `auth` block of an endpoint in ramjet.yaml).
struct AuthConfig {
  std::optional<std::string> htpasswd_path;  // enables Basic
  std::vector<std::string> preshared_keys;   // enables Preshared; each a token68, >= 16 bytes
  std::string realm = "ramjet";
  // Positive cache: a header value that verified OK is accepted again without crypt for this
  // long. Keyed by a keyed 128-bit SipHash of the header value (the credential itself is never
  // stored); bounded to cache_max_entries (the soonest-expiring entry is evicted). A cache
  // belongs to one Authenticator, so reloading the htpasswd file (building a new
  // Authenticator) drops it. cache_max_entries == 0 disables caching.
  std::chrono::seconds cache_ttl{60};
  std::size_t cache_max_entries = 1024;
  CredentialLimits limits;
};

// ----------------------------------------------------------------------------------------
// Functions
// ----------------------------------------------------------------------------------------

// Compares in time that depends only on the lengths, never on where the bytes differ.
bool constant_time_equal(std::string_view a, std::string_view b);

// Parses a Proxy-Authorization field value: `scheme 1*SP token68`, scheme case-insensitive,
// optional surrounding whitespace (SP/HTAB). Basic needs strict padded base64 (RFC 4648
// section 4, canonical), a ':' after a non-empty user-id, and no control characters.
CredentialParse parse_proxy_authorization(std::string_view value,
                                          const CredentialLimits& limits = {});

// An htpasswd file: `user:hash` lines; '#' comments and blank lines are skipped. Accepted
// hashes: sha512-crypt ($6$), yescrypt ($y$, $gy$), scrypt ($7$) and bcrypt ($2b$, $2y$,
// $2a$). Weak legacy formats (DES, MD5-crypt $1$, Apache $apr1$, {SHA}, sha256-crypt $5$,
// ...) are refused at load time with the line.
class Htpasswd {
 public:
  // Errors are Error::config with "FILE:LINE: reason" (or "FILE: reason").
  static Result<Htpasswd> load_file(const std::string& path);
  // `source` names the contents in error messages.
  static Result<Htpasswd> parse(std::string_view contents, std::string_view source);

  // True when `user` exists and `password` matches. Runs crypt either way: an unknown user
  // is checked against a dummy hash made with the first entry's method and cost, and the
  // result is compared in constant time, so timing does not tell whether the user exists.
  bool verify(std::string_view user, std::string_view password) const;

  std::size_t size() const { return users_.size(); }

 private:
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  Htpasswd() = default;

  std::unordered_map<std::string, std::string, StringHash, std::equal_to<>> users_;
  std::string dummy_hash_;
};

// One endpoint's authenticator. Thread-safe: check() may be called from every worker (the
// cache takes a short mutex; crypt runs outside it).
class Authenticator {
 public:
  // Loads the htpasswd file and validates keys and realm. Errors are Error::config and never
  // contain a key.
  static Result<Authenticator> create(AuthConfig config);

  // `proxy_authorization` is the field value, or empty when the request had none.
  AuthResult check(std::string_view proxy_authorization) const;
  AuthResult check(std::string_view proxy_authorization,
                   std::chrono::steady_clock::time_point now) const;

  // The Proxy-Authenticate value for a 407: one challenge per enabled scheme, comma-separated,
  // e.g. `Basic realm="corp", charset="UTF-8", Preshared realm="corp"`.
  const std::string& challenge() const;

  AuthStats stats() const;

  Authenticator(Authenticator&&) noexcept;
  Authenticator& operator=(Authenticator&&) noexcept;
  ~Authenticator();

 private:
  struct State;
  explicit Authenticator(std::unique_ptr<State> state);

  std::unique_ptr<State> state_;  // stable address for the cache mutex and counters
};

}  // namespace ramjet::http::auth
