// The h1 body decoders of http/h1/parser.h: chunked transfer coding and Content-Length.
#include "http/h1/grammar.h"
#include "http/h1/parser.h"

namespace ramjet::http::h1 {

using namespace detail;

// ---- ChunkedDecoder ----------------------------------------------------------------------

ChunkedDecoder::ChunkedDecoder(MessageKind kind, const ChunkedLimits& limits)
    : kind_(kind), limits_(limits) {}

void ChunkedDecoder::reset() {
  state_ = State::kSize;
  size_ = 0;
  size_digits_ = 0;
  line_bytes_ = 0;
  position_ = 0;
  trailer_line_ = 0;
  trailer_scan_ = 0;
  trailer_base_ = 0;
  error_ = {};
}

BodyResult ChunkedDecoder::fail(int status, std::size_t at, std::string_view reason) {
  state_ = State::kError;
  error_ = {kind_ == MessageKind::kResponse ? 502 : status,
            static_cast<std::size_t>(position_ + at), reason};
  return {BodyStatus::kError, 0, {}, error_};
}

BodyResult ChunkedDecoder::decode(std::string_view in, std::vector<Field>& trailers) {
  switch (state_) {
    case State::kError:
      return {BodyStatus::kError, 0, {}, error_};
    case State::kDone:
      return {BodyStatus::kDone, 0, {}, {}};
    case State::kTrailers:
      return decode_trailers(in, 0, trailers);
    default:
      break;
  }
  const std::size_t n = in.size();
  std::size_t i = 0;
  while (i < n) {
    if (state_ == State::kData) {
      const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(size_, n - i));
      size_ -= take;
      if (size_ == 0) state_ = State::kDataCr;
      const BodyResult r{BodyStatus::kData, i + take, in.substr(i, take), {}};
      position_ += r.consumed;
      return r;
    }
    const char c = in[i];
    switch (state_) {
      case State::kDataCr:
        if (c == '\n') return fail(400, i, "bare LF after chunk data");
        if (c != '\r') return fail(400, i, "missing CRLF after chunk data");
        state_ = State::kDataLf;
        break;
      case State::kDataLf:
        if (c != '\n') return fail(400, i, "bare CR after chunk data");
        state_ = State::kSize;
        size_ = 0;
        size_digits_ = 0;
        line_bytes_ = 0;
        break;
      case State::kSizeLf:
        if (c != '\n') return fail(400, i, "bare CR in chunk-size line");
        ++i;
        if (size_ == 0) {
          // last-chunk: what follows is the trailer section, which needs views, so it stays
          // in the caller's buffer until it is complete.
          state_ = State::kTrailers;
          trailers.clear();
          trailer_line_ = trailer_scan_ = 0;
          return decode_trailers(in, i, trailers);
        }
        state_ = State::kData;
        continue;
      default: {
        // The chunk-size line: LF only after CR, and bounded so extensions cannot grow forever.
        if (c == '\n') return fail(400, i, "bare LF in chunk-size line");
        if (c != '\r' && ++line_bytes_ > limits_.max_chunk_line) {
          return fail(400, i, "chunk-size line too long");
        }
        if (const char* why = chunk_line_byte(c)) return fail(400, i, why);
        break;
      }
    }
    ++i;
  }
  position_ += n;
  return {BodyStatus::kNeedMore, n, {}, {}};
}

// chunk-size [ chunk-ext ] up to its CR, one byte at a time, where
// chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ) and ext-val is a token or a
// quoted-string. Returns why the byte is wrong, or nullptr.
const char* ChunkedDecoder::chunk_line_byte(char c) {
  const bool ws = is_ws(c);
  switch (state_) {
    case State::kSize: {
      const int d = hex_value(c);
      if (d >= 0) {
        if (size_ > (kMaxLength - static_cast<std::uint64_t>(d)) / 16) {
          return "chunk size too large";
        }
        size_ = size_ * 16 + static_cast<std::uint64_t>(d);
        ++size_digits_;
      } else if (size_digits_ == 0) {
        return "invalid chunk size";
      } else if (c == '\r') {
        state_ = State::kSizeLf;
      } else if (c == ';') {
        state_ = State::kExtNameStart;
      } else if (ws) {
        state_ = State::kSizeWs;
      } else {
        return "invalid character after chunk size";
      }
      break;
    }
    case State::kSizeWs:
      if (c == ';') {
        state_ = State::kExtNameStart;
      } else if (!ws) {
        return "malformed chunk extension";
      }
      break;
    case State::kExtNameStart:
      if (is_tchar(c)) {
        state_ = State::kExtName;
      } else if (!ws) {
        return "malformed chunk extension";
      }
      break;
    case State::kExtName:
      if (c == '\r') {
        state_ = State::kSizeLf;
      } else if (c == '=') {
        state_ = State::kExtValStart;
      } else if (c == ';') {
        state_ = State::kExtNameStart;
      } else if (ws) {
        state_ = State::kExtNameWs;
      } else if (!is_tchar(c)) {
        return "malformed chunk extension";
      }
      break;
    case State::kExtNameWs:
      if (c == '=') {
        state_ = State::kExtValStart;
      } else if (c == ';') {
        state_ = State::kExtNameStart;
      } else if (!ws) {
        return "malformed chunk extension";
      }
      break;
    case State::kExtValStart:
      if (c == '"') {
        state_ = State::kExtQuoted;
      } else if (is_tchar(c)) {
        state_ = State::kExtValToken;
      } else if (!ws) {
        return "malformed chunk extension";
      }
      break;
    case State::kExtValToken:
      if (c == '\r') {
        state_ = State::kSizeLf;
      } else if (c == ';') {
        state_ = State::kExtNameStart;
      } else if (ws) {
        state_ = State::kSizeWs;
      } else if (!is_tchar(c)) {
        return "malformed chunk extension";
      }
      break;
    case State::kExtQuoted:
      // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
      if (c == '"') {
        state_ = State::kExtValEnd;
      } else if (c == '\\') {
        state_ = State::kExtQuotedPair;
      } else if (!is_field_value_char(c)) {
        return "malformed chunk extension";
      }
      break;
    case State::kExtQuotedPair:
      if (!is_field_value_char(c)) return "malformed chunk extension";
      state_ = State::kExtQuoted;
      break;
    case State::kExtValEnd:
      if (c == '\r') {
        state_ = State::kSizeLf;
      } else if (c == ';') {
        state_ = State::kExtNameStart;
      } else if (ws) {
        state_ = State::kSizeWs;
      } else {
        return "malformed chunk extension";
      }
      break;
    default:
      return "chunked decoder in an impossible state";
  }
  return nullptr;
}

// trailer-section = *( field-line CRLF ) CRLF, parsed like a head's fields, with offsets
// relative to the section start so that NeedMore leaves the section unconsumed.
BodyResult ChunkedDecoder::decode_trailers(std::string_view in, std::size_t start,
                                           std::vector<Field>& trailers) {
  const std::string_view buf = in.substr(start);
  if (!trailers.empty() && address(buf.data()) != trailer_base_) {
    for (Field& f : trailers) {
      rebase(f.name, trailer_base_, buf.data());
      rebase(f.value, trailer_base_, buf.data());
    }
  }
  trailer_base_ = address(buf.data());
  if (buf.size() < trailer_scan_) return fail(500, start + buf.size(), "buffer shrank");
  for (;;) {
    const LineScan s = scan_line(buf, trailer_line_, trailer_scan_, kNoLimit, limits_.max_trailer);
    switch (s.fault) {
      case LineFault::kNone:
        break;
      case LineFault::kNeedMore:
        position_ += start;
        return {BodyStatus::kNeedMore, start, {}, {}};
      case LineFault::kBareLf:
        return fail(400, start + s.at, "bare LF in trailer section");
      case LineFault::kBareCr:
        return fail(400, start + s.at, "bare CR in trailer section");
      case LineFault::kNul:
        return fail(400, start + s.at, "NUL byte in trailer section");
      case LineFault::kLineTooLong:
      case LineFault::kTotalTooLong:
        return fail(431, start + s.at, "trailer section too large");
    }
    const std::size_t begin = trailer_line_;
    const std::size_t end = s.at - 1;
    trailer_line_ = trailer_scan_ = s.at + 1;
    if (begin == end) {
      state_ = State::kDone;
      const BodyResult r{BodyStatus::kDone, start + trailer_scan_, {}, {}};
      position_ += r.consumed;
      return r;
    }
    if (is_ws(buf[begin])) return fail(400, start + begin, "obs-fold in trailer section");
    if (trailers.size() >= limits_.max_trailer_fields) {
      return fail(431, start + begin, "too many trailer fields");
    }
    Field f;
    Fault fault;
    if (!parse_field_line(buf, begin, end, f, fault))
      return fail(400, start + fault.at, fault.reason);
    // RFC 9110 6.5.1: framing and routing fields are forbidden in trailers; a recipient that
    // merged them would reframe or reroute a message that was already delimited.
    if (iequals(f.name, "content-length") || iequals(f.name, "transfer-encoding") ||
        iequals(f.name, "host") || iequals(f.name, "trailer")) {
      return fail(400, start + begin, "framing field in trailer section");
    }
    trailers.push_back(f);
  }
}

// ---- ContentLengthBody -------------------------------------------------------------------

BodyResult ContentLengthBody::decode(std::string_view input) {
  if (remaining_ == 0) return {BodyStatus::kDone, 0, {}, {}};
  if (input.empty()) return {BodyStatus::kNeedMore, 0, {}, {}};
  const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, input.size()));
  remaining_ -= take;
  return {BodyStatus::kData, take, input.substr(0, take), {}};
}

}  // namespace ramjet::http::h1
