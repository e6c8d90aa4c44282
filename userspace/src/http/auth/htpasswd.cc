// The htpasswd reader of http/auth/proxy_auth.h: hash formats checked at load time
// (crypt(3) methods libxcrypt enables, weak legacy ones refused), and verification.
#include <crypt.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "http/auth/auth_detail.h"
#include "http/auth/proxy_auth.h"

namespace ramjet::http::auth {

using namespace detail;

namespace {

constexpr std::size_t kMaxHtpasswdLine = 4096;
constexpr std::size_t kMaxHtpasswdFile = 16 * 1024 * 1024;
constexpr std::string_view kUseInstead =
    "; use sha512-crypt ($6$), yescrypt ($y$) or bcrypt ($2b$/$2y$)";

// The crypt(3) base64 alphabet ("./0-9A-Za-z").
bool is_crypt64(char c) {
  return is_alpha(c) || is_digit(c) || c == '.' || c == '/';
}
bool all_crypt64(std::string_view s) {
  return std::all_of(s.begin(), s.end(), is_crypt64);
}

// ---- crypt -------------------------------------------------------------------------------

// crypt_rn with a per-thread work area (struct crypt_data is ~32 KiB: too big for a
// coroutine's stack, and zeroing a fresh one per call would be wasted work).
std::optional<std::string> run_crypt(const std::string& phrase, const std::string& setting) {
  thread_local std::unique_ptr<crypt_data> data = std::make_unique<crypt_data>();
  const char* out = crypt_rn(phrase.c_str(), setting.c_str(), data.get(), sizeof(crypt_data));
  if (out == nullptr) return std::nullopt;
  std::string result(out);
  explicit_bzero(data->output, sizeof(data->output));
  return result;
}

// Checks one htpasswd hash field; returns why it is refused, or an empty string.
std::string check_hash(std::string_view h) {
  const auto starts = [&](std::string_view p) { return h.substr(0, p.size()) == p; };
  const auto legacy = [](std::string_view what) {
    return "weak legacy hash format " + std::string(what) + " refused" + std::string(kUseInstead);
  };
  if (starts("$6$")) {
    // $6$[rounds=N$]salt$hash: salt 1..16, hash 86 characters.
    std::string_view rest = h.substr(3);
    if (rest.substr(0, 7) == "rounds=") {
      const std::size_t dollar = rest.find('$');
      const std::string_view digits =
          rest.substr(7, dollar == std::string_view::npos ? std::string_view::npos : dollar - 7);
      if (dollar == std::string_view::npos || digits.empty() || digits.size() > 9 ||
          !std::all_of(digits.begin(), digits.end(), is_digit)) {
        return "malformed sha512-crypt ($6$) hash";
      }
      rest.remove_prefix(dollar + 1);
    }
    const std::size_t dollar = rest.find('$');
    if (dollar == std::string_view::npos || dollar == 0 || dollar > 16 ||
        rest.size() - dollar - 1 != 86 || !all_crypt64(rest.substr(0, dollar)) ||
        !all_crypt64(rest.substr(dollar + 1))) {
      return "malformed sha512-crypt ($6$) hash";
    }
  } else if (starts("$y$") || starts("$gy$") || starts("$7$")) {
    // $id$params$salt$hash ($7$ packs params and salt into one field): hash is 43 characters.
    const std::string_view name = starts("$7$") ? "scrypt ($7$)" : "yescrypt ($y$)";
    std::vector<std::string_view> parts;
    std::string_view rest = h.substr(1);
    for (std::size_t at; (at = rest.find('$')) != std::string_view::npos;) {
      parts.push_back(rest.substr(0, at));
      rest.remove_prefix(at + 1);
    }
    parts.push_back(rest);
    const std::size_t want = starts("$7$") ? 3 : 4;
    bool ok = parts.size() == want && parts.back().size() == 43;
    for (std::size_t i = 1; ok && i < parts.size(); ++i) {
      ok = !parts[i].empty() && all_crypt64(parts[i]);
    }
    if (!ok) return "malformed " + std::string(name) + " hash";
  } else if (starts("$2b$") || starts("$2y$") || starts("$2a$")) {
    // $2b$NN$ + 22 salt + 31 hash characters; cost 04..31.
    const bool ok = h.size() == 60 && is_digit(h[4]) && is_digit(h[5]) && h[6] == '$' &&
                    (h[4] - '0') * 10 + (h[5] - '0') >= 4 &&
                    (h[4] - '0') * 10 + (h[5] - '0') <= 31 && all_crypt64(h.substr(7));
    if (!ok) return "malformed bcrypt hash";
  } else if (starts("$1$")) {
    return legacy("MD5-crypt ($1$)");
  } else if (starts("$apr1$")) {
    return legacy("Apache MD5 ($apr1$)");
  } else if (starts("{SHA}")) {
    return legacy("unsalted SHA-1 ({SHA})");
  } else if (starts("$5$")) {
    return legacy("sha256-crypt ($5$)");
  } else if (h.size() == 13 && all_crypt64(h)) {
    return legacy("DES crypt");
  } else if (h.size() == 20 && h[0] == '_' && all_crypt64(h.substr(1))) {
    return legacy("BSDi extended DES crypt");
  } else if (starts("$md5")) {
    return legacy("SunMD5 ($md5)");
  } else if (starts("$sha1$")) {
    return legacy("SHA1-crypt ($sha1$)");
  } else if (starts("$3$")) {
    return legacy("NT hash ($3$)");
  } else {
    // Never echo the field: a plaintext password pasted in by mistake must not reach a log.
    return "unsupported hash format (not a crypt(3) hash)" + std::string(kUseInstead);
  }
  // Accepted by shape; make sure this libxcrypt build has the method enabled.
  const std::string setting(h);
  if (crypt_checksalt(setting.c_str()) != CRYPT_SALT_OK) {
    return "hash method not enabled in this libxcrypt" + std::string(kUseInstead);
  }
  return {};
}

}  // namespace

// ---- Htpasswd ----------------------------------------------------------------------------

Result<Htpasswd> Htpasswd::load_file(const std::string& path) {
  const auto fail = [&path](int err, std::string_view what) {
    return Error{ErrorSource::kConfig, err, false,
                 path + ": " + std::string(what) + ": " + std::strerror(err)};
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(errno, "cannot open");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return fail(err, "cannot stat");
  }
  if (st.st_size > static_cast<off_t>(kMaxHtpasswdFile)) {
    ::close(fd);
    return Error::config(path + ": file larger than 16 MiB");
  }
  std::string contents;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return fail(err, "cannot read");
    }
    if (n == 0) break;
    contents.append(buf, static_cast<std::size_t>(n));
    if (contents.size() > kMaxHtpasswdFile) {
      ::close(fd);
      return Error::config(path + ": file larger than 16 MiB");
    }
  }
  ::close(fd);
  return parse(contents, path);
}

Result<Htpasswd> Htpasswd::parse(std::string_view contents, std::string_view source) {
  Htpasswd file;
  std::unordered_map<std::string_view, std::size_t> first_line;  // user -> line number
  const std::string* first_hash = nullptr;
  std::size_t first_hash_line = 0;
  std::size_t line_no = 0;
  const auto fail = [&](std::string_view reason) {
    return Error::config(std::string(source) + ":" + std::to_string(line_no) + ": " +
                         std::string(reason));
  };
  while (!contents.empty()) {
    ++line_no;
    const std::size_t nl = contents.find('\n');
    std::string_view line = contents.substr(0, nl);
    contents.remove_prefix(nl == std::string_view::npos ? contents.size() : nl + 1);
    if (line.size() > kMaxHtpasswdLine) return fail("line longer than 4096 bytes");
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    while (!line.empty() && is_ows(line.back())) line.remove_suffix(1);
    std::size_t lead = 0;
    while (lead < line.size() && is_ows(line[lead])) ++lead;
    if (lead == line.size() || line[lead] == '#') continue;

    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return fail("missing ':' between user and hash");
    const std::string_view user = line.substr(0, colon);
    const std::string_view hash = line.substr(colon + 1);
    if (user.empty()) return fail("empty user name");
    if (std::any_of(user.begin(), user.end(),
                    [](char c) { return is_ctl(static_cast<unsigned char>(c)); })) {
      return fail("user name contains a control character");
    }
    if (is_ows(user.front()) || is_ows(user.back())) {
      return fail("user name has leading or trailing whitespace");
    }
    if (hash.empty()) return fail("empty hash");
    if (const std::string why = check_hash(hash); !why.empty()) return fail(why);
    if (const auto seen = first_line.find(user); seen != first_line.end()) {
      return fail("duplicate user '" + std::string(user) + "' (first defined on line " +
                  std::to_string(seen->second) + ")");
    }
    const auto it = file.users_.emplace(std::string(user), std::string(hash)).first;
    first_line.emplace(it->first, line_no);
    if (first_hash == nullptr) {
      first_hash = &it->second;
      first_hash_line = line_no;
    }
  }
  if (file.users_.empty()) return Error::config(std::string(source) + ": no users defined");

  // The stand-in for unknown users: a hash of a random phrase with the first entry's method,
  // cost and salt, so a miss costs about what a hit costs.
  unsigned char random[16];
  if (!fill_random(random, sizeof(random))) {
    return Error::kernel(errno, "getrandom for the htpasswd dummy hash");
  }
  std::string phrase;
  for (unsigned char c : random) {
    phrase.push_back("0123456789abcdef"[c >> 4]);
    phrase.push_back("0123456789abcdef"[c & 15]);
  }
  auto dummy = run_crypt(phrase, *first_hash);
  wipe(phrase);
  if (!dummy) {
    line_no = first_hash_line;
    return fail("crypt(3) rejected this hash");
  }
  file.dummy_hash_ = std::move(*dummy);
  return file;
}

bool Htpasswd::verify(std::string_view user, std::string_view password) const {
  // crypt takes a C string: a NUL would silently truncate the password.
  if (password.find('\0') != std::string_view::npos) return false;
  const auto it = users_.find(user);
  const bool known = it != users_.end();
  const std::string& expected = known ? it->second : dummy_hash_;
  std::string phrase(password);
  const std::optional<std::string> computed = run_crypt(phrase, expected);
  wipe(phrase);
  const bool match = computed.has_value() && constant_time_equal(*computed, expected);
  return known && match;
}

}  // namespace ramjet::http::auth
