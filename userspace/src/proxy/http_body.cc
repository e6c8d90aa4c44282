// HttpSession's body streaming (proxy/http_session.h): reads into the session's
// buffers, pass-through from the ring, and every body framing in and out, through an
// application's BodyFilter when one is set. The session logic is http_session.cc.
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

#include "proxy/http_session.h"
#include "proxy/http_wire.h"

namespace ramjet::proxy {

using http::h1::BodyKind;
using http::h1::BodyStatus;
using http::h1::MessageKind;
using http_wire::append_field;
using http_wire::reset_on_close;
using telemetry::Counter;

namespace {
constexpr std::size_t kReadChunk = 64 * 1024;
}  // namespace

Task<bool> HttpSession::fill(runtime::Stream& s, std::string& buf) {
  if (closing_) co_return false;
  if (!s.plain()) {
    int n = co_await s.read(buf, kReadChunk, ep_.idle_timeout);
    if (n == -ETIMEDOUT && !close_reason_) close_reason_ = CloseReason::kIdleTimeout;
    co_return n > 0;
  }
  const int fd = s.fd();
  // Receive into a buffer the kernel picks from the worker's ring and append what
  // came: growing the string by a whole chunk first would zero 64 KiB per read.
  auto op = wc_.worker.recv_select(fd, wc_.buffers->group(), kReadChunk);
  // Awaited as this lvalue, so op.op.flags (the buffer id) is the one the CQE filled.
  if (ep_.idle_timeout.count() > 0) op.with_timeout(ep_.idle_timeout);
  int n = co_await op;
  if (n > 0) {
    unsigned id = op.op.flags >> IORING_CQE_BUFFER_SHIFT;
    buf.append(reinterpret_cast<const char*>(wc_.buffers->buffer(id)), static_cast<std::size_t>(n));
    wc_.buffers->recycle(id);
  } else if (n == -ENOBUFS) {
    // Every ring buffer is in flight: read into the string itself this once.
    std::size_t old = buf.size();
    buf.resize(old + kReadChunk);
    n = co_await wc_.worker.recv(fd, buf.data() + old, kReadChunk);
    buf.resize(old + static_cast<std::size_t>(n > 0 ? n : 0));
  }
  if (n == -ETIMEDOUT && !close_reason_) close_reason_ = CloseReason::kIdleTimeout;
  co_return n > 0;
}

Task<int> HttpSession::pass_through(runtime::Stream& src, runtime::Stream& dst,
                                    std::uint64_t limit, std::string& rest) {
  if (closing_) co_return -1;
  if (!src.plain()) {
    // Decrypted bytes come in a string of our own anyway: the copying path.
    if (!co_await fill(src, rest)) co_return -1;
    auto body = static_cast<std::size_t>(std::min<std::uint64_t>(limit, rest.size()));
    bool ok = co_await send_all(dst, std::string_view(rest).substr(0, body));
    rest.erase(0, body);
    co_return ok ? static_cast<int>(body) : -1;
  }
  auto op = wc_.worker.recv_select(src.fd(), wc_.buffers->group(), kReadChunk);
  if (ep_.idle_timeout.count() > 0) op.with_timeout(ep_.idle_timeout);
  int n = co_await op;
  if (n == -ETIMEDOUT && !close_reason_) close_reason_ = CloseReason::kIdleTimeout;
  if (n == -ENOBUFS) co_return co_await fill(src, rest) ? 0 : -1;  // the copying path
  if (n <= 0) co_return -1;
  unsigned id = op.op.flags >> IORING_CQE_BUFFER_SHIFT;
  const char* data = reinterpret_cast<const char*>(wc_.buffers->buffer(id));
  auto body = static_cast<std::size_t>(std::min<std::uint64_t>(limit, static_cast<unsigned>(n)));
  rest.append(data + body, static_cast<std::size_t>(n) - body);  // the next message, if any
  bool ok = co_await send_all(dst, std::string_view(data, body));
  wc_.buffers->recycle(id);
  co_return ok ? static_cast<int>(body) : -1;
}

Task<bool> HttpSession::send_all(runtime::Stream& s, std::string_view data) {
  // The first final status line the client gets is its span's status.
  if (span_ != nullptr && span_->status == 0 && &s == client_.get())
    span_->status = http_wire::final_status(data);
  if (!s.plain()) co_return co_await s.write_all(data);
  while (!data.empty()) {
    int n = co_await wc_.worker.send(s.fd(), data.data(), data.size());
    if (n <= 0) co_return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  co_return true;
}

Task<std::optional<std::string_view>> HttpSession::check_chunked_prefix() {
  for (;;) {
    http::h1::ChunkedDecoder dec(MessageKind::kRequest);
    std::vector<http::h1::Field> trailers;
    std::string_view rest = in_;
    bool decoded_any = false;
    for (;;) {
      auto r = dec.decode(rest, trailers);
      if (r.status == BodyStatus::kError) co_return r.error.reason;
      rest.remove_prefix(r.consumed);
      if (r.status == BodyStatus::kDone) co_return std::nullopt;
      if (r.status == BodyStatus::kData) {
        decoded_any = true;
        continue;
      }
      break;  // kNeedMore: everything received so far is well-formed
    }
    if (decoded_any || rest.size() < in_.size()) co_return std::nullopt;
    if (!co_await fill(*client_, in_)) co_return std::nullopt;  // EOF: caught while streaming
  }
}

Task<bool> HttpSession::emit(runtime::Stream& dst, std::string_view data, BodyFilter* filter, bool chunked,
                             std::string& scratch) {
  if (filter != nullptr) {
    scratch.clear();
    if (filter->on_data(data, scratch) == BodyFilter::Result::kAbort) co_return false;
    data = scratch;
  }
  if (data.empty()) co_return true;
  if (!chunked) co_return co_await send_all(dst, data);
  char size[20];
  auto [end, ec] = std::to_chars(size, size + sizeof size, data.size(), 16);
  std::string frame(size, end);
  frame += "\r\n";
  frame.append(data);
  frame += "\r\n";
  co_return co_await send_all(dst, frame);
}

Task<bool> HttpSession::finish_body(runtime::Stream& dst, BodyFilter* filter, bool chunked,
                                    const std::vector<http::h1::Field>& trailers) {
  std::string tail;
  if (filter != nullptr) {
    if (filter->on_end(tail) == BodyFilter::Result::kAbort) co_return false;
    std::string scratch;
    if (!co_await emit(dst, tail, nullptr, chunked, scratch)) co_return false;
  }
  if (!chunked) co_return true;
  std::string last = "0\r\n";
  for (const auto& t : trailers) append_field(last, t.name, t.value);
  last += "\r\n";
  co_return co_await send_all(dst, last);
}

Task<bool> HttpSession::stream_body(runtime::Stream& src, std::string& from, runtime::Stream& dst,
                                    const http::h1::Head& head, MessageKind kind,
                                    std::uint64_t& counter, BodyFilter* filter, bool chunk_out) {
  std::string scratch;
  const std::vector<http::h1::Field> no_trailers;
  switch (head.body) {
    case BodyKind::kNone:
    case BodyKind::kTunnel:
      co_return true;
    case BodyKind::kContentLength: {
      std::uint64_t left = head.content_length;
      while (left > 0) {
        if (from.empty() && filter == nullptr && !chunk_out) {
          // Plain pass-through: send straight from the ring buffer the kernel filled,
          // with no copy into `from` (only bytes past this body are kept there).
          int got = co_await pass_through(src, dst, left, from);
          if (got < 0) co_return false;
          left -= static_cast<std::uint64_t>(got);
          counter += static_cast<std::uint64_t>(got);
          continue;
        }
        if (from.empty() && !co_await fill(src, from)) co_return false;
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, from.size()));
        if (!co_await emit(dst, std::string_view(from).substr(0, n), filter, chunk_out, scratch))
          co_return false;
        from.erase(0, n);
        left -= n;
        counter += n;
      }
      co_return co_await finish_body(dst, filter, chunk_out, no_trailers);
    }
    case BodyKind::kUntilClose: {
      for (;;) {
        if (!from.empty()) {
          counter += from.size();
          if (!co_await emit(dst, from, filter, chunk_out, scratch)) co_return false;
          from.clear();
        }
        if (!co_await fill(src, from)) break;  // the close ends the body
      }
      co_return co_await finish_body(dst, filter, chunk_out, no_trailers);
    }
    case BodyKind::kChunked: {
      // Decoded and re-chunked: what reaches the other side is framed by us, so a
      // framing trick in the input cannot pass through.
      http::h1::ChunkedDecoder dec(kind);
      std::vector<http::h1::Field> trailers;
      for (;;) {
        auto r = dec.decode(from, trailers);
        if (r.status == BodyStatus::kError) {
          // The head went out already: the receiver is reset (the upstream by
          // handle_forward, the client here), never left with a body that looks complete.
          counters_.add(Counter::http_body_aborts);
          spdlog::info("flow {}: {} body aborted: {}", info_.id,
                       kind == MessageKind::kRequest ? "request" : "response", r.error.reason);
          if (kind == MessageKind::kRequest) {
            close_reason_ = CloseReason::kDownstreamError;
            request_body_error_ = r.error.reason;
          } else {
            close_reason_ = CloseReason::kUpstreamError;
            reset_on_close(dst.fd());
          }
          co_return false;
        }
        if (r.status == BodyStatus::kData) {
          counter += r.data.size();
          // Copy: the view points into `from`, which the erase below shifts.
          std::string piece(r.data);
          from.erase(0, r.consumed);
          if (!co_await emit(dst, piece, filter, chunk_out, scratch)) co_return false;
          continue;
        }
        if (r.status == BodyStatus::kDone) {
          bool ok = co_await finish_body(dst, filter, chunk_out, trailers);
          from.erase(0, r.consumed);
          co_return ok;
        }
        from.erase(0, r.consumed);
        if (!co_await fill(src, from)) co_return false;
      }
    }
  }
  co_return false;
}

}  // namespace ramjet::proxy
