#include "http/auth/proxy_auth.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace ramjet::http::auth {
namespace {

using namespace std::chrono_literals;

// Passwords of testdata/users.htpasswd (test vectors only).
constexpr std::string_view kAlicePassword = "correct horse";  // $6$  openssl passwd -6
constexpr std::string_view kBobPassword = "yes crypt pw";     // $y$  mkpasswd -m yescrypt
constexpr std::string_view kCarolPassword = "bcrypt:pw";      // $2b$ mkpasswd -m bcrypt
constexpr std::string_view kDavePassword = "dave's 2y";       // $2y$ htpasswd -nbB

constexpr std::string_view kPsk = "k3y-0f-the-t3st-t3nant~";

std::filesystem::path testdata() {
#ifdef RAMJET_TESTDATA_DIR
  return std::filesystem::path(RAMJET_TESTDATA_DIR) / "http" / "auth" / "testdata";
#else
  return std::filesystem::path(__FILE__).parent_path() / "testdata";
#endif
}

std::string users_file() {
  return (testdata() / "users.htpasswd").string();
}

std::string base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < in.size(); i += 3) {
    const std::size_t n = std::min<std::size_t>(3, in.size() - i);
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

std::string basic(std::string_view user, std::string_view password) {
  return "Basic " + base64(std::string(user) + ":" + std::string(password));
}

// ---- Htpasswd: the three hash families ---------------------------------------------------

class HtpasswdTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto file = Htpasswd::load_file(users_file());
    ASSERT_TRUE(file.ok()) << file.error().message;
    file_ = new Htpasswd(std::move(*file));
  }
  static void TearDownTestSuite() {
    delete file_;
    file_ = nullptr;
  }
  static Htpasswd* file_;
};
Htpasswd* HtpasswdTest::file_ = nullptr;

TEST_F(HtpasswdTest, LoadsEveryUserSkippingCommentsAndBlankLines) {
  EXPECT_EQ(file_->size(), 4u);
}

TEST_F(HtpasswdTest, Sha512CryptGoodAndBadPassword) {
  EXPECT_TRUE(file_->verify("alice", kAlicePassword));
  EXPECT_FALSE(file_->verify("alice", "correct horsE"));
  EXPECT_FALSE(file_->verify("alice", ""));
}

TEST_F(HtpasswdTest, YescryptGoodAndBadPassword) {
  EXPECT_TRUE(file_->verify("bob", kBobPassword));
  EXPECT_FALSE(file_->verify("bob", "yes crypt pW"));
}

TEST_F(HtpasswdTest, Bcrypt2bGoodAndBadPassword) {
  EXPECT_TRUE(file_->verify("carol", kCarolPassword));  // ':' inside a password is fine
  EXPECT_FALSE(file_->verify("carol", "bcrypt:p"));
}

TEST_F(HtpasswdTest, Bcrypt2yGoodAndBadPassword) {
  EXPECT_TRUE(file_->verify("dave", kDavePassword));
  EXPECT_FALSE(file_->verify("dave", kAlicePassword));
}

TEST_F(HtpasswdTest, PasswordsAreNotSharedBetweenUsers) {
  EXPECT_FALSE(file_->verify("bob", kAlicePassword));
  EXPECT_FALSE(file_->verify("Alice", kAlicePassword));  // user names are case-sensitive
}

TEST_F(HtpasswdTest, UnknownUserIsRejected) {
  EXPECT_FALSE(file_->verify("mallory", kAlicePassword));
  EXPECT_FALSE(file_->verify("", ""));
}

TEST_F(HtpasswdTest, EmbeddedNulNeverTruncatesThePassword) {
  using namespace std::string_view_literals;
  EXPECT_FALSE(file_->verify("alice", "correct horse\0garbage"sv));
}

// ---- Htpasswd: refused files, exact messages ---------------------------------------------

struct BadFile {
  const char* file;
  const char* message;  // after "PATH:"
};

void PrintTo(const BadFile& b, std::ostream* os) {
  *os << b.file;
}

constexpr std::string_view kUse = "; use sha512-crypt ($6$), yescrypt ($y$) or bcrypt ($2b$/$2y$)";

class HtpasswdBadFileTest : public ::testing::TestWithParam<BadFile> {};

TEST_P(HtpasswdBadFileTest, NamesFileLineAndReason) {
  const BadFile& b = GetParam();
  const std::string path = (testdata() / b.file).string();
  auto file = Htpasswd::load_file(path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.error().source, ErrorSource::kConfig);
  std::string expected = path + ":" + b.message;
  if (expected.find("refused") != std::string::npos ||
      expected.find("unsupported") != std::string::npos) {
    expected += kUse;
  }
  EXPECT_EQ(file.error().message, expected);
}

INSTANTIATE_TEST_SUITE_P(
    Files, HtpasswdBadFileTest,
    ::testing::Values(
        BadFile{"bad_md5.htpasswd", "2: weak legacy hash format MD5-crypt ($1$) refused"},
        BadFile{"bad_des.htpasswd", "2: weak legacy hash format DES crypt refused"},
        BadFile{"bad_apr1.htpasswd", "1: weak legacy hash format Apache MD5 ($apr1$) refused"},
        BadFile{"bad_sha1.htpasswd", "1: weak legacy hash format unsalted SHA-1 ({SHA}) refused"},
        BadFile{"bad_sha256.htpasswd", "1: weak legacy hash format sha256-crypt ($5$) refused"},
        BadFile{"bad_plaintext.htpasswd", "1: unsupported hash format (not a crypt(3) hash)"},
        BadFile{"bad_missing_colon.htpasswd", "2: missing ':' between user and hash"},
        BadFile{"bad_duplicate.htpasswd", "3: duplicate user 'alice' (first defined on line 1)"},
        BadFile{"bad_empty_user.htpasswd", "1: empty user name"},
        BadFile{"bad_empty_hash.htpasswd", "1: empty hash"},
        BadFile{"bad_truncated.htpasswd", "1: malformed yescrypt ($y$) hash"},
        BadFile{"bad_no_users.htpasswd", " no users defined"}),
    [](const auto& info) {
      std::string name = info.param.file;
      return name.substr(4, name.find('.') - 4);
    });

struct BadText {
  const char* name;
  std::string text;
  std::string_view message;  // after "mem:"
};

void PrintTo(const BadText& b, std::ostream* os) {
  *os << b.name;
}

class HtpasswdBadTextTest : public ::testing::TestWithParam<BadText> {};

TEST_P(HtpasswdBadTextTest, NamesLineAndReason) {
  auto file = Htpasswd::parse(GetParam().text, "mem");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.error().message, "mem:" + std::string(GetParam().message));
}

// Shapes cut from real hashes (see testdata/users.htpasswd).
#define SHA512_OK                                                                    \
  "$6$zmL8Rz8FJHVqW1.K$qGrhgtYZ5QR1SfkKdZV3MkZmP2F8Nj5WJlXESsoi9cvj.zQrsy3/X0ojhnD6" \
  "lITWskKnSHwn8mTBdzMPkcA4z1"
#define BCRYPT_TAIL "kJIh29BAtaBLE2mcLlEwdek/SkcSejHj8jxef8pwTCaOeQm3JW4ry"

INSTANTIATE_TEST_SUITE_P(
    Texts, HtpasswdBadTextTest,
    ::testing::Values(
        BadText{"ctl_in_user", "a\x01:" SHA512_OK "\n",
                "1: user name contains a control character"},
        BadText{"space_before_user", " alice:" SHA512_OK "\n",
                "1: user name has leading or trailing whitespace"},
        BadText{"sha512_short", "a:" SHA512_OK "x\n", "1: malformed sha512-crypt ($6$) hash"},
        BadText{"sha512_bad_rounds", "a:$6$rounds=$salt$x\n",
                "1: malformed sha512-crypt ($6$) hash"},
        BadText{"sha512_bad_char", "a:$6$salt$" + std::string(85, 'a') + "!\n",
                "1: malformed sha512-crypt ($6$) hash"},
        BadText{"bcrypt_cost_too_low", "a:$2b$03$" BCRYPT_TAIL "\n", "1: malformed bcrypt hash"},
        BadText{"bcrypt_cost_too_high", "a:$2b$32$" BCRYPT_TAIL "\n", "1: malformed bcrypt hash"},
        BadText{"bcrypt_short", "a:$2b$05$kJIh29BAtaBLE2mcLlEwdek/SkcSejHj8jxef8pwTCaOeQm3JW4r",
                "1: malformed bcrypt hash"},
        BadText{"yescrypt_no_params",
                "a:$y$RH0yMLAgGIJvTt3w0MwN60$45DnyVYx1d.kA8HJ/mGPu5eA0EqowEgpBT9.qgigJ6D",
                "1: malformed yescrypt ($y$) hash"},
        BadText{"long_line", "a:" + std::string(5000, 'x'), "1: line longer than 4096 bytes"},
        BadText{"nt_hash", "a:$3$$8846f7eaee8fb117ad06bdd830b7586c",
                "1: weak legacy hash format NT hash ($3$) refused; use sha512-crypt ($6$), "
                "yescrypt ($y$) or bcrypt ($2b$/$2y$)"},
        BadText{"error_on_later_line", "# c\n\na:" SHA512_OK "\r\nb\r\n",
                "4: missing ':' between user and hash"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(HtpasswdParseTest, AcceptsCrlfTrailingWhitespaceAndNoFinalNewline) {
  auto file = Htpasswd::parse("# x\r\n\r\nalice:" SHA512_OK " \t\r\n", "mem");
  ASSERT_TRUE(file.ok()) << file.error().message;
  EXPECT_TRUE(file->verify("alice", kAlicePassword));
  auto no_newline = Htpasswd::parse("alice:" SHA512_OK, "mem");
  ASSERT_TRUE(no_newline.ok());
  EXPECT_EQ(no_newline->size(), 1u);
}

TEST(HtpasswdParseTest, MissingFileIsAConfigErrorWithErrno) {
  const std::string path = (testdata() / "does_not_exist.htpasswd").string();
  auto file = Htpasswd::load_file(path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.error().source, ErrorSource::kConfig);
  EXPECT_EQ(file.error().code, ENOENT);
  EXPECT_EQ(file.error().message, path + ": cannot open: No such file or directory");
}

TEST(HtpasswdParseTest, PlaintextPasswordInTheFileIsNeverEchoed) {
  auto file = Htpasswd::load_file((testdata() / "bad_plaintext.htpasswd").string());
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.error().message.find("hunter2"), std::string::npos);
}

// Every hash file under testdata/ is either the good one or refused (no stray files).
TEST(HtpasswdParseTest, EveryTestdataFileIsCovered) {
  for (const auto& entry : std::filesystem::directory_iterator(testdata())) {
    const std::string name = entry.path().filename().string();
    auto file = Htpasswd::load_file(entry.path().string());
    EXPECT_EQ(file.ok(), name == "users.htpasswd") << name;
  }
}

// ---- Proxy-Authorization parser ----------------------------------------------------------

struct HeaderCase {
  const char* name;
  std::string_view value;
  std::string_view reason;  // empty: valid
  std::size_t offset = 0;
  std::string_view user = {};      // Basic
  std::string_view password = {};  // Basic
  std::string_view key = {};       // Preshared
};

void PrintTo(const HeaderCase& c, std::ostream* os) {
  *os << c.name;
}

constexpr HeaderCase valid_basic(const char* name, std::string_view value, std::string_view user,
                                 std::string_view password) {
  return {name, value, {}, 0, user, password, {}};
}
constexpr HeaderCase valid_psk(const char* name, std::string_view value, std::string_view key) {
  return {name, value, {}, 0, {}, {}, key};
}
constexpr HeaderCase invalid(const char* name, std::string_view value, std::string_view reason,
                             std::size_t offset) {
  return {name, value, reason, offset};
}

const HeaderCase kHeaderCases[] = {
    // RFC 7617 section 2's example.
    valid_basic("rfc7617", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "Aladdin", "open sesame"),
    valid_basic("scheme_case_insensitive", "bAsIc QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "Aladdin",
                "open sesame"),
    valid_basic("ows_around_value", " \tBasic QWxhZGRpbjpvcGVuIHNlc2FtZQ== \t", "Aladdin",
                "open sesame"),
    valid_basic("several_spaces_after_scheme", "Basic   YWI6Yw==", "ab", "c"),
    valid_basic("one_pad", "Basic YWJjOmQ=", "abc", "d"),
    valid_basic("no_pad", "Basic YWJjOmRl", "abc", "de"),
    valid_basic("empty_password", "Basic YTo=", "a", ""),
    valid_basic("colon_in_password", "Basic dTpwOnE=", "u", "p:q"),
    valid_psk("preshared", "Preshared k3y-0f-the-t3st-t3nant~", "k3y-0f-the-t3st-t3nant~"),
    valid_psk("preshared_case_and_padding", "PRESHARED abc+/==", "abc+/=="),

    invalid("empty", "", "empty header value", 0),
    invalid("only_ows", "  \t ", "empty header value", 4),
    invalid("scheme_only", "Basic", "missing credentials after the auth scheme", 5),
    invalid("scheme_only_trailing_space", "Basic   ", "missing credentials after the auth scheme",
            5),
    invalid("tab_after_scheme", "Basic\tYWI6Yw==", "invalid character in auth scheme", 5),
    invalid("bad_scheme_char", "Ba@sic YWI6Yw==", "invalid character in auth scheme", 2),
    invalid("no_scheme", "=abc", "invalid character in auth scheme", 0),
    invalid("unsupported_scheme", "Bearer abc", "unsupported auth scheme", 0),
    invalid("digest_params", "Digest username=\"a\"", "unsupported auth scheme", 0),
    invalid("auth_params", "Basic realm=\"x\"", "credentials are not a token68", 12),
    invalid("two_tokens", "Basic YWI6Yw== YWI6Yw==", "unexpected data after the credentials", 14),
    invalid("comma_list", "Basic YWI6Yw==, Basic YWI6Yw==", "unexpected data after the credentials",
            14),
    invalid("data_after_padding", "Basic YQ=A", "credentials are not a token68", 9),
    invalid("ctl_in_token", "Basic YWI6\x01Yw==", "credentials are not a token68", 10),
    invalid("length_not_multiple_of_4", "Basic YQ=", "base64 length is not a multiple of 4", 9),
    invalid("unpadded", "Basic YWI6Yw", "base64 length is not a multiple of 4", 12),
    invalid("url_safe_alphabet", "Basic YQ-_", "invalid base64 character", 8),
    invalid("too_much_padding", "Basic Y===", "misplaced base64 padding", 7),
    invalid("noncanonical_one_pad", "Basic YTp=", "non-canonical base64 (nonzero padding bits)", 8),
    invalid("noncanonical_two_pad", "Basic YR==", "non-canonical base64 (nonzero padding bits)", 7),
    invalid("no_colon", "Basic YQ==", "credentials have no ':' after the user-id", 6),
    invalid("empty_user", "Basic OnB3", "empty user-id", 6),
    invalid("nul_in_password", "Basic YTpiAGM=", "credentials contain a control character", 6),
    invalid("del_in_user", "Basic YX86Yg==", "credentials contain a control character", 6),
    invalid("crlf_in_password", "Basic dXNlcjpwdw0K", "credentials contain a control character", 6),
    invalid("preshared_bad_char", "Preshared ab\"c", "credentials are not a token68", 12),
};

class HeaderParseTest : public ::testing::TestWithParam<HeaderCase> {};

TEST_P(HeaderParseTest, Table) {
  const HeaderCase& c = GetParam();
  const CredentialParse r = parse_proxy_authorization(c.value);
  if (!c.reason.empty()) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error.reason, c.reason);
    EXPECT_EQ(r.error.offset, c.offset);
    return;
  }
  ASSERT_TRUE(r.ok()) << r.error.reason << " at " << r.error.offset;
  if (!c.key.empty()) {
    const auto* psk = std::get_if<PresharedCredential>(&r.credential);
    ASSERT_NE(psk, nullptr);
    EXPECT_EQ(psk->key, c.key);
    return;
  }
  const auto* b = std::get_if<BasicCredential>(&r.credential);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->user, c.user);
  EXPECT_EQ(b->password, c.password);
}

INSTANTIATE_TEST_SUITE_P(Headers, HeaderParseTest, ::testing::ValuesIn(kHeaderCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(HeaderParseLimitsTest, BoundsEveryPart) {
  CredentialLimits limits;
  limits.max_value = 64;
  limits.max_user = 4;
  limits.max_password = 8;
  limits.max_key = 16;
  EXPECT_TRUE(parse_proxy_authorization(basic("abcd", "12345678"), limits).ok());
  EXPECT_EQ(parse_proxy_authorization(basic("abcde", "1"), limits).error.reason,
            "user-id too long");
  EXPECT_EQ(parse_proxy_authorization(basic("a", "123456789"), limits).error.reason,
            "password too long");
  EXPECT_EQ(parse_proxy_authorization(basic("a", std::string(40, 'x')), limits).error.reason,
            "credentials too long");
  EXPECT_EQ(parse_proxy_authorization("Basic " + std::string(59, 'A'), limits).error.reason,
            "header value too long");
  EXPECT_EQ(parse_proxy_authorization("Preshared " + std::string(17, 'k'), limits).error.reason,
            "pre-shared key too long");
}

TEST(HeaderParseTest, RoundTripsArbitraryUtf8Credentials) {
  const std::string user = "J\xc3\xb6rg";
  const std::string password = "p\xc3\xa4ss w:rd";
  const CredentialParse r = parse_proxy_authorization(basic(user, password));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::get<BasicCredential>(r.credential).user, user);
  EXPECT_EQ(std::get<BasicCredential>(r.credential).password, password);
}

TEST(ConstantTimeEqualTest, ComparesContentAndLength) {
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", std::string_view("abc\0", 4)));
  EXPECT_FALSE(constant_time_equal("abc", "ab"));
  EXPECT_FALSE(constant_time_equal("", "a"));
}

// ---- Authenticator -----------------------------------------------------------------------

AuthConfig both_schemes() {
  AuthConfig c;
  c.htpasswd_path = users_file();
  c.preshared_keys = {"another-tenant-key-0001", std::string(kPsk)};
  c.realm = "corp \"west\"";
  return c;
}

Authenticator make(AuthConfig config) {
  auto a = Authenticator::create(std::move(config));
  EXPECT_TRUE(a.ok()) << (a.ok() ? "" : a.error().message);
  return std::move(a).value();
}

TEST(AuthenticatorTest, ChallengeListsEnabledSchemesWithQuotedRealm) {
  EXPECT_EQ(make(both_schemes()).challenge(),
            "Basic realm=\"corp \\\"west\\\"\", charset=\"UTF-8\", "
            "Preshared realm=\"corp \\\"west\\\"\"");
  AuthConfig basic_only;
  basic_only.htpasswd_path = users_file();
  EXPECT_EQ(make(basic_only).challenge(), "Basic realm=\"ramjet\", charset=\"UTF-8\"");
  AuthConfig psk_only;
  psk_only.preshared_keys = {std::string(kPsk)};
  EXPECT_EQ(make(psk_only).challenge(), "Preshared realm=\"ramjet\"");
}

TEST(AuthenticatorTest, MissingCredentials) {
  const Authenticator a = make(both_schemes());
  EXPECT_EQ(a.check("").status, AuthStatus::kMissing);
  EXPECT_EQ(a.check("  ").status, AuthStatus::kMissing);
  EXPECT_EQ(a.stats().missing, 2u);
}

TEST(AuthenticatorTest, BasicForEveryHashFamily) {
  AuthConfig config = both_schemes();
  config.cache_max_entries = 0;  // every check runs crypt
  const Authenticator a = make(std::move(config));
  const std::pair<std::string_view, std::string_view> users[] = {{"alice", kAlicePassword},
                                                                 {"bob", kBobPassword},
                                                                 {"carol", kCarolPassword},
                                                                 {"dave", kDavePassword}};
  for (const auto& [user, password] : users) {
    const AuthResult ok = a.check(basic(user, password));
    EXPECT_EQ(ok.status, AuthStatus::kOk) << user;
    EXPECT_EQ(ok.user, user);
    const AuthResult bad = a.check(basic(user, std::string(password) + "x"));
    EXPECT_EQ(bad.status, AuthStatus::kInvalid) << user;
    EXPECT_EQ(bad.reason, "wrong user-id or password");
    EXPECT_TRUE(bad.user.empty());
  }
  // An unknown user gets the very same answer as a wrong password.
  const AuthResult unknown = a.check(basic("mallory", kAlicePassword));
  EXPECT_EQ(unknown.status, AuthStatus::kInvalid);
  EXPECT_EQ(unknown.reason, "wrong user-id or password");
  const AuthStats s = a.stats();
  EXPECT_EQ(s.ok, 4u);
  EXPECT_EQ(s.rejected, 5u);
  EXPECT_EQ(s.cache_hit + s.cache_miss, 0u);
}

TEST(AuthenticatorTest, PresharedKey) {
  const Authenticator a = make(both_schemes());
  const AuthResult ok = a.check("Preshared " + std::string(kPsk));
  EXPECT_EQ(ok.status, AuthStatus::kOk);
  EXPECT_EQ(ok.user, "psk");
  EXPECT_EQ(a.check("preshared another-tenant-key-0001").status, AuthStatus::kOk);
  const AuthResult prefix = a.check("Preshared " + std::string(kPsk.substr(0, 10)));
  EXPECT_EQ(prefix.status, AuthStatus::kInvalid);
  EXPECT_EQ(prefix.reason, "wrong pre-shared key");
  EXPECT_EQ(a.check("Preshared " + std::string(kPsk) + "x").status, AuthStatus::kInvalid);
}

TEST(AuthenticatorTest, SchemesNotConfiguredAreRejected) {
  AuthConfig psk_only;
  psk_only.preshared_keys = {std::string(kPsk)};
  const AuthResult basic_off = make(psk_only).check(basic("alice", kAlicePassword));
  EXPECT_EQ(basic_off.status, AuthStatus::kInvalid);
  EXPECT_EQ(basic_off.reason, "Basic scheme not enabled on this endpoint");

  AuthConfig basic_only;
  basic_only.htpasswd_path = users_file();
  const AuthResult psk_off = make(basic_only).check("Preshared " + std::string(kPsk));
  EXPECT_EQ(psk_off.status, AuthStatus::kInvalid);
  EXPECT_EQ(psk_off.reason, "Preshared scheme not enabled on this endpoint");
}

TEST(AuthenticatorTest, MalformedHeaderIsInvalidWithTheParserReason) {
  const Authenticator a = make(both_schemes());
  const AuthResult r = a.check("Basic YWI6Yw");
  EXPECT_EQ(r.status, AuthStatus::kInvalid);
  EXPECT_EQ(r.reason, "base64 length is not a multiple of 4");
  EXPECT_EQ(a.stats().malformed, 1u);
}

TEST(AuthenticatorTest, NoSecretInAnyReason) {
  const Authenticator a = make(both_schemes());
  const std::string secret = "s3cr3t-Pa55word";
  const std::string encoded = base64("alice:" + secret);
  const std::vector<std::string> headers = {
      basic("alice", secret),
      basic("mallory", secret),
      "Basic " + encoded.substr(0, encoded.size() - 1),  // broken padding
      "Basic " + base64("alice:" + secret + "\x01"),     // control character
      "Basic " + base64(secret),                         // no colon
      "Bearer " + secret,
      "Preshared " + secret,
      "Preshared " + secret + " trailing",
      "Preshared " + std::string(kPsk) + "!",  // near-miss of the real key
  };
  for (const std::string& h : headers) {
    const AuthResult r = a.check(h);
    ASSERT_EQ(r.status, AuthStatus::kInvalid) << r.reason;
    ASSERT_FALSE(r.reason.empty());
    EXPECT_EQ(r.reason.find(secret), std::string_view::npos) << r.reason;
    EXPECT_EQ(r.reason.find(encoded.substr(0, 8)), std::string_view::npos) << r.reason;
    EXPECT_EQ(r.reason.find(kPsk.substr(0, 8)), std::string_view::npos) << r.reason;
    EXPECT_TRUE(r.user.empty());
  }
  // Config errors name the index of a bad key, never the key.
  AuthConfig config;
  config.preshared_keys = {std::string(kPsk), "short-s3cr3t"};
  auto bad = Authenticator::create(config);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "proxy auth: preshared_keys[1]: shorter than 16 characters");
  config.preshared_keys = {"s3cr3t with space and long enough"};
  bad = Authenticator::create(config);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message,
            "proxy auth: preshared_keys[0]: not a token68 (A-Z a-z 0-9 - . _ ~ + / then '=' "
            "padding)");
}

TEST(AuthenticatorTest, CreateValidatesConfig) {
  AuthConfig none;
  auto a = Authenticator::create(none);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().message, "proxy auth: neither htpasswd nor preshared_keys is configured");

  AuthConfig realm_ctl;
  realm_ctl.preshared_keys = {std::string(kPsk)};
  realm_ctl.realm = "a\r\nb";
  a = Authenticator::create(realm_ctl);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().message, "proxy auth: realm contains a control character");

  AuthConfig bad_file;
  bad_file.htpasswd_path = (testdata() / "bad_md5.htpasswd").string();
  a = Authenticator::create(bad_file);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().source, ErrorSource::kConfig);
  EXPECT_EQ(a.error().message.rfind(*bad_file.htpasswd_path + ":2: ", 0), 0u);
}

TEST(AuthenticatorCacheTest, RepeatedHeaderIsServedFromTheCacheUntilTheTtl) {
  AuthConfig config = both_schemes();
  config.cache_ttl = 60s;
  const Authenticator a = make(std::move(config));
  const std::string header = basic("bob", kBobPassword);  // yescrypt: the slow one
  const auto t0 = std::chrono::steady_clock::time_point{} + 1000s;

  EXPECT_EQ(a.check(header, t0).status, AuthStatus::kOk);
  AuthStats s = a.stats();
  EXPECT_EQ(s.cache_miss, 1u);
  EXPECT_EQ(s.cache_hit, 0u);

  const AuthResult hit = a.check(header, t0 + 59s);
  EXPECT_EQ(hit.status, AuthStatus::kOk);
  EXPECT_EQ(hit.user, "bob");
  s = a.stats();
  EXPECT_EQ(s.cache_hit, 1u);
  EXPECT_EQ(s.ok, 2u);

  // A hit does not extend the entry: at the TTL crypt runs again (and re-caches).
  EXPECT_EQ(a.check(header, t0 + 60s).status, AuthStatus::kOk);
  s = a.stats();
  EXPECT_EQ(s.cache_hit, 1u);
  EXPECT_EQ(s.cache_miss, 2u);
  EXPECT_EQ(a.check(header, t0 + 61s).status, AuthStatus::kOk);
  EXPECT_EQ(a.stats().cache_hit, 2u);
}

TEST(AuthenticatorCacheTest, FailuresAndNearMissesAreNeverCached) {
  const Authenticator a = make(both_schemes());
  const auto now = std::chrono::steady_clock::now();
  const std::string wrong = basic("alice", "wrong");
  EXPECT_EQ(a.check(wrong, now).status, AuthStatus::kInvalid);
  EXPECT_EQ(a.check(wrong, now).status, AuthStatus::kInvalid);
  EXPECT_EQ(a.stats().cache_hit, 0u);

  ASSERT_EQ(a.check(basic("alice", kAlicePassword), now).status, AuthStatus::kOk);
  // Same credentials, different bytes: a different key, so crypt decides (and says no).
  EXPECT_EQ(a.check(basic("alice", std::string(kAlicePassword) + " "), now).status,
            AuthStatus::kInvalid);
  EXPECT_EQ(a.stats().cache_hit, 0u);
  // OWS around the value does not matter.
  EXPECT_EQ(a.check("  " + basic("alice", kAlicePassword) + " ", now).status, AuthStatus::kOk);
  EXPECT_EQ(a.stats().cache_hit, 1u);
}

TEST(AuthenticatorCacheTest, SizeIsBounded) {
  AuthConfig config = both_schemes();
  config.cache_max_entries = 2;
  const Authenticator a = make(std::move(config));
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(a.check(basic("alice", kAlicePassword), t0).status, AuthStatus::kOk);
  ASSERT_EQ(a.check(basic("carol", kCarolPassword), t0 + 1s).status, AuthStatus::kOk);
  ASSERT_EQ(a.check(basic("dave", kDavePassword), t0 + 2s).status, AuthStatus::kOk);
  EXPECT_EQ(a.stats().cache_evict, 1u);
  // alice expired first, so alice was evicted; carol and dave still hit.
  EXPECT_EQ(a.check(basic("carol", kCarolPassword), t0 + 3s).status, AuthStatus::kOk);
  EXPECT_EQ(a.check(basic("dave", kDavePassword), t0 + 3s).status, AuthStatus::kOk);
  EXPECT_EQ(a.stats().cache_hit, 2u);
  EXPECT_EQ(a.check(basic("alice", kAlicePassword), t0 + 3s).status, AuthStatus::kOk);
  EXPECT_EQ(a.stats().cache_hit, 2u);
}

TEST(AuthenticatorCacheTest, CheckIsSafeFromSeveralThreads) {
  const Authenticator a = make(both_schemes());
  const std::string header = basic("carol", kCarolPassword);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) EXPECT_EQ(a.check(header).status, AuthStatus::kOk);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(a.stats().ok, 200u);
  EXPECT_GE(a.stats().cache_hit, 196u);  // at most one miss per thread before the first insert
}

}  // namespace
}  // namespace ramjet::http::auth
