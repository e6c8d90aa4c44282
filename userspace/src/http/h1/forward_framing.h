// How a proxy delimits a message it forwards, decided from the parser's reading of the message
// it received. The forwarded head's framing fields are rendered from this and from nothing
// else, so they cannot disagree with how the body was read: a Transfer-Encoding split over two
// field lines once went out as its first line only, over a body framed by both (a desync).
//
// The proxy decodes chunked and re-chunks; every other transfer coding (gzip, deflate, ...)
// passes through untouched and stays declared, in its order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "http/h1/parser.h"

namespace ramjet::http::h1 {

// The framing of the forwarded message, as its recipient will read it.
struct ForwardFraming {
  // kNone, kContentLength, kChunked (the proxy emits chunks) or kUntilClose (the proxy closes
  // the connection after the body).
  BodyKind body = BodyKind::kNone;
  std::uint64_t content_length = 0;  // kContentLength
  std::string transfer_encoding;     // the Transfer-Encoding value to send; empty: none
  // Non-empty when the message cannot be forwarded faithfully (a static string): the proxy
  // answers 502 instead.
  std::string_view error;

  bool chunked() const { return body == BodyKind::kChunked; }
  bool ends_with_close() const { return body == BodyKind::kUntilClose; }
};

struct ForwardOptions {
  // The body is re-framed in chunks even when it had a Content-Length (a body filter may
  // change its length).
  bool rechunk = false;
  // The recipient is an HTTP/1.0 client, which knows no Transfer-Encoding (RFC 9112 6.1).
  bool to_http10 = false;
};

// The framing to forward a message parsed into `received` with (its body kind, length and
// transfer codings, never its raw fields). kTunnel and kNone give kNone.
ForwardFraming forward_framing(const Head& received, ForwardOptions options = {});

// Appends the framing field lines for `framing` ("Transfer-Encoding: ..." or
// "Content-Length: ..."; nothing for kNone or a plain until-close body).
void append_framing_fields(std::string& out, const ForwardFraming& framing);

// True for the fields a forwarder rebuilds itself and so never copies from the received head:
// Transfer-Encoding and Content-Length (framing) and every hop-by-hop field (RFC 9110 7.6.1).
bool is_framing_or_hop_by_hop(const Head& received, std::string_view name);

}  // namespace ramjet::http::h1
