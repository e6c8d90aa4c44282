// Strict, resumable HTTP/1.1 parser (RFC 9110 / RFC 9112) for the forward-proxy on-ramp.
//
// HAProxy-style: plain types first, then the functions that fill them. Everything works on
// views into the caller's buffer; nothing is copied. A proxy sits between two parsers that may
// disagree, so every ambiguity that enables request smuggling (CL+TE, duplicate CL, obs-fold,
// bare CR/LF, whitespace before the colon, ...) is an error, never a guess.
//
// Return codes (documented once, used by every parser here):
//   kDone      the message head (or body) is complete; `consumed` bytes belong to it.
//   kNeedMore  the input ends inside the message; call again with more bytes.
//   kData      (bodies only) `data` is a view of payload bytes; call again for the rest.
//   kError     `error` says the status to answer with, the offset and why. Errors are sticky.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace ramjet::http::h1 {

// ----------------------------------------------------------------------------------------
// Types
// ----------------------------------------------------------------------------------------

// Which start-line to expect; also picks the error status family (see ParseError::status).
enum class MessageKind : std::uint8_t { kRequest, kResponse };

// RFC 9112 3.2: the four request-target forms; the proxy routes differently on each.
enum class TargetForm : std::uint8_t {
  kOrigin,     // "/path?query"
  kAbsolute,   // "http://host/path" (forward-proxy requests)
  kAuthority,  // "host:port" (CONNECT only)
  kAsterisk,   // "*" (OPTIONS only)
};

// The two versions we speak. HTTP/1.x with x > 1 is read as HTTP/1.1 (RFC 9110 2.5: the
// highest minor version of the major we implement); any other major is rejected with 505.
enum class Version : std::uint8_t { kHttp10, kHttp11 };

// RFC 9112 6.3: how the body that follows the head is delimited.
enum class BodyKind : std::uint8_t {
  kNone,           // no body (no framing fields, HEAD, 204/304; 1xx but 101 are interim:
                   // parse the final response head next)
  kContentLength,  // exactly Head::content_length bytes (may be 0)
  kChunked,        // chunked transfer coding: use ChunkedDecoder
  kUntilClose,     // responses only: the body ends when the server closes
  kTunnel,         // responses only: 101 or 2xx to CONNECT; raw bytes follow the head
};

// One field line, with OWS around the value already trimmed (views into the caller's buffer).
struct Field {
  std::string_view name;
  std::string_view value;
};

// Bounds that keep a hostile peer from making us buffer without limit.
struct Limits {
  std::size_t max_start_line = 8 * 1024;  // request-/status-line bytes, CRLF excluded (414)
  std::size_t max_head = 64 * 1024;       // whole head incl. every CRLF (431)
  std::size_t max_fields = 100;           // field lines (431)
};

// Bounds for chunked bodies: extensions and trailers are the unbounded parts of the grammar.
struct ChunkedLimits {
  std::size_t max_chunk_line = 4 * 1024;  // chunk-size + extensions, CRLF excluded
  std::size_t max_trailer = 16 * 1024;    // whole trailer section incl. the final CRLF
  std::size_t max_trailer_fields = 32;
};

// A parsed message head; every view points into the buffer given to parse(). Reuse one Head
// per connection so `fields` and `connection_tokens` keep their capacity (no allocation once
// warm).
struct Head {
  MessageKind kind = MessageKind::kRequest;
  Version version = Version::kHttp11;
  // Requests.
  std::string_view method;
  std::string_view target;
  TargetForm target_form = TargetForm::kOrigin;
  // Responses.
  int status_code = 0;
  std::string_view reason;
  // Field lines in arrival order; names keep their case.
  std::vector<Field> fields;
  // Derived framing and connection management.
  BodyKind body = BodyKind::kNone;
  std::uint64_t content_length = 0;                 // valid when body == kContentLength
  // Every transfer coding in the order applied, joined over all Transfer-Encoding field lines
  // (RFC 9110 5.3): the one list framing is decided from, and the one a forwarder rebuilds
  // the field from (see http/h1/forward_framing.h). Non-empty iff the message has the field.
  std::vector<std::string_view> transfer_codings;
  bool keep_alive = false;                          // version default, Connection, framing
  std::vector<std::string_view> connection_tokens;  // Connection options, for hop-by-hop removal
  bool upgrade = false;                             // an Upgrade field in an HTTP/1.1 message
  bool expect_continue = false;  // HTTP/1.1 request whose Expect lists 100-continue

  // Forgets the message but keeps the vectors' capacity.
  void clear();
};

// Where and why parsing stopped. `status` is what to answer the peer that sent the bytes:
// 400/414/431/501/505 for requests; for responses it is always 502, since the proxy reports an
// upstream fault to its client, and `reason` says what was wrong.
struct ParseError {
  int status = 0;
  std::size_t offset = 0;   // heads: offset in the buffer; bodies: offset in the body stream
  std::string_view reason;  // a static string, safe to keep
};

// Outcome of HeadParser::parse.
enum class ParseStatus : std::uint8_t { kDone, kNeedMore, kError };

// Result of HeadParser::parse; `consumed` is the head length including the final CRLF (kDone).
struct HeadResult {
  ParseStatus status = ParseStatus::kNeedMore;
  std::size_t consumed = 0;
  ParseError error;
};

// Outcome of a body decoder call.
enum class BodyStatus : std::uint8_t { kData, kNeedMore, kDone, kError };

// Result of a body decoder call. The caller drops `consumed` bytes from the front of its input
// (they include `data` and any framing before it) and calls again with the rest.
struct BodyResult {
  BodyStatus status = BodyStatus::kNeedMore;
  std::size_t consumed = 0;
  std::string_view data;  // kData: payload, a view into the input
  ParseError error;
};

// ----------------------------------------------------------------------------------------
// Head parser
// ----------------------------------------------------------------------------------------

// Resumable request/response head parser. State lives here, output in Head; call parse() with
// the whole buffer each time (earlier bytes unchanged; the buffer may move, views are rebased),
// and only the new bytes are scanned.
class HeadParser {
 public:
  // `request_method` matters for responses only: a response to HEAD has no body and a 2xx to
  // CONNECT opens a tunnel (RFC 9112 6.3).
  explicit HeadParser(MessageKind kind, const Limits& limits = {},
                      std::string_view request_method = {});

  // Parses `buffer` (which starts at the first byte of the message) into `head`. After kDone
  // or kError it returns the same result again (rebasing the views if the buffer moved). A
  // buffer shorter than validated() is a caller bug, reported as status 500.
  [[nodiscard]] HeadResult parse(std::string_view buffer, Head& head);
  // Same, for callers that hold a span (a template so that std::string still picks the
  // string_view overload instead of being ambiguous).
  template <std::size_t N>
  [[nodiscard]] HeadResult parse(std::span<const char, N> buffer, Head& head) {
    return parse(std::string_view(buffer.data(), buffer.size()), head);
  }

  // Prepares for the next message on the connection (and, for responses, its request method).
  void reset(std::string_view request_method = {});

  // Bytes already validated: how far a NeedMore result got.
  std::size_t validated() const { return scan_; }

 private:
  enum class Phase : std::uint8_t { kStart, kStartLine, kFields, kDone, kError };

  HeadResult fail(int status, std::size_t offset, std::string_view reason);
  bool parse_request_line(std::string_view buf, std::size_t begin, std::size_t end, Head& head);
  bool parse_status_line(std::string_view buf, std::size_t begin, std::size_t end, Head& head);
  bool finish(std::string_view buf, Head& head);

  MessageKind kind_;
  Limits limits_;
  bool request_was_head_ = false;
  bool request_was_connect_ = false;
  Phase phase_ = Phase::kStart;
  std::size_t line_start_ = 0;  // first byte of the line being scanned
  std::size_t scan_ = 0;        // next byte to look at; [0, scan_) is validated
  std::uintptr_t base_ = 0;     // buffer address at the previous call, to rebase views
  HeadResult result_;           // the sticky kDone / kError result
};

// ----------------------------------------------------------------------------------------
// Body decoders
// ----------------------------------------------------------------------------------------

// Streaming decoder for the chunked transfer coding (RFC 9112 7.1). Chunk framing is consumed
// byte by byte, so the caller never has to keep it; only an incomplete trailer section stays
// unconsumed (the trailer views must point into the caller's buffer).
class ChunkedDecoder {
 public:
  // `kind` picks the error status family, as for HeadParser.
  explicit ChunkedDecoder(MessageKind kind = MessageKind::kRequest,
                          const ChunkedLimits& limits = {});

  // Decodes from the front of `input`. kData: one payload view; kNeedMore: feed the unconsumed
  // rest plus new bytes; kDone: `trailers` holds the validated trailer fields (views into
  // `input`) and `consumed` ends the body.
  [[nodiscard]] BodyResult decode(std::string_view input, std::vector<Field>& trailers);

  // Prepares for the next body.
  void reset();

  // Body bytes consumed so far (framing included); error offsets count from the body start.
  std::uint64_t position() const { return position_; }

 private:
  enum class State : std::uint8_t {
    kSize,
    kSizeWs,
    kExtNameStart,
    kExtName,
    kExtNameWs,
    kExtValStart,
    kExtValToken,
    kExtQuoted,
    kExtQuotedPair,
    kExtValEnd,
    kSizeLf,
    kData,
    kDataCr,
    kDataLf,
    kTrailers,
    kDone,
    kError,
  };

  BodyResult fail(int status, std::size_t at, std::string_view reason);
  const char* chunk_line_byte(char c);
  BodyResult decode_trailers(std::string_view input, std::size_t start,
                             std::vector<Field>& trailers);

  MessageKind kind_;
  ChunkedLimits limits_;
  State state_ = State::kSize;
  std::uint64_t size_ = 0;        // chunk-size being read, then bytes left in the chunk
  std::size_t size_digits_ = 0;   // hex digits seen in the current chunk-size
  std::size_t line_bytes_ = 0;    // bytes of the current chunk-size line
  std::uint64_t position_ = 0;    // body bytes consumed by earlier calls
  std::size_t trailer_line_ = 0;  // trailers: line start, relative to the trailer section
  std::size_t trailer_scan_ = 0;  // trailers: next byte to scan, same origin
  std::uintptr_t trailer_base_ = 0;
  ParseError error_;
};

// Counts a Content-Length body: yields views of up to the remaining bytes, then kDone.
class ContentLengthBody {
 public:
  // `length` is Head::content_length.
  explicit ContentLengthBody(std::uint64_t length) : remaining_(length) {}

  // kData with the next payload view, kNeedMore when `input` is empty, kDone at the end
  // (consumed 0: what follows belongs to the next message).
  [[nodiscard]] BodyResult decode(std::string_view input);

  // Bytes of body still expected.
  std::uint64_t remaining() const { return remaining_; }

 private:
  std::uint64_t remaining_;
};

// ----------------------------------------------------------------------------------------
// Helpers over a parsed Head
// ----------------------------------------------------------------------------------------

// ASCII case-insensitive equality: field names, codings and options are case-insensitive.
bool iequals(std::string_view a, std::string_view b);

// The first field named `name` (case-insensitive), or nullptr. Only for singleton fields
// (the parser refuses duplicates of those that matter: Host, Content-Length); a list field may
// be split over several lines, so ask lists_element() instead.
const Field* find_field(const Head& head, std::string_view name);

// True when any field line named `name` lists `element` (case-insensitive) as one of its
// comma-separated elements (RFC 9110 5.6.1, 5.3: a list split over lines is one list).
bool lists_element(const Head& head, std::string_view name, std::string_view element);

// Calls fn(element) for each element of a comma-separated list (RFC 9110 5.6.1), OWS trimmed,
// empty elements included so that each caller decides; stops early when fn returns false, and
// then returns false.
template <typename Fn>
bool for_each_element(std::string_view list, Fn&& fn) {
  for (;;) {
    const std::size_t comma = list.find(',');
    std::string_view element = list.substr(0, comma);
    while (!element.empty() && (element.front() == ' ' || element.front() == '\t'))
      element.remove_prefix(1);
    while (!element.empty() && (element.back() == ' ' || element.back() == '\t'))
      element.remove_suffix(1);
    if (!fn(element)) return false;
    if (comma == std::string_view::npos) return true;
    list.remove_prefix(comma + 1);
  }
}

// True when a proxy must not forward `name`: the RFC 9110 7.6.1 hop-by-hop fields and every
// option the message lists in Connection.
bool is_hop_by_hop(const Head& head, std::string_view name);

// A short, stable name for logs and metrics.
const char* to_string(BodyKind kind);

}  // namespace ramjet::http::h1
