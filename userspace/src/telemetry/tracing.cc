#include "telemetry/tracing.h"

#include <nlohmann/json.hpp>
#include <sys/random.h>

#include <algorithm>
#include <random>

#include "telemetry/audit_log.h"

namespace ramjet::telemetry {
namespace {

// Ids come from a per-thread generator seeded from getrandom: unpredictable enough for
// trace ids (W3C asks for randomness, not secrecy) and no system call per request.
std::mt19937_64& rng() {
  thread_local std::mt19937_64 gen = [] {
    std::uint64_t seed = 0;
    if (::getrandom(&seed, sizeof seed, 0) != sizeof seed) seed = std::random_device{}();
    return std::mt19937_64(seed);
  }();
  return gen;
}

template <std::size_t N>
void random_id(std::array<std::uint8_t, N>& out) {
  do {
    for (std::size_t i = 0; i < N; i += 8) {
      std::uint64_t r = rng()();
      std::copy_n(reinterpret_cast<const std::uint8_t*>(&r), std::min<std::size_t>(8, N - i),
                  out.begin() + static_cast<std::ptrdiff_t>(i));
    }
  } while (std::all_of(out.begin(), out.end(), [](std::uint8_t b) { return b == 0; }));
}

std::string unix_nanos(std::chrono::system_clock::time_point t) {
  return std::to_string(
      std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
}

nlohmann::json string_attribute(std::string_view key, std::string_view value) {
  return {{"key", key}, {"value", {{"stringValue", value}}}};
}

nlohmann::json int_attribute(std::string_view key, std::int64_t value) {
  // OTLP/JSON carries 64-bit integers as strings.
  return {{"key", key}, {"value", {{"intValue", std::to_string(value)}}}};
}

}  // namespace

void Span::add_hook(std::string_view hook, std::string_view decision,
                    std::chrono::steady_clock::time_point started) {
  if (!recording) return;
  const auto elapsed = std::chrono::steady_clock::now() - started;
  Child c;
  c.name = "hook " + std::string(hook);
  random_id(c.id);
  c.end = std::chrono::system_clock::now();
  c.start = c.end - std::chrono::duration_cast<std::chrono::system_clock::duration>(elapsed);
  c.decision = decision;
  hooks.push_back(std::move(c));
}

std::optional<Span> Tracer::begin(std::optional<std::string_view> traceparent,
                                  std::string_view name, bool& invalid) const {
  invalid = false;
  if (sink_ == nullptr) return std::nullopt;
  Span s;
  s.name = name;
  s.start = std::chrono::system_clock::now();
  random_id(s.id);
  std::optional<TraceParent> in;
  if (traceparent) {
    in = parse_traceparent(*traceparent);
    invalid = !in;
  }
  if (in) {
    s.trace_id = in->trace_id;
    s.parent = in->parent_id;
    s.flags = in->flags;
    s.recording = in->sampled();  // the parent's sampling decision stands
  } else {
    random_id(s.trace_id);
    s.recording = sample_ >= 1.0 || (sample_ > 0.0 &&
                                     std::uniform_real_distribution<double>(0.0, 1.0)(rng()) < sample_);
    s.flags = s.recording ? 0x01 : 0x00;
  }
  return s;
}

void Tracer::end(Span& span, const ConnectionInfo& info) const {
  if (sink_ == nullptr || !span.recording) return;
  sink_->write(encode_span_line(span, info, std::chrono::system_clock::now()));
}

std::string encode_span_line(const Span& span, const ConnectionInfo& info,
                             std::chrono::system_clock::time_point end) {
  using nlohmann::json;
  const std::string trace_id = to_hex(span.trace_id.data(), span.trace_id.size());
  const std::string span_id = to_hex(span.id.data(), span.id.size());

  json attributes = json::array();
  attributes.push_back(int_attribute("ramjet.flow_id", static_cast<std::int64_t>(info.id)));
  attributes.push_back(string_attribute("ramjet.endpoint", info.endpoint));
  attributes.push_back(string_attribute("client.address", info.client.ip().to_string()));
  attributes.push_back(int_attribute("client.port", info.client.port()));
  for (const auto& [key, value] : span.attributes) attributes.push_back(string_attribute(key, value));
  if (span.status != 0) attributes.push_back(int_attribute("http.response.status_code", span.status));

  json root{{"traceId", trace_id},
            {"spanId", span_id},
            {"name", span.name},
            {"kind", 2},  // SPAN_KIND_SERVER
            {"startTimeUnixNano", unix_nanos(span.start)},
            {"endTimeUnixNano", unix_nanos(end)},
            {"attributes", std::move(attributes)},
            // STATUS_CODE_ERROR for answers the server failed (5xx) or none at all;
            // unset otherwise (OpenTelemetry's HTTP server convention).
            {"status", span.status >= 500 || span.status == 0 ? json{{"code", 2}} : json::object()}};
  if (span.parent) root["parentSpanId"] = to_hex(span.parent->data(), span.parent->size());
  if (span.flags != 0) root["flags"] = span.flags;

  json spans = json::array();
  spans.push_back(std::move(root));
  for (const Span::Child& c : span.hooks) {
    spans.push_back({{"traceId", trace_id},
                     {"spanId", to_hex(c.id.data(), c.id.size())},
                     {"parentSpanId", span_id},
                     {"name", c.name},
                     {"kind", 1},  // SPAN_KIND_INTERNAL
                     {"startTimeUnixNano", unix_nanos(c.start)},
                     {"endTimeUnixNano", unix_nanos(c.end)},
                     {"attributes", json::array({string_attribute("ramjet.hook.decision", c.decision)})}});
  }
  json line{
      {"resourceSpans",
       json::array({{{"resource",
                      {{"attributes", json::array({string_attribute("service.name", "ramjetd")})}}},
                     {"scopeSpans",
                      json::array({{{"scope", {{"name", "ramjet"}}}, {"spans", std::move(spans)}}})}}})}};
  // Invalid UTF-8 in a name or value (a request target is raw bytes) is replaced, so
  // every line parses.
  std::string out = line.dump(-1, ' ', false, json::error_handler_t::replace);
  out += '\n';
  return out;
}

Tracer& tracer() {
  static Tracer t;
  return t;
}

}  // namespace ramjet::telemetry
