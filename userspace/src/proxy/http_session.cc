#include "proxy/http_session.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>

#include "datapath/verdicts.h"
#include "http/auth/auth_table.h"
#include "http/auth/proxy_auth.h"
#include "http/connect_udp.h"
#include "http/h1/forward_framing.h"
#include "http/status.h"
#include "proxy/connect_udp_tunnel.h"
#include "proxy/egress_chain.h"
#include "proxy/http_forwarding.h"
#include "proxy/http_wire.h"
#include "proxy/h2_upstream.h"
#include "proxy/upstream_link.h"
#include "telemetry/access_log.h"

namespace ramjet::proxy {

using http::reason_phrase;
using http::h1::BodyKind;
using http::h1::BodyStatus;
using http::h1::MessageKind;
using http::h1::ParseStatus;
using http_wire::append_field;
using http_wire::reset_on_close;
using telemetry::Counter;

namespace {
// A WebSocket upgrade (RFC 6455): Upgrade lists "websocket", on whichever of its lines.
bool upgrades_to_websocket(const http::h1::Head& head) {
  return head.upgrade && http::h1::lists_element(head, "upgrade", "websocket");
}

// "http://host[:port]/path?query" -> target and origin-form path. nullopt if not.
struct AbsoluteTarget {
  HostPort authority;
  std::string path;
  bool tls = false;  // https://: the proxy speaks TLS to the origin
};
std::optional<AbsoluteTarget> parse_absolute(std::string_view t, std::string& why) {
  constexpr std::string_view kHttp = "http://";
  constexpr std::string_view kHttps = "https://";
  bool tls = false;
  if (t.size() >= kHttps.size() && http::h1::iequals(t.substr(0, kHttps.size()), kHttps)) {
    tls = true;
    t.remove_prefix(kHttps.size());
  } else if (t.size() >= kHttp.size() && http::h1::iequals(t.substr(0, kHttp.size()), kHttp)) {
    t.remove_prefix(kHttp.size());
  } else {
    why = "only http:// and https:// absolute-form targets are forwarded";
    return std::nullopt;
  }
  auto end = t.find_first_of("/?");
  std::string_view authority = t.substr(0, end);
  // RFC 9112 3.2.1: an empty path is sent as "/", also in front of a query.
  std::string path = end == std::string_view::npos ? "/" : std::string(t.substr(end));
  if (path.front() == '?') path.insert(0, "/");
  if (authority.find('@') != std::string_view::npos) {
    why = "userinfo in the request target is not allowed";
    return std::nullopt;
  }
  std::optional<HostPort> hp = parse_authority(authority, tls ? 443 : 80);
  if (!hp) {
    why = "invalid authority in the request target";
    return std::nullopt;
  }
  return AbsoluteTarget{std::move(*hp), path, tls};
}

}  // namespace

HttpSession::HttpSession(WorkerContext& wc, const config::Endpoint& ep,
                         telemetry::CounterRow& counters, std::unique_ptr<runtime::Stream> client,
                         ConnectionInfo info)
    : Session(wc, counters),
      ep_(ep),
      alt_svc_(alt_svc_for(wc, ep)),
      client_fd_(client->fd()),
      client_(std::move(client)),
      info_(std::move(info)) {
  started_ = runtime::Clock::now();
  bind_view({&info_, &stats_, &relay_, &started_});
  if (wc_.authenticators != nullptr) auth_ = wc_.authenticators->find(ep_.name);
}

std::optional<HttpSession::ProxyError> HttpSession::authenticate() {
  if (auth_ == nullptr) return std::nullopt;
  const http::h1::Field* f = http::h1::find_field(head_, "proxy-authorization");
  http::auth::AuthResult r = auth_->check(f != nullptr ? f->value : std::string_view());
  if (r.status == http::auth::AuthStatus::kOk) return std::nullopt;
  // The reason is static text about the form of the credential, never the secret.
  std::string details = r.status == http::auth::AuthStatus::kMissing
                            ? "proxy authentication required"
                            : "invalid proxy credentials: " + std::string(r.reason);
  return ProxyError{407, "http_request_denied", std::move(details),
                    "Proxy-Authenticate: " + auth_->challenge() + "\r\n"};
}

void HttpSession::force_close(CloseReason why) {
  if (!close_reason_) close_reason_ = why;
  closing_ = true;
  if (relay_) {
    relay_->force_close(why);
    return;
  }
  if (udp_tunnel_) {
    udp_tunnel_->force_close(why);
    return;
  }
  if (h2_request_) h2_request_->cancel();
  // Pending receives on either socket end with EOF.
  ::shutdown(client_fd_, SHUT_RDWR);
  if (upstream_fd_ >= 0) ::shutdown(upstream_fd_, SHUT_RDWR);
}

std::string HttpSession::render_error(const ProxyError& e) {
  // 501 and 505 answer what the client sent; 502 and 504 what the upstream did.
  bool upstream = e.status == 502 || e.status == 504;
  counters_.add(upstream ? Counter::http_upstream_errors : Counter::http_client_errors);
  std::string body = std::to_string(e.status) + " " + reason_phrase(e.status) + ": " + e.type;
  if (!e.details.empty()) body += ": " + e.details;
  body += "\n";
  std::string out = "HTTP/1.1 " + std::to_string(e.status) + " " + reason_phrase(e.status) + "\r\n";
  append_field(out, "Proxy-Status", proxy_status_value(e.type, e.details));
  out += e.extra_fields;
  append_field(out, "Content-Type", "text/plain; charset=utf-8");
  append_field(out, "Content-Length", std::to_string(body.size()));
  append_field(out, "Connection", "close");
  out += "\r\n";
  out += body;
  spdlog::info("flow {}: answered {} {}: {}", info_.id, e.status, e.type, e.details);
  return out;
}

void HttpSession::close_upstream() {
  h2_request_.reset();
  h2_upstream_.reset();
  upstream_.reset();
  if (upstream_fd_ >= 0) ::close(upstream_fd_);
  upstream_fd_ = -1;
  up_.clear();
}

Task<std::optional<http::h1::HeadResult>> HttpSession::read_request_head() {
  http::h1::Limits limits{ep_.http.max_request_line, ep_.http.max_head, ep_.http.max_fields};
  http::h1::HeadParser parser(MessageKind::kRequest, limits);
  for (;;) {
    if (!in_.empty()) {
      auto r = parser.parse(in_, head_);
      if (r.status != ParseStatus::kNeedMore) co_return r;
    }
    if (!co_await fill(*client_, in_)) co_return std::nullopt;
  }
}

Task<void> HttpSession::run() {
  ctx_ = wc_.hooks.make_connection_context();
  set_state(SessionState::kHooks);
  if (co_await ingress_blocks(info_, ctx_.get())) {
    close_reason_ = CloseReason::kBlockedIngress;
    // No request will follow: the connection itself is what the audit log records.
    audit_.kind = telemetry::FlowKind::kHttp;
  }

  while (!close_reason_ && !closing_) {
    set_state(SessionState::kHooks);  // waiting for, then deciding on, the next request
    auto r = co_await read_request_head();
    if (!r) break;  // the client closed (or went idle) between requests
    if (r->status == ParseStatus::kError) {
      std::string reply =
          render_error({r->error.status, "http_request_error", std::string(r->error.reason)});
      co_await send_all(*client_, reply);
      close_reason_ = CloseReason::kDownstreamError;
      break;
    }
    counters_.add(Counter::http_requests);
    head_len_ = r->consumed;
    if (auto denied = authenticate()) {
      std::string reply = render_error(*denied);
      co_await send_all(*client_, reply);
      break;
    }
    // One co_await per statement: GCC 12 mishandles co_await in both arms of a conditional.
    Next next = Next::kClose;
    std::optional<http::ConnectUdpRequest> udp = connect_udp_request();
    if (head_.target_form == http::h1::TargetForm::kAuthority)
      next = co_await handle_connect();
    else if (udp)
      next = co_await handle_connect_udp(*udp);
    else
      next = co_await handle_forward();
    if (next == Next::kClose) break;
  }
  // TLS ends with close_notify, so the client can tell the end from a truncation.
  if (client_ && !client_->plain() && !relay_ && !udp_tunnel_) co_await client_->shutdown_write();
  finish();
}

HttpRequestHead HttpSession::owned_request(std::optional<HostPort> authority,
                                           std::string path) const {
  HttpRequestHead req;
  req.method = std::string(head_.method);
  req.target = std::string(head_.target);
  req.authority = std::move(authority);
  req.path = std::move(path);
  req.version =
      head_.version == http::h1::Version::kHttp10 ? HttpVersion::kHttp10 : HttpVersion::kHttp11;
  const bool expects_continue = http::h1::lists_element(head_, "expect", "100-continue");
  for (const auto& f : head_.fields) {
    // Hop-by-hop fields are the proxy's; Host and the framing fields are rebuilt.
    // Proxy-Authorization is addressed to this proxy, so its hooks see it (it is
    // still never forwarded).
    // Expect: 100-continue is answered here (see handle_forward), and an HTTP/1.0 client's
    // is ignored (RFC 9110 10.1.1); either way it is not passed on.
    bool for_hooks = http::h1::iequals(f.name, "proxy-authorization");
    if ((never_forwarded(head_, f.name) && !for_hooks) || http::h1::iequals(f.name, "host") ||
        (expects_continue && http::h1::iequals(f.name, "expect")))
      continue;
    req.headers.add(std::string(f.name), std::string(f.value));
  }
  return req;
}

Task<bool> HttpSession::connect_allowed(const HttpRequestHead& req, const std::string& traced) {
  auto t0 = runtime::Clock::now();
  ConnectDirective d = co_await wc_.hooks.http_connect_request(info_, req, ctx_.get());
  const bool deny = d.action == ConnectDirective::Action::kDeny;
  trace_hook(info_, "http.handle_proxy_connect_request", deny ? "deny" : "allow",
             deny ? d.reason : traced, t0);
  if (span_) span_->add_hook("http.handle_proxy_connect_request", deny ? "deny" : "allow", t0);
  audit_.decisions.connect.decision = deny ? "deny" : "allow";
  if (!deny) co_return true;
  audit_.decisions.connect.status = d.status;
  audit_.decisions.connect.reason = d.reason;
  std::string reply = render_error({d.status, "http_request_denied", d.reason});
  co_await send_all(*client_, reply);
  close_reason_ = CloseReason::kBlockedEgress;
  co_return false;
}

void HttpSession::run_connect_response_hook(HttpResponseHead& resp) {
  auto t0 = runtime::Clock::now();
  wc_.hooks.http_connect_response(info_, resp, ctx_.get());
  trace_hook(
      info_, "http.handle_proxy_connect_response", "continue",
      [&] { return std::to_string(resp.headers.fields().size()) + " fields"; }, t0);
  if (span_) span_->add_hook("http.handle_proxy_connect_response", "continue", t0);
}

std::optional<http::ConnectUdpRequest> HttpSession::connect_udp_request() {
  if (!ep_.connect_udp.enabled || !head_.upgrade ||
      head_.target_form == http::h1::TargetForm::kAuthority)
    return std::nullopt;
  if (!udp_template_) {
    // Checked when the config was loaded (http::check_connect_udp_templates).
    http::MasqueTemplateResult parsed = http::parse_masque_template(ep_.connect_udp.uri_template);
    if (!parsed.value) return std::nullopt;
    udp_template_ = std::move(parsed.value);
  }
  http::ConnectUdpRequest r = http::classify_connect_udp_request(head_, *udp_template_);
  if (r.verdict == http::ConnectUdpVerdict::kNotConnectUdp) return std::nullopt;
  return r;
}

Task<HttpSession::Next> HttpSession::handle_connect_udp(http::ConnectUdpRequest& request) {
  // Like a CONNECT, the request ends the connection's HTTP life: one audited flow.
  audit_.kind = telemetry::FlowKind::kConnectUdp;
  if (request.verdict == http::ConnectUdpVerdict::kMalformed) {
    if (wc_.audit_log != nullptr) audit_.target = std::string(head_.target);
    std::string reply = render_error({400, "http_request_error", std::move(request.reason)});
    co_await send_all(*client_, reply);
    close_reason_ = CloseReason::kDownstreamError;
    co_return Next::kClose;
  }
  const HostPort target{std::move(request.target.target_host), request.target.target_port};
  if (wc_.audit_log != nullptr) audit_.target = target.to_string();
  // Hooks see the UDP target as the authority, and the upgrade token among the fields (it
  // is hop-by-hop, so owned_request leaves it out).
  HttpRequestHead req = owned_request(target, std::move(request.path));
  req.headers.add("Upgrade", std::string(http::kConnectUdpUpgradeToken));
  in_.erase(0, head_len_);  // the head; what follows are capsules

  const std::string traced = "udp " + target.to_string();
  if (!co_await connect_allowed(req, traced)) co_return Next::kClose;

  // The same decisions as a udp endpoint's session: hooks, DNS, the guard,
  // udp_connect_override, source address and mark.
  set_state(SessionState::kConnecting);
  EgressChain chain(wc_, counters_, info_, ctx_.get(), ep_, audited_decisions());
  auto opened = co_await chain.connect_udp(target);
  if (auto* e = std::get_if<EgressError>(&opened)) {
    close_reason_ = e->close_reason();
    std::string reply = render_error({status_for(*e), e->proxy_status(), e->message});
    co_await send_all(*client_, reply);
    co_return Next::kClose;
  }
  UdpUpstream& up = std::get<UdpUpstream>(opened);
  upstream_fd_ = up.fd;  // closed with the session (close_upstream)
  stats_.upstream = up.address.to_string();
  if (closing_) co_return Next::kClose;

  HttpResponseHead resp;
  resp.status = 101;
  resp.reason = "Switching Protocols";
  run_connect_response_hook(resp);
  std::string extra;
  for (const auto& f : resp.headers.fields()) {
    // The 101's own fields, and no framing (RFC 9298 3.3), are the proxy's.
    bool own = false;
    for (std::string_view name : {"connection", "upgrade", "capsule-protocol", "content-length",
                                  "transfer-encoding", "keep-alive"})
      own = own || http::h1::iequals(f.name, name);
    if (!own) append_field(extra, f.name, f.value);
  }
  std::string out = http::connect_udp_switching_protocols(extra);
  if (!co_await send_all(*client_, out)) {
    close_reason_ = CloseReason::kDownstreamError;
    co_return Next::kClose;
  }
  counters_.add(Counter::connect_udp_tunnels);
  if (closing_) co_return Next::kClose;  // killed or drained while the 101 went out

  udp_tunnel_ = std::make_unique<ConnectUdpTunnel>(
      wc_.worker, info_.id, *client_, [fd = client_fd_] { ::shutdown(fd, SHUT_RDWR); },
      upstream_fd_, *wc_.buffers, counters_, stats_, ep_.connect_udp.idle_timeout);
  set_state(SessionState::kRelaying);
  // Capsules the client sent right behind the head are the tunnel's first bytes.
  co_await udp_tunnel_->run(in_);
  set_state(SessionState::kClosing);
  if (auto r = udp_tunnel_->reason(); r && !close_reason_) close_reason_ = *r;
  co_return Next::kClose;
}

Task<HttpSession::Next> HttpSession::handle_connect() {
  // A CONNECT ends the connection's HTTP life: allowed or not, it is one audited flow.
  audit_.kind = telemetry::FlowKind::kConnect;
  if (wc_.audit_log != nullptr) audit_.target = std::string(head_.target);
  if (ep_.transparent) {
    // The client is talking to the original destination, not to a proxy it knows of: a
    // tunnel it asked that server for is not ours to open (RFC 9110 15.5.6).
    std::string reply = render_error(
        {405, "http_request_denied",
         "CONNECT is for explicit proxies; this endpoint relays intercepted requests to "
         "their original destination",
         "Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH\r\n"});
    co_await send_all(*client_, reply);
    co_return Next::kClose;
  }
  std::optional<HostPort> target = HostPort::parse(head_.target);
  if (!target) {
    std::string reply =
        render_error({400, "http_request_error", "CONNECT target must be host:port"});
    co_await send_all(*client_, reply);
    co_return Next::kClose;
  }
  HttpRequestHead req = owned_request(*target, "/");
  in_.erase(0, head_len_);  // the head; what follows is tunnel data
  std::optional<telemetry::Span> span = begin_request_span(req);
  note_span(span);
  SpanEnd span_end(span, info_);
  CurrentSpan current(span_, span);
  if (span && span->recording) span->attributes.emplace_back("server.address", target->to_string());

  const std::string traced = target->to_string();
  if (!co_await connect_allowed(req, traced)) co_return Next::kClose;

  std::optional<ProxyError> err;
  if (!co_await ensure_upstream(*target, err, /*reuse=*/false, /*probe=*/false)) {
    std::string reply = render_error(*err);
    co_await send_all(*client_, reply);
    co_return Next::kClose;
  }
  HttpResponseHead resp;
  resp.status = 200;
  resp.reason = "Connection Established";
  run_connect_response_hook(resp);
  std::string out = "HTTP/1.1 " + std::to_string(resp.status) + " " + resp.reason + "\r\n";
  for (const auto& f : resp.headers.fields()) append_field(out, f.name, f.value);
  out += "\r\n";
  if (!co_await send_all(*client_, out)) {
    close_reason_ = CloseReason::kDownstreamError;
    co_return Next::kClose;
  }
  counters_.add(Counter::http_connect_tunnels);
  // Bytes the client sent right behind the CONNECT head (e.g. a TLS ClientHello)
  // are the tunnel's first bytes.
  co_return co_await tunnel();
}

Task<bool> HttpSession::ensure_upstream(const HostPort& target, std::optional<ProxyError>& err,
                                        bool reuse, bool probe, bool tls) {
  close_upstream();
  reused_upstream_ = false;
  set_state(SessionState::kConnecting);
  EgressChain chain(wc_, counters_, info_, ctx_.get(), ep_, audited_decisions());
  // HTTP/2 carries requests, not tunnels: a WebSocket upgrade needs a connection of its own.
  auto r = co_await open_upstream_link(
      wc_, ep_, counters_, chain, info_.id, target,
      {.reuse = reuse, .probe = probe, .tls = tls, .h2 = !websocket_});
  if (auto* f = std::get_if<UpstreamFailure>(&r)) {
    close_reason_ = f->close_reason;
    err = ProxyError{f->status, f->proxy_status, std::move(f->details)};
    co_return false;
  }
  UpstreamLink& link = std::get<UpstreamLink>(r);
  reused_upstream_ = link.reused;
  // Keep-alive to the same origin: the text is already there.
  if (stats_.upstream.empty() || !(link.address == upstream_address_))
    stats_.upstream = link.address.to_string();
  upstream_address_ = link.address;
  upstream_reuse_key_ = std::move(link.reuse_key);
  h2_upstream_ = std::move(link.h2);
  upstream_fd_ = link.fd;
  upstream_ = std::move(link.stream);
  co_return true;
}

std::string HttpSession::render_reply(const HttpReply& reply, bool keep_alive) const {
  int status = reply.status;
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " +
                    (reply.reason.empty() ? std::string(reason_phrase(status)) : reply.reason) +
                    "\r\n";
  for (const auto& f : reply.headers.fields()) {
    if (http::h1::iequals(f.name, "content-length") ||
        http::h1::iequals(f.name, "transfer-encoding") || http::h1::iequals(f.name, "connection"))
      continue;
    append_field(out, f.name, f.value);
  }
  append_field(out, "Content-Length", std::to_string(reply.body.size()));
  if (!keep_alive) append_field(out, "Connection", "close");
  out += "\r\n";
  out += reply.body;
  return out;
}

Task<HttpSession::Next> HttpSession::handle_forward() {
  std::optional<HostPort> authority;
  std::string path;
  bool origin_tls = false;
  if (head_.target_form == http::h1::TargetForm::kAbsolute) {
    std::string why;
    auto target = parse_absolute(head_.target, why);
    if (!target) {
      std::string reply = render_error({400, "http_request_error", why});
      co_await send_all(*client_, reply);
      co_return Next::kClose;
    }
    authority = std::move(target->authority);
    path = std::move(target->path);
    origin_tls = target->tls;
  } else {
    path = std::string(head_.target);  // origin-form or "*": for a hook to answer
    if (ep_.upstream && head_.target_form == http::h1::TargetForm::kOrigin) {
      // Reverse-proxy mode: origin-form requests go to the configured origin.
      authority = ep_.upstream->target;
      origin_tls = ep_.upstream->tls();
    } else if (ep_.transparent) {
      // Intercepted: the client named the origin in Host only (none from an HTTP/1.0 one).
      const http::h1::Field* host = http::h1::find_field(head_, "host");
      authority = host != nullptr ? parse_authority(host->value, 80)
                                  : original_destination(info_);
      if (!authority) {
        std::string reply = render_error({400, "http_request_error", "invalid Host"});
        co_await send_all(*client_, reply);
        co_return Next::kClose;
      }
    }
  }
  // Intercepted requests go where their connection was going, whatever they name (as
  // Squid's host_verify_strict off): Host is the client's to write, the original
  // destination is what the datapath or the IP on-ramp saw. An EgressHook may still
  // send them elsewhere. The client spoke plain HTTP to it, so no TLS.
  const std::optional<HostPort> destination =
      ep_.transparent ? std::optional(original_destination(info_)) : std::nullopt;
  if (destination) origin_tls = false;

  HttpRequestHead req = owned_request(std::move(authority), std::move(path));
  std::optional<telemetry::Span> span = begin_request_span(req);
  note_span(span);
  SpanEnd span_end(span, info_);
  CurrentSpan current(span_, span);
  if (span && span->recording) span->attributes.emplace_back("url.full", req.target);
  const bool client_http10 = head_.version == http::h1::Version::kHttp10;
  // WebSocket (RFC 6455) is the one upgrade forwarded: Upgrade and Connection are
  // hop-by-hop, so they are re-added explicitly for it.
  websocket_ = upgrades_to_websocket(head_);
  bool keep_alive = head_.keep_alive;

  std::shared_ptr<void> req_ctx = wc_.hooks.make_request_context();
  auto t0 = runtime::Clock::now();
  RequestDirective rd = co_await wc_.hooks.http_request(info_, req, ctx_.get(), req_ctx.get());
  auto* proceed = std::get_if<RequestDirective::Continue>(&rd.value);
  std::unique_ptr<BodyFilter> request_filter =
      proceed != nullptr ? std::move(proceed->body_filter) : nullptr;
  // The framing the origin gets comes from the parser's reading of the request, never from
  // its raw fields. head_'s views die with the erase; its framing members stay valid.
  const http::h1::ForwardFraming request_out =
      http::h1::forward_framing(head_, {.rechunk = request_filter != nullptr});
  const http::h1::Head& request_framing = head_;
  in_.erase(0, head_len_);
  if (auto* respond = std::get_if<RequestDirective::Respond>(&rd.value)) {
    trace_hook(
        info_, "http.handle_request", "respond",
        [&] { return std::to_string(respond->reply.status); }, t0);
    if (span) span->add_hook("http.handle_request", "respond", t0);
    // An unread request body would be taken for the next request: close instead.
    bool has_body =
        request_framing.body != BodyKind::kNone &&
        !(request_framing.body == BodyKind::kContentLength && request_framing.content_length == 0);
    keep_alive = keep_alive && !has_body;
    std::string reply = render_reply(respond->reply, keep_alive);
    if (!co_await send_all(*client_, reply)) co_return Next::kClose;
    co_return keep_alive ? Next::kKeepAlive : Next::kClose;
  }
  trace_hook(
      info_, "http.handle_request", "continue",
      [&] { return req.authority ? req.authority->to_string() + req.path : req.path; }, t0);
  if (span) span->add_hook("http.handle_request", "continue", t0);
  if (!req.authority) {
    std::string reply =
        render_error({400, "http_request_error",
                      "this is a forward proxy: send absolute-form requests or CONNECT"});
    co_await send_all(*client_, reply);
    co_return Next::kClose;
  }

  // The request as the origin server sees it (RFC 9112 3.2.2, RFC 9110 7.6).
  const bool has_body = request_framing.body != BodyKind::kNone;
  std::string out;
  out.reserve(512);
  out.append(req.method).append(" ").append(req.path).append(" HTTP/1.1\r\n");
  append_field(out, "Host", authority_value(*req.authority, origin_tls ? 443 : 80));
  append_forwarded_fields(out, req.headers);
  http::h1::append_framing_fields(out, request_out);
  // Connections are per hop: a client that closes after this request (an HTTP/1.0 one
  // without keep-alive) leaves the upstream connection to the pool, as nginx and haproxy do.
  if (websocket_) {
    append_field(out, "Connection", "Upgrade");
    append_field(out, "Upgrade", "websocket");
  }
  out += "\r\n";

  if (request_framing.body == BodyKind::kChunked && !request_framing.expect_continue) {
    // Nothing reaches the upstream before the chunk framing received so far checks out.
    if (auto bad = co_await check_chunked_prefix()) {
      std::string reply = render_error({400, "http_request_error", std::string(*bad)});
      co_await send_all(*client_, reply);
      close_reason_ = CloseReason::kDownstreamError;
      co_return Next::kClose;
    }
  }

  // A request without a body can be sent again. On a pooled connection it goes out
  // without a liveness probe, and when the origin had closed that connection (or closes
  // it unanswered: a race no probe can close) it is sent once more on a new one. A
  // request with a body is only sent on a pooled connection probed open.
  const bool replayable = !has_body && !websocket_;
  bool reusable = false;
  std::optional<ProxyError> rerr;
  bool h2_retry = false;
  for (int attempt = 0;; ++attempt) {
    std::optional<ProxyError> err;
    // An HTTP/1.1 retry takes a new connection; an HTTP/2 one any connection taking streams.
    if (!co_await ensure_upstream(destination.value_or(*req.authority), err,
                                  /*reuse=*/attempt == 0 || h2_retry,
                                  /*probe=*/!replayable, origin_tls)) {
      std::string reply = render_error(*err);
      co_await send_all(*client_, reply);
      co_return Next::kClose;
    }
    if (h2_upstream_) {
      std::optional<Next> done = co_await exchange_h2(req, req_ctx.get(), request_filter.get(),
                                                      client_http10, keep_alive);
      h2_request_.reset();
      h2_upstream_.reset();
      if (done) co_return *done;
      if (attempt < 2 && !closing_) {
        counters_.add(Counter::upstream_retries);
        h2_retry = true;
        continue;
      }
      std::string reply = render_error(
          {502, "http_request_error", "the upstream refused the request on every attempt"});
      co_await send_all(*client_, reply);
      co_return Next::kClose;
    }
    may_retry_ = replayable && reused_upstream_ && attempt == 0;
    retry_now_ = false;
    set_state(SessionState::kRelaying);  // the request and its response stream through
    bool sent = co_await send_all(*upstream_, out);
    if (!sent && may_retry_ && !closing_) {
      counters_.add(Counter::upstream_retries);
      close_upstream();
      continue;
    }
    if (sent && request_framing.expect_continue && has_body) {
      // The upstream is connected and took the head: invite the body (RFC 9110 10.1.1).
      if (!co_await send_all(*client_, "HTTP/1.1 100 Continue\r\n\r\n")) co_return Next::kClose;
    }
    if (sent) {
      sent = co_await stream_body(*client_, in_, *upstream_, request_framing,
                                  MessageKind::kRequest, stats_.bytes_from_client,
                                  request_filter.get(), request_out.chunked());
    }
    if (!sent) {
      // The origin has the head and part of the body: a reset tells it the request was
      // aborted, so nothing half-forwarded is taken for a complete request.
      if (request_body_error_ && upstream_fd_ >= 0) reset_on_close(upstream_fd_);
      close_upstream();
      if (request_body_error_) {
        // The upstream saw a truncated request and is gone; the client learns why.
        std::string reply =
            render_error({400, "http_request_error", std::string(*request_body_error_)});
        co_await send_all(*client_, reply);
        co_return Next::kClose;
      }
      if (close_reason_ == CloseReason::kDownstreamError || closing_) co_return Next::kClose;
      std::string reply =
          render_error({502, "http_request_error", "upstream closed while sending the request"});
      co_await send_all(*client_, reply);
      close_reason_ = CloseReason::kUpstreamError;
      co_return Next::kClose;
    }
    rerr = co_await forward_response(req, req_ctx.get(), client_http10, reusable, keep_alive);
    if (rerr && retry_now_ && !closing_) {
      counters_.add(Counter::upstream_retries);
      close_upstream();
      continue;
    }
    break;
  }
  if (rerr) {
    close_upstream();
    if (rerr->status != 0) {
      std::string reply = render_error(*rerr);
      co_await send_all(*client_, reply);
    }
    if (!close_reason_) close_reason_ = CloseReason::kUpstreamError;
    co_return Next::kClose;
  }
  if (upgraded_) {
    audit_.kind = telemetry::FlowKind::kWebSocket;
    if (wc_.audit_log != nullptr) audit_.target = req.authority->to_string();
    co_return co_await tunnel();
  }
  if (reusable) {
    // Now the worker's, for any client (a TLS connection with its session).
    UpstreamLink link{.fd = std::exchange(upstream_fd_, -1),
                      .stream = std::move(upstream_),
                      .address = upstream_address_,
                      .reuse_key = upstream_reuse_key_};
    pool_upstream_link(wc_, link);
  } else {
    close_upstream();
  }
  co_return keep_alive ? Next::kKeepAlive : Next::kClose;
}

Task<HttpSession::Next> HttpSession::tunnel() {
  // Bytes that arrived behind the heads belong to the tunnel.
  if (!up_.empty()) {
    stats_.bytes_to_client += up_.size();
    if (!co_await send_all(*client_, up_)) co_return Next::kClose;
    up_.clear();
  }
  if (!in_.empty()) {
    stats_.bytes_from_client += in_.size();
    if (!co_await send_all(*upstream_, in_)) co_return Next::kClose;
    in_.clear();
  }
  RelayLimits limits{ep_.idle_timeout, ep_.max_lifetime};
  relay_ = std::make_unique<Relay>(wc_.worker, *client_, *upstream_, relay_mode(ep_.relay), limits,
                                   wc_.buffers.get());
  set_state(SessionState::kRelaying);
  co_await relay_->run();
  set_state(SessionState::kClosing);
  stats_.bytes_from_client += relay_->bytes_from_client();
  stats_.bytes_to_client += relay_->bytes_to_client();
  counters_.add(Counter::relay_directions_spliced, relay_->spliced_directions());
  if (auto r = relay_->reason(); r && !close_reason_) close_reason_ = *r;
  co_return Next::kClose;
}

Task<std::optional<HttpSession::ProxyError>> HttpSession::forward_response(
    const HttpRequestHead& req, void* req_ctx, bool client_http10, bool& reusable,
    bool& keep_alive) {
  http::h1::HeadParser parser(MessageKind::kResponse, {}, req.method);
  for (;;) {
    auto r = parser.parse(up_, response_);
    if (r.status == ParseStatus::kError) {
      co_return ProxyError{502, "http_protocol_error", std::string(r.error.reason)};
    }
    if (r.status == ParseStatus::kNeedMore) {
      if (!co_await fill(*upstream_, up_)) {
        if (may_retry_ && up_.empty() && close_reason_ != CloseReason::kIdleTimeout)
          retry_now_ = true;
        if (close_reason_ == CloseReason::kIdleTimeout)
          co_return ProxyError{504, "http_response_incomplete", "no response in time"};
        co_return ProxyError{502, "http_response_incomplete",
                             up_.empty() ? "upstream closed without a response"
                                         : "upstream closed inside the response head"};
      }
      continue;
    }
    // Whatever comes now is an answer: the request is not sent again, except after a 408,
    // with which a server closes a connection it timed out before our request arrived.
    if (may_retry_ && response_.status_code == 408) {
      retry_now_ = true;
      co_return ProxyError{502, "http_response_incomplete", "408 on an idle connection"};
    }
    may_retry_ = false;
    // Interim responses (100 Continue, 103 Early Hints) pass through, except to an HTTP/1.0
    // client, which never gets a 1xx (RFC 9110 15.2); the final one follows.
    if (response_.status_code >= 100 && response_.status_code < 200 &&
        response_.body != BodyKind::kTunnel) {
      if (!client_http10 &&
          !co_await send_all(*client_, std::string_view(up_).substr(0, r.consumed)))
        co_return ProxyError{0, "", ""};
      up_.erase(0, r.consumed);
      parser.reset(req.method);
      continue;
    }
    const bool switching = response_.body == BodyKind::kTunnel;
    if (switching && !(websocket_ && response_.status_code == 101)) {
      co_return ProxyError{502, "http_protocol_error",
                           "only WebSocket upgrades are forwarded (the client asked for none)"};
    }
    if (switching && !http::h1::lists_element(response_, "upgrade", "websocket")) {
      co_return ProxyError{502, "http_protocol_error",
                           "the upstream switched to a protocol other than WebSocket"};
    }

    HttpResponseHead resp;
    resp.status = response_.status_code;
    resp.reason = std::string(response_.reason);
    std::optional<std::string> bodyless_length;  // e.g. a HEAD response's Content-Length
    for (const auto& f : response_.fields) {
      if (response_.body == BodyKind::kNone && http::h1::iequals(f.name, "content-length")) {
        bodyless_length = std::string(f.value);
      }
      if (never_forwarded(response_, f.name)) continue;
      resp.headers.add(std::string(f.name), std::string(f.value));
    }

    const auto hook_t0 = runtime::Clock::now();
    ResponseDirective rd = co_await run_response_hook(info_, ctx_.get(), req, resp, req_ctx);
    auto* proceed = std::get_if<ResponseDirective::Continue>(&rd.value);
    if (span_) span_->add_hook("http.handle_response", proceed ? "continue" : "respond", hook_t0);
    std::unique_ptr<BodyFilter> filter =
        proceed != nullptr ? std::move(proceed->body_filter) : nullptr;
    // As for requests: the client's framing comes from the parser's reading of the response.
    // response_'s views die with the erase; its framing members stay valid.
    const http::h1::ForwardFraming out_framing = http::h1::forward_framing(
        response_, {.rechunk = filter != nullptr, .to_http10 = client_http10});
    const http::h1::Head& framing = response_;
    up_.erase(0, r.consumed);
    if (auto* respond = std::get_if<ResponseDirective::Respond>(&rd.value)) {
      reusable = false;  // the upstream body is left unread
      std::string reply = render_reply(respond->reply, keep_alive);
      if (!co_await send_all(*client_, reply)) co_return ProxyError{0, "", ""};
      co_return std::nullopt;
    }
    if (!out_framing.error.empty()) {
      co_return ProxyError{502, "http_protocol_error", std::string(out_framing.error)};
    }

    // A body that ends with the close (an HTTP/1.0 client, or codings that cannot take
    // another chunked) ends the client connection too.
    if (out_framing.ends_with_close()) keep_alive = false;
    const bool chunk_out = out_framing.chunked();
    std::string out = "HTTP/1.1 " + std::to_string(resp.status) + " " + resp.reason + "\r\n";
    append_forwarded_fields(out, resp.headers);
    if (alt_svc_ && !resp.headers.get("alt-svc")) append_field(out, "Alt-Svc", *alt_svc_);
    http::h1::append_framing_fields(out, out_framing);
    if (bodyless_length) append_field(out, "Content-Length", *bodyless_length);
    if (switching) {
      append_field(out, "Connection", "Upgrade");
      append_field(out, "Upgrade", "websocket");
    } else if (!keep_alive) {
      append_field(out, "Connection", "close");
    }
    out += "\r\n";
    // A small body that already arrived with the head goes out in the same write.
    bool body_sent = false;
    if (framing.body == BodyKind::kContentLength && filter == nullptr && !chunk_out &&
        up_.size() >= framing.content_length) {
      auto n = static_cast<std::size_t>(framing.content_length);
      out.append(up_, 0, n);
      up_.erase(0, n);
      stats_.bytes_to_client += n;
      body_sent = true;
    }
    if (!co_await send_all(*client_, out)) {
      close_reason_ = CloseReason::kDownstreamError;
      co_return ProxyError{0, "", ""};
    }
    bool ok = body_sent ||
              co_await stream_body(*upstream_, up_, *client_, framing, MessageKind::kResponse,
                                   stats_.bytes_to_client, filter.get(), chunk_out);
    if (!ok) co_return ProxyError{0, "", ""};  // the head is out: all we can do is close
    upgraded_ = switching;
    reusable = framing.keep_alive && framing.body != BodyKind::kUntilClose && up_.empty();
    co_return std::nullopt;
  }
}

void HttpSession::finish() {
  close_upstream();
  close_epilogue(client_fd_, info_, stats_, close_reason_, started_, ctx_.get());
}

}  // namespace ramjet::proxy
