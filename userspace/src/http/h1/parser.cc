#include "http/h1/parser.h"

#include <algorithm>
#include <array>
#include <limits>

#include "http/h1/grammar.h"

namespace ramjet::http::h1 {

using namespace detail;

namespace {

// ---- Start lines and field values --------------------------------------------------------

enum class VersionParse : std::uint8_t { kHttp10, kHttp11, kMalformed, kUnsupported };

// RFC 9112 2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive.
VersionParse parse_version(std::string_view v) {
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || !is_digit(v[5]) || v[6] != '.' ||
      !is_digit(v[7])) {
    return VersionParse::kMalformed;
  }
  if (v[5] != '1') return VersionParse::kUnsupported;
  // RFC 9110 2.5: a higher minor version of a major we implement is read as the highest minor
  // we implement, so "HTTP/1.2" is HTTP/1.1.
  return v[7] == '0' ? VersionParse::kHttp10 : VersionParse::kHttp11;
}

// RFC 3986 reg-name = *( unreserved / pct-encoded / sub-delims ), here non-empty.
bool is_reg_name(std::string_view s) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (is_alpha(c) || is_digit(c)) continue;
    if (c == '%') {
      if (i + 2 >= s.size()) return false;
      if (hex_value(s[i + 1]) < 0 || hex_value(s[i + 2]) < 0) return false;
      i += 2;
      continue;
    }
    if (std::string_view("-._~!$&'()*+,;=").find(c) == std::string_view::npos) return false;
  }
  return true;
}

// uri-host [":" port]: an IPv6 literal in brackets or a reg-name (which covers IPv4). Used for
// CONNECT targets (port required, RFC 9112 3.2.3) and Host values (port optional).
bool is_authority(std::string_view s, bool port_required) {
  std::size_t host_end = 0;
  if (!s.empty() && s[0] == '[') {
    const std::size_t close = s.find(']');
    if (close == std::string_view::npos || close < 3) return false;
    bool colon = false;
    for (char c : s.substr(1, close - 1)) {
      if (c == ':') {
        colon = true;
      } else if (hex_value(c) < 0 && c != '.') {
        return false;
      }
    }
    if (!colon) return false;
    host_end = close + 1;
  } else {
    host_end = std::min(s.find(':'), s.size());
    if (!is_reg_name(s.substr(0, host_end))) return false;
  }
  std::string_view rest = s.substr(host_end);
  if (rest.empty()) return !port_required;
  if (rest[0] != ':') return false;
  rest.remove_prefix(1);
  if (rest.empty() || rest.size() > 5) return false;
  std::uint32_t port = 0;
  for (char c : rest) {
    if (!is_digit(c)) return false;
    port = port * 10 + static_cast<std::uint32_t>(c - '0');
  }
  return port <= 65535;
}

// absolute-URI starts with scheme ":" where scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
bool has_scheme(std::string_view s) {
  if (s.empty() || !is_alpha(s[0])) return false;
  for (std::size_t i = 1; i < s.size(); ++i) {
    const char c = s[i];
    if (c == ':') return true;
    if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.') return false;
  }
  return false;
}

// RFC 9110 8.6: Content-Length = 1*DIGIT, bounded by 2^63 - 1 so it fits every offset type.
// Lists ("5, 5") and signs are rejected: strictness beats the RFC's optional list recovery.
const char* parse_content_length(std::string_view v, std::uint64_t& out) {
  if (v.empty()) return "empty Content-Length";
  std::uint64_t n = 0;
  for (char c : v) {
    if (!is_digit(c)) return "invalid Content-Length";
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (n > (kMaxLength - d) / 10) return "Content-Length too large";
    n = n * 10 + d;
  }
  out = n;
  return nullptr;
}

// Transfer codings we can name. The proxy only decodes chunked; the others pass through, but
// an unknown one means we cannot tell what the peer will do with the framing (501).
bool is_known_coding(std::string_view c) {
  return iequals(c, "gzip") || iequals(c, "x-gzip") || iequals(c, "deflate") ||
         iequals(c, "compress") || iequals(c, "x-compress");
}

}  // namespace

// ---- Helpers -----------------------------------------------------------------------------

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

const Field* find_field(const Head& head, std::string_view name) {
  for (const Field& f : head.fields) {
    if (iequals(f.name, name)) return &f;
  }
  return nullptr;
}

bool lists_element(const Head& head, std::string_view name, std::string_view element) {
  for (const Field& f : head.fields) {
    if (!iequals(f.name, name)) continue;
    const bool absent =
        for_each_element(f.value, [&](std::string_view e) { return !iequals(e, element); });
    if (!absent) return true;
  }
  return false;
}

bool is_hop_by_hop(const Head& head, std::string_view name) {
  static constexpr std::string_view kHopByHop[] = {
      "connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade",
  };
  for (std::string_view h : kHopByHop) {
    if (iequals(name, h)) return true;
  }
  for (std::string_view t : head.connection_tokens) {
    if (iequals(name, t)) return true;
  }
  return false;
}

const char* to_string(BodyKind kind) {
  switch (kind) {
    case BodyKind::kNone:
      return "none";
    case BodyKind::kContentLength:
      return "content-length";
    case BodyKind::kChunked:
      return "chunked";
    case BodyKind::kUntilClose:
      return "until-close";
    case BodyKind::kTunnel:
      return "tunnel";
  }
  return "unknown";
}

void Head::clear() {
  kind = MessageKind::kRequest;
  version = Version::kHttp11;
  method = {};
  target = {};
  target_form = TargetForm::kOrigin;
  status_code = 0;
  reason = {};
  fields.clear();
  body = BodyKind::kNone;
  content_length = 0;
  keep_alive = false;
  transfer_codings.clear();
  connection_tokens.clear();
  upgrade = false;
  expect_continue = false;
}

// ---- HeadParser --------------------------------------------------------------------------

HeadParser::HeadParser(MessageKind kind, const Limits& limits, std::string_view request_method)
    : kind_(kind), limits_(limits) {
  reset(request_method);
}

void HeadParser::reset(std::string_view request_method) {
  request_was_head_ = request_method == "HEAD";
  request_was_connect_ = request_method == "CONNECT";
  phase_ = Phase::kStart;
  line_start_ = 0;
  scan_ = 0;
  base_ = 0;
  result_ = {};
}

HeadResult HeadParser::fail(int status, std::size_t offset, std::string_view reason) {
  phase_ = Phase::kError;
  result_.status = ParseStatus::kError;
  result_.consumed = 0;
  result_.error = {kind_ == MessageKind::kResponse ? 502 : status, offset, reason};
  return result_;
}

HeadResult HeadParser::parse(std::string_view buf, Head& head) {
  if (phase_ == Phase::kStart) {
    head.clear();
    head.kind = kind_;
    phase_ = Phase::kStartLine;
  } else if (address(buf.data()) != base_) {
    rebase(head.method, base_, buf.data());
    rebase(head.target, base_, buf.data());
    rebase(head.reason, base_, buf.data());
    for (Field& f : head.fields) {
      rebase(f.name, base_, buf.data());
      rebase(f.value, base_, buf.data());
    }
    for (std::string_view& t : head.connection_tokens) rebase(t, base_, buf.data());
    for (std::string_view& c : head.transfer_codings) rebase(c, base_, buf.data());
  }
  base_ = address(buf.data());
  if (phase_ == Phase::kDone || phase_ == Phase::kError) return result_;
  if (buf.size() < scan_) return fail(500, buf.size(), "buffer shrank between calls");

  const bool request = kind_ == MessageKind::kRequest;
  for (;;) {
    const bool start_line = phase_ == Phase::kStartLine;
    const LineScan s = scan_line(buf, line_start_, scan_,
                                 start_line ? limits_.max_start_line : kNoLimit, limits_.max_head);
    switch (s.fault) {
      case LineFault::kNone:
        break;
      case LineFault::kNeedMore:
        return {ParseStatus::kNeedMore, 0, {}};
      case LineFault::kBareLf:
        return fail(400, s.at, "bare LF (lines must end in CRLF)");
      case LineFault::kBareCr:
        return fail(400, s.at, "bare CR (not followed by LF)");
      case LineFault::kNul:
        return fail(400, s.at, "NUL byte in head");
      case LineFault::kLineTooLong:
        return fail(414, s.at, request ? "request-line too long" : "status-line too long");
      case LineFault::kTotalTooLong:
        return fail(431, s.at, "head too large");
    }
    const std::size_t begin = line_start_;
    const std::size_t end = s.at - 1;  // the CR
    line_start_ = scan_ = s.at + 1;

    if (start_line) {
      if (begin == end) {
        // RFC 9112 2.2: a server SHOULD ignore empty lines before the request-line (stray CRLF
        // after a previous body); they still count against max_head.
        if (request) continue;
        return fail(502, begin, "empty status-line");
      }
      const bool ok = request ? parse_request_line(buf, begin, end, head)
                              : parse_status_line(buf, begin, end, head);
      if (!ok) return result_;
      phase_ = Phase::kFields;
      continue;
    }
    if (begin == end) {
      if (!finish(buf, head)) return result_;
      phase_ = Phase::kDone;
      result_ = {ParseStatus::kDone, scan_, {}};
      return result_;
    }
    if (is_ws(buf[begin])) {
      // RFC 9112 5.2 / 2.2: obs-fold and whitespace after the start-line are rejected rather
      // than unfolded, since a peer that does not unfold would see a different field.
      return fail(400, begin,
                  head.fields.empty() ? "whitespace before the first field line"
                                      : "obs-fold (field line starting with whitespace)");
    }
    if (head.fields.size() >= limits_.max_fields) return fail(431, begin, "too many fields");
    Field f;
    Fault fault;
    if (!parse_field_line(buf, begin, end, f, fault)) return fail(400, fault.at, fault.reason);
    head.fields.push_back(f);
  }
}

// RFC 9112 3: request-line = method SP request-target SP HTTP-version, single SPs only.
bool HeadParser::parse_request_line(std::string_view buf, std::size_t begin, std::size_t end,
                                    Head& head) {
  const std::string_view line = buf.substr(begin, end - begin);
  std::size_t sp1 = 0;
  while (sp1 < line.size() && is_tchar(line[sp1])) ++sp1;
  if (sp1 == line.size()) return fail(400, begin + sp1, "missing request-target"), false;
  if (line[sp1] != ' ') return fail(400, begin + sp1, "invalid character in method"), false;
  if (sp1 == 0) return fail(400, begin, "empty method"), false;
  const std::size_t sp2 = line.rfind(' ');
  if (sp2 == sp1) return fail(400, end, "missing HTTP version"), false;

  // The version decides first: "GET / HTTP/1.1 " has a bad version, not a bad target.
  switch (parse_version(line.substr(sp2 + 1))) {
    case VersionParse::kHttp10:
      head.version = Version::kHttp10;
      break;
    case VersionParse::kHttp11:
      head.version = Version::kHttp11;
      break;
    case VersionParse::kMalformed:
      return fail(400, begin + sp2 + 1, "malformed HTTP version"), false;
    case VersionParse::kUnsupported:
      return fail(505, begin + sp2 + 1, "unsupported HTTP version"), false;
  }

  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (target.empty()) return fail(400, begin + sp1 + 1, "empty request-target"), false;
  for (std::size_t i = 0; i < target.size(); ++i) {
    const unsigned char c = uc(target[i]);
    const std::size_t at = begin + sp1 + 1 + i;
    if (c == ' ') return fail(400, at, "whitespace in request-target"), false;
    if (c < 0x21 || c > 0x7e) return fail(400, at, "invalid character in request-target"), false;
    if (c == '#') return fail(400, at, "fragment in request-target"), false;
  }

  // RFC 9112 3.2: the form is fixed by the method; a proxy routes on it, so no guessing.
  const std::size_t target_at = begin + sp1 + 1;
  if (method == "CONNECT") {
    if (!is_authority(target, true)) {
      return fail(400, target_at, "CONNECT target must be authority-form host:port"), false;
    }
    // Port 0 names no service (RFC 6335 6): refused here, before any lookup or connect.
    const std::size_t port_at = target.rfind(':') + 1;  // is_authority: digits follow
    if (target.find_first_not_of('0', port_at) == std::string_view::npos) {
      return fail(400, target_at + port_at, "CONNECT to port 0"), false;
    }
    head.target_form = TargetForm::kAuthority;
  } else if (target == "*") {
    if (method != "OPTIONS") return fail(400, target_at, "asterisk-form is for OPTIONS"), false;
    head.target_form = TargetForm::kAsterisk;
  } else if (target[0] == '/') {
    head.target_form = TargetForm::kOrigin;
  } else if (has_scheme(target)) {
    head.target_form = TargetForm::kAbsolute;
  } else {
    return fail(400, target_at, "invalid request-target form"), false;
  }
  head.method = method;
  head.target = target;
  return true;
}

// RFC 9112 4: status-line = HTTP-version SP status-code SP [ reason-phrase ]. A missing SP
// before an empty reason is tolerated: the reason carries no semantics and common servers omit
// it, and it cannot change framing.
bool HeadParser::parse_status_line(std::string_view buf, std::size_t begin, std::size_t end,
                                   Head& head) {
  const std::string_view line = buf.substr(begin, end - begin);
  switch (parse_version(line.substr(0, std::min<std::size_t>(8, line.size())))) {
    case VersionParse::kHttp10:
      head.version = Version::kHttp10;
      break;
    case VersionParse::kHttp11:
      head.version = Version::kHttp11;
      break;
    case VersionParse::kMalformed:
      return fail(400, begin, "malformed HTTP version"), false;
    case VersionParse::kUnsupported:
      return fail(505, begin, "unsupported HTTP version"), false;
  }
  if (line.size() < 12 || line[8] != ' ' || !is_digit(line[9]) || !is_digit(line[10]) ||
      !is_digit(line[11]) || (line.size() > 12 && line[12] != ' ')) {
    return fail(400, begin + std::min<std::size_t>(8, line.size()), "malformed status-line"), false;
  }
  const int code = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  if (code < 100 || code > 599) return fail(400, begin + 9, "status code out of range"), false;
  const std::string_view reason = line.size() > 12 ? line.substr(13) : line.substr(12);
  for (std::size_t i = 0; i < reason.size(); ++i) {
    if (!is_field_value_char(reason[i])) {
      return fail(400, begin + 13 + i, "invalid character in reason-phrase"), false;
    }
  }
  head.status_code = code;
  head.reason = reason;
  return true;
}

// Whole-head rules (RFC 9112 6.1-6.3, RFC 9110 7.2/7.6.1/10.1.1): framing, Host, Connection.
// Runs once over the field list, never over the bytes again.
bool HeadParser::finish(std::string_view buf, Head& head) {
  const bool request = kind_ == MessageKind::kRequest;
  const bool v11 = head.version == Version::kHttp11;
  const auto at = [&](const Field& f) {
    return static_cast<std::size_t>(f.name.data() - buf.data());
  };
  const std::size_t head_end = scan_ - 2;

  const Field* content_length = nullptr;
  const Field* second_content_length = nullptr;
  const Field* transfer_encoding = nullptr;
  const Field* host = nullptr;
  const Field* second_host = nullptr;
  const Field* bad_connection = nullptr;
  bool close = false;
  bool keep_alive_token = false;
  bool upgrade = false;
  bool expect_continue = false;
  for (const Field& f : head.fields) {
    if (iequals(f.name, "content-length")) {
      if (content_length == nullptr) {
        content_length = &f;
      } else if (second_content_length == nullptr) {
        second_content_length = &f;
      }
    } else if (iequals(f.name, "transfer-encoding")) {
      if (transfer_encoding == nullptr) transfer_encoding = &f;
    } else if (iequals(f.name, "host")) {
      if (host == nullptr) {
        host = &f;
      } else if (second_host == nullptr) {
        second_host = &f;
      }
    } else if (iequals(f.name, "connection")) {
      const bool ok = for_each_element(f.value, [&](std::string_view option) {
        if (option.empty()) return true;  // RFC 9110 5.6.1: empty list elements are ignored
        if (!is_token(option)) return false;
        head.connection_tokens.push_back(option);
        close = close || iequals(option, "close");
        keep_alive_token = keep_alive_token || iequals(option, "keep-alive");
        return true;
      });
      if (!ok && bad_connection == nullptr) bad_connection = &f;
    } else if (iequals(f.name, "upgrade")) {
      upgrade = true;
    } else if (iequals(f.name, "expect")) {
      for_each_element(f.value, [&](std::string_view e) {
        expect_continue = expect_continue || iequals(e, "100-continue");
        return true;
      });
    }
  }

  // Framing first: these are the smuggling vectors, and they decide where the next message
  // starts, so they win over every other complaint.
  if (content_length != nullptr && transfer_encoding != nullptr) {
    return fail(400, at(*content_length), "Content-Length with Transfer-Encoding"), false;
  }
  if (second_content_length != nullptr) {
    // RFC 9110 8.6 allows merging equal values; a proxy that merges while its peer does not is
    // a desync, so even equal duplicates are refused.
    return fail(400, at(*second_content_length), "duplicate Content-Length"), false;
  }
  std::uint64_t length = 0;
  if (content_length != nullptr) {
    if (const char* why = parse_content_length(content_length->value, length)) {
      return fail(400, at(*content_length), why), false;
    }
  }
  bool chunked_last = false;
  if (transfer_encoding != nullptr) {
    // RFC 9112 6.1: HTTP/1.0 has no chunked coding; its framing is faulty by definition.
    if (!v11) {
      return fail(400, at(*transfer_encoding), "Transfer-Encoding in an HTTP/1.0 message"), false;
    }
    // One list over every field line (RFC 9110 5.3): framing is decided from it, and so is the
    // Transfer-Encoding a forwarder sends, so the two can never disagree.
    bool chunked_seen = false;
    const Field* twice = nullptr;    // the line where chunked is applied a second time
    const Field* unknown = nullptr;  // the first line with a coding we cannot name
    for (const Field& f : head.fields) {
      if (!iequals(f.name, "transfer-encoding")) continue;
      const char* why = nullptr;
      for_each_element(f.value, [&](std::string_view coding) {
        // Empty elements and parameters are legal but unused; refusing them keeps every
        // recipient's reading of the coding list identical.
        if (coding.empty()) {
          why = "empty Transfer-Encoding element";
        } else if (coding.find(';') != std::string_view::npos) {
          why = "transfer-coding parameters are not supported";
        } else if (!is_token(coding)) {
          why = "invalid Transfer-Encoding";
        } else {
          const bool chunked = iequals(coding, "chunked");
          if (chunked && chunked_seen && twice == nullptr) twice = &f;
          chunked_seen = chunked_seen || chunked;
          if (!chunked && !is_known_coding(coding) && unknown == nullptr) unknown = &f;
          head.transfer_codings.push_back(coding);
        }
        return why == nullptr;
      });
      if (why != nullptr) return fail(400, at(f), why), false;
    }
    chunked_last = iequals(head.transfer_codings.back(), "chunked");
    // The framing faults come before the unknown coding: RFC 9112 6.3 says a request whose
    // final coding is not chunked MUST get 400, whatever the other codings are.
    if (twice != nullptr) return fail(400, at(*twice), "chunked applied more than once"), false;
    if (request && !chunked_last) {
      return fail(400, at(*transfer_encoding), "chunked is not the final transfer coding"), false;
    }
    // An unknown coding means we cannot tell what the peer will do with the framing.
    if (unknown != nullptr) return fail(501, at(*unknown), "unknown transfer coding"), false;
  }
  if (bad_connection != nullptr) {
    return fail(400, at(*bad_connection), "invalid Connection option"), false;
  }
  if (request) {
    // RFC 9112 3.2: exactly one Host in HTTP/1.1, and it must be a valid authority.
    if (second_host != nullptr) return fail(400, at(*second_host), "multiple Host fields"), false;
    if (host == nullptr && v11)
      return fail(400, head_end, "missing Host in HTTP/1.1 request"), false;
    if (host != nullptr && !host->value.empty() && !is_authority(host->value, false)) {
      return fail(400, at(*host), "invalid Host"), false;
    }
  }

  head.content_length = length;
  if (request) {
    head.body = transfer_encoding != nullptr ? BodyKind::kChunked
                : content_length != nullptr  ? BodyKind::kContentLength
                                             : BodyKind::kNone;
  } else {
    const int code = head.status_code;
    if (code == 101 || (request_was_connect_ && code >= 200 && code < 300)) {
      head.body = BodyKind::kTunnel;
    } else if (code < 200 || code == 204 || code == 304 || request_was_head_) {
      head.body = BodyKind::kNone;
    } else if (transfer_encoding != nullptr) {
      // RFC 9112 6.3 item 4: a response whose final coding is not chunked runs until close.
      head.body = chunked_last ? BodyKind::kChunked : BodyKind::kUntilClose;
    } else if (content_length != nullptr) {
      head.body = BodyKind::kContentLength;
    } else {
      head.body = BodyKind::kUntilClose;
    }
  }
  // RFC 9112 9.3: persistence by version default, overridden by Connection, and impossible
  // when the body or a tunnel runs to the close.
  head.keep_alive = !close && (v11 || keep_alive_token) && head.body != BodyKind::kUntilClose &&
                    head.body != BodyKind::kTunnel;
  // RFC 9110 7.8 / 10.1.1: HTTP/1.0 recipients ignore Upgrade and 100-continue.
  head.upgrade = upgrade && v11;
  head.expect_continue = request && v11 && expect_continue;
  return true;
}

}  // namespace ramjet::http::h1
