#include "http/auth/proxy_auth.h"

#include <crypt.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <utility>

#include "http/auth/auth_detail.h"

namespace ramjet::http::auth {

using namespace detail;

namespace {

constexpr std::size_t kMinPresharedKey = 16;

// RFC 9110 5.6.2 tchar.
bool is_tchar(char c) {
  return is_alpha(c) || is_digit(c) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// RFC 9110 11.2 token68, without the trailing '=' run.
bool is_token68_char(char c) {
  return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' ||
         c == '/';
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// ---- base64 ------------------------------------------------------------------------------
// A small strict RFC 4648 section 4 decoder. BoringSSL (EVP_DecodeBase64) is a planned
// dependency but not linked yet; switch to it once it is. Strict means: padded to a multiple
// of 4, '=' only at the end (at most two), and canonical (unused low bits are zero), so each
// credential has exactly one encoding.

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Decodes `in` into `out`; on failure returns the offset in `in` and sets `reason`.
std::optional<std::size_t> decode_base64_strict(std::string_view in, std::string& out,
                                                std::string_view& reason) {
  out.clear();
  if (in.size() % 4 != 0) {
    reason = "base64 length is not a multiple of 4";
    return in.size();
  }
  out.reserve(in.size() / 4 * 3);
  for (std::size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    int v[4];
    int pad = 0;
    for (std::size_t j = 0; j < 4; ++j) {
      const char c = in[i + j];
      if (c == '=') {
        // Only in the last quantum, only in its last two places, and only as a suffix.
        if (!last || j < 2 || (j == 2 && in[i + 3] != '=')) {
          reason = "misplaced base64 padding";
          return i + j;
        }
        v[j] = 0;
        ++pad;
        continue;
      }
      v[j] = base64_value(c);
      if (v[j] < 0) {
        reason = "invalid base64 character";
        return i + j;
      }
    }
    const std::uint32_t n =
        static_cast<std::uint32_t>(v[0]) << 18 | static_cast<std::uint32_t>(v[1]) << 12 |
        static_cast<std::uint32_t>(v[2]) << 6 | static_cast<std::uint32_t>(v[3]);
    if ((pad == 2 && (n & 0xffff) != 0) || (pad == 1 && (n & 0xff) != 0)) {
      reason = "non-canonical base64 (nonzero padding bits)";
      return i + 3 - static_cast<std::size_t>(pad);
    }
    out.push_back(static_cast<char>(n >> 16));
    if (pad < 2) out.push_back(static_cast<char>(n >> 8 & 0xff));
    if (pad < 1) out.push_back(static_cast<char>(n & 0xff));
  }
  return std::nullopt;
}

// The positive cache is keyed by a SipHash-2-4 128-bit digest under a per-Authenticator
// random key, so a client cannot craft a header whose cache key collides with someone
// else's accepted one.
using runtime::SipKey;
using CacheKey = runtime::SipDigest128;

struct CacheKeyHash {
  std::size_t operator()(const CacheKey& k) const { return static_cast<std::size_t>(k.lo); }
};

CacheKey siphash128(const SipKey& key, std::string_view data) {
  return runtime::siphash24_128(
      key, {reinterpret_cast<const std::uint8_t*>(data.data()), data.size()});
}

std::string escape_quoted(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

}  // namespace

// ---- constant-time compare -----------------------------------------------------------------

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Walks the longer length whatever the contents; bytes past the shorter one compare as 0
  // and the length mismatch is folded into the result, so there is no early exit.
  const std::size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  // Keep the compiler from turning the accumulation into a data-dependent branch.
  __asm__ volatile("" : "+r"(diff));
  return diff == 0;
}

// ---- Proxy-Authorization parser ------------------------------------------------------------

CredentialParse parse_proxy_authorization(std::string_view value, const CredentialLimits& limits) {
  CredentialParse r;
  const auto fail = [&r](std::size_t offset, std::string_view reason) {
    r.error = CredentialError{offset, reason};
    return r;
  };
  if (value.size() > limits.max_value) return fail(0, "header value too long");
  std::size_t pos = 0;
  std::size_t end = value.size();
  while (pos < end && is_ows(value[pos])) ++pos;
  while (end > pos && is_ows(value[end - 1])) --end;
  if (pos == end) return fail(pos, "empty header value");

  const std::size_t scheme_begin = pos;
  while (pos < end && is_tchar(value[pos])) ++pos;
  const std::string_view scheme = value.substr(scheme_begin, pos - scheme_begin);
  if (scheme.empty()) return fail(pos, "invalid character in auth scheme");
  if (pos == end) return fail(pos, "missing credentials after the auth scheme");
  if (value[pos] != ' ') return fail(pos, "invalid character in auth scheme");
  while (pos < end && value[pos] == ' ') ++pos;  // 1*SP
  const bool is_basic = iequals(scheme, "Basic");
  if (!is_basic && !iequals(scheme, "Preshared")) {
    return fail(scheme_begin, "unsupported auth scheme");
  }

  // token68: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
  const std::size_t token_begin = pos;
  while (pos < end && is_token68_char(value[pos])) ++pos;
  if (pos == token_begin) return fail(pos, "credentials are not a token68");
  while (pos < end && value[pos] == '=') ++pos;
  if (pos != end) {
    return fail(pos, is_ows(value[pos]) || value[pos] == ','
                         ? "unexpected data after the credentials"
                         : "credentials are not a token68");
  }
  const std::string_view token = value.substr(token_begin, end - token_begin);

  if (is_basic) {
    const std::size_t max_decoded = limits.max_user + 1 + limits.max_password;
    if (token.size() / 4 * 3 > max_decoded + 2) return fail(token_begin, "credentials too long");
    std::string decoded;
    std::string_view reason;
    if (auto bad = decode_base64_strict(token, decoded, reason)) {
      wipe(decoded);
      return fail(token_begin + *bad, reason);
    }
    // Errors about decoded bytes point at the token, not into the secret.
    std::string_view error;
    const std::size_t colon = decoded.find(':');
    if (std::any_of(decoded.begin(), decoded.end(),
                    [](char c) { return is_ctl(static_cast<unsigned char>(c)); })) {
      error = "credentials contain a control character";
    } else if (colon == std::string::npos) {
      error = "credentials have no ':' after the user-id";
    } else if (colon == 0) {
      error = "empty user-id";
    } else if (colon > limits.max_user) {
      error = "user-id too long";
    } else if (decoded.size() - colon - 1 > limits.max_password) {
      error = "password too long";
    }
    if (!error.empty()) {
      wipe(decoded);
      return fail(token_begin, error);
    }
    BasicCredential basic;
    basic.user.assign(decoded, 0, colon);
    basic.password.assign(decoded, colon + 1);
    wipe(decoded);
    r.credential = std::move(basic);
    return r;
  }
  if (token.size() > limits.max_key) return fail(token_begin, "pre-shared key too long");
  r.credential = PresharedCredential{std::string(token)};
  return r;
}

// ---- Authenticator -----------------------------------------------------------------------

struct Authenticator::State {
  std::optional<Htpasswd> htpasswd;
  std::vector<std::string> keys;
  std::string challenge;
  CredentialLimits limits;
  std::chrono::steady_clock::duration ttl{};
  std::size_t max_entries = 0;
  SipKey sip_key;

  struct Entry {
    std::string user;
    std::chrono::steady_clock::time_point expires;
  };
  std::mutex mu;
  std::unordered_map<CacheKey, Entry, CacheKeyHash> cache;  // guarded by mu

#define RAMJET_X(name) std::atomic<std::uint64_t> name{0};
  RAMJET_PROXY_AUTH_STATS(RAMJET_X)
#undef RAMJET_X

  void remember(const CacheKey& key, const std::string& user,
                std::chrono::steady_clock::time_point now) {
    std::lock_guard lock(mu);
    if (cache.size() >= max_entries && cache.find(key) == cache.end()) {
      std::erase_if(cache, [now](const auto& kv) { return kv.second.expires <= now; });
      if (cache.size() >= max_entries) {
        const auto oldest = std::min_element(cache.begin(), cache.end(), [](auto& a, auto& b) {
          return a.second.expires < b.second.expires;
        });
        cache.erase(oldest);
        cache_evict.fetch_add(1, std::memory_order_relaxed);
      }
    }
    cache.insert_or_assign(key, Entry{user, now + ttl});
  }
};

Authenticator::Authenticator(std::unique_ptr<State> state) : state_(std::move(state)) {}
Authenticator::Authenticator(Authenticator&&) noexcept = default;
Authenticator& Authenticator::operator=(Authenticator&&) noexcept = default;
Authenticator::~Authenticator() = default;

Result<Authenticator> Authenticator::create(AuthConfig config) {
  auto state = std::make_unique<State>();
  if (!config.htpasswd_path && config.preshared_keys.empty()) {
    return Error::config("proxy auth: neither htpasswd nor preshared_keys is configured");
  }
  if (config.realm.empty()) return Error::config("proxy auth: realm must not be empty");
  if (std::any_of(config.realm.begin(), config.realm.end(),
                  [](char c) { return is_ctl(static_cast<unsigned char>(c)); })) {
    return Error::config("proxy auth: realm contains a control character");
  }
  for (std::size_t i = 0; i < config.preshared_keys.size(); ++i) {
    // Errors name the index, never the key.
    const std::string& key = config.preshared_keys[i];
    const std::string where = "proxy auth: preshared_keys[" + std::to_string(i) + "]: ";
    std::size_t body = key.size();
    while (body > 0 && key[body - 1] == '=') --body;
    if (body == 0 || !std::all_of(key.begin(), key.begin() + static_cast<std::ptrdiff_t>(body),
                                  is_token68_char)) {
      return Error::config(where + "not a token68 (A-Z a-z 0-9 - . _ ~ + / then '=' padding)");
    }
    if (key.size() < kMinPresharedKey) {
      return Error::config(where + "shorter than 16 characters");
    }
    if (key.size() > config.limits.max_key) {
      return Error::config(where + "longer than limits.max_key");
    }
  }
  if (config.htpasswd_path) {
    auto file = Htpasswd::load_file(*config.htpasswd_path);
    if (!file) return file.take_error();
    state->htpasswd.emplace(std::move(*file));
  }
  const std::string realm = "realm=\"" + escape_quoted(config.realm) + "\"";
  if (state->htpasswd) state->challenge = "Basic " + realm + ", charset=\"UTF-8\"";
  if (!config.preshared_keys.empty()) {
    if (!state->challenge.empty()) state->challenge += ", ";
    state->challenge += "Preshared " + realm;
  }
  state->keys = std::move(config.preshared_keys);
  state->limits = config.limits;
  state->ttl = config.cache_ttl;
  state->max_entries = config.cache_ttl.count() > 0 ? config.cache_max_entries : 0;
  if (state->max_entries > 0 && !fill_random(&state->sip_key, sizeof(state->sip_key))) {
    return Error::kernel(errno, "getrandom for the proxy auth cache key");
  }
  return Authenticator(std::move(state));
}

AuthResult Authenticator::check(std::string_view proxy_authorization) const {
  return check(proxy_authorization, std::chrono::steady_clock::now());
}

AuthResult Authenticator::check(std::string_view value,
                                std::chrono::steady_clock::time_point now) const {
  State& s = *state_;
  while (!value.empty() && is_ows(value.front())) value.remove_prefix(1);
  while (!value.empty() && is_ows(value.back())) value.remove_suffix(1);
  if (value.empty()) {
    s.missing.fetch_add(1, std::memory_order_relaxed);
    return AuthResult{AuthStatus::kMissing, {}, "no Proxy-Authorization credentials"};
  }
  const auto accept = [&s](std::string user) {
    s.ok.fetch_add(1, std::memory_order_relaxed);
    return AuthResult{AuthStatus::kOk, std::move(user), {}};
  };
  const auto reject = [&s](std::string_view reason) {
    s.rejected.fetch_add(1, std::memory_order_relaxed);
    return AuthResult{AuthStatus::kInvalid, {}, reason};
  };

  const bool caching = s.max_entries > 0 && value.size() <= s.limits.max_value;
  CacheKey key;
  if (caching) {
    key = siphash128(s.sip_key, value);
    std::lock_guard lock(s.mu);
    if (const auto it = s.cache.find(key); it != s.cache.end()) {
      if (now < it->second.expires) {
        s.cache_hit.fetch_add(1, std::memory_order_relaxed);
        s.ok.fetch_add(1, std::memory_order_relaxed);
        return AuthResult{AuthStatus::kOk, it->second.user, {}};
      }
      s.cache.erase(it);
    }
    s.cache_miss.fetch_add(1, std::memory_order_relaxed);
  }

  CredentialParse parsed = parse_proxy_authorization(value, s.limits);
  if (!parsed.ok()) {
    s.malformed.fetch_add(1, std::memory_order_relaxed);
    return AuthResult{AuthStatus::kInvalid, {}, parsed.error.reason};
  }
  if (auto* basic = std::get_if<BasicCredential>(&parsed.credential)) {
    if (!s.htpasswd) {
      wipe(basic->password);
      return reject("Basic scheme not enabled on this endpoint");
    }
    const bool good = s.htpasswd->verify(basic->user, basic->password);
    wipe(basic->password);
    if (!good) return reject("wrong user-id or password");
    if (caching) s.remember(key, basic->user, now);
    return accept(std::move(basic->user));
  }
  auto& psk = std::get<PresharedCredential>(parsed.credential);
  if (s.keys.empty()) {
    wipe(psk.key);
    return reject("Preshared scheme not enabled on this endpoint");
  }
  // Every key is compared, so timing does not tell which (or whether an early one) matched.
  bool good = false;
  for (const std::string& k : s.keys) good |= constant_time_equal(psk.key, k);
  wipe(psk.key);
  if (!good) return reject("wrong pre-shared key");
  return accept("psk");
}

const std::string& Authenticator::challenge() const {
  return state_->challenge;
}

AuthStats Authenticator::stats() const {
  AuthStats out;
#define RAMJET_X(name) out.name = state_->name.load(std::memory_order_relaxed);
  RAMJET_PROXY_AUTH_STATS(RAMJET_X)
#undef RAMJET_X
  return out;
}

}  // namespace ramjet::http::auth
