#include "http/masque_template.h"

#include <algorithm>
#include <charconv>

namespace ramjet::http {

namespace {

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// RFC 3986 unreserved: what a level-1 expansion leaves as is (RFC 6570 3.2.2).
bool is_unreserved(char c) {
  return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_pct_triplet(std::string_view s, std::size_t at) {
  return at + 2 < s.size() && s[at] == '%' && hex_digit(s[at + 1]) >= 0 &&
         hex_digit(s[at + 2]) >= 0;
}

char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](char x, char y) { return ascii_lower(x) == ascii_lower(y); });
}

// RFC 6570 2.1: characters a literal may not contain (besides CTL and SP, refused earlier,
// and the braces and "%", handled by the caller).
bool is_forbidden_literal(char c) {
  return std::string_view("\"'<>\\^`|").find(c) != std::string_view::npos;
}

// RFC 6570 2.3: varname = varchar *( ["."] varchar ), varchar = ALPHA / DIGIT / "_" /
// pct-encoded.
bool is_varname(std::string_view name) {
  if (name.empty() || name.front() == '.' || name.back() == '.') return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (is_alnum(c) || c == '_') continue;
    if (c == '.' && name[i + 1] != '.') continue;
    if (is_pct_triplet(name, i)) {
      i += 2;
      continue;
    }
    return false;
  }
  return true;
}

// Percent-decodes a level-1 value; false on a "%" without two hex digits.
bool pct_decode(std::string_view in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (!is_pct_triplet(in, i)) return false;
    out.push_back(static_cast<char>(hex_digit(in[i + 1]) * 16 + hex_digit(in[i + 2])));
    i += 2;
  }
  return true;
}

// RFC 6570 3.2.2 simple string expansion: everything but unreserved is percent-encoded.
void pct_encode(std::string_view in, std::string& out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char c : in) {
    if (is_unreserved(c)) {
      out.push_back(c);
    } else {
      const auto b = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 0xf]);
    }
  }
}

// A DNS name as a UDP target: LDH labels (plus "_", which real names carry) of 1..63 bytes,
// 253 in all, an optional final dot; a last label of digits only would be a mistyped IPv4
// address, never a name that resolves (RFC 3696 2).
bool is_dns_name(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return false;
  std::size_t label = 0;
  bool all_digits = true;
  for (std::size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '.') {
      if (label == 0 || label > 63) return false;
      if (i == name.size()) return !all_digits;
      label = 0;
      all_digits = true;
      continue;
    }
    const char c = name[i];
    if (!is_alnum(c) && c != '-' && c != '_') return false;
    all_digits = all_digits && c >= '0' && c <= '9';
    ++label;
  }
  return true;
}

// Validates a decoded target host; an IPv6 literal may come with or without brackets and
// is returned without them. Zone identifiers ("fe80::1%eth0") are refused: they name an
// interface of the client's host, which means nothing on the proxy.
std::optional<TemplateError> check_target_host(std::string_view host, std::string& bare,
                                               std::optional<IpAddress>& ip) {
  if (host.empty()) return TemplateError::kEmptyTargetHost;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    ip = IpAddress::parse(host.substr(1, host.size() - 2));
    if (!ip || !ip->is_v6()) return TemplateError::kBadTargetHost;
    bare = host.substr(1, host.size() - 2);
    return std::nullopt;
  }
  ip = IpAddress::parse(host);
  if (!ip && !is_dns_name(host)) return TemplateError::kBadTargetHost;
  bare = host;
  return std::nullopt;
}

bool parse_port(std::string_view s, std::uint16_t& port) {
  if (s.empty() || s.size() > 5) return false;
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || value == 0 || value > 65535) {
    return false;
  }
  port = static_cast<std::uint16_t>(value);
  return true;
}

MasqueTemplateResult refuse(TemplateError error, std::size_t offset) {
  MasqueTemplateResult r;
  r.error = error;
  r.offset = offset;
  return r;
}

}  // namespace

MasqueTemplateResult parse_masque_template(std::string_view text) {
  if (text.empty()) return refuse(TemplateError::kEmptyTemplate, 0);
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] < 0x21 || text[i] > 0x7e) return refuse(TemplateError::kBadCharacter, i);
  }
  MasqueTemplate t;
  t.text_ = text;
  std::size_t path_start = 0;
  if (text.front() != '/') {
    constexpr std::string_view kHttps = "https://";
    if (!iequals(text.substr(0, kHttps.size()), kHttps)) {
      return refuse(TemplateError::kNotPathOrHttps, 0);
    }
    path_start = text.find('/', kHttps.size());
    const std::string_view authority =
        text.substr(kHttps.size(), std::min(path_start, text.size()) - kHttps.size());
    const std::size_t odd = authority.find_first_of("{}?#");
    if (odd != std::string_view::npos) {
      return refuse(authority[odd] == '{' || authority[odd] == '}'
                        ? TemplateError::kVariableInAuthority
                        : TemplateError::kMissingPath,
                    kHttps.size() + odd);
    }
    if (path_start == std::string_view::npos) {
      return refuse(TemplateError::kMissingPath, text.size());
    }
    if (authority.empty()) return refuse(TemplateError::kEmptyAuthority, kHttps.size());
    t.authority_ = authority;
  }

  using Variable = MasqueTemplate::Variable;
  int hosts = 0;
  int ports = 0;
  for (std::size_t i = path_start; i < text.size();) {
    const char c = text[i];
    if (c == '{') {
      const std::size_t close = text.find_first_of("{}", i + 1);
      if (close == std::string_view::npos || text[close] == '{') {
        return refuse(TemplateError::kMalformedExpression, i);
      }
      const std::string_view inner = text.substr(i + 1, close - i - 1);
      if (!inner.empty() && std::string_view("+#./;?&=,!@|").find(inner[0]) != inner.npos) {
        return refuse(TemplateError::kUnsupportedOperator, i + 1);
      }
      if (inner.find(',') != inner.npos) return refuse(TemplateError::kMultipleVariables, i);
      if (inner.find_first_of(":*") != inner.npos) {
        return refuse(TemplateError::kUnsupportedModifier, i);
      }
      if (!is_varname(inner)) return refuse(TemplateError::kBadVariableName, i + 1);
      // Two values in a row could be cut anywhere: nothing says where the first ends.
      if (!t.parts_.empty() && t.parts_.back().variable != Variable::kNone) {
        return refuse(TemplateError::kAmbiguousVariableEnd, i);
      }
      Variable v = Variable::kOther;
      if (inner == "target_host") {
        v = Variable::kTargetHost;
        ++hosts;
      } else if (inner == "target_port") {
        v = Variable::kTargetPort;
        ++ports;
      }
      if (hosts > 1 || ports > 1) return refuse(TemplateError::kDuplicateVariable, i);
      t.parts_.push_back({v, std::string(inner)});
      i = close + 1;
      continue;
    }
    if (c == '}') return refuse(TemplateError::kMalformedExpression, i);
    if (c == '#') return refuse(TemplateError::kFragment, i);
    if (is_forbidden_literal(c)) return refuse(TemplateError::kBadCharacter, i);
    if (c == '%' && !is_pct_triplet(text, i)) {
      return refuse(TemplateError::kBadPercentEncoding, i);
    }
    // A value runs over unreserved characters and triplets, so the literal after a
    // variable must start with something else for the value's end to be known.
    const bool after_variable = !t.parts_.empty() && t.parts_.back().variable != Variable::kNone;
    if (after_variable && (is_unreserved(c) || c == '%')) {
      return refuse(TemplateError::kAmbiguousVariableEnd, i);
    }
    if (t.parts_.empty() || t.parts_.back().variable != Variable::kNone) t.parts_.push_back({});
    t.parts_.back().text.push_back(c);
    ++i;
  }
  if (hosts == 0) return refuse(TemplateError::kMissingTargetHost, text.size());
  if (ports == 0) return refuse(TemplateError::kMissingTargetPort, text.size());
  MasqueTemplateResult r;
  r.value = std::move(t);
  return r;
}

TemplateMatch MasqueTemplate::match(std::string_view path) const {
  TemplateMatch m;
  const auto fail = [&](TemplateError error, std::size_t offset) {
    m.ok = false;
    m.error = error;
    m.offset = offset;
    m.target_host.clear();
    m.target_ip.reset();
    return m;
  };
  std::size_t at = 0;
  std::string_view host;
  std::size_t host_at = 0;
  std::string_view port;
  std::size_t port_at = 0;
  for (const Part& part : parts_) {
    if (part.variable == Variable::kNone) {
      if (path.substr(at, part.text.size()) != part.text) {
        return fail(TemplateError::kPathMismatch, at);
      }
      at += part.text.size();
      continue;
    }
    std::size_t end = at;
    while (end < path.size() && (is_unreserved(path[end]) || path[end] == '%')) ++end;
    const std::string_view value = path.substr(at, end - at);
    if (part.variable == Variable::kTargetHost) {
      host = value;
      host_at = at;
    } else if (part.variable == Variable::kTargetPort) {
      port = value;
      port_at = at;
    }
    at = end;
  }
  if (at != path.size()) return fail(TemplateError::kPathMismatch, at);

  std::string decoded;
  if (!pct_decode(host, decoded)) return fail(TemplateError::kBadPercentEncoding, host_at);
  if (const auto host_error = check_target_host(decoded, m.target_host, m.target_ip)) {
    return fail(*host_error, host_at);
  }
  if (!pct_decode(port, decoded)) return fail(TemplateError::kBadPercentEncoding, port_at);
  if (!parse_port(decoded, m.target_port)) return fail(TemplateError::kBadTargetPort, port_at);
  m.ok = true;
  return m;
}

TemplateExpansion MasqueTemplate::expand(std::string_view target_host,
                                         std::uint16_t target_port) const {
  TemplateExpansion x;
  std::string bare;
  std::optional<IpAddress> ip;
  if (const auto host_error = check_target_host(target_host, bare, ip)) {
    x.error = *host_error;
    return x;
  }
  if (target_port == 0) {
    x.error = TemplateError::kBadTargetPort;
    return x;
  }
  for (const Part& part : parts_) {
    switch (part.variable) {
      case Variable::kNone:
        x.path += part.text;
        break;
      case Variable::kTargetHost:
        pct_encode(bare, x.path);
        break;
      case Variable::kTargetPort:
        x.path += std::to_string(target_port);
        break;
      case Variable::kOther:
        break;
    }
  }
  x.uri = authority_.empty() ? x.path : "https://" + authority_ + x.path;
  x.ok = true;
  return x;
}

}  // namespace ramjet::http
