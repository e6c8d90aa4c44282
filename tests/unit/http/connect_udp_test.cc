#include "http/connect_udp.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "http/connect_udp_config.h"

namespace ramjet::http {
namespace {

MasqueTemplate tmpl(std::string_view text = kDefaultMasqueUdpTemplate) {
  MasqueTemplateResult r = parse_masque_template(text);
  EXPECT_TRUE(r.value.has_value()) << text;
  return r.value ? *r.value : *parse_masque_template(kDefaultMasqueUdpTemplate).value;
}

// Parses `text` as a request head and classifies it (the head's views live in `text`).
ConnectUdpRequest classify(const std::string& text, const MasqueTemplate& t = tmpl()) {
  h1::HeadParser p(h1::MessageKind::kRequest);
  h1::Head head;
  const h1::HeadResult r = p.parse(text, head);
  EXPECT_EQ(r.status, h1::ParseStatus::kDone) << text;
  return classify_connect_udp_request(head, t);
}

constexpr std::string_view kFields =
    "Host: proxy.test\r\nConnection: Upgrade\r\nUpgrade: connect-udp\r\nCapsule-Protocol: ?1\r\n";

std::string request(std::string_view start_line, std::string_view fields = kFields) {
  return std::string(start_line) + "\r\n" + std::string(fields) + "\r\n";
}

TEST(ConnectUdpRequest, OriginFormNamesTheTarget) {
  const auto r = classify(request("GET /.well-known/masque/udp/192.0.2.6/443/ HTTP/1.1"));
  ASSERT_EQ(r.verdict, ConnectUdpVerdict::kTunnel) << r.reason;
  EXPECT_EQ(r.target.target_host, "192.0.2.6");
  EXPECT_EQ(r.target.target_port, 443);
}

TEST(ConnectUdpRequest, AbsoluteFormIsMatchedByItsPath) {
  // RFC 9298's own example is absolute-form; a connect-udp upgrade is never forwarded.
  const auto r =
      classify(request("GET https://proxy.test/.well-known/masque/udp/dns.test/53/ HTTP/1.1"));
  ASSERT_EQ(r.verdict, ConnectUdpVerdict::kTunnel) << r.reason;
  EXPECT_EQ(r.target.target_host, "dns.test");
  EXPECT_EQ(r.target.target_port, 53);
}

TEST(ConnectUdpRequest, AnIpv6TargetArrivesPercentEncoded) {
  const auto r = classify(request("GET /.well-known/masque/udp/2001%3Adb8%3A%3A42/53/ HTTP/1.1"));
  ASSERT_EQ(r.verdict, ConnectUdpVerdict::kTunnel) << r.reason;
  EXPECT_EQ(r.target.target_host, "2001:db8::42");
}

TEST(ConnectUdpRequest, OtherUpgradesAndPlainRequestsAreNotTunnels) {
  for (const std::string& text :
       {request("GET /.well-known/masque/udp/192.0.2.6/443/ HTTP/1.1", "Host: p\r\n"),
        request("GET /chat HTTP/1.1", "Host: p\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"),
        // Upgrade means nothing in HTTP/1.0: served as before.
        request("GET /.well-known/masque/udp/192.0.2.6/443/ HTTP/1.0")}) {
    EXPECT_EQ(classify(text).verdict, ConnectUdpVerdict::kNotConnectUdp) << text;
  }
}

TEST(ConnectUdpRequest, UpgradeListsAreReadOverEveryLine) {
  const auto r =
      classify(request("GET /.well-known/masque/udp/192.0.2.6/443/ HTTP/1.1",
                       "Host: p\r\nConnection: keep-alive\r\nConnection: Upgrade\r\n"
                       "Upgrade: h2c\r\nUpgrade: Connect-UDP\r\nCapsule-Protocol: ?1;x\r\n"));
  EXPECT_EQ(r.verdict, ConnectUdpVerdict::kTunnel) << r.reason;
}

struct MalformedCase {
  const char* what;
  std::string text;
  std::string_view reason;  // a part of the expected reason
};

TEST(ConnectUdpRequest, MalformedRequestsSayWhy) {
  const std::string path = "/.well-known/masque/udp/192.0.2.6/443/";
  const std::vector<MalformedCase> cases = {
      {"POST",
       request("POST " + path + " HTTP/1.1", std::string(kFields) + "Content-Length: 0\r\n"),
       "GET method"},
      {"no Connection: Upgrade",
       request("GET " + path + " HTTP/1.1",
               "Host: p\r\nUpgrade: connect-udp\r\nCapsule-Protocol: ?1\r\n"),
       "Connection: Upgrade"},
      {"no Capsule-Protocol",
       request("GET " + path + " HTTP/1.1",
               "Host: p\r\nConnection: upgrade\r\nUpgrade: connect-udp\r\n"),
       "Capsule-Protocol"},
      {"Capsule-Protocol: ?0",
       request("GET " + path + " HTTP/1.1",
               "Host: p\r\nConnection: upgrade\r\nUpgrade: connect-udp\r\n"
               "Capsule-Protocol: ?0\r\n"),
       "Capsule-Protocol"},
      {"two Capsule-Protocol lines",
       request("GET " + path + " HTTP/1.1", std::string(kFields) + "Capsule-Protocol: ?1\r\n"),
       "Capsule-Protocol"},
      {"a body",
       request("GET " + path + " HTTP/1.1", std::string(kFields) + "Content-Length: 3\r\n"),
       "no body"},
      {"a port out of range", request("GET /.well-known/masque/udp/192.0.2.6/65536/ HTTP/1.1"),
       "bad_target_port"},
      {"port 0", request("GET /.well-known/masque/udp/192.0.2.6/0/ HTTP/1.1"), "bad_target_port"},
      {"another path", request("GET /masque/192.0.2.6/443/ HTTP/1.1"), "path_mismatch"},
      {"an ftp URI", request("GET ftp://p/.well-known/masque/udp/192.0.2.6/443/ HTTP/1.1"),
       "a path or an http(s) URI"},
  };
  for (const auto& c : cases) {
    const auto r = classify(c.text);
    EXPECT_EQ(r.verdict, ConnectUdpVerdict::kMalformed) << c.what;
    EXPECT_NE(r.reason.find(c.reason), std::string::npos) << c.what << ": " << r.reason;
  }
}

TEST(ConnectUdpRequest, AnAbsoluteTemplateChecksTheAuthority) {
  const MasqueTemplate t = tmpl("https://masque.test:4443/udp/{target_host}/{target_port}");
  const std::string fields =
      "Connection: Upgrade\r\nUpgrade: connect-udp\r\nCapsule-Protocol: ?1\r\n";
  auto r =
      classify(request("GET /udp/192.0.2.6/53 HTTP/1.1", "Host: MASQUE.test:4443\r\n" + fields), t);
  EXPECT_EQ(r.verdict, ConnectUdpVerdict::kTunnel) << r.reason;
  r = classify(
      request("GET https://masque.test:4443/udp/192.0.2.6/53 HTTP/1.1", "Host: x\r\n" + fields), t);
  EXPECT_EQ(r.verdict, ConnectUdpVerdict::kTunnel) << r.reason;
  r = classify(request("GET /udp/192.0.2.6/53 HTTP/1.1", "Host: other.test\r\n" + fields), t);
  EXPECT_EQ(r.verdict, ConnectUdpVerdict::kMalformed);
  EXPECT_NE(r.reason.find("another authority"), std::string::npos) << r.reason;
}

TEST(ConnectUdpRequest, TheAnswerIsA101WithoutFraming) {
  EXPECT_EQ(connect_udp_switching_protocols("X-A: 1\r\n"),
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: connect-udp\r\n"
            "Capsule-Protocol: ?1\r\nX-A: 1\r\n\r\n");
}

// --- HTTP/2: extended CONNECT (RFC 9298 3.4, RFC 8441) ---

h2::RequestHead h2_request(std::string path = "/.well-known/masque/udp/192.0.2.6/443/") {
  h2::RequestHead h;
  h.method = "CONNECT";
  h.protocol = "connect-udp";
  h.scheme = "https";
  h.authority = "proxy.test";
  h.path = std::move(path);
  h.fields = {{"capsule-protocol", "?1"}};
  return h;
}

TEST(ConnectUdpRequestH2, AnExtendedConnectNamesTheTarget) {
  auto r = classify_connect_udp_request(h2_request(), tmpl(), /*tls=*/true);
  ASSERT_EQ(r.verdict, ConnectUdpVerdict::kTunnel) << r.reason;
  EXPECT_EQ(r.target.target_host, "192.0.2.6");
  EXPECT_EQ(r.target.target_port, 443);
  EXPECT_EQ(r.path, "/.well-known/masque/udp/192.0.2.6/443/");
  // h2c may say http.
  h2::RequestHead h = h2_request("/.well-known/masque/udp/2001%3Adb8%3A%3A42/53/");
  h.scheme = "http";
  r = classify_connect_udp_request(h, tmpl(), /*tls=*/false);
  ASSERT_EQ(r.verdict, ConnectUdpVerdict::kTunnel) << r.reason;
  EXPECT_EQ(r.target.target_host, "2001:db8::42");
  EXPECT_EQ(r.target.target_port, 53);
}

TEST(ConnectUdpRequestH2, OtherProtocolsAndMethodsAreNotTunnels) {
  h2::RequestHead h = h2_request();
  h.protocol = "websocket";
  EXPECT_EQ(classify_connect_udp_request(h, tmpl(), true).verdict,
            ConnectUdpVerdict::kNotConnectUdp);
  h = h2_request();
  h.protocol.clear();
  EXPECT_EQ(classify_connect_udp_request(h, tmpl(), true).verdict,
            ConnectUdpVerdict::kNotConnectUdp);
  h = h2_request();
  h.method = "GET";
  EXPECT_EQ(classify_connect_udp_request(h, tmpl(), true).verdict,
            ConnectUdpVerdict::kNotConnectUdp);
}

TEST(ConnectUdpRequestH2, MalformedRequestsSayWhy) {
  struct Case {
    const char* what;
    h2::RequestHead head;
    bool tls;
    std::string_view reason;
  };
  std::vector<Case> cases;
  auto with = [](auto change) {
    h2::RequestHead h = h2_request();
    change(h);
    return h;
  };
  cases.push_back(
      {"http over TLS", with([](auto& h) { h.scheme = "http"; }), true, ":scheme https"});
  cases.push_back({"ftp on h2c", with([](auto& h) { h.scheme = "ftp"; }), false, ":scheme"});
  cases.push_back(
      {"no :authority", with([](auto& h) { h.authority.clear(); }), true, ":authority"});
  cases.push_back(
      {"no capsule-protocol", with([](auto& h) { h.fields.clear(); }), true, "capsule-protocol"});
  cases.push_back({"capsule-protocol ?0", with([](auto& h) {
                     h.fields = {{"capsule-protocol", "?0"}};
                   }),
                   true, "capsule-protocol"});
  cases.push_back({"two capsule-protocol fields", with([](auto& h) {
                     h.fields.push_back({"capsule-protocol", "?1"});
                   }),
                   true, "capsule-protocol"});
  cases.push_back({"END_STREAM on the head", with([](auto& h) { h.end_stream = true; }), true,
                   "ends its stream"});
  cases.push_back({"another path", h2_request("/masque/192.0.2.6/443/"), true, "path_mismatch"});
  cases.push_back(
      {"port 0", h2_request("/.well-known/masque/udp/192.0.2.6/0/"), true, "bad_target_port"});
  for (const auto& c : cases) {
    const auto r = classify_connect_udp_request(c.head, tmpl(), c.tls);
    EXPECT_EQ(r.verdict, ConnectUdpVerdict::kMalformed) << c.what;
    EXPECT_NE(r.reason.find(c.reason), std::string::npos) << c.what << ": " << r.reason;
  }
}

TEST(ConnectUdpRequestH2, AnAbsoluteTemplateChecksTheAuthority) {
  const MasqueTemplate t = tmpl("https://masque.test:4443/udp/{target_host}/{target_port}");
  h2::RequestHead h = h2_request("/udp/192.0.2.6/53");
  h.authority = "MASQUE.test:4443";
  EXPECT_EQ(classify_connect_udp_request(h, t, true).verdict, ConnectUdpVerdict::kTunnel);
  h.authority = "other.test";
  const auto r = classify_connect_udp_request(h, t, true);
  EXPECT_EQ(r.verdict, ConnectUdpVerdict::kMalformed);
  EXPECT_NE(r.reason.find("another authority"), std::string::npos) << r.reason;
}

// --- The capsule stream ---

std::string datagram(std::uint64_t context, std::string_view payload) {
  std::string out;
  EXPECT_TRUE(append_datagram_capsule(out, context, as_bytes(payload)));
  return out;
}

std::string capsule(std::uint64_t type, std::string_view payload) {
  std::string out;
  EXPECT_TRUE(append_capsule(out, type, as_bytes(payload)));
  return out;
}

// Feeds `stream` cut into pieces of `piece` bytes; the payloads, and the error if any.
struct Read {
  std::vector<std::string> payloads;
  bool failed = false;
  CapsuleError error = CapsuleError::kCapsuleTooLarge;
  std::uint64_t offset = 0;
};
Read read_all(ConnectUdpReader& reader, std::string_view stream, std::size_t piece,
              bool end = true) {
  Read out;
  for (std::size_t at = 0; at < stream.size() && !out.failed; at += piece) {
    std::string_view chunk = stream.substr(at, piece);
    for (;;) {
      auto r = reader.next(chunk);
      chunk.remove_prefix(r.consumed);
      if (r.status == ConnectUdpReader::Status::kNeedMore) break;
      if (r.status == ConnectUdpReader::Status::kError) {
        out.failed = true;
        out.error = r.error;
        out.offset = r.offset;
        break;
      }
      out.payloads.emplace_back(reinterpret_cast<const char*>(r.payload.data()), r.payload.size());
    }
  }
  if (end && !out.failed) {
    auto r = reader.finish();
    if (r.status == ConnectUdpReader::Status::kError) {
      out.failed = true;
      out.error = r.error;
      out.offset = r.offset;
    }
  }
  return out;
}

TEST(ConnectUdpReader, YieldsContextZeroPayloadsInOrderHoweverTheStreamIsCut) {
  const std::string big(1400, 'x');
  const std::string stream = datagram(0, "one") + capsule(0x17 + 0x29, "grease") +
                             datagram(7, "other context") + datagram(0, "") + datagram(0, big) +
                             capsule(0x02, "address request") + datagram(0, "last");
  for (std::size_t piece :
       {std::size_t{1}, std::size_t{2}, std::size_t{5}, std::size_t{100}, stream.size()}) {
    ConnectUdpReader reader;
    const Read r = read_all(reader, stream, piece);
    EXPECT_FALSE(r.failed) << piece;
    EXPECT_EQ(r.payloads, (std::vector<std::string>{"one", "", big, "last"})) << piece;
    EXPECT_EQ(reader.skipped_capsules(), 2u) << piece;
    EXPECT_EQ(reader.skipped_datagrams(), 1u) << piece;
  }
}

TEST(ConnectUdpReader, ADatagramWithoutAContextIdIsFatal) {
  ConnectUdpReader reader;
  const std::string stream = datagram(0, "ok") + capsule(0x00, "");
  const Read r = read_all(reader, stream, stream.size());
  EXPECT_EQ(r.payloads, std::vector<std::string>{"ok"});
  ASSERT_TRUE(r.failed);
  EXPECT_EQ(r.error, CapsuleError::kDatagramTruncated);
  EXPECT_EQ(r.offset, datagram(0, "ok").size()) << "where the bad capsule starts";
}

TEST(ConnectUdpReader, AStreamThatEndsInsideACapsuleIsTruncated) {
  ConnectUdpReader reader;
  const std::string whole = datagram(0, "hello");
  const Read r = read_all(reader, std::string_view(whole).substr(0, whole.size() - 1), 1);
  ASSERT_TRUE(r.failed);
  EXPECT_EQ(r.error, CapsuleError::kTruncatedCapsule);
}

TEST(ConnectUdpReader, AnOversizedCapsuleIsRefusedOnItsHeader) {
  ConnectUdpReader reader;
  std::string header;
  ASSERT_TRUE(append_capsule_header(header, kCapsuleDatagram, 1u << 20));
  const Read r = read_all(reader, header, header.size(), /*end=*/false);
  ASSERT_TRUE(r.failed);
  EXPECT_EQ(r.error, CapsuleError::kCapsuleTooLarge);
}

TEST(ConnectUdpReader, AUdpPayloadOverTheUdpLimitIsFatal) {
  ConnectUdpReader reader;
  const Read r = read_all(reader, datagram(0, std::string(kMaxUdpPayload + 1, 'u')), 4096);
  ASSERT_TRUE(r.failed);
  EXPECT_EQ(r.error, CapsuleError::kUdpPayloadTooLong);
}

// --- The configured template ---

TEST(ConnectUdpConfig, ABadTemplateIsAConfigErrorAtItsKey) {
  config::AppSchema schema;
  schema.checks.push_back(&check_connect_udp_templates);
  auto c = config::load_string(
      "endpoints:\n"
      "  - name: fwd\n"
      "    onramp: http\n"
      "    listen: 127.0.0.1:3128\n"
      "    connect_udp:\n"
      "      enabled: true\n"
      "      template: /masque/{target_host}\n",
      "cu.yaml", schema);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message,
            "cu.yaml:7:17: endpoints[0].connect_udp.template: not a connect-udp URI template "
            "(RFC 9298 2, level 1): missing_target_port at the end of "
            "\"/masque/{target_host}\"");
  auto bad_char = config::load_string(
      "endpoints:\n  - {name: fwd, onramp: http, listen: 127.0.0.1:3128, connect_udp: {template: "
      "\"/m/{target_host}/{+target_port}\"}}\n",
      "cu.yaml", schema);
  ASSERT_FALSE(bad_char.ok());
  EXPECT_NE(bad_char.error().message.find("unsupported_operator at character 19"),
            std::string::npos)
      << bad_char.error().message;
  auto ok = config::load_string(
      "endpoints:\n  - {name: fwd, onramp: http, listen: 127.0.0.1:3128, connect_udp: {enabled: "
      "true, template: \"https://p.test/m/{target_host}/{target_port}\"}}\n",
      "cu.yaml", schema);
  EXPECT_TRUE(ok.ok()) << ok.error().message;
}

}  // namespace
}  // namespace ramjet::http
