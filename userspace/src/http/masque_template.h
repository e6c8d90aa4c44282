// URI Templates of UDP proxying (RFC 9298 2, RFC 6570): the configured template of a
// connect-udp endpoint, checked once at load; a request path matched against it to find
// the UDP target; and a template expanded for a client that sends through another proxy.
//
// Only level-1 templates (simple string expansion, `{var}`) are accepted. RFC 9298 allows up
// to level 3 (`{?target_host,target_port}`), but level 1 covers the default template and
// every path-style deployment, and it keeps matching deterministic: a level-1 value is only
// unreserved characters and percent-encoded triplets, so a variable ends at the first other
// character, and the template is refused when the literal that follows a variable could
// itself be part of a value (see kAmbiguousVariableEnd).
//
// IPv6 targets arrive with their colons percent-encoded ("2001%3Adb8%3A%3A42", RFC 9298 3);
// a raw colon is not a level-1 value character, so such a request does not match.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/named_enum.h"
#include "ramjet/net.h"

namespace ramjet::http {

struct MasqueTemplateResult;

#define RAMJET_MASQUE_TEMPLATE_ERRORS(X)                                                       \
  /* The template (configuration): */                                                          \
  X(kEmptyTemplate, "empty_template")                                                          \
  X(kBadCharacter, "bad_character")       /* outside 0x21-0x7E, or not a template literal */   \
  X(kNotPathOrHttps, "not_path_or_https") /* neither "/..." nor "https://authority/..." */     \
  X(kEmptyAuthority, "empty_authority")   /* "https:///..." */                                 \
  X(kMissingPath, "missing_path")         /* absolute form without a path starting "/" */      \
  X(kVariableInAuthority, "variable_in_authority") /* variables belong in path or query */     \
  X(kFragment, "fragment")                         /* a "#" fragment */                        \
  X(kMalformedExpression, "malformed_expression")  /* unbalanced or nested braces */           \
  X(kUnsupportedOperator, "unsupported_operator")  /* {+x} {#x} {.x} {/x} {;x} {?x} {&x} */    \
  X(kMultipleVariables, "multiple_variables")      /* {a,b}: level 3 */                        \
  X(kUnsupportedModifier, "unsupported_modifier")  /* {a:3} {a*}: level 4 */                   \
  X(kBadVariableName, "bad_variable_name")                                                     \
  X(kDuplicateVariable, "duplicate_variable") /* target_host or target_port twice */           \
  X(kMissingTargetHost, "missing_target_host")                                                 \
  X(kMissingTargetPort, "missing_target_port")                                                 \
  X(kAmbiguousVariableEnd, "ambiguous_variable_end") /* a value could run into what follows */ \
  X(kBadPercentEncoding, "bad_percent_encoding")     /* "%" without two hex digits */          \
  /* A request matched against the template, or a target to expand: */                         \
  X(kPathMismatch, "path_mismatch") /* not this template's path (404, not 400) */              \
  X(kEmptyTargetHost, "empty_target_host")                                                     \
  X(kBadTargetHost, "bad_target_host") /* neither a DNS name nor an IP literal */              \
  X(kBadTargetPort, "bad_target_port") /* not a decimal number in 1..65535 */

RAMJET_DECLARE_NAMED_ENUM(TemplateError, RAMJET_MASQUE_TEMPLATE_ERRORS)

// RFC 9298 2: the template of clients that can only be given a proxy host and port, served
// at this path so that they interoperate.
inline constexpr std::string_view kDefaultMasqueUdpTemplate =
    "/.well-known/masque/udp/{target_host}/{target_port}/";

// The UDP target a request names.
struct TemplateMatch {
  bool ok = false;
  TemplateError error = TemplateError::kPathMismatch;  // !ok
  std::size_t offset = 0;                              // !ok: where in the request path
  std::string target_host;  // percent-decoded; an IPv6 literal without brackets
  std::uint16_t target_port = 0;
  std::optional<IpAddress> target_ip;  // set when target_host is an IP literal
};

struct TemplateExpansion {
  bool ok = false;
  TemplateError error = TemplateError::kBadTargetHost;  // !ok
  std::string path;  // path and query: HTTP/2 and HTTP/3 :path, or an origin-form target
  std::string uri;   // "https://authority" + path for absolute templates, else path
};

class MasqueTemplate {
 public:
  // The template text as configured.
  const std::string& text() const { return text_; }
  // The authority of an absolute template ("proxy.example:4443"), empty for a path.
  const std::string& authority() const { return authority_; }

  // Matches a request's path (with its query, as in :path or an origin-form target).
  // Authority and scheme are the caller's to check.
  [[nodiscard]] TemplateMatch match(std::string_view request_path) const;

  // The request path and URI that ask the proxy for `target_host`:`target_port`; other
  // variables of the template are undefined and expand to nothing (RFC 6570 2.3).
  [[nodiscard]] TemplateExpansion expand(std::string_view target_host,
                                         std::uint16_t target_port) const;

 private:
  friend MasqueTemplateResult parse_masque_template(std::string_view text);

  enum class Variable : std::uint8_t { kNone, kTargetHost, kTargetPort, kOther };
  // A literal (variable == kNone, `text` as written) or a variable (`text` its name).
  struct Part {
    Variable variable = Variable::kNone;
    std::string text;
  };

  std::string text_;
  std::string authority_;
  std::vector<Part> parts_;  // of the path and query; never two variables in a row
};

struct MasqueTemplateResult {
  std::optional<MasqueTemplate> value;                  // set when the template is valid
  TemplateError error = TemplateError::kEmptyTemplate;  // !value
  std::size_t offset = 0;                               // !value: where in the text
};

// Validates a configured template: a path ("/...") or an absolute https URI, level 1 only,
// with target_host and target_port each exactly once, in the path or query.
[[nodiscard]] MasqueTemplateResult parse_masque_template(std::string_view text);

}  // namespace ramjet::http
