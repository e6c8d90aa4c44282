// Example: RFC 9209 next-hop. Every CONNECT response tells the client which address
// the tunnel reached:  Proxy-Status: ramjet; next-hop="203.0.113.7:443"
//
// EgressHook::handle_connection_established learns the address and stores it in the
// connection's context; HttpRequestHook::handle_proxy_connect_response adds the field.
#include <string>

#include "ramjet/bootstrap.h"

namespace {

struct Hop {
  std::string next_hop;
};

class RecordHop final : public ramjet::EgressHook<Hop> {
 public:
  void handle_connection_established(const ramjet::ConnectionInfo&,
                                     const ramjet::EstablishedInfo& info, Hop& hop) override {
    hop.next_hop = info.upstream.to_string();
  }
};

class AnnounceHop final : public ramjet::HttpRequestHook<Hop, ramjet::NoContext> {
 public:
  void handle_proxy_connect_response(const ramjet::ConnectionInfo&,
                                     ramjet::HttpResponseHead& response, Hop& hop) override {
    if (!hop.next_hop.empty())
      response.headers.add("Proxy-Status", "ramjet; next-hop=\"" + hop.next_hop + "\"");
  }
};

struct NextHopApp {
  static constexpr std::string_view name = "example-next-hop";
  static constexpr std::string_view version = "0.1.0";
  static constexpr std::string_view description =
      "ramjet example: CONNECT responses name the next hop (RFC 9209)";
  using IngressConnectionContext = Hop;

  static ramjet::Hooks<NextHopApp> start(const ramjet::NoSettings&) {
    ramjet::Hooks<NextHopApp> hooks;
    hooks.egress = std::make_unique<RecordHop>();
    hooks.http = std::make_unique<AnnounceHop>();
    return hooks;
  }
};

}  // namespace

int main(int argc, char** argv) {
  return ramjet::bootstrap<NextHopApp>(argc, argv);
}
