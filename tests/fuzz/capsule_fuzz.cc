// Untrusted bytes of a MASQUE request stream: the capsule parser fed in one piece and in
// pieces the input chooses, the CONNECT-IP capsule bodies, HTTP Datagram payloads, and the
// connect-udp URI template (as configured text and as a request path). Beyond ASan: the
// capsules and the verdict do not depend on how the stream was cut; what a body parser
// accepts the matching encoder accepts and parses back equal; what a template matches it
// expands back to the same target.
//
// Input layout: byte 0 picks the limits, byte 1 seeds the split points, the rest is the
// stream (and, as text, the template and the path).
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "http/capsule.h"
#include "http/connect_ip.h"
#include "http/masque_template.h"

namespace {

using namespace ramjet::http;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

struct Outcome {
  std::vector<std::pair<std::uint64_t, std::vector<std::uint8_t>>> capsules;
  CapsuleStatus status = CapsuleStatus::kNeedMore;
  CapsuleError error = CapsuleError::kCapsuleTooLarge;
  std::uint64_t offset = 0;
  std::uint64_t position = 0;
  bool operator==(const Outcome&) const = default;
};

// Split points from a seed: a small deterministic generator, so a crash reproduces.
std::vector<std::size_t> cuts_for(std::uint8_t seed, std::size_t size) {
  std::vector<std::size_t> cuts;
  std::uint32_t x = seed * 2654435761u + 1;
  const std::size_t step = seed % 5 == 0 ? 1 : (seed % 17) + 1;  // byte-at-a-time sometimes
  for (std::size_t at = 0; at < size;) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    at += 1 + (x % (step * 2));
    if (at < size) cuts.push_back(at);
  }
  return cuts;
}

Outcome run(std::span<const std::uint8_t> stream, const std::vector<std::size_t>& cuts,
            const CapsuleLimits& limits) {
  CapsuleParser p(limits);
  Outcome o;
  std::vector<std::size_t> ends = cuts;
  ends.push_back(stream.size());
  std::size_t from = 0;
  for (std::size_t end : ends) {
    // A heap copy of exactly each piece, so ASan sees a read past its end.
    const std::vector<std::uint8_t> piece(stream.begin() + from, stream.begin() + end);
    from = end;
    std::span<const std::uint8_t> in(piece);
    for (;;) {
      const CapsuleResult r = p.next(in);
      if (r.status == CapsuleStatus::kError) {
        o.status = r.status;
        o.error = r.error;
        o.offset = r.offset;
        check(r.offset <= stream.size());
        return o;
      }
      check(r.consumed <= in.size());
      in = in.subspan(r.consumed);
      if (r.status == CapsuleStatus::kNeedMore) {
        check(in.empty());
        break;
      }
      check(r.capsule.payload.size() <= limits.max_payload);
      o.capsules.emplace_back(r.capsule.type, std::vector<std::uint8_t>(r.capsule.payload.begin(),
                                                                        r.capsule.payload.end()));
    }
  }
  const CapsuleResult end = p.finish();
  o.status = end.status;
  o.error = end.error;
  o.offset = end.status == CapsuleStatus::kError ? end.offset : 0;
  o.position = p.position();
  check(o.position == stream.size() || end.status == CapsuleStatus::kError);
  return o;
}

template <typename Entry, typename Parse, typename Append>
void check_body(std::span<const std::uint8_t> value, std::uint64_t type, Parse parse,
                Append append) {
  std::vector<Entry> entries;
  const ConnectIpResult r = parse(value, entries);
  if (!r.ok) {
    check(r.offset < value.size() || value.empty());
    return;
  }
  std::string wire;
  check(append(wire, std::span<const Entry>(entries)).ok);
  CapsuleParser p;
  const CapsuleResult c = p.next(wire);
  check(c.status == CapsuleStatus::kCapsule && c.consumed == wire.size() && c.capsule.type == type);
  std::vector<Entry> again;
  check(parse(c.capsule.payload, again).ok && again == entries);
}

void check_bodies(std::span<const std::uint8_t> value) {
  check_body<AddressEntry>(value, kCapsuleAddressAssign, parse_address_assign,
                           append_address_assign);
  check_body<AddressEntry>(value, kCapsuleAddressRequest, parse_address_request,
                           append_address_request);
  check_body<IpAddressRange>(value, kCapsuleRouteAdvertisement, parse_route_advertisement,
                             append_route_advertisement);
  const DatagramResult d = parse_udp_proxying_datagram(value);
  if (d.ok) {
    check(d.datagram.payload.data() + d.datagram.payload.size() == value.data() + value.size());
    std::vector<std::uint8_t> back;
    check(append_http_datagram(back, d.datagram.context_id, d.datagram.payload));
    check(back.size() <= value.size());  // a non-minimal Context ID re-encodes shorter
  }
}

// What a template matches, it expands back to: the same host and port.
void check_match(const MasqueTemplate& t, std::string_view path) {
  const TemplateMatch m = t.match(path);
  check(m.ok || m.offset <= path.size());
  if (!m.ok) return;
  check(m.target_port != 0 && !m.target_host.empty());
  const TemplateExpansion x = t.expand(m.target_host, m.target_port);
  check(x.ok);
  const TemplateMatch again = t.match(x.path);
  check(again.ok && again.target_host == m.target_host && again.target_port == m.target_port);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  CapsuleLimits limits;
  if (data[0] & 1) limits.max_payload = data[0] >> 1;  // tight: reach the oversized path
  const std::span<const std::uint8_t> stream(data + 2, size - 2);

  const Outcome whole = run(stream, {}, limits);
  const Outcome split = run(stream, cuts_for(data[1], stream.size()), limits);
  check(whole == split);
  for (const auto& [type, payload] : whole.capsules) {
    if (is_known_capsule_type(type)) check_bodies(payload);
  }
  check_bodies(stream);

  const std::string_view text(reinterpret_cast<const char*>(stream.data()), stream.size());
  const MasqueTemplateResult parsed = parse_masque_template(text);
  check(parsed.value.has_value() || parsed.offset <= text.size());
  if (parsed.value) {
    check_match(*parsed.value, text);
    // Every valid template matches its own expansions.
    const TemplateExpansion x = parsed.value->expand("example.com", 443);
    check(x.ok);
    check_match(*parsed.value, x.path);
    check(parsed.value->match(x.path).ok);
  }
  static const MasqueTemplate kDefault = *parse_masque_template(kDefaultMasqueUdpTemplate).value;
  check_match(kDefault, text);
  // Most inputs miss the default prefix; give the part after it a chance too.
  check_match(kDefault, std::string("/.well-known/masque/udp/").append(text));
  return 0;
}
