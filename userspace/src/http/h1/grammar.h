// The HTTP/1 grammar both halves of the h1 parser share: character classes, view
// rebasing, line scanning and field lines. Internal to http/h1 (parser.cc parses heads,
// body.cc decodes bodies); the parser's interface is http/h1/parser.h.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>

#include "http/h1/parser.h"

namespace ramjet::http::h1::detail {

inline constexpr std::uint64_t kMaxLength = std::numeric_limits<std::int64_t>::max();  // 2^63 - 1
inline constexpr std::size_t kNoLimit = std::numeric_limits<std::size_t>::max();

// RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" /
// "_" / "`" / "|" / "~" / DIGIT / ALPHA. A table keeps the hot loops branch-light.
inline constexpr std::array<bool, 256> kTchar = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

inline unsigned char uc(char c) {
  return static_cast<unsigned char>(c);
}
inline bool is_tchar(char c) {
  return kTchar[uc(c)];
}
inline bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
inline bool is_ws(char c) {
  return c == ' ' || c == '\t';
}
inline bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
inline int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
// RFC 9110 5.5: field-vchar / SP / HTAB; obs-text (0x80-0xFF) is allowed, CTLs and DEL are not.
inline bool is_field_value_char(char c) {
  const unsigned char u = uc(c);
  return u == '\t' || (u >= 0x20 && u != 0x7f);
}
inline bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is_tchar(c)) return false;
  }
  return true;
}

inline char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
}

inline std::uintptr_t address(const char* p) {
  return reinterpret_cast<std::uintptr_t>(p);
}

// Moves a view from a buffer that was at `old_base` to the same offset in `new_base`: callers
// may grow (and so move) their buffer between calls.
inline void rebase(std::string_view& v, std::uintptr_t old_base, const char* new_base) {
  if (v.data() == nullptr) return;
  v = std::string_view(new_base + (address(v.data()) - old_base), v.size());
}

// ---- Lines -------------------------------------------------------------------------------

enum class LineFault : std::uint8_t {
  kNone,
  kNeedMore,
  kBareLf,
  kBareCr,
  kNul,
  kLineTooLong,
  kTotalTooLong,
};

struct LineScan {
  LineFault fault;
  std::size_t at;  // kNone: the LF ending the line; otherwise where it went wrong
};

// Scans for the CRLF ending the line that starts at `line_start`, from `scan` on; on kNeedMore
// `scan` remembers where to resume (a trailing CR is rescanned so its LF gets checked). Limits
// are checked per byte so an over-long partial line fails before it is complete.
inline LineScan scan_line(std::string_view buf, std::size_t line_start, std::size_t& scan,
                          std::size_t max_line, std::size_t max_total) {
  const std::size_t n = buf.size();
  const std::size_t line_limit =
      max_line >= kNoLimit - line_start ? kNoLimit : line_start + max_line;
  // Bytes above CR can end nothing and break no rule here, so the common case is one compare
  // per byte; everything else (and every limit) is decided in the slow path below.
  const std::size_t fast_end = std::min({n, max_total, line_limit});
  std::size_t i = scan;
  for (;;) {
    while (i < fast_end && uc(buf[i]) > '\r') ++i;
    if (i >= n) {
      scan = n;
      return {LineFault::kNeedMore, n};
    }
    if (i >= max_total) return {LineFault::kTotalTooLong, i};
    const char c = buf[i];
    if (c == '\n') {
      if (i == line_start || buf[i - 1] != '\r') return {LineFault::kBareLf, i};
      return {LineFault::kNone, i};
    }
    if (c == '\r') {
      if (i + 1 == n) {
        scan = i;
        return {LineFault::kNeedMore, i};
      }
      if (buf[i + 1] != '\n') return {LineFault::kBareCr, i};
      ++i;  // the LF is checked on the next turn
      continue;
    }
    if (c == '\0') return {LineFault::kNul, i};
    if (i >= line_limit) return {LineFault::kLineTooLong, i};
    ++i;  // HTAB and other controls are judged by the line parsers
  }
}

struct Fault {
  std::size_t at = 0;
  std::string_view reason;
};

// RFC 9112 5: field-line = field-name ":" OWS field-value OWS, over buf[begin, end) (no CRLF,
// no CR, no NUL: scan_line already refused those).
inline bool parse_field_line(std::string_view buf, std::size_t begin, std::size_t end, Field& out,
                             Fault& fault) {
  std::size_t i = begin;
  while (i < end && is_tchar(buf[i])) ++i;
  if (i == end) {
    fault = {i, "missing colon in field line"};
    return false;
  }
  if (buf[i] != ':') {
    // RFC 9112 5.1: no whitespace is allowed between the field name and colon; proxies that
    // strip it and servers that do not disagree about the name (a classic smuggling vector).
    fault = {i, is_ws(buf[i]) ? "whitespace between field name and colon"
                              : "invalid character in field name"};
    return false;
  }
  if (i == begin) {
    fault = {i, "empty field name"};
    return false;
  }
  out.name = buf.substr(begin, i - begin);
  std::size_t v = i + 1;
  std::size_t e = end;
  while (v < e && is_ws(buf[v])) ++v;
  while (e > v && is_ws(buf[e - 1])) --e;
  for (std::size_t k = v; k < e; ++k) {
    if (!is_field_value_char(buf[k])) {
      fault = {k, "invalid character in field value"};
      return false;
    }
  }
  out.value = buf.substr(v, e - v);
  return true;
}

}  // namespace ramjet::http::h1::detail
