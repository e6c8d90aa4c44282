// HttpRequestHook: what an application sees of HTTP requests on `onramp: http`
// endpoints, and what it may decide about them.
//
// Order for one request (each step may answer or refuse it):
//   CONNECT:        handle_proxy_connect_request -> egress chain ->
//                   handle_proxy_connect_response (may add fields to the 200) -> tunnel
//   other methods:  handle_request (may rewrite, answer, attach a body filter) ->
//                   egress chain -> upstream -> handle_response (may rewrite, replace,
//                   attach a body filter) -> client
// Origin-form requests (to the proxy itself) reach handle_request too; unless a hook
// answers them they get 400. The engine builds these owned copies of the heads only
// when the application provides an HttpRequestHook.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "ramjet/hooks/connection.h"
#include "ramjet/net.h"
#include "ramjet/task.h"

namespace ramjet {

// Header fields in order; names compare case-insensitively, values are kept as sent.
class HttpHeaders {
 public:
  struct Field {
    std::string name;
    std::string value;
  };

  std::optional<std::string_view> get(std::string_view name) const {
    for (const auto& f : fields_)
      if (iequals(f.name, name)) return std::string_view(f.value);
    return std::nullopt;
  }
  // Replaces every field of that name with one.
  void set(std::string name, std::string value) {
    remove(name);
    add(std::move(name), std::move(value));
  }
  void add(std::string name, std::string value) {
    fields_.push_back({std::move(name), std::move(value)});
  }
  void remove(std::string_view name) {
    std::erase_if(fields_, [&](const Field& f) { return iequals(f.name, name); });
  }
  const std::vector<Field>& fields() const { return fields_; }

  static bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] + 32) : a[i];
      char y = b[i] >= 'A' && b[i] <= 'Z' ? static_cast<char>(b[i] + 32) : b[i];
      if (x != y) return false;
    }
    return true;
  }

 private:
  std::vector<Field> fields_;
};

// The HTTP version the client spoke. The head a hook sees is the same for every version;
// this says which one it came in, for a hook that asks.
enum class HttpVersion : std::uint8_t { kHttp10, kHttp11, kHttp2, kHttp3 };

struct HttpRequestHead {
  std::string method;
  std::string target;  // as received: "http://h/p", "h:443" (CONNECT) or "/p"
  // Where it goes; empty for origin-form on a forward proxy. On a transparent endpoint
  // it is what Host names, sent on as Host: the request goes to the original destination
  // (ConnectionInfo::local) whatever it names, unless an EgressHook sends it elsewhere.
  std::optional<HostPort> authority;
  std::string path;  // origin-form path and query ("/" for CONNECT)
  // End-to-end fields, plus Proxy-Authorization (addressed to the proxy, so its hooks
  // see it; it is never forwarded). Host and framing fields are the proxy's.
  HttpHeaders headers;
  HttpVersion version = HttpVersion::kHttp11;
};

struct HttpResponseHead {
  int status = 200;
  std::string reason;
  HttpHeaders headers;  // end-to-end fields only
};

// A complete answer a hook gives instead of the upstream's.
struct HttpReply {
  int status = 200;
  std::string reason;  // empty: the standard phrase
  HttpHeaders headers;
  std::string body;
};

// Sees a body chunk by chunk as it streams through; never the whole body at once.
class BodyFilter {
 public:
  enum class Result : std::uint8_t {
    kContinue,  // append what should be sent on to `out` (possibly nothing, for now)
    kAbort,     // stop the message: the connection is closed (the head is already out)
  };
  virtual ~BodyFilter() = default;
  virtual Result on_data(std::string_view in, std::string& out) = 0;
  // End of the body: flush anything held back (e.g. a partial match).
  virtual Result on_end(std::string& /*out*/) { return Result::kContinue; }
};

struct ConnectDirective {
  enum class Action : std::uint8_t { kAllow, kDeny };
  Action action = Action::kAllow;
  int status = 403;    // for kDeny
  std::string reason;  // for kDeny: sent as Proxy-Status details and logged

  static ConnectDirective allow() { return {}; }
  static ConnectDirective deny(int status, std::string why) {
    return {Action::kDeny, status, std::move(why)};
  }
};

struct RequestDirective {
  struct Continue {
    std::unique_ptr<BodyFilter> body_filter;  // optional: filters the request body
  };
  struct Respond {
    HttpReply reply;
  };
  std::variant<Continue, Respond> value;

  static RequestDirective proceed(std::unique_ptr<BodyFilter> filter = nullptr) {
    return {Continue{std::move(filter)}};
  }
  static RequestDirective respond(HttpReply reply) { return {Respond{std::move(reply)}}; }
};

struct ResponseDirective {
  struct Continue {
    std::unique_ptr<BodyFilter> body_filter;  // optional: filters the response body
  };
  struct Respond {
    HttpReply reply;  // replaces the upstream's response (its body is discarded)
  };
  std::variant<Continue, Respond> value;

  static ResponseDirective proceed(std::unique_ptr<BodyFilter> filter = nullptr) {
    return {Continue{std::move(filter)}};
  }
  static ResponseDirective respond(HttpReply reply) { return {Respond{std::move(reply)}}; }
};

// Ctx is the connection's context (shared with IngressHook/EgressHook); ReqCtx is the
// application's RequestContext, default-constructed per request.
template <typename Ctx, typename ReqCtx>
class HttpRequestHook {
 public:
  virtual ~HttpRequestHook() = default;

  virtual Task<ConnectDirective> handle_proxy_connect_request(const ConnectionInfo& /*conn*/,
                                                              const HttpRequestHead& /*head*/,
                                                              Ctx& /*ctx*/) {
    co_return ConnectDirective::allow();
  }
  // The 200 about to be sent for an established tunnel; fields may be added.
  virtual void handle_proxy_connect_response(const ConnectionInfo& /*conn*/,
                                             HttpResponseHead& /*response*/, Ctx& /*ctx*/) {}

  virtual Task<RequestDirective> handle_request(const ConnectionInfo& /*conn*/,
                                                HttpRequestHead& /*request*/, Ctx& /*ctx*/,
                                                ReqCtx& /*req*/) {
    co_return RequestDirective::proceed();
  }
  virtual Task<ResponseDirective> handle_response(const ConnectionInfo& /*conn*/,
                                                  const HttpRequestHead& /*request*/,
                                                  HttpResponseHead& /*response*/, Ctx& /*ctx*/,
                                                  ReqCtx& /*req*/) {
    co_return ResponseDirective::proceed();
  }
};

}  // namespace ramjet
