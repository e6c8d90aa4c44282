// Example: an L7 firewall. Requests to blocked hosts or path prefixes are answered
// 403 by the proxy; response bodies have a pattern redacted as they stream, even
// when the pattern is split across chunks.
//
//   endpoints: [{name: fwd, listen: 127.0.0.1:3128, onramp: http}]
//   app:
//     blocked_hosts: [ads.example]
//     blocked_paths: [/admin]
//     redact: "SECRET-TOKEN"
//     replacement: "[redacted]"
#include <algorithm>
#include <string>
#include <vector>

#include "ramjet/bootstrap.h"

namespace {

struct FirewallSettings {
  std::vector<std::string> blocked_hosts;
  std::vector<std::string> blocked_paths;
  std::string redact;
  std::string replacement = "[redacted]";
  static void describe(ramjet::settings::Fields<FirewallSettings>& f) {
    f("blocked_hosts", &FirewallSettings::blocked_hosts, "Hosts answered 403 (exact match).");
    f("blocked_paths", &FirewallSettings::blocked_paths, "Path prefixes answered 403.");
    f("redact", &FirewallSettings::redact, "Text removed from response bodies; \"\" = none.");
    f("replacement", &FirewallSettings::replacement, "What replaces each redacted match.");
  }
};

// Streaming search-and-replace. It holds back the last len(pattern)-1 bytes of each
// chunk, so a match split across chunk boundaries is still found.
class RedactFilter final : public ramjet::BodyFilter {
 public:
  RedactFilter(std::string pattern, std::string replacement)
      : pattern_(std::move(pattern)), replacement_(std::move(replacement)) {}

  Result on_data(std::string_view in, std::string& out) override {
    pending_.append(in);
    std::size_t pos;
    while ((pos = pending_.find(pattern_)) != std::string::npos) {
      out.append(pending_, 0, pos).append(replacement_);
      pending_.erase(0, pos + pattern_.size());
    }
    std::size_t keep = std::min(pending_.size(), pattern_.size() - 1);
    out.append(pending_, 0, pending_.size() - keep);
    pending_.erase(0, pending_.size() - keep);
    return Result::kContinue;
  }
  Result on_end(std::string& out) override {
    out += pending_;
    pending_.clear();
    return Result::kContinue;
  }

 private:
  std::string pattern_;
  std::string replacement_;
  std::string pending_;
};

class Firewall final : public ramjet::HttpRequestHook<ramjet::NoContext, ramjet::NoContext> {
 public:
  explicit Firewall(FirewallSettings s) : s_(std::move(s)) {}

  ramjet::Task<ramjet::RequestDirective> handle_request(const ramjet::ConnectionInfo&,
                                                        ramjet::HttpRequestHead& req,
                                                        ramjet::NoContext&,
                                                        ramjet::NoContext&) override {
    std::string why;
    if (req.authority && std::find(s_.blocked_hosts.begin(), s_.blocked_hosts.end(),
                                   req.authority->host) != s_.blocked_hosts.end())
      why = "host " + req.authority->host + " is blocked";
    for (const auto& p : s_.blocked_paths)
      if (req.path.compare(0, p.size(), p) == 0) why = "path " + p + " is blocked";
    if (!why.empty()) {
      ramjet::HttpReply reply;
      reply.status = 403;
      reply.headers.add("Content-Type", "text/plain");
      reply.body = "blocked by l7 firewall: " + why + "\n";
      co_return ramjet::RequestDirective::respond(std::move(reply));
    }
    co_return ramjet::RequestDirective::proceed();
  }

  ramjet::Task<ramjet::ResponseDirective> handle_response(const ramjet::ConnectionInfo&,
                                                          const ramjet::HttpRequestHead&,
                                                          ramjet::HttpResponseHead&,
                                                          ramjet::NoContext&,
                                                          ramjet::NoContext&) override {
    if (s_.redact.empty()) co_return ramjet::ResponseDirective::proceed();
    co_return ramjet::ResponseDirective::proceed(
        std::make_unique<RedactFilter>(s_.redact, s_.replacement));
  }

 private:
  FirewallSettings s_;
};

struct FirewallApp {
  static constexpr std::string_view name = "example-l7-firewall";
  static constexpr std::string_view version = "0.1.0";
  static constexpr std::string_view description =
      "ramjet example: block requests by host and path, redact response bodies";
  using Settings = FirewallSettings;

  static ramjet::Hooks<FirewallApp> start(const FirewallSettings& s) {
    ramjet::Hooks<FirewallApp> hooks;
    hooks.http = std::make_unique<Firewall>(s);
    return hooks;
  }
};

}  // namespace

int main(int argc, char** argv) {
  return ramjet::bootstrap<FirewallApp>(argc, argv);
}
