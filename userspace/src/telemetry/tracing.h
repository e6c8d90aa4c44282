// Trace context (W3C Trace Context, level 1) and request spans.
//
// With telemetry.tracing.path set, every HTTP request and tunnel the engine serves
// gets a span: it continues the client's trace when the request carries a valid
// `traceparent` (its sampled flag decides whether the span is written), or starts a
// new one with probability telemetry.tracing.sample. The request goes upstream with
// a `traceparent` naming our span as the parent (`tracestate` passes untouched), so
// the origin's spans hang below ours. An invalid `traceparent` is removed, with its
// `tracestate`, as the specification asks, and the request is treated as having none.
//
// A finished sampled span is written as one line of OpenTelemetry's JSON encoding
// (an OTLP ExportTraceServiceRequest: resourceSpans/scopeSpans/spans), with the hooks
// that ran for the request as child spans, so a collector's file receiver (otlpjsonfile)
// reads the file as it is. The line goes through an AuditLog writer: a worker only
// queues it. With tracing off nothing here runs and requests are forwarded as they came.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ramjet/hooks/connection.h"
#include "telemetry/trace_context.h"

namespace ramjet::telemetry {

class AuditLog;

// One request's or tunnel's span while it runs.
struct Span {
  TraceId trace_id{};
  SpanId id{};
  std::optional<SpanId> parent;  // the client's span, when it sent a traceparent
  std::uint8_t flags = 0;
  bool recording = false;        // sampled: written when it ends
  std::string name;              // "GET", "CONNECT", ...
  std::chrono::system_clock::time_point start;
  int status = 0;                // the status the client got (0: none was sent)

  struct Child {
    std::string name;  // "hook http.handle_request"
    SpanId id{};
    std::chrono::system_clock::time_point start;
    std::chrono::system_clock::time_point end;
    std::string decision;
  };
  std::vector<Child> hooks;
  std::vector<std::pair<std::string, std::string>> attributes;  // string-valued

  // The traceparent a request carries upstream: our trace, our span as its parent.
  std::string traceparent() const { return format_traceparent({trace_id, id, flags}); }
  // A hook that ran for this span, from `started` (steady clock) until now.
  void add_hook(std::string_view hook, std::string_view decision,
                std::chrono::steady_clock::time_point started);
};

class Tracer {
 public:
  // `sink` null: tracing off. `sample` is the share of requests without a trace
  // context that start a sampled trace.
  void configure(AuditLog* sink, double sample) {
    sink_ = sink;
    sample_ = sample;
  }
  bool enabled() const { return sink_ != nullptr; }

  // A request arrived with `traceparent` (nullopt when it had none). Returns the
  // span to run it under, nullopt when tracing is off. `invalid` is set when the
  // header was there but unusable (the caller removes it and tracestate).
  std::optional<Span> begin(std::optional<std::string_view> traceparent, std::string_view name,
                            bool& invalid) const;
  // Writes a recording span (and its hook children) with the flow's facts.
  void end(Span& span, const ConnectionInfo& info) const;

 private:
  AuditLog* sink_ = nullptr;
  double sample_ = 0.0;
};

// The daemon's tracer, configured once at start.
Tracer& tracer();

// One line (ending in '\n') holding `span` and its children in OTLP/JSON.
std::string encode_span_line(const Span& span, const ConnectionInfo& info,
                             std::chrono::system_clock::time_point end);

}  // namespace ramjet::telemetry
