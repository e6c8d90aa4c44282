// What the HTTP on-ramps (HTTP/1.1 and HTTP/2) share about forwarding a message and
// answering one themselves: which received fields never leave the proxy, how the
// end-to-end fields go out (Via merged), and the RFC 9209 Proxy-Status of an error.
#pragma once

#include <string>
#include <string_view>

#include "http/h1/parser.h"
#include "proxy/egress_chain.h"
#include "ramjet/hooks/http.h"

namespace ramjet::proxy {

inline constexpr std::string_view kVia = "1.1 ramjet";

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

}  // namespace ramjet::proxy
