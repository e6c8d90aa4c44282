#include "http/connect_udp.h"

#include <optional>

namespace ramjet::http {

namespace {

constexpr std::string_view kOws = " \t";

std::string_view trim(std::string_view s) {
  const auto b = s.find_first_not_of(kOws);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(kOws) - b + 1);
}

// Capsule-Protocol is a Structured Field Item, a Boolean (RFC 9297 3.4): "?1", maybe with
// parameters, which no version defines yet and a receiver ignores. `lines`: how many
// times the field came; a second line would make it a list, which this field is not.
bool capsule_protocol_on(std::string_view value, std::size_t lines) {
  if (lines != 1) return false;
  std::string_view v = trim(value);
  return trim(v.substr(0, v.find(';'))) == "?1";
}

bool capsule_protocol_on(const h1::Head& head) {
  const h1::Field* f = h1::find_field(head, "capsule-protocol");
  if (f == nullptr) return false;
  std::size_t lines = 0;
  for (const auto& field : head.fields)
    if (h1::iequals(field.name, "capsule-protocol")) ++lines;
  return capsule_protocol_on(f->value, lines);
}

bool capsule_protocol_on(const h2::RequestHead& head) {
  std::string_view value;
  std::size_t lines = 0;
  for (const auto& f : head.fields) {
    if (f.name != "capsule-protocol") continue;  // HTTP/2 field names are lowercase
    value = f.value;
    ++lines;
  }
  return capsule_protocol_on(value, lines);
}

// "https://authority/path?query" -> authority and path ("/" when empty); nullopt when the
// target has no scheme this proxy knows.
struct SplitTarget {
  std::string_view authority;
  std::string path;
};
std::optional<SplitTarget> split_absolute(std::string_view t) {
  for (std::string_view scheme : {std::string_view("https://"), std::string_view("http://")}) {
    if (t.size() < scheme.size() || !h1::iequals(t.substr(0, scheme.size()), scheme)) continue;
    t.remove_prefix(scheme.size());
    const auto end = t.find_first_of("/?");
    SplitTarget out{t.substr(0, end),
                    end == std::string_view::npos ? "/" : std::string(t.substr(end))};
    if (out.path.front() == '?') out.path.insert(0, "/");
    return out;
  }
  return std::nullopt;
}

ConnectUdpRequest malformed(std::string reason) {
  ConnectUdpRequest r;
  r.verdict = ConnectUdpVerdict::kMalformed;
  r.reason = std::move(reason);
  return r;
}

// The checks both versions share once the request's authority and path are known.
ConnectUdpRequest match_target(std::string_view authority, std::string path,
                               const MasqueTemplate& tmpl) {
  if (!tmpl.authority().empty() && !h1::iequals(authority, tmpl.authority()))
    return malformed("connect-udp request for another authority than the template's (" +
                     tmpl.authority() + ")");
  ConnectUdpRequest r;
  r.target = tmpl.match(path);
  if (!r.target.ok) {
    return malformed("the path does not name a UDP target by the template " + tmpl.text() + ": " +
                     std::string(to_string(r.target.error)));
  }
  r.verdict = ConnectUdpVerdict::kTunnel;
  r.path = std::move(path);
  return r;
}

}  // namespace

ConnectUdpRequest classify_connect_udp_request(const h1::Head& head, const MasqueTemplate& tmpl) {
  if (!head.upgrade || !h1::lists_element(head, "upgrade", kConnectUdpUpgradeToken)) return {};
  // RFC 9298 3.2. (The parser sets `upgrade` for HTTP/1.1 only: an HTTP/1.0 request
  // never gets here, and is served as before.)
  if (head.method != "GET") return malformed("connect-udp requests use the GET method");
  if (!h1::lists_element(head, "connection", "upgrade"))
    return malformed("connect-udp requests need Connection: Upgrade");
  if (!capsule_protocol_on(head))
    return malformed("connect-udp requests need one Capsule-Protocol: ?1 field");
  if (head.body != h1::BodyKind::kNone &&
      !(head.body == h1::BodyKind::kContentLength && head.content_length == 0))
    return malformed("a connect-udp request has no body: capsules follow the 101");

  std::string_view authority;
  std::string path;
  if (head.target_form == h1::TargetForm::kAbsolute) {
    auto split = split_absolute(head.target);
    if (!split) return malformed("connect-udp targets are a path or an http(s) URI");
    authority = split->authority;
    path = std::move(split->path);
  } else if (head.target_form == h1::TargetForm::kOrigin) {
    if (const h1::Field* host = h1::find_field(head, "host")) authority = host->value;
    path = std::string(head.target);
  } else {
    return malformed("connect-udp targets are a path or an http(s) URI");
  }
  return match_target(authority, std::move(path), tmpl);
}

ConnectUdpRequest classify_connect_udp_request(const h2::RequestHead& head,
                                               const MasqueTemplate& tmpl, bool tls) {
  if (head.method != "CONNECT" || head.protocol != kConnectUdpUpgradeToken) return {};
  // RFC 9298 3.4 and RFC 8441 4.
  if (head.scheme != "https" && (tls || head.scheme != "http"))
    return malformed(tls ? "connect-udp requests over TLS use :scheme https"
                         : "connect-udp requests use :scheme https or http");
  if (head.path.empty() || head.path.front() != '/')
    return malformed("connect-udp requests need a :path");
  if (head.authority.empty()) return malformed("connect-udp requests need an :authority");
  if (!capsule_protocol_on(head))
    return malformed("connect-udp requests need one capsule-protocol: ?1 field");
  if (head.end_stream)
    return malformed("a connect-udp request that ends its stream leaves no room for capsules");
  return match_target(head.authority, head.path, tmpl);
}

std::string connect_udp_switching_protocols(std::string_view extra_fields) {
  std::string out =
      "HTTP/1.1 101 Switching Protocols\r\n"
      "Connection: Upgrade\r\n"
      "Upgrade: connect-udp\r\n"
      "Capsule-Protocol: ?1\r\n";
  out.append(extra_fields);
  out += "\r\n";
  return out;
}

ConnectUdpReader::Result ConnectUdpReader::fail(CapsuleError error, std::uint64_t offset) const {
  Result r;
  r.status = Status::kError;
  r.error = error;
  r.offset = offset;
  return r;
}

ConnectUdpReader::Result ConnectUdpReader::next(std::span<const std::uint8_t> input) {
  std::size_t used = 0;
  for (;;) {
    const std::uint64_t start = parser_.position();
    CapsuleResult c = parser_.next(input.subspan(used));
    used += c.consumed;
    if (c.status == CapsuleStatus::kError) return fail(c.error, c.offset);
    if (c.status == CapsuleStatus::kNeedMore) {
      Result r;
      r.consumed = used;
      return r;
    }
    if (c.capsule.type != kCapsuleDatagram) {
      ++skipped_capsules_;
      continue;
    }
    DatagramResult d = parse_udp_proxying_datagram(c.capsule.payload);
    if (!d.ok) return fail(d.error, start);
    if (d.datagram.context_id != kContextIdPayload) {
      ++skipped_datagrams_;
      continue;
    }
    Result r;
    r.status = Status::kPayload;
    r.consumed = used;
    r.payload = d.datagram.payload;
    return r;
  }
}

ConnectUdpReader::Result ConnectUdpReader::finish() {
  CapsuleResult c = parser_.finish();
  if (c.status == CapsuleStatus::kError) return fail(c.error, c.offset);
  return {};
}

}  // namespace ramjet::http
