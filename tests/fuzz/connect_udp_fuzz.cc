// Untrusted bytes of a connect-udp exchange: a request head classified against the default
// template, as HTTP/1.1 and (its target, Host and fields as an extended CONNECT's :path,
// :authority and fields) as HTTP/2, then the client's capsule stream read by ConnectUdpReader whole
// and in pieces the input chooses. Beyond ASan: a tunnel verdict names a host and a port in
// 1..65535; the payloads, the skip counts and the verdict do not depend on how the stream
// was cut; no payload is longer than a UDP payload can be.
//
// Input layout: byte 0 seeds the split points; then the request head up to and including
// the first blank line (CRLF CRLF); the rest is the capsule stream.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "http/connect_udp.h"

namespace {

using namespace ramjet::http;

const MasqueTemplate& tmpl_for_fuzz() {
  static const MasqueTemplate tmpl = *parse_masque_template(kDefaultMasqueUdpTemplate).value;
  return tmpl;
}

void check(bool ok) {
  if (!ok) __builtin_trap();
}

void check_verdict(const ConnectUdpRequest& r) {
  if (r.verdict == ConnectUdpVerdict::kTunnel) {
    check(r.target.ok && !r.target.target_host.empty() && r.target.target_port != 0);
    check(!r.path.empty() && r.path.front() == '/');
  }
  if (r.verdict == ConnectUdpVerdict::kMalformed) check(!r.reason.empty());
}

// The head as nghttp2 would hand over an extended CONNECT with the same parts; `seed`
// picks the scheme and whether the connection is TLS.
ConnectUdpRequest classify_as_h2(const h1::Head& head, std::uint8_t seed) {
  h2::RequestHead h;
  h.method = "CONNECT";
  h.protocol = (seed & 4) != 0 ? std::string(head.method) : "connect-udp";
  h.scheme = (seed & 2) != 0 ? "http" : "https";
  h.path = std::string(head.target);
  for (const auto& f : head.fields) {
    std::string name(f.name);
    for (char& c : name)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    if (name == "host")
      h.authority = std::string(f.value);
    else
      h.fields.push_back({std::move(name), std::string(f.value)});
  }
  h.end_stream = (seed & 8) != 0;
  return classify_connect_udp_request(h, tmpl_for_fuzz(), (seed & 1) != 0);
}

struct Outcome {
  std::vector<std::vector<std::uint8_t>> payloads;
  bool failed = false;
  CapsuleError error = CapsuleError::kCapsuleTooLarge;
  std::uint64_t skipped_capsules = 0;
  std::uint64_t skipped_datagrams = 0;
  bool operator==(const Outcome&) const = default;
};

Outcome read(std::span<const std::uint8_t> stream, std::uint8_t seed) {
  ConnectUdpReader reader;
  Outcome o;
  std::uint32_t x = seed * 2654435761u + 1;
  for (std::size_t from = 0; from < stream.size() && !o.failed;) {
    std::size_t n = stream.size() - from;
    if (seed != 0) {
      x ^= x << 13, x ^= x >> 17, x ^= x << 5;
      n = std::min<std::size_t>(n, 1 + x % (seed % 64 + 1));
    }
    // A heap copy of exactly each piece, so ASan sees a read past its end.
    const std::vector<std::uint8_t> piece(stream.begin() + from, stream.begin() + from + n);
    std::span<const std::uint8_t> rest(piece);
    for (;;) {
      const ConnectUdpReader::Result r = reader.next(rest);
      check(r.consumed <= rest.size());
      rest = rest.subspan(r.consumed);
      if (r.status == ConnectUdpReader::Status::kNeedMore) {
        check(rest.empty());
        break;
      }
      if (r.status == ConnectUdpReader::Status::kError) {
        o.failed = true;
        o.error = r.error;
        break;
      }
      check(r.payload.size() <= kMaxUdpPayload);
      o.payloads.emplace_back(r.payload.begin(), r.payload.end());
    }
    from += n;
  }
  if (!o.failed) {
    const ConnectUdpReader::Result r = reader.finish();
    if (r.status == ConnectUdpReader::Status::kError) {
      o.failed = true;
      o.error = r.error;
    }
  }
  o.skipped_capsules = reader.skipped_capsules();
  o.skipped_datagrams = reader.skipped_datagrams();
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t seed = data[0];
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::size_t blank = text.find("\r\n\r\n");
  const std::size_t head_end = blank == std::string_view::npos ? text.size() : blank + 4;

  const std::string head_text(text.substr(0, head_end));
  h1::HeadParser parser(h1::MessageKind::kRequest);
  h1::Head head;
  if (parser.parse(head_text, head).status == h1::ParseStatus::kDone) {
    check_verdict(classify_connect_udp_request(head, tmpl_for_fuzz()));
    check_verdict(classify_as_h2(head, seed));
  }

  const auto* stream = data + 1 + head_end;
  const std::span<const std::uint8_t> capsules(stream, size - 1 - head_end);
  const Outcome whole = read(capsules, 0);
  check(read(capsules, seed) == whole);
  return 0;
}
