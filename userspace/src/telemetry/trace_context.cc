#include "telemetry/trace_context.h"

namespace ramjet::telemetry {
namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // uppercase is not valid in a traceparent
}

template <std::size_t N>
bool read_hex(std::string_view s, std::array<std::uint8_t, N>& out) {
  if (s.size() != 2 * N) return false;
  bool all_zero = true;
  for (std::size_t i = 0; i < N; ++i) {
    int hi = hex_digit(s[2 * i]);
    int lo = hex_digit(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    all_zero = all_zero && out[i] == 0;
  }
  return !all_zero;  // an all-zero trace or parent id is invalid
}

}  // namespace

std::string to_hex(const std::uint8_t* bytes, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0x0f];
  }
  return out;
}

std::optional<TraceParent> parse_traceparent(std::string_view v) {
  // version "-" trace-id "-" parent-id "-" flags: 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55.
  // A later version may append fields after a "-" (W3C Trace Context 4.3); version 00
  // has exactly 55 characters.
  if (v.size() < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-') return std::nullopt;
  std::array<std::uint8_t, 1> version{};
  int vh = hex_digit(v[0]), vl = hex_digit(v[1]);
  if (vh < 0 || vl < 0) return std::nullopt;
  version[0] = static_cast<std::uint8_t>(vh << 4 | vl);
  if (version[0] == 0xff) return std::nullopt;
  if (version[0] == 0x00 ? v.size() != 55 : (v.size() > 55 && v[55] != '-')) return std::nullopt;
  TraceParent tp;
  std::array<std::uint8_t, 1> flags{};
  if (!read_hex(v.substr(3, 32), tp.trace_id) || !read_hex(v.substr(36, 16), tp.parent_id))
    return std::nullopt;
  int fh = hex_digit(v[53]), fl = hex_digit(v[54]);
  if (fh < 0 || fl < 0) return std::nullopt;
  flags[0] = static_cast<std::uint8_t>(fh << 4 | fl);
  // Of the flags only "sampled" is defined; a later version's other bits are not ours
  // to pass on as if we understood them.
  tp.flags = version[0] == 0x00 ? flags[0] : static_cast<std::uint8_t>(flags[0] & 0x01);
  return tp;
}

std::string format_traceparent(const TraceParent& tp) {
  std::string out = "00-";
  out += to_hex(tp.trace_id.data(), tp.trace_id.size());
  out += '-';
  out += to_hex(tp.parent_id.data(), tp.parent_id.size());
  out += '-';
  out += to_hex(&tp.flags, 1);
  return out;
}

}  // namespace ramjet::telemetry
