// admin::FlowView: the merged kernel + engine view, its filters, order and JSON.
#include "admin/flow_view.h"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include "ramjet/abi/fallback.h"

namespace ramjet::admin {
namespace {

constexpr std::uint64_t kNow = 100'000'000'000;  // 100 s of CLOCK_MONOTONIC

datapath::KernelFlow kernel_flow(FlowId id, const char* src, const char* dst) {
  datapath::KernelFlow k;
  k.id = id;
  k.proto = IPPROTO_TCP;
  k.src = *SocketAddress::parse(src);
  k.dst = *SocketAddress::parse(dst);
  k.verdict = *datapath::action_from_name("FASTPATH");
  k.reason = 21;
  k.packets[0] = 10;
  k.packets[1] = 8;
  k.bytes[0] = 1000;
  k.bytes[1] = 9000;
  k.tcp_flags[0] = 0x1a;  // SAP
  k.tcp_flags[1] = 0x12;  // SA
  k.first_seen_ns = kNow - 4'000'000'000;
  k.last_seen_ns = kNow - 250'000'000;
  k.ifindex = 3;
  return k;
}

std::shared_ptr<const EngineConnection> engine_conn(FlowId id) {
  auto c = std::make_shared<EngineConnection>();
  c->id = id;
  c->endpoint = "web";
  c->worker = 1;
  c->client = *SocketAddress::parse("10.10.1.2:40000");
  c->local = *SocketAddress::parse("10.10.2.2:80");
  c->upstream = SocketAddress::parse("10.10.2.2:80");
  c->state = "relaying";
  c->escalated = true;
  c->age_ms = 3900;
  c->bytes_from_client = 400;
  c->bytes_to_client = 7000;
  return c;
}

TEST(FlowView, SummariesPreferTheKernelAndFallBackToTheEngine) {
  FlowView both{7, kernel_flow(7, "10.10.1.2:40000", "10.10.2.2:80"), engine_conn(7)};
  EXPECT_EQ(both.verdict(), "FASTPATH");
  EXPECT_EQ(both.bytes(), 10000u);
  EXPECT_EQ(both.packets(), 18u);
  EXPECT_EQ(both.age_ms(kNow), 4000u);
  EXPECT_EQ(both.idle_ms(kNow), 250u);
  NameTable names;
  ASSERT_NE(both.endpoint(names), nullptr);
  EXPECT_EQ(*both.endpoint(names), "web");

  FlowView engine_only{8, std::nullopt, engine_conn(8)};
  EXPECT_EQ(engine_only.verdict(), "ENGINE");
  EXPECT_EQ(engine_only.bytes(), 7400u);
  EXPECT_EQ(engine_only.packets(), 0u);
  EXPECT_EQ(engine_only.age_ms(kNow), 3900u);
  EXPECT_EQ(engine_only.src().to_string(), "10.10.1.2:40000");
  EXPECT_DOUBLE_EQ(average_rate_bps(engine_only, kNow), 7400.0 * 1000 / 3900);
}

TEST(FlowView, JsonRoundTripsThroughTheParser) {
  NameTable names;
  names.endpoints = {"web"};
  names.rules[0xabcd] = "to-web";
  auto k = kernel_flow(42, "[fd00:10:1::2]:40000", "[fd00:10:2::2]:443");
  k.verdict = *datapath::action_from_name("escalate");
  k.escalated = true;
  k.has_rule = true;
  k.rule_id = 0xabcd;
  k.endpoint_id = 1;
  FlowView f{42, k, engine_conn(42), 1234.4};
  std::string text;
  append_flow_json(text, f, names, kNow);
  auto j = nlohmann::json::parse(text);
  EXPECT_EQ(j["id"], 42);
  EXPECT_EQ(j["src"], "[fd00:10:1::2]:40000");
  EXPECT_EQ(j["verdict"], "ESCALATE");
  EXPECT_EQ(j["rule"], "to-web");
  EXPECT_EQ(j["endpoint"], "web");
  EXPECT_EQ(j["rate_bps"], 1234);
  EXPECT_EQ(j["kernel"]["tcp_flags"], nlohmann::json({"SAP", "SA"}));
  EXPECT_EQ(j["kernel"]["packets"], nlohmann::json({10, 8}));
  EXPECT_EQ(j["engine"]["state"], "relaying");
  EXPECT_FALSE(j["engine"].contains("proxied_by"));

  NameTable parsed_names;
  auto back = flow_from_json(j, parsed_names, kNow);
  ASSERT_TRUE(back.ok()) << back.error().message;
  std::string again;
  append_flow_json(again, *back, parsed_names, kNow);
  EXPECT_EQ(nlohmann::json::parse(again), j);
}

TEST(FlowView, ProxiedByIsShownAndRoundTrips) {
  auto c = std::make_shared<EngineConnection>(*engine_conn(9));
  c->proxied_by = SocketAddress::parse("10.0.0.5:51000");
  NameTable names;
  names.endpoints = {"web"};
  FlowView f{9, std::nullopt, c};
  std::string text;
  append_flow_json(text, f, names, kNow);
  auto j = nlohmann::json::parse(text);
  EXPECT_EQ(j["engine"]["client"], "10.10.1.2:40000");
  EXPECT_EQ(j["engine"]["proxied_by"], "10.0.0.5:51000");
  NameTable parsed_names;
  auto back = flow_from_json(j, parsed_names, kNow);
  ASSERT_TRUE(back.ok()) << back.error().message;
  ASSERT_TRUE(back->engine);
  EXPECT_EQ(back->engine->proxied_by, c->proxied_by);
}

TEST(FlowView, FallbackIsShownAndRoundTrips) {
  NameTable names;
  auto k = kernel_flow(43, "10.10.1.2:40001", "10.10.2.2:80");
  k.verdict = *datapath::action_from_name("fastpath");
  k.escalated = true;
  k.fallback = RAMJET_FALLBACK_PASS;
  k.fallback_cause = RAMJET_FALLBACK_CAUSE_DRAINING;
  FlowView f{43, k, nullptr, 0};
  std::string text;
  append_flow_json(text, f, names, kNow);
  auto j = nlohmann::json::parse(text);
  EXPECT_EQ(j["kernel"]["fallback"], nlohmann::json({{"verdict", "pass"}, {"cause", "draining"}}));
  NameTable parsed_names;
  auto back = flow_from_json(j, parsed_names, kNow);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->kernel->fallback, RAMJET_FALLBACK_PASS);
  EXPECT_EQ(back->kernel->fallback_cause, RAMJET_FALLBACK_CAUSE_DRAINING);

  k.fallback = 0;
  FlowView none{44, k, nullptr, 0};
  text.clear();
  append_flow_json(text, none, names, kNow);
  EXPECT_TRUE(nlohmann::json::parse(text)["kernel"]["fallback"].is_null());
}

TEST(FlowView, NamesAreEscapedAndUnknownIdsAreNull) {
  NameTable names;
  names.endpoints = {"we\"b\n"};
  auto k = kernel_flow(1, "10.0.0.1:1", "10.0.0.2:2");
  k.endpoint_id = 1;
  k.has_rule = true;
  k.rule_id = 99;  // no name for it
  auto j = flow_json({1, k, nullptr}, names, kNow);
  EXPECT_EQ(j["endpoint"], "we\"b\n");
  EXPECT_TRUE(j["rule"].is_null());
  EXPECT_EQ(j["kernel"]["rule_id"], 99);
  EXPECT_TRUE(j["engine"].is_null());
}

TEST(FlowFilter, QueryParsesValidatesAndRoundTrips) {
  auto f = FlowFilter::from_query("src=10.10.0.0%2F16&port=80&verdict=fastpath&proto=tcp");
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f->verdict, "FASTPATH");
  NameTable names;
  FlowView hit{1, kernel_flow(1, "10.10.1.2:40000", "10.10.2.2:80"), nullptr};
  FlowView other_port{2, kernel_flow(2, "10.10.1.2:40000", "10.10.2.2:81"), nullptr};
  FlowView other_src{3, kernel_flow(3, "10.11.1.2:40000", "10.10.2.2:80"), nullptr};
  EXPECT_TRUE(f->matches(hit, names));
  EXPECT_FALSE(f->matches(other_port, names));
  EXPECT_FALSE(f->matches(other_src, names));
  auto again = FlowFilter::from_query(f->to_query());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->to_query(), f->to_query());

  auto unknown = FlowFilter::from_query("colour=red");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("unknown flow filter \"colour\""), std::string::npos);
  auto bad = FlowFilter::from_query("src=10.0.0.0/33");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("invalid src \"10.0.0.0/33\""), std::string::npos);
  EXPECT_FALSE(FlowFilter::from_query("verdict=maybe").ok());
  EXPECT_FALSE(FlowFilter::from_query("port=65536").ok());
}

TEST(FlowFilter, EndpointAndEngineVerdictMatchEngineOnlyFlows) {
  NameTable names;
  FlowFilter f;
  ASSERT_TRUE(f.set("verdict", "engine").ok());
  ASSERT_TRUE(f.set("endpoint", "web").ok());
  EXPECT_TRUE(f.matches({5, std::nullopt, engine_conn(5)}, names));
  EXPECT_FALSE(f.matches({6, kernel_flow(6, "10.0.0.1:1", "10.0.0.2:2"), nullptr}, names));
  FlowFilter id_only;
  ASSERT_TRUE(id_only.set("id", "5").ok());
  EXPECT_TRUE(id_only.only_id());
  EXPECT_FALSE(f.only_id());
}

TEST(FlowSort, LargestFirstWithIdsBreakingTies) {
  FlowView a{1, kernel_flow(1, "10.0.0.1:1", "10.0.0.2:2"), nullptr, 10};
  FlowView b{2, kernel_flow(2, "10.0.0.1:1", "10.0.0.2:2"), nullptr, 20};
  b.kernel->bytes[0] = 1;  // fewer bytes
  EXPECT_TRUE(flow_before(FlowSort::kRate, b, a, kNow));
  EXPECT_TRUE(flow_before(FlowSort::kBytes, a, b, kNow));
  EXPECT_TRUE(flow_before(FlowSort::kId, a, b, kNow));
  EXPECT_TRUE(flow_before(FlowSort::kPackets, a, b, kNow));  // equal packets: lower id first
  EXPECT_FALSE(flow_before(FlowSort::kPackets, b, a, kNow));
  EXPECT_EQ(flow_sort_from_name("idle"), FlowSort::kIdle);
  EXPECT_FALSE(flow_sort_from_name("colour"));
}

TEST(FlowView, UrlCodingRoundTrips) {
  EXPECT_EQ(url_encode("fd00::/8"), "fd00::%2F8");
  EXPECT_EQ(url_decode("fd00::%2F8"), "fd00::/8");
  EXPECT_EQ(url_decode("a%2"), "a%2");  // a cut-off escape stays as it is
}

}  // namespace
}  // namespace ramjet::admin
