// Untrusted traceparent header values (W3C Trace Context). Beyond ASan: whatever parses
// is written back as version 00 and parses again to the same ids and sampled flag, and
// the writer's output is always the 55-character version 00 form.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "telemetry/trace_context.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ramjet::telemetry;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto tp = parse_traceparent(in);
  if (!tp) return 0;
  const std::string out = format_traceparent(*tp);
  if (out.size() != 55) __builtin_trap();
  auto again = parse_traceparent(out);
  if (!again || again->trace_id != tp->trace_id || again->parent_id != tp->parent_id ||
      again->sampled() != tp->sampled())
    __builtin_trap();
  return 0;
}
