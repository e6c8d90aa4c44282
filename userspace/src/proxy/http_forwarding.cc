#include "proxy/http_forwarding.h"

#include <algorithm>

#include "http/h1/forward_framing.h"
#include "proxy/http_wire.h"

namespace ramjet::proxy {

std::optional<HostPort> parse_authority(std::string_view a, std::uint16_t default_port) {
  if (a.find('@') != std::string_view::npos) return std::nullopt;
  if (auto hp = HostPort::parse(a)) return hp;
  std::string_view host = a;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (!host.empty() && HostPort::valid_host(host)) return HostPort{std::string(host), default_port};
  return std::nullopt;
}

std::string authority_value(const HostPort& a, std::uint16_t default_port) {
  if (a.port != default_port) return a.to_string();
  return a.host.find(':') != std::string::npos ? "[" + a.host + "]" : a.host;
}

int status_for(const EgressError& e) {
  switch (e.kind) {
    case EgressFailure::kBlockedByHook:
    case EgressFailure::kPrivateRefused:
      return 403;
    case EgressFailure::kDnsTimeout:
    case EgressFailure::kConnectTimeout:
      return 504;
    case EgressFailure::kDnsError:
    case EgressFailure::kConnectRefused:
      return 502;
  }
  return 502;
}

std::string sf_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '\\' || c == '"') out += '\\';
    if (c >= 0x20 && c < 0x7f) out += c;
  }
  return out + "\"";
}

std::string proxy_status_value(std::string_view error_type, std::string_view details) {
  std::string status = "ramjet; error=" + std::string(error_type);
  if (!details.empty()) status += "; details=" + sf_string(details);
  return status;
}

bool never_forwarded(const http::h1::Head& head, std::string_view name) {
  using http::h1::iequals;
  return http::h1::is_framing_or_hop_by_hop(head, name) || iequals(name, "trailer") ||
         iequals(name, "proxy-authorization") || iequals(name, "proxy-authenticate");
}

bool trailer_forwarded(std::string_view name) {
  static constexpr std::string_view kNever[] = {"content-length",
                                                "transfer-encoding",
                                                "host",
                                                "trailer",
                                                "te",
                                                "connection",
                                                "keep-alive",
                                                "proxy-connection",
                                                "upgrade",
                                                "proxy-authorization",
                                                "proxy-authenticate"};
  return std::find(std::begin(kNever), std::end(kNever), name) == std::end(kNever);
}

namespace {
// Calls out(name, value) for each field as it leaves the proxy.
template <typename Out>
void each_forwarded_field(const HttpHeaders& headers, Out out) {
  std::string via;
  for (const auto& f : headers.fields()) {
    if (http::h1::iequals(f.name, "proxy-authorization")) continue;
    if (http::h1::iequals(f.name, "via")) {
      via.append(via.empty() ? "" : ", ").append(f.value);
      continue;
    }
    out(f.name, f.value);
  }
  via.append(via.empty() ? "" : ", ").append(kVia);
  out("Via", via);
}
}  // namespace

void append_forwarded_fields(std::string& out, const HttpHeaders& headers) {
  each_forwarded_field(headers, [&out](std::string_view name, std::string_view value) {
    http_wire::append_field(out, name, value);
  });
}

std::vector<http::h2::Field> h2_forwarded_fields(const HttpHeaders& headers) {
  std::vector<http::h2::Field> out;
  out.reserve(headers.fields().size() + 1);
  each_forwarded_field(headers, [&out](std::string_view name, std::string_view value) {
    out.push_back({std::string(name), std::string(value)});
  });
  return out;
}

std::optional<std::string> alt_svc_for(const WorkerContext& wc, const config::Endpoint& ep) {
  if (!ep.upstream || !ep.quic || ep.quic->alt_svc_max_age.count() <= 0 || wc.bound == nullptr)
    return std::nullopt;
  auto it = wc.bound->find(ep.name + "/quic");
  if (it == wc.bound->end()) return std::nullopt;
  const auto seconds =
      std::chrono::duration_cast<std::chrono::seconds>(ep.quic->alt_svc_max_age).count();
  return "h3=\":" + std::to_string(it->second.port()) + "\"; ma=" + std::to_string(seconds);
}

http::h2::RequestHead h2_origin_request(const HttpRequestHead& req, bool end_stream,
                                        std::optional<std::string> content_length) {
  http::h2::RequestHead h;
  h.method = req.method;
  h.scheme = "https";
  h.authority = authority_value(*req.authority, 443);
  h.path = req.path;
  h.fields = h2_forwarded_fields(req.headers);
  h.end_stream = end_stream;
  if (!end_stream && content_length) h.fields.push_back({"content-length", *content_length});
  return h;
}

std::optional<telemetry::Span> begin_request_span(HttpRequestHead& req) {
  const telemetry::Tracer& tracer = telemetry::tracer();
  if (!tracer.enabled()) return std::nullopt;
  std::optional<std::string_view> incoming;
  std::size_t count = 0;
  for (const auto& f : req.headers.fields())
    if (HttpHeaders::iequals(f.name, "traceparent") && count++ == 0) incoming = f.value;
  // Repeated, which one would the origin read? Neither: a new trace, as for an invalid one.
  const bool repeated = count > 1;
  bool invalid = false;
  std::optional<telemetry::Span> span =
      tracer.begin(repeated ? std::nullopt : incoming, req.method, invalid);
  if (invalid || repeated) req.headers.remove("tracestate");
  req.headers.set("traceparent", span->traceparent());
  return span;
}

}  // namespace ramjet::proxy
