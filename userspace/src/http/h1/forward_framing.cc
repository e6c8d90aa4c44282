#include "http/h1/forward_framing.h"

#include <algorithm>

namespace ramjet::http::h1 {

namespace {

std::string join_codings(const std::vector<std::string_view>& codings) {
  std::string out;
  for (std::string_view c : codings) out.append(out.empty() ? "" : ", ").append(c);
  return out;
}

bool has_chunked(const std::vector<std::string_view>& codings) {
  return std::any_of(codings.begin(), codings.end(),
                     [](std::string_view c) { return iequals(c, "chunked"); });
}

constexpr std::string_view kNoCodingsForHttp10 =
    "a transfer coding other than chunked cannot be sent to an HTTP/1.0 client";

}  // namespace

ForwardFraming forward_framing(const Head& received, ForwardOptions options) {
  ForwardFraming out;
  const std::vector<std::string_view>& codings = received.transfer_codings;
  switch (received.body) {
    case BodyKind::kNone:
    case BodyKind::kTunnel:
      break;
    case BodyKind::kContentLength:
      if (!options.rechunk) {
        out.body = BodyKind::kContentLength;
        out.content_length = received.content_length;
      } else if (options.to_http10) {
        out.body = BodyKind::kUntilClose;
      } else {
        out.body = BodyKind::kChunked;
        out.transfer_encoding = "chunked";
      }
      break;
    case BodyKind::kChunked:
      // The codings end with chunked (the parser's decision); the others stay declared.
      if (options.to_http10) {
        if (codings.size() > 1) out.error = kNoCodingsForHttp10;
        out.body = BodyKind::kUntilClose;
      } else {
        out.body = BodyKind::kChunked;
        out.transfer_encoding = join_codings(codings);
      }
      break;
    case BodyKind::kUntilClose:
      // Responses only: no framing, or codings whose last is not chunked.
      if (options.to_http10) {
        if (!codings.empty()) out.error = kNoCodingsForHttp10;
        out.body = BodyKind::kUntilClose;
      } else if (has_chunked(codings)) {
        // RFC 9112 6.1: chunked is applied at most once, so this body cannot be re-chunked;
        // it goes on to the close, as it came.
        out.body = BodyKind::kUntilClose;
        out.transfer_encoding = join_codings(codings);
      } else {
        // Chunking it keeps the client connection alive.
        out.body = BodyKind::kChunked;
        out.transfer_encoding = join_codings(codings);
        out.transfer_encoding.append(codings.empty() ? "chunked" : ", chunked");
      }
      break;
  }
  return out;
}

void append_framing_fields(std::string& out, const ForwardFraming& framing) {
  if (!framing.transfer_encoding.empty()) {
    out.append("Transfer-Encoding: ").append(framing.transfer_encoding).append("\r\n");
  } else if (framing.body == BodyKind::kContentLength) {
    out.append("Content-Length: ").append(std::to_string(framing.content_length)).append("\r\n");
  }
}

bool is_framing_or_hop_by_hop(const Head& received, std::string_view name) {
  return iequals(name, "content-length") || is_hop_by_hop(received, name);
}

}  // namespace ramjet::http::h1
