// Untrusted bytes through the resumable HTTP/1 parsers, in one piece and split at points the
// input chooses. Must never crash or read out of bounds, and must give the same verdict, the
// same error offset and the same views however the bytes arrive: a parser whose answer
// depends on TCP segmentation is a smuggling bug.
//
// Differential property of forwarding: the head the proxy forwards (end-to-end fields as
// received, framing fields from forward_framing), parsed again by the same parser, frames the
// body as forward_framing said, with the received transfer codings in the same order. A
// forwarded head whose framing disagrees with how the proxy read the body is a desync.
//
// Input layout: byte 0 picks the mode (request/response head, then the chunked decoder on
// what follows a chunked head, and the forwarding options), byte 1 seeds the split points, the
// rest is the message.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/h1/forward_framing.h"
#include "http/h1/parser.h"

namespace {

using namespace ramjet::http::h1;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool within(std::string_view view, std::string_view buf) {
  return view.data() == nullptr ||
         (view.data() >= buf.data() && view.data() + view.size() <= buf.data() + buf.size());
}

// Split points derived from a seed: a small deterministic generator so every run of one input
// splits the same way.
std::vector<std::size_t> cuts_for(std::uint8_t seed, std::size_t size) {
  std::vector<std::size_t> cuts;
  if (size == 0) return cuts;
  std::uint32_t x = seed * 2654435761u + 1;
  std::size_t at = 0;
  const std::size_t step = seed % 7 == 0 ? 1 : (seed % 13) + 1;  // byte-at-a-time sometimes
  while (at < size) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    at += 1 + (x % (step * 2));
    if (at < size) cuts.push_back(at);
  }
  return cuts;
}

struct HeadOutcome {
  ParseStatus status;
  std::size_t consumed;
  int http_status;
  std::size_t offset;
  std::string_view reason;
  std::vector<std::pair<std::string, std::string>> fields;
  std::string method, target, status_reason;
  BodyKind body;
  std::uint64_t content_length;
  bool keep_alive, upgrade, expect_continue;
  std::size_t connection_tokens;

  bool operator==(const HeadOutcome&) const = default;
};

HeadOutcome snapshot(const HeadResult& r, const Head& h, std::string_view buf) {
  HeadOutcome o{
      r.status,        r.consumed, r.error.status, r.error.offset, r.error.reason, {}, {}, {}, {},
      BodyKind::kNone, 0,          false,          false,          false,          0};
  check(r.error.reason.empty() == (r.status != ParseStatus::kError));
  if (r.status == ParseStatus::kError) check(r.error.offset <= buf.size());
  if (r.status != ParseStatus::kDone) return o;
  check(r.consumed >= 4 && r.consumed <= buf.size());
  check(buf.substr(r.consumed - 4, 4) == "\r\n\r\n");
  const std::string_view head_bytes = buf.substr(0, r.consumed);
  check(within(h.method, head_bytes) && within(h.target, head_bytes) &&
        within(h.reason, head_bytes));
  for (const Field& f : h.fields) {
    check(within(f.name, head_bytes) && within(f.value, head_bytes));
    check(!f.name.empty());
    o.fields.emplace_back(f.name, f.value);
  }
  for (std::string_view t : h.connection_tokens) check(within(t, head_bytes));
  o.method = h.method;
  o.target = h.target;
  o.status_reason = h.reason;
  o.body = h.body;
  o.content_length = h.content_length;
  o.keep_alive = h.keep_alive;
  o.upgrade = h.upgrade;
  o.expect_continue = h.expect_continue;
  o.connection_tokens = h.connection_tokens.size();
  // Framing invariants the proxy relies on.
  if (h.body == BodyKind::kUntilClose) check(!h.keep_alive && h.kind == MessageKind::kResponse);
  if (h.kind == MessageKind::kRequest && h.body == BodyKind::kChunked) {
    check(find_field(h, "content-length") == nullptr);
  }
  return o;
}

struct BodyOutcome {
  BodyStatus status = BodyStatus::kNeedMore;
  std::string data;
  std::vector<std::pair<std::string, std::string>> trailers;
  std::size_t consumed = 0;
  int http_status = 0;
  std::size_t offset = 0;
  std::string_view reason;

  bool operator==(const BodyOutcome&) const = default;
};

// Drives the chunked decoder like a connection does: append what arrived, decode, drop what
// was consumed, keep the rest.
BodyOutcome decode_chunked(std::string_view input, const std::vector<std::size_t>& cuts,
                           MessageKind kind) {
  ChunkedLimits limits;
  limits.max_chunk_line = 64;
  limits.max_trailer = 256;
  limits.max_trailer_fields = 8;
  ChunkedDecoder d(kind, limits);
  std::vector<Field> trailers;
  BodyOutcome out;
  std::string pending;
  std::size_t fed = 0;
  std::size_t dropped = 0;
  std::vector<std::size_t> ends = cuts;
  ends.push_back(input.size());
  for (std::size_t end : ends) {
    pending.append(input.substr(fed, end - fed));
    fed = end;
    for (;;) {
      const BodyResult r = d.decode(pending, trailers);
      check(r.consumed <= pending.size());
      out.status = r.status;
      if (r.status == BodyStatus::kError) {
        check(r.error.offset <= input.size());
        out.http_status = r.error.status;
        out.offset = r.error.offset;
        out.reason = r.error.reason;
        return out;
      }
      if (r.status == BodyStatus::kData) {
        check(!r.data.empty() && within(r.data, pending));
        out.data.append(r.data);
      }
      if (r.status == BodyStatus::kDone) {
        for (const Field& f : trailers) {
          const std::string_view body = std::string_view(pending).substr(0, r.consumed);
          check(within(f.name, body) && within(f.value, body));
          out.trailers.emplace_back(f.name, f.value);
        }
        out.consumed = dropped + r.consumed;
        check(d.position() == out.consumed);
        return out;
      }
      pending.erase(0, r.consumed);
      dropped += r.consumed;
      if (r.status == BodyStatus::kNeedMore) break;
    }
  }
  return out;
}

// Renders the head the proxy forwards for `received` and checks its reading by a fresh parser.
void check_forwarded_framing(const Head& received, std::string_view method,
                             ForwardOptions options) {
  const ForwardFraming framing = forward_framing(received, options);
  if (!framing.error.empty()) {
    // Refused only where an HTTP/1.0 client would lose a coding.
    check(options.to_http10 && !received.transfer_codings.empty());
    return;
  }
  const bool request = received.kind == MessageKind::kRequest;
  if (request && received.target_form == TargetForm::kAuthority) return;  // a tunnel
  std::string out = request ? std::string(received.method) + " / HTTP/1.1\r\nHost: a\r\n"
                            : "HTTP/1.1 " + std::to_string(received.status_code) + " R\r\n";
  for (const Field& f : received.fields) {
    if (is_framing_or_hop_by_hop(received, f.name) || (request && iequals(f.name, "host")))
      continue;
    out.append(f.name).append(": ").append(f.value).append("\r\n");
  }
  append_framing_fields(out, framing);
  out += "\r\n";

  Limits roomy;
  roomy.max_start_line = 1 << 20;
  roomy.max_head = 1 << 22;
  roomy.max_fields = 1 << 16;
  HeadParser again(received.kind, roomy, method);
  Head reparsed;
  const HeadResult r = again.parse(out, reparsed);
  check(r.status == ParseStatus::kDone && r.consumed == out.size());
  if (received.body == BodyKind::kTunnel) {
    check(reparsed.body == BodyKind::kTunnel);
    return;
  }
  check(reparsed.body == framing.body);
  if (framing.body == BodyKind::kContentLength) {
    check(reparsed.content_length == framing.content_length);
  }
  // The received codings of a body survive, in order; the proxy only ever adds a final
  // chunked. (A message without a body, such as a 204, carries no framing fields at all.)
  const std::vector<std::string_view>& got = reparsed.transfer_codings;
  const std::vector<std::string_view>& had = received.transfer_codings;
  if (framing.body == BodyKind::kNone) check(got.empty());
  if (!options.to_http10 && framing.body != BodyKind::kNone && !had.empty()) {
    check(got.size() == had.size() || (got.size() == had.size() + 1 && iequals(got.back(), "chunked")));
    for (std::size_t i = 0; i < had.size(); ++i) check(got[i] == had[i]);
  }
  if (options.to_http10) check(got.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const MessageKind kind = (data[0] & 1) ? MessageKind::kResponse : MessageKind::kRequest;
  const std::string_view method = (data[0] & 2) ? "HEAD" : (data[0] & 4) ? "CONNECT" : "GET";
  Limits limits;
  if (data[0] & 8) {  // tight limits so the fuzzer reaches the 414/431 paths
    limits.max_start_line = 40;
    limits.max_head = 160;
    limits.max_fields = 4;
  }
  const std::vector<std::size_t> cuts = cuts_for(data[1], size - 2);
  // A heap copy of exactly the message, so ASan sees any read past its end.
  const std::string whole(reinterpret_cast<const char*>(data) + 2, size - 2);

  HeadParser one(kind, limits, method);
  Head h1;
  const HeadResult r1 = one.parse(whole, h1);
  const HeadOutcome a = snapshot(r1, h1, whole);

  // The same bytes, growing in a buffer that is reallocated at every step.
  HeadParser split(kind, limits, method);
  Head h2;
  HeadResult r2;
  std::size_t last_validated = 0;
  std::vector<std::size_t> ends = cuts;
  ends.push_back(whole.size());
  for (std::size_t end : ends) {
    const std::string prefix = whole.substr(0, end);
    r2 = split.parse(prefix, h2);
    if (r2.status == ParseStatus::kNeedMore) {
      check(split.validated() >= last_validated && split.validated() <= end);
      last_validated = split.validated();
      continue;
    }
    break;
  }
  if (r2.status == ParseStatus::kDone) {
    // Views were taken from a prefix that is gone; compare on the full buffer.
    r2 = split.parse(whole, h2);
  }
  const HeadOutcome b = snapshot(r2, h2, whole);
  check(a == b);

  if (r1.status == ParseStatus::kDone) {
    const ForwardOptions options{.rechunk = (data[0] & 32) != 0,
                                 .to_http10 = kind == MessageKind::kResponse && (data[0] & 64)};
    check_forwarded_framing(h1, method, options);
  }

  // Bodies: the chunked decoder over what follows a chunked head, or over everything.
  if (r1.status == ParseStatus::kDone && h1.body == BodyKind::kChunked) {
    const std::string_view rest = std::string_view(whole).substr(r1.consumed);
    std::vector<std::size_t> body_cuts;
    for (std::size_t c : cuts) {
      if (c > r1.consumed) body_cuts.push_back(c - r1.consumed);
    }
    check(decode_chunked(rest, {}, kind) == decode_chunked(rest, body_cuts, kind));
  } else if (data[0] & 16) {
    check(decode_chunked(whole, {}, kind) == decode_chunked(whole, cuts, kind));
  }
  if (r1.status == ParseStatus::kDone && h1.body == BodyKind::kContentLength) {
    ContentLengthBody body(h1.content_length);
    std::string_view rest = std::string_view(whole).substr(r1.consumed);
    std::uint64_t got = 0;
    for (;;) {
      const BodyResult r = body.decode(rest);
      if (r.status != BodyStatus::kData) break;
      got += r.data.size();
      rest.remove_prefix(r.consumed);
    }
    check(got + body.remaining() == h1.content_length);
  }
  return 0;
}
