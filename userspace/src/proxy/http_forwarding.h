// What the HTTP on-ramps (HTTP/1.1 and HTTP/2) share about forwarding a message and
// answering one themselves: which received fields never leave the proxy, how the
// end-to-end fields go out (Via merged), and the RFC 9209 Proxy-Status of an error.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "http/h1/parser.h"
#include "http/h2/message.h"
#include "proxy/egress_chain.h"
#include "ramjet/hooks/http.h"
#include "telemetry/tracing.h"

namespace ramjet::proxy {

inline constexpr std::string_view kVia = "1.1 ramjet";

// An authority as a request names it (a Host field, an :authority, the authority of an
// absolute-form target): host[:port], the port `default_port` when it has none. nullopt
// when it is none, or carries userinfo.
std::optional<HostPort> parse_authority(std::string_view a, std::uint16_t default_port);

// `a` as Host or :authority carries it (RFC 9110 7.2, RFC 3986 3.2.2): without the port
// when it is the scheme's `default_port`, an IPv6 literal in brackets either way.
std::string authority_value(const HostPort& a, std::uint16_t default_port);

// HTTP status for an egress failure (RFC 9209 section 2.3 gives the pairing).
int status_for(const EgressError& e);

// An sf-string for Proxy-Status details: printable ASCII, with \ and " escaped.
std::string sf_string(std::string_view s);

// The Proxy-Status field value for an error the proxy answers itself.
std::string proxy_status_value(std::string_view error_type, std::string_view details);

// Fields a proxy never copies from a received head: framing and hop-by-hop fields (rebuilt
// by forward_framing and the session), Trailer, and the proxy's own authentication fields.
bool never_forwarded(const http::h1::Head& head, std::string_view name);

// A head's end-to-end fields as they leave the proxy: Proxy-Authorization never
// (it was for us), and every Via merged into one with ours appended (RFC 9110 7.6.3).
void append_forwarded_fields(std::string& out, const HttpHeaders& headers);
// Trailer fields that may travel on (RFC 9110 6.5.1): none that frames, routes or
// authenticates the message, nor any connection-specific one. `name` is lowercase.
bool trailer_forwarded(std::string_view name);

// The same as HTTP/2 fields (names are lowercased when the frame is built).
std::vector<http::h2::Field> h2_forwarded_fields(const HttpHeaders& headers);

// The Alt-Svc value (RFC 7838) a reverse-proxy endpoint with `quic:` adds to its HTTP/1.1
// and HTTP/2 responses: h3 on the port its QUIC listener bound, for quic.alt_svc_max_age.
// None for a forward proxy (Alt-Svc speaks for an origin, and a forward proxy is none), a
// max age of 0, or a listener not bound.
std::optional<std::string> alt_svc_for(const WorkerContext& wc, const config::Endpoint& ep);

// A request as an HTTP/2 origin gets it (RFC 9113 8.3.1): https, the authority without
// the default port, the forwarded fields, and `content_length` when it is known (a body
// filter may change a length: then the stream's end frames the body).
http::h2::RequestHead h2_origin_request(const HttpRequestHead& req, bool end_stream,
                                        std::optional<std::string> content_length);

// The span of one request or tunnel (telemetry/tracing.h), from the request's traceparent;
// nullopt when tracing is off. The request's traceparent is replaced by ours for the
// upstream, or removed with its tracestate when it was invalid (or repeated).
std::optional<telemetry::Span> begin_request_span(HttpRequestHead& req);

// Ends a request's span when it goes out of scope (every way out of a handler).
class SpanEnd {
 public:
  SpanEnd(std::optional<telemetry::Span>& span, const ConnectionInfo& info)
      : span_(span), info_(info) {}
  ~SpanEnd() {
    if (span_) telemetry::tracer().end(*span_, info_);
  }
  SpanEnd(const SpanEnd&) = delete;
  SpanEnd& operator=(const SpanEnd&) = delete;

 private:
  std::optional<telemetry::Span>& span_;
  const ConnectionInfo& info_;
};

// Points a session's current-span pointer at `span` (null when there is none) for one
// handler, and back to null when the handler ends.
class CurrentSpan {
 public:
  CurrentSpan(telemetry::Span*& current, std::optional<telemetry::Span>& span) : current_(current) {
    current_ = span ? &*span : nullptr;
  }
  ~CurrentSpan() { current_ = nullptr; }
  CurrentSpan(const CurrentSpan&) = delete;
  CurrentSpan& operator=(const CurrentSpan&) = delete;

 private:
  telemetry::Span*& current_;
};

}  // namespace ramjet::proxy
