#include "http/h2/server_connection.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "http/h2/test_client.h"

namespace ramjet::http::h2 {
namespace {

using test::frame;
using test::TestClient;

struct Recorder : ServerEvents {
  void on_request(std::int32_t stream, RequestHead head) override {
    requests[stream] = std::move(head);
  }
  void on_data(std::int32_t stream, std::string_view data) override { bodies[stream] += data; }
  void on_end_stream(std::int32_t stream) override { ended.push_back(stream); }
  void on_trailers(std::int32_t stream, std::vector<Field> fields) override {
    trailers[stream] = std::move(fields);
  }
  void on_stream_close(std::int32_t stream, std::uint32_t code) override { closed[stream] = code; }
  void on_goaway(std::int32_t last, std::uint32_t) override { goaway_last = last; }
  void on_defence(Defence d) override { defences.push_back(d); }

  std::map<std::int32_t, RequestHead> requests;
  std::map<std::int32_t, std::string> bodies;
  std::vector<std::int32_t> ended;
  std::map<std::int32_t, std::vector<Field>> trailers;
  std::map<std::int32_t, std::uint32_t> closed;
  std::int32_t goaway_last = -1;
  std::vector<Defence> defences;
};

class ServerConnectionTest : public ::testing::Test {
 protected:
  void make(Limits l = {}) { server = std::make_unique<ServerConnection>(events, l); }
  Recorder events;
  std::unique_ptr<ServerConnection> server;
  TestClient client;
};

TEST_F(ServerConnectionTest, ValidatedRequestAndStreamedResponse) {
  make();
  auto fields = TestClient::get("/x?y=1");
  fields.emplace_back("accept", "text/plain");
  std::int32_t id = client.request(fields);
  ASSERT_TRUE(client.pump(*server));
  ASSERT_EQ(events.requests.count(id), 1u);
  const RequestHead& h = events.requests[id];
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.scheme, "http");
  EXPECT_EQ(h.authority, "a.test");
  EXPECT_EQ(h.path, "/x?y=1");
  EXPECT_TRUE(h.end_stream);
  ASSERT_EQ(h.fields.size(), 1u);
  EXPECT_EQ(h.fields[0].name, "accept");
  EXPECT_EQ(events.ended, std::vector<std::int32_t>{id});

  // Connection-specific fields never go out on HTTP/2; names go lowercase.
  ASSERT_TRUE(server->submit_response(
      id, 200, {{"Content-Type", "text/plain"}, {"Connection", "close"}}, false));
  client.pump(*server);
  EXPECT_EQ(client.responses[id].status, 200);
  EXPECT_FALSE(client.responses[id].ended);
  server->send_data(id, "hello ");
  client.pump(*server);
  EXPECT_EQ(client.responses[id].body, "hello ");
  server->send_data(id, "world");
  server->end_data(id);
  client.pump(*server);
  const auto& r = client.responses[id];
  EXPECT_EQ(r.body, "hello world");
  EXPECT_TRUE(r.ended);
  ASSERT_EQ(r.fields.size(), 1u);
  EXPECT_EQ(r.fields[0].first, "content-type");
  EXPECT_EQ(events.closed.count(id), 1u);
  EXPECT_EQ(events.closed[id], 0u);
}

TEST_F(ServerConnectionTest, RequestBodyIsFlowControlledByConsume) {
  Limits l;
  l.stream_window = 16 * 1024;
  make(l);
  std::string body(100 * 1024, 'b');
  auto fields = TestClient::get("/up");
  fields[0].second = "POST";
  std::int32_t id = client.request(fields, &body);
  client.pump(*server);
  ASSERT_EQ(events.requests.count(id), 1u);
  EXPECT_FALSE(events.requests[id].end_stream);
  // Nothing consumed: the client stops at its window (the default 64 KiB - 1 it may use
  // before it has our SETTINGS), however often it is given the chance.
  EXPECT_LE(events.bodies[id].size(), 65535u);
  client.pump(*server);
  EXPECT_LE(events.bodies[id].size(), 65535u);
  std::size_t given = 0;
  for (int i = 0; i < 64 && events.bodies[id].size() < body.size(); ++i) {
    server->consume(id, events.bodies[id].size() - given);
    given = events.bodies[id].size();
    client.pump(*server);
  }
  EXPECT_EQ(events.bodies[id], body);
  EXPECT_EQ(events.ended, std::vector<std::int32_t>{id});
}

TEST_F(ServerConnectionTest, ResponseBodyWaitsForTheClientWindow) {
  make();
  std::int32_t id = client.request(TestClient::get("/big"));
  client.pump(*server);
  server->submit_response(id, 200, {}, false);
  server->send_data(id, std::string(200 * 1024, 'r'));
  server->end_data(id);
  client.pump(*server);
  // The client's default window is 64 KiB - 1 and it consumes automatically, so all arrives,
  // but only in window-sized steps: what is not yet framed stays buffered meanwhile.
  EXPECT_EQ(client.responses[id].body.size(), 200u * 1024);
  EXPECT_EQ(server->buffered(id), 0u);
}

TEST_F(ServerConnectionTest, InterimResponsesPrecedeTheFinalOne) {
  make();
  std::int32_t id = client.request(TestClient::get("/hints"));
  client.pump(*server);
  server->submit_interim(id, 103, {{"Link", "</a.css>; rel=preload"}});
  client.pump(*server);
  EXPECT_EQ(client.responses[id].status, 103);
  EXPECT_FALSE(client.responses[id].ended);
  server->submit_response(id, 200, {}, true);
  client.pump(*server);
  EXPECT_EQ(client.responses[id].status, 200);
  EXPECT_TRUE(client.responses[id].ended);
  ASSERT_EQ(client.responses[id].fields.size(), 1u);
  EXPECT_EQ(client.responses[id].fields[0].first, "link");
}

TEST_F(ServerConnectionTest, TrailersPassBothWays) {
  make();
  std::string body = "payload";
  auto fields = TestClient::get("/t");
  fields[0].second = "POST";
  client.request_trailers = {{"x-checksum", "abc"}};
  std::int32_t id = client.request(fields, &body);
  client.pump(*server);
  EXPECT_EQ(events.bodies[id], "payload");
  ASSERT_EQ(events.trailers[id].size(), 1u);
  EXPECT_EQ(events.trailers[id][0].name, "x-checksum");
  EXPECT_EQ(events.trailers[id][0].value, "abc");
  EXPECT_EQ(events.ended, std::vector<std::int32_t>{id});

  server->submit_response(id, 200, {}, false);
  server->send_data(id, "answer");
  server->end_data(id, {{"X-Done", "yes"}, {"connection", "close"}});
  client.pump(*server);
  const auto& r = client.responses[id];
  EXPECT_EQ(r.body, "answer");
  EXPECT_TRUE(r.ended);
  ASSERT_EQ(r.fields.size(), 1u);  // the trailer, lowercased; connection-specific left out
  EXPECT_EQ(r.fields[0].first, "x-done");
}

TEST_F(ServerConnectionTest, ExtendedConnectCarriesItsProtocol) {
  make();
  std::int32_t id = client.request({{":method", "CONNECT"},
                                    {":protocol", "websocket"},
                                    {":scheme", "http"},
                                    {":authority", "ws.test:80"},
                                    {":path", "/chat"}});
  client.pump(*server);
  ASSERT_EQ(events.requests.count(id), 1u);
  EXPECT_EQ(events.requests[id].method, "CONNECT");
  EXPECT_EQ(events.requests[id].protocol, "websocket");
  EXPECT_EQ(events.requests[id].path, "/chat");
}

TEST_F(ServerConnectionTest, PlainConnectHasNoPathOrScheme) {
  make();
  std::int32_t id = client.open({{":method", "CONNECT"}, {":authority", "t.test:443"}});
  client.pump(*server);
  ASSERT_EQ(events.requests.count(id), 1u);
  EXPECT_EQ(events.requests[id].authority, "t.test:443");
  EXPECT_TRUE(events.requests[id].path.empty());
  EXPECT_FALSE(events.requests[id].end_stream);
}

// Each malformed request is a stream error: the client's stream is reset, the owner sees
// nothing of it, the defence is counted, and the connection carries on.
struct Malformed {
  const char* what;
  std::vector<std::pair<std::string, std::string>> fields;
};

class MalformedRequestTest : public ServerConnectionTest,
                             public ::testing::WithParamInterface<Malformed> {};

TEST_P(MalformedRequestTest, IsResetAndNeverAnnounced) {
  make();
  std::int32_t id = client.request(GetParam().fields, nullptr, /*names_as_given=*/true);
  client.pump(*server);
  EXPECT_EQ(events.requests.count(id), 0u) << GetParam().what;
  EXPECT_EQ(client.responses[id].reset, static_cast<std::uint32_t>(NGHTTP2_PROTOCOL_ERROR));
  EXPECT_EQ(server->defence_count(Defence::kMalformedRequest), 1u);
  // The connection still serves the next request.
  std::int32_t next = client.request(TestClient::get("/ok"));
  client.pump(*server);
  EXPECT_EQ(events.requests.count(next), 1u);
}

std::vector<std::pair<std::string, std::string>> with(
    std::vector<std::pair<std::string, std::string>> f, std::string n, std::string v) {
  f.emplace_back(std::move(n), std::move(v));
  return f;
}

INSTANTIATE_TEST_SUITE_P(
    Smuggling, MalformedRequestTest,
    ::testing::Values(
        Malformed{"connection field", with(TestClient::get("/"), "connection", "keep-alive")},
        Malformed{"transfer-encoding", with(TestClient::get("/"), "transfer-encoding", "chunked")},
        Malformed{"uppercase name", with(TestClient::get("/"), "X-Upper", "1")},
        Malformed{"repeated :path", with(TestClient::get("/"), ":path", "/again")},
        Malformed{
            "pseudo after regular",
            with(with({{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}}, "x", "1"),
                 ":path", "/")},
        Malformed{"unknown pseudo", with(TestClient::get("/"), ":foo", "1")},
        Malformed{"missing :path", {{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}}},
        Malformed{":path with space", TestClient::get("/a b")},
        Malformed{"newline in a value", with(TestClient::get("/"), "x", "a\r\nb: c")}));

TEST_F(ServerConnectionTest, ContentLengthDisagreeingWithDataIsAStreamError) {
  make();
  std::string body = "short";
  auto fields = with(TestClient::get("/"), "content-length", "10");
  fields[0].second = "POST";
  std::int32_t id = client.request(fields, &body);
  client.pump(*server);
  EXPECT_EQ(client.responses[id].reset, static_cast<std::uint32_t>(NGHTTP2_PROTOCOL_ERROR));
  EXPECT_EQ(server->defence_count(Defence::kContentLengthMismatch), 1u);
  // The owner learns the stream died, so what it forwarded is aborted.
  ASSERT_EQ(events.closed.count(id), 1u);
  EXPECT_NE(events.closed[id], 0u);
}

TEST_F(ServerConnectionTest, HeaderListOverTheLimitGets431) {
  Limits l;
  l.max_fields = 10;
  make(l);
  auto fields = TestClient::get("/");
  for (int i = 0; i < 20; ++i) fields.emplace_back("x-f" + std::to_string(i), "v");
  std::int32_t id = client.request(fields);
  client.pump(*server);
  EXPECT_EQ(events.requests.count(id), 0u);
  EXPECT_EQ(client.responses[id].status, 431);
  EXPECT_EQ(server->defence_count(Defence::kHeaderListTooLarge), 1u);
}

TEST_F(ServerConnectionTest, StreamsOverTheLimitAreRefused) {
  Limits l;
  l.max_concurrent_streams = 2;
  make(l);
  // Sent before the client saw the server's SETTINGS: it does not know the limit yet.
  auto post = TestClient::get("/");
  post[0].second = "POST";
  for (int i = 0; i < 3; ++i) client.open(post);  // no END_STREAM: the streams stay open
  client.pump(*server);
  EXPECT_EQ(events.requests.size(), 2u);
  EXPECT_EQ(client.responses[5].reset, static_cast<std::uint32_t>(NGHTTP2_REFUSED_STREAM));
  EXPECT_EQ(server->defence_count(Defence::kTooManyStreams), 1u);
}

TEST_F(ServerConnectionTest, RapidResetGetsGoaway) {
  Limits l;
  l.reset_burst = 5;
  l.reset_rate = 1;
  make(l);
  // By hand: HEADERS (GET /, END_STREAM not set) then RST_STREAM, stream after stream.
  std::string raw;
  for (std::uint32_t id = 1; id < 40; id += 2) {
    raw += frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, id, "\x83\x86\x84\x41\x01\x61");
    raw += frame(NGHTTP2_RST_STREAM, 0, id, std::string("\0\0\0\x08", 4));
  }
  client.send_raw(raw);
  client.pump(*server);
  EXPECT_EQ(server->defence_count(Defence::kRapidReset), 1u);
  EXPECT_NE(client.goaway_last_stream, -1);
  EXPECT_EQ(client.goaway_error, static_cast<std::uint32_t>(NGHTTP2_INTERNAL_ERROR));
  EXPECT_FALSE(server->recv("", client.now));
}

TEST_F(ServerConnectionTest, PingFloodGetsGoaway) {
  Limits l;
  l.ping_burst = 10;
  make(l);
  for (int i = 0; i < 50; ++i) nghttp2_submit_ping(client.session(), NGHTTP2_FLAG_NONE, nullptr);
  EXPECT_FALSE(client.pump(*server));
  EXPECT_EQ(server->defence_count(Defence::kPingFlood), 1u);
  EXPECT_EQ(client.goaway_error, static_cast<std::uint32_t>(NGHTTP2_ENHANCE_YOUR_CALM));
  EXPECT_TRUE(server->done());
}

TEST_F(ServerConnectionTest, PingsUnderTheRateAreAnswered) {
  Limits l;
  l.ping_burst = 10;
  l.ping_rate = 10;
  make(l);
  for (int i = 0; i < 30; ++i) {
    nghttp2_submit_ping(client.session(), NGHTTP2_FLAG_NONE, nullptr);
    client.now += std::chrono::milliseconds(200);
    ASSERT_TRUE(client.pump(*server));
  }
  EXPECT_EQ(server->defence_count(Defence::kPingFlood), 0u);
}

TEST_F(ServerConnectionTest, SettingsFloodGetsGoaway) {
  Limits l;
  l.settings_burst = 10;
  make(l);
  for (int i = 0; i < 50; ++i)
    nghttp2_submit_settings(client.session(), NGHTTP2_FLAG_NONE, nullptr, 0);
  EXPECT_FALSE(client.pump(*server));
  EXPECT_EQ(server->defence_count(Defence::kSettingsFlood), 1u);
  EXPECT_EQ(client.goaway_error, static_cast<std::uint32_t>(NGHTTP2_ENHANCE_YOUR_CALM));
}

TEST_F(ServerConnectionTest, ContinuationFloodGetsGoaway) {
  Limits l;
  l.max_continuations = 4;
  make(l);
  // HEADERS without END_HEADERS, then empty CONTINUATION frames that never end it.
  std::string raw = frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_STREAM, 1, "\x82\x86\x84");
  for (int i = 0; i < 20; ++i) raw += frame(NGHTTP2_CONTINUATION, 0, 1, "");
  client.send_raw(raw);
  EXPECT_FALSE(client.pump(*server));
  EXPECT_EQ(server->defence_count(Defence::kContinuationFlood), 1u);
  EXPECT_EQ(events.requests.size(), 0u);
}

TEST_F(ServerConnectionTest, GoawayOnDrainNamesTheLastStream) {
  make();
  std::int32_t a = client.request(TestClient::get("/a"));
  std::int32_t b = client.request(TestClient::get("/b"));
  client.pump(*server);
  server->goaway();
  client.pump(*server);
  EXPECT_EQ(client.goaway_last_stream, b);
  EXPECT_EQ(client.goaway_error, 0u);
  // The streams it covers still get their answers.
  server->submit_response(a, 204, {}, true);
  server->submit_response(b, 204, {}, true);
  client.pump(*server);
  EXPECT_EQ(client.responses[a].status, 204);
  EXPECT_EQ(client.responses[b].status, 204);
  EXPECT_EQ(server->defence_count(Defence::kProtocolError), 0u);
}

TEST_F(ServerConnectionTest, GarbageInsteadOfThePrefaceEndsTheConnection) {
  make();
  EXPECT_FALSE(server->recv("GET / HTTP/1.1\r\nHost: a\r\n\r\n", client.now));
  std::string out;
  server->output(out);
  EXPECT_EQ(server->defence_count(Defence::kProtocolError), 1u);
}

}  // namespace
}  // namespace ramjet::http::h2
