// HttpSession's requests to origins that speak HTTP/2 (proxy/http_session.h): the
// HTTP/1.1 request becomes a stream on the worker's shared connection to the origin
// (proxy/h2_upstream.h), the HTTP/2 response an HTTP/1.1 one. The rest of the session
// is http_session.cc.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "http/h1/forward_framing.h"
#include "http/status.h"
#include "proxy/h2_upstream.h"
#include "proxy/http_forwarding.h"
#include "proxy/http_session.h"
#include "proxy/http_wire.h"

namespace ramjet::proxy {

using http::h1::BodyKind;
using http::h1::MessageKind;
using http_wire::append_field;
using telemetry::Counter;

namespace {
constexpr std::size_t kReadChunk = 64 * 1024;

std::optional<std::string_view> field(const std::vector<http::h2::Field>& fields,
                                      std::string_view name) {
  for (const auto& f : fields)
    if (f.name == name) return f.value;
  return std::nullopt;
}
}  // namespace

Task<std::optional<HttpSession::Next>> HttpSession::exchange_h2(const HttpRequestHead& req,
                                                                void* req_ctx,
                                                                BodyFilter* request_filter,
                                                                bool client_http10,
                                                                bool& keep_alive) {
  const http::h1::Head& framing = head_;  // its framing members outlive the erased bytes
  if (framing.body == BodyKind::kChunked && framing.transfer_codings.size() > 1) {
    // HTTP/2 has no transfer codings: the body would reach the origin still gzip (or
    // whatever) coded, with nothing saying so. The body is left unread: close.
    std::string reply = render_error(
        {501, "http_request_error",
         fmt::format("an HTTP/2 origin cannot take the transfer coding '{}'",
                     framing.transfer_codings.front())});
    co_await send_all(*client_, reply);
    close_reason_ = CloseReason::kDownstreamError;
    co_return Next::kClose;
  }
  const bool no_body = framing.body == BodyKind::kNone ||
                       (framing.body == BodyKind::kContentLength && framing.content_length == 0);
  std::optional<std::string> request_length;
  if (framing.body == BodyKind::kContentLength && request_filter == nullptr)
    request_length = std::to_string(framing.content_length);
  const http::h2::RequestHead h = h2_origin_request(req, no_body, std::move(request_length));
  h2_request_ = h2_upstream_->open(h);
  if (!h2_request_) co_return std::nullopt;  // it stopped taking streams meanwhile: try again
  counters_.add(Counter::upstream_h2_streams);
  H2Request& up = *h2_request_;

  if (!h.end_stream) {
    if (framing.expect_continue) {
      // The stream is open: invite the body (RFC 9110 10.1.1).
      if (!co_await send_all(*client_, "HTTP/1.1 100 Continue\r\n\r\n")) co_return Next::kClose;
    }
    // Decoded from the client's framing; HTTP/2 frames it again.
    bool sent = co_await stream_body(*client_, in_, up, framing, MessageKind::kRequest,
                                     stats_.bytes_from_client, request_filter, false);
    if (sent) co_await up.shutdown_write();
    if (!sent) {
      up.cancel();
      std::string reply =
          request_body_error_
              ? render_error({400, "http_request_error", std::string(*request_body_error_)})
              : render_error({502, "http_request_error", "the request body was not forwarded"});
      if (!closing_ && close_reason_ != CloseReason::kDownstreamError)
        co_await send_all(*client_, reply);
      co_return Next::kClose;
    }
  }

  std::optional<http::h2::ResponseHead> head;
  for (;;) {
    head = co_await up.response(ep_.idle_timeout);
    if (!head || head->status >= 200) break;
    if (client_http10 || head->status == 101) continue;  // 1xx never reach an HTTP/1.0 client
    std::string interim = "HTTP/1.1 " + std::to_string(head->status) + " " +
                          http::reason_phrase(head->status) + "\r\n";
    for (const auto& f : head->fields) append_field(interim, f.name, f.value);
    interim += "\r\n";
    if (!co_await send_all(*client_, interim)) co_return Next::kClose;
  }
  if (!head) {
    if (up.refused()) {
      counters_.add(Counter::upstream_h2_refused);
      // Unprocessed (RFC 9113 8.7): a request whose body is gone cannot go again.
      if (h.end_stream) co_return std::nullopt;
    }
    if (up.timed_out() && !close_reason_) close_reason_ = CloseReason::kIdleTimeout;
    std::string reply = render_error({up.timed_out() ? 504 : 502, "http_response_incomplete",
                                      up.error()});
    if (!closing_) co_await send_all(*client_, reply);
    if (!close_reason_) close_reason_ = CloseReason::kUpstreamError;
    co_return Next::kClose;
  }

  HttpResponseHead resp;
  resp.status = head->status;
  resp.reason = http::reason_phrase(head->status);
  for (const auto& f : head->fields)
    if (f.name != "content-length") resp.headers.add(f.name, f.value);
  ResponseDirective rd = co_await run_response_hook(info_, ctx_.get(), req, resp, req_ctx);
  if (auto* respond = std::get_if<ResponseDirective::Respond>(&rd.value)) {
    up.cancel();  // the origin's body is not wanted
    std::string reply = render_reply(respond->reply, keep_alive);
    if (!co_await send_all(*client_, reply)) co_return Next::kClose;
    co_return keep_alive ? Next::kKeepAlive : Next::kClose;
  }
  std::unique_ptr<BodyFilter> filter =
      std::move(std::get<ResponseDirective::Continue>(rd.value).body_filter);

  // The client's framing: the origin's length when nothing changes the body, else chunks
  // (an HTTP/1.0 client: the close ends it).
  const std::optional<std::string_view> length = field(head->fields, "content-length");
  const bool bodyless = head->end_stream || resp.status == 204 || resp.status == 304 ||
                        req.method == "HEAD";
  const bool chunk_out = !bodyless && (filter != nullptr || !length) && !client_http10;
  if (!bodyless && !chunk_out && (filter != nullptr || !length)) keep_alive = false;
  std::string out = "HTTP/1.1 " + std::to_string(resp.status) + " " + resp.reason + "\r\n";
  append_forwarded_fields(out, resp.headers);
  if (alt_svc_ && !resp.headers.get("alt-svc")) append_field(out, "Alt-Svc", *alt_svc_);
  if (length && (bodyless || filter == nullptr)) append_field(out, "Content-Length", *length);
  if (chunk_out) append_field(out, "Transfer-Encoding", "chunked");
  if (!keep_alive) append_field(out, "Connection", "close");
  out += "\r\n";
  if (!co_await send_all(*client_, out)) {
    close_reason_ = CloseReason::kDownstreamError;
    co_return Next::kClose;
  }
  if (bodyless) co_return keep_alive ? Next::kKeepAlive : Next::kClose;

  std::string data;
  std::string scratch;
  for (;;) {
    data.clear();
    int n = co_await up.read(data, kReadChunk, ep_.idle_timeout);
    if (n == 0) break;
    if (n < 0) {
      // The head is out: the client must not take what it got for the whole body.
      counters_.add(Counter::http_body_aborts);
      spdlog::info("flow {}: response body aborted: {}", info_.id, up.error());
      http_wire::reset_on_close(client_fd_);
      close_reason_ = up.timed_out() ? CloseReason::kIdleTimeout : CloseReason::kUpstreamError;
      co_return Next::kClose;
    }
    stats_.bytes_to_client += static_cast<std::uint64_t>(n);
    if (!co_await emit(*client_, data, filter.get(), chunk_out, scratch)) co_return Next::kClose;
  }
  std::vector<http::h1::Field> trailers;
  for (const auto& f : up.trailers())
    if (trailer_forwarded(f.name)) trailers.push_back({f.name, f.value});
  if (!co_await finish_body(*client_, filter.get(), chunk_out, trailers)) co_return Next::kClose;
  co_return keep_alive ? Next::kKeepAlive : Next::kClose;
}

}  // namespace ramjet::proxy
