// StreamSession's streams (proxy/stream_session.h): one coroutine per request, from the
// validated head to the end of its response or tunnel.
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <random>

#include "http/auth/proxy_auth.h"
#include "http/status.h"
#include "proxy/egress_chain.h"
#include "proxy/stream_session.h"
#include "proxy/http_forwarding.h"
#include "proxy/http_wire.h"
#include "proxy/h2_upstream.h"
#include "proxy/upstream_link.h"

namespace ramjet::proxy {

using http::h1::BodyKind;
using http::h1::BodyStatus;
using http::h1::MessageKind;
using http::h1::ParseStatus;
using http::h2::Field;
using telemetry::Counter;

namespace {
// Response bytes a stream may have queued beyond the client's window before it waits.
constexpr std::size_t kHighWater = 64 * 1024;
constexpr std::size_t kUpstreamRead = 16 * 1024;

// Request fields that do not travel as fields to an HTTP/1.1 upstream: framing is rebuilt,
// Host comes from :authority, TE is hop-by-hop.
bool rebuilt_on_forward(std::string_view name) {
  return name == "host" || name == "content-length" || name == "te";
}

std::string websocket_key() {
  static constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::random_device rd;
  unsigned char raw[18] = {};
  for (int i = 0; i < 16; ++i) raw[i] = static_cast<unsigned char>(rd());
  std::string out;
  for (int i = 0; i < 18; i += 3) {
    unsigned v = (raw[i] << 16) | (raw[i + 1] << 8) | raw[i + 2];
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  return out.substr(0, 22) + "==";  // 16 bytes
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  return out;
}

std::string hex(std::size_t n) {
  char buf[32];
  int len = std::snprintf(buf, sizeof buf, "%zx", n);
  return std::string(buf, static_cast<std::size_t>(len));
}

}  // namespace

std::optional<StreamSession::ProxyError> StreamSession::authenticate(const HttpRequestHead& req) {
  if (auth_ == nullptr) return std::nullopt;
  auto cred = req.headers.get("proxy-authorization");
  http::auth::AuthResult r = auth_->check(cred.value_or(std::string_view()));
  if (r.status == http::auth::AuthStatus::kOk) return std::nullopt;
  std::string details = r.status == http::auth::AuthStatus::kMissing
                            ? "proxy authentication required"
                            : "invalid proxy credentials: " + std::string(r.reason);
  return ProxyError{
      407, "http_request_denied", std::move(details), {{"proxy-authenticate", auth_->challenge()}}};
}

void StreamSession::answer(Exchange& x, const ProxyError& e) {
  bool upstream = e.status == 502 || e.status == 504;
  counters_.add(upstream ? Counter::http_upstream_errors : Counter::http_client_errors);
  spdlog::info("flow {} stream {}: answered {} {}: {}", info_.id, x.id, e.status, e.type,
               e.details);
  if (x.closed) return;
  std::string body = std::to_string(e.status) + " " + http::reason_phrase(e.status) + ": " + e.type;
  if (!e.details.empty()) body += ": " + e.details;
  body += "\n";
  std::vector<Field> fields = e.extra;
  fields.push_back({"proxy-status", proxy_status_value(e.type, e.details)});
  fields.push_back({"content-type", "text/plain; charset=utf-8"});
  fields.push_back({"content-length", std::to_string(body.size())});
  submit_head(x, e.status, fields, false);
  conn_.send_data(x.id, body);
  conn_.end_data(x.id);
  x.response_done = true;
  kick();
}

bool StreamSession::submit_head(Exchange& x, int status, const std::vector<Field>& fields,
                                bool end_stream) {
  if (x.span && x.span->status == 0) x.span->status = status;
  return conn_.submit_response(x.id, status, fields, end_stream);
}

void StreamSession::answer(Exchange& x, const HttpReply& reply) {
  if (x.closed) return;
  std::vector<Field> fields;
  for (const auto& f : reply.headers.fields())
    if (!HttpHeaders::iequals(f.name, "content-length")) fields.push_back({f.name, f.value});
  fields.push_back({"content-length", std::to_string(reply.body.size())});
  submit_head(x, reply.status, fields, reply.body.empty());
  if (!reply.body.empty()) {
    conn_.send_data(x.id, reply.body);
    conn_.end_data(x.id);
  }
  x.response_done = true;
  kick();
}

void StreamSession::finish_exchange(Exchange& x) {
  x.h2.reset();  // resets the upstream stream if it is unfinished
  x.h2_origin.reset();
  close_upstream(x);
  if (!x.closed && !x.response_done) conn_.reset(x.id, StreamError::kInternal);
  exchanges_.erase(x.id);
  kick();
}

void StreamSession::close_upstream(Exchange& x) {
  x.upstream.reset();
  if (x.upstream_fd >= 0) ::close(x.upstream_fd);
  x.upstream_fd = -1;
}

void StreamSession::abandon_upstream(Exchange& x) {
  if (x.upstream_fd >= 0) ::shutdown(x.upstream_fd, SHUT_RDWR);
  if (x.h2) x.h2->cancel();
}

Task<bool> StreamSession::upstream_send(Exchange& x, std::string_view data) {
  runtime::Stream* s = x.h2 ? static_cast<runtime::Stream*>(x.h2.get()) : x.upstream.get();
  co_return s != nullptr && co_await s->write_all(data);
}

Task<int> StreamSession::upstream_recv(Exchange& x, std::string& buf) {
  if (!x.upstream) co_return -EBADF;
  co_return co_await x.upstream->read(buf, kUpstreamRead, ep_.idle_timeout);
}

Task<bool> StreamSession::send_to_client(Exchange& x, std::string_view data) {
  if (!x.closed) stats_.bytes_to_client += data.size();
  static constexpr bool kNoStop = false;
  co_return co_await queue_to_client(x, data, kNoStop);
}

Task<bool> StreamSession::queue_to_client(Exchange& x, std::string_view data, const bool& stop) {
  if (x.closed || stop) co_return false;
  if (data.empty()) co_return true;
  conn_.send_data(x.id, data);
  kick();
  while (!x.closed && !stop && conn_.buffered(x.id) > kHighWater) co_await x.window.wait();
  co_return !x.closed && !stop;
}

Task<std::optional<StreamSession::ProxyError>> StreamSession::open_upstream(Exchange& x,
                                                                    const HostPort& target,
                                                                    bool reuse, bool tls,
                                                                    bool h2, bool probe) {
  EgressChain chain(wc_, counters_, info_, ctx_.get(), ep_, audited_decisions());
  auto r = co_await open_upstream_link(wc_, ep_, counters_, chain, info_.id, target,
                                       {.reuse = reuse, .probe = probe, .tls = tls, .h2 = h2});
  if (auto* f = std::get_if<UpstreamFailure>(&r))
    co_return ProxyError{f->status, f->proxy_status, std::move(f->details)};
  UpstreamLink& link = std::get<UpstreamLink>(r);
  // Formatted once per address, not per request: the session's requests mostly share one.
  if (stats_.upstream.empty() || !(link.address == last_upstream_address_)) {
    stats_.upstream = link.address.to_string();
    last_upstream_address_ = link.address;
  }
  x.upstream_address = link.address;
  x.upstream_reuse_key = std::move(link.reuse_key);
  x.upstream_reused = link.reused;
  x.h2_origin = std::move(link.h2);
  x.upstream_fd = link.fd;
  x.upstream = std::move(link.stream);
  co_return std::nullopt;
}

Task<void> StreamSession::serve(Exchange& x) {
  const http::h2::RequestHead& h = x.head;
  counters_.add(Counter::http_requests);
  HttpRequestHead req;
  req.method = h.method;
  req.version = version_;
  for (const auto& f : h.fields)
    if (!rebuilt_on_forward(f.name)) req.headers.add(f.name, f.value);
  x.span = begin_request_span(req);
  note_span(x.span);
  if (x.span && x.span->recording && !h.authority.empty())
    x.span->attributes.emplace_back("server.address", h.authority);
  if (auto denied = authenticate(req)) {
    answer(x, *denied);
  } else if (h.method == "CONNECT" && h.protocol.empty()) {
    req.target = h.authority;
    req.authority = HostPort::parse(h.authority);
    req.path = "/";
    if (!req.authority)
      answer(x, {400, "http_request_error", "CONNECT :authority must be host:port"});
    else
      co_await connect(x, std::move(req));
  } else if (h.method == "CONNECT" && h.protocol == http::kConnectUdpUpgradeToken &&
             ep_.connect_udp.enabled) {
    co_await connect_udp(x, std::move(req));
  } else if (h.method == "CONNECT") {
    if (h.protocol != "websocket" || h.scheme != "http") {
      answer(x, {501, "http_request_error",
                 "extended CONNECT is forwarded for :protocol websocket over http only"});
    } else {
      req.method = "GET";
      req.authority = parse_authority(h.authority, 80);
      req.path = h.path;
      req.target = "http://" + h.authority + h.path;
      if (!req.authority)
        answer(x, {400, "http_request_error", "invalid :authority"});
      else
        co_await websocket(x, std::move(req));
    }
  } else if (h.scheme != "http" && h.scheme != "https" && !h.authority.empty()) {
    answer(x, {400, "http_request_error", "only http and https requests are forwarded"});
  } else {
    req.path = h.path;
    bool origin_tls = h.scheme == "https";
    if (ep_.upstream) {
      // Reverse-proxy mode: every request goes to the configured origin.
      req.authority = ep_.upstream->target;
      req.target = h.path;
      origin_tls = ep_.upstream->tls();
    } else if (!h.authority.empty()) {
      req.authority = parse_authority(h.authority, origin_tls ? 443 : 80);
      req.target = h.scheme + "://" + h.authority + h.path;
    } else {
      req.target = h.path;
    }
    if (!ep_.upstream && !h.authority.empty() && !req.authority)
      answer(x, {400, "http_request_error", "invalid :authority"});
    else
      co_await forward(x, std::move(req), origin_tls);
  }
  // No way out of the chain above skips this: before finish_exchange, which may free
  // the exchange with its span.
  if (x.span) telemetry::tracer().end(*x.span, info_);
  finish_exchange(x);
}

Task<void> StreamSession::connect(Exchange& x, HttpRequestHead req) {
  // One audit record per connection: it names the first tunnel the connection opened.
  audit_.kind = telemetry::FlowKind::kConnect;
  if (wc_.audit_log != nullptr && audit_.target.empty()) audit_.target = req.target;
  if (!co_await connect_allowed(x, req, req.authority->to_string())) co_return;
  if (auto err = co_await open_upstream(x, *req.authority, /*reuse=*/false)) {
    answer(x, *err);
    co_return;
  }
  const HttpResponseHead resp = connect_response();
  std::vector<Field> fields;
  for (const auto& f : resp.headers.fields()) fields.push_back({f.name, f.value});
  if (x.closed || !submit_head(x, resp.status, fields, false)) co_return;
  kick();
  counters_.add(Counter::http_connect_tunnels);
  co_await tunnel(x, {});
}

Task<bool> StreamSession::connect_allowed(Exchange& x, const HttpRequestHead& req,
                                      const std::string& traced) {
  auto t0 = runtime::Clock::now();
  ConnectDirective d = co_await wc_.hooks.http_connect_request(info_, req, ctx_.get());
  bool deny = d.action == ConnectDirective::Action::kDeny;
  if (x.span) x.span->add_hook("http.handle_proxy_connect_request", deny ? "deny" : "allow", t0);
  trace_hook(info_, "http.handle_proxy_connect_request", deny ? "deny" : "allow",
             deny ? d.reason : traced, t0);
  audit_.decisions.connect.decision = deny ? "deny" : "allow";
  if (!deny) co_return true;
  audit_.decisions.connect.status = d.status;
  audit_.decisions.connect.reason = d.reason;
  answer(x, {d.status, "http_request_denied", d.reason});
  co_return false;
}

HttpResponseHead StreamSession::connect_response() {
  HttpResponseHead resp;
  resp.status = 200;
  auto t0 = runtime::Clock::now();
  wc_.hooks.http_connect_response(info_, resp, ctx_.get());
  trace_hook(
      info_, "http.handle_proxy_connect_response", "continue",
      [&] { return std::to_string(resp.headers.fields().size()) + " fields"; }, t0);
  return resp;
}

Task<void> StreamSession::tunnel(Exchange& x, std::string upstream_bytes) {
  runtime::JoinSet down;
  down.start(upstream_to_client(x, std::move(upstream_bytes)));
  bool ok = co_await client_to_upstream(x, /*chunked=*/false, nullptr);
  if (x.upstream_fd >= 0) ::shutdown(x.upstream_fd, ok ? SHUT_WR : SHUT_RDWR);
  co_await down.wait();
  x.response_done = true;
}

Task<void> StreamSession::upstream_to_client(Exchange& x, std::string pending) {
  if (!co_await send_to_client(x, pending)) co_return;
  std::string buf;
  for (;;) {
    buf.clear();
    int n = co_await upstream_recv(x, buf);
    if (n == 0) {
      conn_.end_data(x.id);
      kick();
      co_return;
    }
    // A tunnel is idle only when neither direction moved (as the TCP relay counts it).
    if (n == -ETIMEDOUT && !x.closed && runtime::Clock::now() - x.client_active < ep_.idle_timeout)
      continue;
    if (n < 0) {
      if (!x.closed) conn_.reset(x.id, StreamError::kConnect);
      kick();
      co_return;
    }
    if (!co_await send_to_client(x, buf)) co_return;
  }
}

Task<bool> StreamSession::client_to_upstream(Exchange& x, bool chunked, BodyFilter* filter) {
  std::string out;
  for (;;) {
    while (x.body.empty() && !x.ended && !x.closed) co_await x.input.wait();
    if (x.reset != 0) co_return false;
    if (!x.body.empty()) {
      std::string data = std::move(x.body);
      x.body.clear();
      out.clear();
      if (filter == nullptr)
        out = std::move(data);
      else if (filter->on_data(data, out) == BodyFilter::Result::kAbort)
        co_return false;
      const std::size_t n = filter == nullptr ? out.size() : data.size();
      if (chunked && !out.empty()) out = hex(out.size()) + "\r\n" + out + "\r\n";
      if (!out.empty() && !co_await upstream_send(x, out)) co_return false;
      x.client_active = runtime::Clock::now();
      conn_.consume(x.id, n);
      kick();
      continue;
    }
    if (x.ended) {
      out.clear();
      if (filter != nullptr && filter->on_end(out) == BodyFilter::Result::kAbort) co_return false;
      if (chunked) {
        std::string tail = out.empty() ? "" : hex(out.size()) + "\r\n" + out + "\r\n";
        tail += "0\r\n";
        for (const auto& f : x.trailers)
          if (trailer_forwarded(f.name)) http_wire::append_field(tail, f.name, f.value);
        tail += "\r\n";
        out = std::move(tail);
      }
      if (x.h2) {
        // HTTP/2 frames the end itself, and carries the trailers as they are.
        if (!out.empty() && !co_await upstream_send(x, out)) co_return false;
        std::vector<Field> trailers;
        for (const auto& f : x.trailers)
          if (trailer_forwarded(f.name)) trailers.push_back(f);
        x.h2->set_trailers(std::move(trailers));
        co_await x.h2->shutdown_write();
        co_return true;
      }
      co_return out.empty() || co_await upstream_send(x, out);
    }
    co_return false;  // closed without END_STREAM
  }
}

Task<std::optional<StreamSession::ProxyError>> StreamSession::read_response_head(Exchange& x,
                                                                         std::string& buf,
                                                                         http::h1::Head& head,
                                                                         std::string_view method,
                                                                         std::size_t& consumed,
                                                                         bool* retry) {
  http::h1::HeadParser parser(MessageKind::kResponse, {}, method);
  for (;;) {
    auto r = parser.parse(buf, head);
    if (r.status == ParseStatus::kError)
      co_return ProxyError{502, "http_protocol_error", std::string(r.error.reason)};
    if (r.status == ParseStatus::kNeedMore) {
      int n = co_await upstream_recv(x, buf);
      if (n == -ETIMEDOUT)
        co_return ProxyError{504, "http_response_incomplete", "no response in time"};
      if (n <= 0 && retry != nullptr && buf.empty()) *retry = true;
      if (n <= 0)
        co_return ProxyError{502, "http_response_incomplete",
                             buf.empty() ? "upstream closed without a response"
                                         : "upstream closed inside the response head"};
      continue;
    }
    // With this, a server closes a connection it timed out before our request arrived.
    if (retry != nullptr && head.status_code == 408) {
      *retry = true;
      co_return ProxyError{502, "http_response_incomplete", "408 on an idle connection"};
    }
    retry = nullptr;  // an answer came: the request is not sent again
    // Interim responses (100 Continue, 103 Early Hints) pass through; the final one follows.
    if (head.status_code < 200 && head.body != BodyKind::kTunnel) {
      if (!x.closed) {
        std::vector<Field> fields;
        for (const auto& f : head.fields)
          if (!never_forwarded(head, f.name))
            fields.push_back({std::string(f.name), std::string(f.value)});
        conn_.submit_interim(x.id, head.status_code, fields);
        kick();
      }
      buf.erase(0, r.consumed);
      parser.reset(method);
      continue;
    }
    consumed = r.consumed;
    co_return std::nullopt;
  }
}

Task<bool> StreamSession::request_hook(Exchange& x, HttpRequestHead& req, void* req_ctx,
                                   std::unique_ptr<BodyFilter>& filter) {
  auto t0 = runtime::Clock::now();
  RequestDirective rd = co_await wc_.hooks.http_request(info_, req, ctx_.get(), req_ctx);
  if (auto* respond = std::get_if<RequestDirective::Respond>(&rd.value)) {
    trace_hook(
        info_, "http.handle_request", "respond",
        [&] { return std::to_string(respond->reply.status); }, t0);
    if (x.span) x.span->add_hook("http.handle_request", "respond", t0);
    answer(x, respond->reply);
    co_return false;
  }
  filter = std::move(std::get<RequestDirective::Continue>(rd.value).body_filter);
  trace_hook(
      info_, "http.handle_request", "continue",
      [&] { return req.authority ? req.authority->to_string() + req.path : req.path; }, t0);
  if (x.span) x.span->add_hook("http.handle_request", "continue", t0);
  co_return true;
}

Task<bool> StreamSession::response_hook(Exchange& x, const HttpRequestHead& req, HttpResponseHead& resp,
                                    void* req_ctx, std::unique_ptr<BodyFilter>& filter) {
  const auto t0 = runtime::Clock::now();
  ResponseDirective rd = co_await run_response_hook(info_, ctx_.get(), req, resp, req_ctx);
  if (x.span) {
    const bool respond = std::holds_alternative<ResponseDirective::Respond>(rd.value);
    x.span->add_hook("http.handle_response", respond ? "respond" : "continue", t0);
  }
  if (auto* respond = std::get_if<ResponseDirective::Respond>(&rd.value)) {
    answer(x, respond->reply);
    co_return false;
  }
  filter = std::move(std::get<ResponseDirective::Continue>(rd.value).body_filter);
  co_return true;
}

Task<void> StreamSession::forward(Exchange& x, HttpRequestHead req, bool origin_tls) {
  if (x.span && x.span->recording) x.span->attributes.emplace_back("url.full", req.target);
  std::shared_ptr<void> req_ctx = wc_.hooks.make_request_context();
  std::unique_ptr<BodyFilter> request_filter;
  if (!co_await request_hook(x, req, req_ctx.get(), request_filter)) co_return;
  if (!req.authority) {
    answer(x, {400, "http_request_error",
               "this is a forward proxy: send :scheme http(s) with an :authority, or CONNECT"});
    co_return;
  }
  // A request without a body can be sent again. On a pooled HTTP/1.1 connection it goes
  // out without a liveness probe, and when the origin had closed that connection (or
  // closes it unanswered) it is sent once more on a new one; one with a body goes only
  // on a connection probed open (as on the HTTP/1.1 on-ramp).
  const bool replayable = x.head.end_stream;
  for (int attempt = 0;; ++attempt) {
    set_state(SessionState::kConnecting);
    if (auto err = co_await open_upstream(x, *req.authority, /*reuse=*/attempt == 0, origin_tls,
                                          /*h2=*/true, /*probe=*/!replayable)) {
      answer(x, *err);
      co_return;
    }
    set_state(SessionState::kRelaying);
    if (x.h2_origin) {
      co_await forward_h2(x, req, req_ctx.get(), request_filter.get());
      co_return;
    }
    const bool may_retry = replayable && x.upstream_reused && attempt == 0;
    if (!co_await forward_h1(x, req, req_ctx.get(), request_filter.get(), origin_tls, may_retry) ||
        x.closed)
      co_return;
    counters_.add(Counter::upstream_retries);
    close_upstream(x);
  }
}

Task<bool> StreamSession::forward_h1(Exchange& x, const HttpRequestHead& req, void* req_ctx,
                                 BodyFilter* request_filter, bool origin_tls, bool may_retry) {
  std::optional<std::string> length;
  for (const auto& f : x.head.fields)
    if (f.name == "content-length") length = f.value;
  const bool has_body = !x.head.end_stream;
  const bool chunked = has_body && (request_filter != nullptr || !length);
  std::string out;
  out.append(req.method).append(" ").append(req.path).append(" HTTP/1.1\r\n");
  http_wire::append_field(out, "Host", authority_value(*req.authority, origin_tls ? 443 : 80));
  append_forwarded_fields(out, req.headers);
  if (chunked)
    http_wire::append_field(out, "Transfer-Encoding", "chunked");
  else if (length)
    http_wire::append_field(out, "Content-Length", *length);
  out += "\r\n";

  if (!co_await upstream_send(x, out)) {
    if (may_retry) co_return true;
    answer(x, {502, "http_request_error", "upstream closed while sending the request"});
    co_return false;
  }
  if (has_body && !co_await client_to_upstream(x, chunked, request_filter)) {
    // The origin has part of the request: a reset tells it the request was aborted.
    http_wire::reset_on_close(x.upstream_fd);
    if (!x.closed) answer(x, {502, "http_request_error", "the request body was not forwarded"});
    co_return false;
  }

  std::string up;
  http::h1::Head head;
  std::size_t consumed = 0;
  bool retry = false;
  if (auto err = co_await read_response_head(x, up, head, req.method, consumed,
                                             may_retry ? &retry : nullptr)) {
    if (retry) co_return true;
    answer(x, *err);
    co_return false;
  }
  if (head.body == BodyKind::kTunnel) {
    answer(x, {502, "http_protocol_error", "the upstream switched protocols unasked"});
    co_return false;
  }
  HttpResponseHead resp;
  resp.status = head.status_code;
  resp.reason = std::string(head.reason);
  for (const auto& f : head.fields)
    if (!never_forwarded(head, f.name)) resp.headers.add(std::string(f.name), std::string(f.value));
  // A hook's own answer leaves the upstream body unread: that connection is not pooled.
  std::unique_ptr<BodyFilter> filter;
  if (!co_await response_hook(x, req, resp, req_ctx, filter)) co_return false;

  std::vector<Field> fields = h2_forwarded_fields(resp.headers);
  if (alt_svc_ && !resp.headers.get("alt-svc")) fields.push_back({"alt-svc", *alt_svc_});
  if (head.body == BodyKind::kContentLength && filter == nullptr)
    fields.push_back({"content-length", std::to_string(head.content_length)});
  if (req.method == "HEAD")  // the length a GET would have had, as received
    for (const auto& f : head.fields)
      if (http::h1::iequals(f.name, "content-length"))
        fields.push_back({"content-length", std::string(f.value)});
  const bool no_body = head.body == BodyKind::kNone;
  if (x.closed || !submit_head(x, resp.status, fields, no_body)) co_return false;
  kick();
  up.erase(0, consumed);
  if (no_body) {
    x.response_done = true;
  } else if (!co_await relay_response_body(x, up, head, filter.get())) {
    if (!x.closed) conn_.reset(x.id, StreamError::kInternal);
    x.response_done = true;
    kick();
    co_return false;
  }
  if (head.keep_alive && head.body != BodyKind::kUntilClose && up.empty()) {
    // Now the worker's, for any client (a TLS connection with its session).
    UpstreamLink link{.fd = std::exchange(x.upstream_fd, -1),
                      .stream = std::move(x.upstream),
                      .address = x.upstream_address,
                      .reuse_key = x.upstream_reuse_key};
    pool_upstream_link(wc_, link);
  }
  co_return false;
}

Task<void> StreamSession::forward_h2(Exchange& x, const HttpRequestHead& req, void* req_ctx,
                                 BodyFilter* request_filter) {
  std::optional<std::string> request_length;
  if (request_filter == nullptr)
    for (const auto& f : x.head.fields)
      if (f.name == "content-length") request_length = f.value;
  const http::h2::RequestHead h =
      h2_origin_request(req, x.head.end_stream, std::move(request_length));

  std::optional<http::h2::ResponseHead> head;
  for (int attempt = 0;; ++attempt) {
    if (!x.h2_origin) {
      // A retry: any connection still taking streams, else a new one.
      if (auto err = co_await open_upstream(x, *req.authority, /*reuse=*/true, /*tls=*/true,
                                            /*h2=*/true)) {
        answer(x, *err);
        co_return;
      }
      if (!x.h2_origin) {
        answer(x, {502, "http_protocol_error", "the origin no longer speaks HTTP/2"});
        co_return;
      }
    }
    x.h2 = x.h2_origin->open(h);
    x.h2_origin.reset();
    if (x.h2) {
      counters_.add(Counter::upstream_h2_streams);
      if (!h.end_stream && !co_await client_to_upstream(x, /*chunked=*/false, request_filter)) {
        x.h2->cancel();
        if (!x.closed) answer(x, {502, "http_request_error", "the request body was not forwarded"});
        co_return;
      }
      for (;;) {
        head = co_await x.h2->response(ep_.idle_timeout);
        if (!head || head->status >= 200) break;
        if (!x.closed) conn_.submit_interim(x.id, head->status, head->fields);
        kick();
      }
      if (head) break;
      if (x.h2->refused()) counters_.add(Counter::upstream_h2_refused);
    }
    // Not processed (RFC 9113 8.7), and nothing of it is lost: it may go again.
    const bool again = (!x.h2 || x.h2->refused()) && h.end_stream && attempt < 2 && !x.closed;
    if (!again) {
      const bool timed_out = x.h2 && x.h2->timed_out();
      answer(x, {timed_out ? 504 : 502, "http_response_incomplete",
                 x.h2 ? x.h2->error() : "the upstream refused the request on every attempt"});
      co_return;
    }
    counters_.add(Counter::upstream_retries);
    x.h2.reset();
  }

  HttpResponseHead resp;
  resp.status = head->status;
  resp.reason = http::reason_phrase(head->status);
  std::optional<std::string> length;
  for (auto& f : head->fields) {
    if (f.name == "content-length")
      length = f.value;
    else
      resp.headers.add(std::move(f.name), std::move(f.value));
  }
  std::unique_ptr<BodyFilter> filter;
  if (!co_await response_hook(x, req, resp, req_ctx, filter)) co_return;  // x.h2 is reset
  std::vector<Field> fields = h2_forwarded_fields(resp.headers);
  if (alt_svc_ && !resp.headers.get("alt-svc")) fields.push_back({"alt-svc", *alt_svc_});
  if (length && (filter == nullptr || head->end_stream || req.method == "HEAD"))
    fields.push_back({"content-length", *length});
  if (x.closed || !submit_head(x, resp.status, fields, head->end_stream)) co_return;
  kick();
  if (head->end_stream) {
    x.response_done = true;
    co_return;
  }
  std::string data;
  std::string out;
  for (;;) {
    data.clear();
    int n = co_await x.h2->read(data, kUpstreamRead, ep_.idle_timeout);
    if (n == 0) break;
    bool ok = n > 0;
    if (ok && filter != nullptr) {
      out.clear();
      ok = filter->on_data(data, out) != BodyFilter::Result::kAbort;
      data.swap(out);
    }
    if (!ok || !co_await send_to_client(x, data)) {
      if (!x.closed) conn_.reset(x.id, StreamError::kInternal);
      x.response_done = true;
      kick();
      co_return;
    }
  }
  out.clear();
  if (filter != nullptr && filter->on_end(out) == BodyFilter::Result::kAbort) {
    if (!x.closed) conn_.reset(x.id, StreamError::kInternal);
    x.response_done = true;
    kick();
    co_return;
  }
  if (!co_await send_to_client(x, out)) co_return;
  std::vector<Field> trailers;
  for (const auto& f : x.h2->trailers())
    if (trailer_forwarded(f.name)) trailers.push_back(f);
  conn_.end_data(x.id, std::move(trailers));
  x.response_done = true;
  kick();
}

Task<bool> StreamSession::relay_response_body(Exchange& x, std::string& buf, const http::h1::Head& head,
                                          BodyFilter* filter) {
  http::h1::ContentLengthBody fixed(head.content_length);
  http::h1::ChunkedDecoder chunked(MessageKind::kResponse);
  std::vector<http::h1::Field> trailers;
  std::vector<Field> trailers_out;
  std::string out;
  for (;;) {
    http::h1::BodyResult r;
    if (head.body == BodyKind::kContentLength) {
      r = fixed.decode(buf);
    } else if (head.body == BodyKind::kChunked) {
      r = chunked.decode(buf, trailers);
    } else {  // until the upstream closes
      r.status = buf.empty() ? BodyStatus::kNeedMore : BodyStatus::kData;
      r.data = buf;
      r.consumed = buf.size();
    }
    if (r.status == BodyStatus::kError) co_return false;
    if (r.status == BodyStatus::kData) {
      out.clear();
      if (filter == nullptr)
        out.assign(r.data);
      else if (filter->on_data(r.data, out) == BodyFilter::Result::kAbort)
        co_return false;
      buf.erase(0, r.consumed);
      if (!co_await send_to_client(x, out)) co_return false;
      continue;
    }
    if (r.status == BodyStatus::kDone) {
      for (const auto& f : trailers)  // views into buf: copied before it moves
        if (trailer_forwarded(lower(f.name)))
          trailers_out.push_back({lower(f.name), std::string(f.value)});
      buf.erase(0, r.consumed);
      break;
    }
    buf.erase(0, r.consumed);
    int n = co_await upstream_recv(x, buf);
    if (n == 0 && head.body == BodyKind::kUntilClose) break;
    if (n <= 0) co_return false;
  }
  out.clear();
  if (filter != nullptr && filter->on_end(out) == BodyFilter::Result::kAbort) co_return false;
  if (!co_await send_to_client(x, out)) co_return false;
  conn_.end_data(x.id, std::move(trailers_out));
  x.response_done = true;
  kick();
  co_return true;
}

Task<void> StreamSession::websocket(Exchange& x, HttpRequestHead req) {
  std::shared_ptr<void> req_ctx = wc_.hooks.make_request_context();
  std::unique_ptr<BodyFilter> unused;  // a tunnel's bytes are no body to filter
  if (!co_await request_hook(x, req, req_ctx.get(), unused)) co_return;
  if (auto err = co_await open_upstream(x, *req.authority, /*reuse=*/false)) {
    answer(x, *err);
    co_return;
  }
  // RFC 8441 5: the HTTP/1.1 upgrade this stream stands for (RFC 6455 4.1).
  std::string out;
  out.append("GET ").append(req.path).append(" HTTP/1.1\r\n");
  http_wire::append_field(out, "Host", authority_value(*req.authority, 80));
  append_forwarded_fields(out, req.headers);
  http_wire::append_field(out, "Connection", "Upgrade");
  http_wire::append_field(out, "Upgrade", "websocket");
  http_wire::append_field(out, "Sec-WebSocket-Key", websocket_key());
  if (!req.headers.get("sec-websocket-version"))
    http_wire::append_field(out, "Sec-WebSocket-Version", "13");
  out += "\r\n";
  if (!co_await upstream_send(x, out)) {
    answer(x, {502, "http_request_error", "upstream closed while sending the request"});
    co_return;
  }
  std::string up;
  http::h1::Head head;
  std::size_t consumed = 0;
  if (auto err = co_await read_response_head(x, up, head, "GET", consumed)) {
    answer(x, *err);
    co_return;
  }
  const bool switched = head.status_code == 101 && head.body == BodyKind::kTunnel &&
                        http::h1::lists_element(head, "upgrade", "websocket");
  HttpResponseHead resp;
  resp.status = switched ? 200 : head.status_code;
  resp.reason = std::string(head.reason);
  for (const auto& f : head.fields) {
    // The accept token answers our key, not anything the client sent.
    if (never_forwarded(head, f.name) || http::h1::iequals(f.name, "sec-websocket-accept"))
      continue;
    resp.headers.add(std::string(f.name), std::string(f.value));
  }
  if (!co_await response_hook(x, req, resp, req_ctx.get(), unused)) co_return;
  if (!switched) {
    // Refused upgrade: the status and fields go back, the stream ends.
    if (!x.closed) submit_head(x, resp.status, h2_forwarded_fields(resp.headers), true);
    x.response_done = true;
    kick();
    co_return;
  }
  if (x.closed || !submit_head(x, 200, h2_forwarded_fields(resp.headers), false)) co_return;
  kick();
  audit_.kind = telemetry::FlowKind::kWebSocket;
  if (wc_.audit_log != nullptr && audit_.target.empty()) audit_.target = req.authority->to_string();
  up.erase(0, consumed);
  co_await tunnel(x, std::move(up));
}

}  // namespace ramjet::proxy
