// W3C Trace Context level 1: the traceparent header's value, read and written. Kept
// apart from the spans (tracing.h) so the fuzz target links this alone.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ramjet::telemetry {

using TraceId = std::array<std::uint8_t, 16>;
using SpanId = std::array<std::uint8_t, 8>;

// A `traceparent` value: version 00 (later versions are read as 00 reads them).
struct TraceParent {
  TraceId trace_id{};
  SpanId parent_id{};
  std::uint8_t flags = 0;
  bool sampled() const { return (flags & 0x01) != 0; }
};

// Parses a traceparent header value; nullopt when it is not valid (wrong length or
// separators, uppercase or non-hex digits, version ff, an all-zero id).
std::optional<TraceParent> parse_traceparent(std::string_view value);
// "00-<trace id>-<parent id>-<flags>", lowercase hex.
std::string format_traceparent(const TraceParent& tp);
std::string to_hex(const std::uint8_t* bytes, std::size_t n);

}  // namespace ramjet::telemetry
