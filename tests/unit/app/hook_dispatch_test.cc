// The type-erased HookSet must hand every hook of one connection the same typed
// context, and behave as the documented defaults where an app leaves a hook out.
#include <gtest/gtest.h>

#include "ramjet/bootstrap.h"

namespace ramjet {
namespace {

// Drives a Task to completion synchronously; these hooks never suspend.
template <typename T>
T run_now(Task<T> t) {
  std::optional<T> out;
  auto wrapper = [](Task<T> inner, std::optional<T>& o) -> Task<void> {
    o = co_await std::move(inner);
  };
  detach(wrapper(std::move(t), out));
  return std::move(*out);
}

struct Ctx {
  int touched = 0;
  std::string tag;
};

struct TagIngress : IngressHook<Ctx> {
  Task<IngressDecision> handle_connection(const ConnectionInfo& c, Ctx& ctx) override {
    ctx.touched++;
    ctx.tag = "from-ingress";
    if (c.client.port() == 666) co_return IngressDecision::block("evil port");
    co_return IngressDecision::allow();
  }
  void handle_connection_close(const ConnectionInfo&, const ConnectionStats& s, Ctx& ctx) override {
    ctx.touched++;
    last_bytes = s.bytes_from_client;
  }
  std::uint64_t last_bytes = 0;
};

struct TagEgress : EgressHook<Ctx> {
  Task<EgressDecision> handle_connection(const ConnectionInfo&, const EgressRequest& r,
                                         Ctx& ctx) override {
    ctx.touched++;
    seen_tag = ctx.tag;
    co_return EgressDecision::direct(HostPort{"rewritten.example", r.target.port});
  }
  std::string seen_tag;
};

struct FullApp {
  static constexpr std::string_view name = "t";
  static constexpr std::string_view version = "0";
  static constexpr std::string_view description = "";
  using IngressConnectionContext = Ctx;
};

struct EmptyApp {
  static constexpr std::string_view name = "e";
  static constexpr std::string_view version = "0";
  static constexpr std::string_view description = "";
};

TEST(HookDispatch, OneTypedContextFlowsThroughEveryHook) {
  Hooks<FullApp> hooks;
  auto* in = new TagIngress;
  auto* eg = new TagEgress;
  hooks.ingress.reset(in);
  hooks.egress.reset(eg);
  engine::TypedHookSet<FullApp> set(std::move(hooks));

  auto ctx = set.make_connection_context();
  ConnectionInfo conn;
  conn.client = *SocketAddress::parse("127.0.0.1:1000");
  auto d = run_now(set.ingress_handle_connection(conn, ctx.get()));
  EXPECT_EQ(d.action, IngressDecision::Action::kAllow);
  auto e = run_now(set.egress_handle_connection(conn, {HostPort{"a", 80}}, ctx.get()));
  ASSERT_FALSE(e.is_block());
  EXPECT_EQ(std::get<EgressDecision::ExternalDirect>(e.value).target.host, "rewritten.example");
  EXPECT_EQ(eg->seen_tag, "from-ingress");
  ConnectionStats st;
  st.bytes_from_client = 42;
  set.ingress_handle_connection_close(conn, st, ctx.get());
  EXPECT_EQ(static_cast<Ctx*>(ctx.get())->touched, 3);
  EXPECT_EQ(in->last_bytes, 42u);
}

struct TagProxyProtocol : ProxyProtocolConnectionHook<Ctx> {
  Task<ProxyProtocolDecision> handle_connection(const ConnectionInfo&, const ProxyHeader& h,
                                                Ctx& ctx) override {
    ctx.touched++;
    ctx.tag = h.authority;
    if (h.find(0xE0) == nullptr) co_return ProxyProtocolDecision::block("no 0xE0 TLV");
    co_return ProxyProtocolDecision::allow();
  }
};

TEST(HookDispatch, ProxyProtocolHookSharesTheContextWithIngress) {
  Hooks<FullApp> hooks;
  hooks.proxy_protocol = std::make_unique<TagProxyProtocol>();
  auto* eg = new TagEgress;
  hooks.egress.reset(eg);
  engine::TypedHookSet<FullApp> set(std::move(hooks));
  auto ctx = set.make_connection_context();
  ConnectionInfo conn;
  ProxyHeader h;
  h.authority = "lb.example";
  EXPECT_EQ(run_now(set.proxy_protocol_handle_connection(conn, h, ctx.get())).reason,
            "no 0xE0 TLV");
  h.other.push_back({0xE0, "x"});
  EXPECT_EQ(run_now(set.proxy_protocol_handle_connection(conn, h, ctx.get())).action,
            ProxyProtocolDecision::Action::kAllow);
  run_now(set.egress_handle_connection(conn, {HostPort{"a", 80}}, ctx.get()));
  EXPECT_EQ(eg->seen_tag, "lb.example");
  EXPECT_EQ(static_cast<Ctx*>(ctx.get())->touched, 3);
}

TEST(HookDispatch, BlockDecisionCarriesItsReason) {
  Hooks<FullApp> hooks;
  hooks.ingress = std::make_unique<TagIngress>();
  engine::TypedHookSet<FullApp> set(std::move(hooks));
  auto ctx = set.make_connection_context();
  ConnectionInfo conn;
  conn.client = *SocketAddress::parse("127.0.0.1:666");
  auto d = run_now(set.ingress_handle_connection(conn, ctx.get()));
  EXPECT_EQ(d.action, IngressDecision::Action::kBlock);
  EXPECT_EQ(d.reason, "evil port");
}

TEST(HookDispatch, MissingHooksBehaveAsDefaults) {
  engine::TypedHookSet<EmptyApp> set(Hooks<EmptyApp>{});
  auto ctx = set.make_connection_context();
  ConnectionInfo conn;
  EXPECT_EQ(run_now(set.ingress_handle_connection(conn, ctx.get())).action,
            IngressDecision::Action::kAllow);
  EXPECT_EQ(run_now(set.proxy_protocol_handle_connection(conn, ProxyHeader{}, ctx.get())).action,
            ProxyProtocolDecision::Action::kAllow);
  auto e = run_now(set.egress_handle_connection(conn, {HostPort{"up.example", 443}}, ctx.get()));
  ASSERT_FALSE(e.is_block());
  EXPECT_EQ(std::get<EgressDecision::ExternalDirect>(e.value).target.to_string(), "up.example:443");
  EXPECT_FALSE(run_now(set.egress_dns_resolve_override(conn, "x", ctx.get())).has_value());
  UpstreamIps ips{"x", {*IpAddress::parse("1.2.3.4")}};
  EXPECT_EQ(run_now(set.egress_handle_upstream_ips(conn, ips, ctx.get())),
            UpstreamIpsPolicy::kGuarded);
  auto ov =
      run_now(set.egress_tcp_connect_override(conn, *SocketAddress::parse("1.2.3.4:1"), ctx.get()));
  EXPECT_TRUE(std::holds_alternative<ConnectOverride::Continue>(ov.value));
  auto udp = run_now(
      set.egress_udp_connect_override(conn, *SocketAddress::parse("1.2.3.4:53"), ctx.get()));
  EXPECT_TRUE(std::holds_alternative<ConnectOverride::Continue>(udp.value));
}

}  // namespace
}  // namespace ramjet
