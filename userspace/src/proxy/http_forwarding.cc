#include "proxy/http_forwarding.h"

#include "http/h1/forward_framing.h"
#include "proxy/http_wire.h"

namespace ramjet::proxy {

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

void append_forwarded_fields(std::string& out, const HttpHeaders& headers) {
  std::string via;
  for (const auto& f : headers.fields()) {
    if (http::h1::iequals(f.name, "proxy-authorization")) continue;
    if (http::h1::iequals(f.name, "via")) {
      via.append(via.empty() ? "" : ", ").append(f.value);
      continue;
    }
    http_wire::append_field(out, f.name, f.value);
  }
  via.append(via.empty() ? "" : ", ").append(kVia);
  http_wire::append_field(out, "Via", via);
}

}  // namespace ramjet::proxy
