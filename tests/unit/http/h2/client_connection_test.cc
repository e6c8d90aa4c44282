// ClientConnection against ServerConnection: nghttp2 on both ends, bytes pumped in
// memory. What the proxy's side of an HTTP/2 origin connection must get right:
// framing both ways, flow control, the origin's stream limit, GOAWAY and refused
// streams (which are safe to send again), and bounded response heads.
#include "http/h2/client_connection.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "http/h2/server_connection.h"

namespace ramjet::http::h2 {
namespace {

struct ClientRecorder : ClientEvents {
  void on_response(std::int32_t stream, ResponseHead head) override {
    heads[stream].push_back(std::move(head));
  }
  void on_data(std::int32_t stream, std::string_view data) override { bodies[stream] += data; }
  void on_trailers(std::int32_t stream, std::vector<Field> fields) override {
    trailers[stream] = std::move(fields);
  }
  void on_end_stream(std::int32_t stream) override { ended.push_back(stream); }
  void on_stream_close(std::int32_t stream, std::uint32_t code, bool was_refused) override {
    closed[stream] = code;
    refused[stream] = was_refused;
  }
  void on_goaway(std::int32_t last, std::uint32_t) override { goaway_last = last; }

  std::map<std::int32_t, std::vector<ResponseHead>> heads;
  std::map<std::int32_t, std::string> bodies;
  std::map<std::int32_t, std::vector<Field>> trailers;
  std::vector<std::int32_t> ended;
  std::map<std::int32_t, std::uint32_t> closed;
  std::map<std::int32_t, bool> refused;
  std::int32_t goaway_last = -1;
};

struct ServerRecorder : ServerEvents {
  void on_request(std::int32_t stream, RequestHead head) override {
    requests[stream] = std::move(head);
  }
  void on_data(std::int32_t stream, std::string_view data) override { bodies[stream] += data; }
  void on_trailers(std::int32_t stream, std::vector<Field> fields) override {
    trailers[stream] = std::move(fields);
  }
  void on_end_stream(std::int32_t stream) override { ended.push_back(stream); }
  void on_stream_close(std::int32_t, std::uint32_t) override {}

  std::map<std::int32_t, RequestHead> requests;
  std::map<std::int32_t, std::string> bodies;
  std::map<std::int32_t, std::vector<Field>> trailers;
  std::vector<std::int32_t> ended;
};

RequestHead get(std::string path, bool end_stream = true) {
  RequestHead h;
  h.method = end_stream ? "GET" : "POST";
  h.scheme = "https";
  h.authority = "origin.test";
  h.path = std::move(path);
  h.end_stream = end_stream;
  return h;
}

// A GOAWAY frame (RFC 9113 6.8) as an origin would send it.
std::string goaway_frame(std::int32_t last_stream_id) {
  std::string f = {0, 0, 8, 7, 0, 0, 0, 0, 0};
  for (int shift : {24, 16, 8, 0}) f += static_cast<char>((last_stream_id >> shift) & 0xff);
  f += std::string(4, '\0');  // NO_ERROR
  return f;
}

class ClientConnectionTest : public ::testing::Test {
 protected:
  void make(Limits server_limits = {}, ClientLimits client_limits = {}) {
    server = std::make_unique<ServerConnection>(server_events, server_limits);
    client = std::make_unique<ClientConnection>(client_events, client_limits);
  }
  // Moves bytes both ways until neither side has anything to say.
  void pump() {
    for (int i = 0; i < 100; ++i) {
      std::string c2s, s2c;
      client->output(c2s);
      if (!c2s.empty()) {
        ASSERT_TRUE(server->recv(c2s, ServerConnection::Clock::now()));
      }
      server->output(s2c);
      if (!s2c.empty()) client_ok = client->recv(s2c) && client_ok;
      if (c2s.empty() && s2c.empty()) return;
    }
    FAIL() << "the connection did not settle";
  }
  ServerRecorder server_events;
  ClientRecorder client_events;
  std::unique_ptr<ServerConnection> server;
  std::unique_ptr<ClientConnection> client;
  bool client_ok = true;
};

TEST_F(ClientConnectionTest, RequestAndResponseWithBodiesAndTrailersBothWays) {
  make();
  RequestHead h = get("/upload?x=1", /*end_stream=*/false);
  h.fields = {{"Content-Type", "text/plain"}, {"Connection", "close"}, {"x-trace", "7"}};
  std::int32_t id = client->submit_request(h);
  ASSERT_GT(id, 0);
  client->send_data(id, "hello ");
  client->send_data(id, "origin");
  client->end_data(id, {{"x-checksum", "abc"}});
  pump();
  ASSERT_EQ(server_events.requests.count(id), 1u);
  const RequestHead& got = server_events.requests[id];
  EXPECT_EQ(got.method, "POST");
  EXPECT_EQ(got.scheme, "https");
  EXPECT_EQ(got.authority, "origin.test");
  EXPECT_EQ(got.path, "/upload?x=1");
  // Names lowercased; connection-specific fields never go out on HTTP/2.
  ASSERT_EQ(got.fields.size(), 2u);
  EXPECT_EQ(got.fields[0].name, "content-type");
  EXPECT_EQ(got.fields[1].name, "x-trace");
  EXPECT_EQ(server_events.bodies[id], "hello origin");
  ASSERT_EQ(server_events.trailers[id].size(), 1u);
  EXPECT_EQ(server_events.trailers[id][0].name, "x-checksum");

  server->submit_interim(id, 103, {{"link", "</a.css>; rel=preload"}});
  server->submit_response(id, 200, {{"content-type", "text/plain"}}, false);
  server->send_data(id, "response body");
  server->end_data(id, {{"grpc-status", "0"}});
  pump();
  ASSERT_EQ(client_events.heads[id].size(), 2u);
  EXPECT_EQ(client_events.heads[id][0].status, 103);
  EXPECT_EQ(client_events.heads[id][1].status, 200);
  EXPECT_FALSE(client_events.heads[id][1].end_stream);
  ASSERT_EQ(client_events.heads[id][1].fields.size(), 1u);
  EXPECT_EQ(client_events.heads[id][1].fields[0].name, "content-type");
  EXPECT_EQ(client_events.bodies[id], "response body");
  ASSERT_EQ(client_events.trailers[id].size(), 1u);
  EXPECT_EQ(client_events.trailers[id][0].value, "0");
  EXPECT_EQ(client_events.ended, std::vector<std::int32_t>{id});
  EXPECT_EQ(client_events.closed[id], kNoError);
  EXPECT_FALSE(client_events.refused[id]);
  EXPECT_EQ(client->open_streams(), 0u);
}

TEST_F(ClientConnectionTest, ResponseBodyWaitsForConsume) {
  ClientLimits small;
  small.stream_window = 16 * 1024;
  make({}, small);
  std::int32_t id = client->submit_request(get("/big"));
  pump();
  server->submit_response(id, 200, {}, false);
  server->send_data(id, std::string(100 * 1024, 'x'));
  server->end_data(id);
  pump();
  // The origin may send no more than the window until the owner consumes.
  EXPECT_EQ(client_events.bodies[id].size(), 16u * 1024);
  for (int i = 0; i < 20 && client_events.ended.empty(); ++i) {
    client->consume(id, 64 * 1024);  // at most what was delivered
    pump();
  }
  EXPECT_EQ(client_events.bodies[id].size(), 100u * 1024);
  EXPECT_EQ(client_events.ended, std::vector<std::int32_t>{id});
}

TEST_F(ClientConnectionTest, TheOriginsStreamLimitQueuesRequests) {
  Limits two;
  two.max_concurrent_streams = 2;
  make(two);
  pump();  // SETTINGS both ways
  EXPECT_EQ(client->peer_max_concurrent_streams(), 2u);
  std::vector<std::int32_t> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(client->submit_request(get("/" + std::to_string(i))));
  pump();
  EXPECT_EQ(server_events.requests.size(), 2u);
  EXPECT_EQ(client->open_streams(), 5u);
  // One finishes: the next queued request goes out.
  server->submit_response(ids[0], 204, {}, true);
  pump();
  EXPECT_EQ(server_events.requests.size(), 3u);
  EXPECT_EQ(server_events.requests.count(ids[2]), 1u);
  EXPECT_TRUE(client_events.refused.count(ids[2]) == 0);
}

TEST_F(ClientConnectionTest, StreamsAboveTheGoawayAreRefusedAndNoneStartsAfter) {
  make();
  pump();
  std::int32_t a = client->submit_request(get("/a"));
  std::int32_t b = client->submit_request(get("/b"));
  std::int32_t c = client->submit_request(get("/c"));
  pump();
  ASSERT_EQ(server_events.requests.size(), 3u);
  // The origin says it processes only the first.
  ASSERT_TRUE(client->recv(goaway_frame(a)));
  EXPECT_EQ(client_events.goaway_last, a);
  EXPECT_FALSE(client->accepting());
  EXPECT_TRUE(client_events.refused[b]);
  EXPECT_TRUE(client_events.refused[c]);
  EXPECT_EQ(client_events.closed.count(a), 0u);  // still running
  EXPECT_EQ(client->submit_request(get("/d")), -1);
  // The kept stream runs to its end.
  server->submit_response(a, 200, {}, true);
  pump();
  ASSERT_EQ(client_events.heads[a].size(), 1u);
  EXPECT_EQ(client_events.closed[a], kNoError);
  EXPECT_FALSE(client_events.refused[a]);
}

TEST_F(ClientConnectionTest, RefusedStreamIsSafeToRetryOtherResetsAreNot) {
  make();
  std::int32_t a = client->submit_request(get("/a"));
  std::int32_t b = client->submit_request(get("/b"));
  pump();
  server->reset(a, kRefusedStream);
  server->reset(b, kInternalError);
  pump();
  EXPECT_EQ(client_events.closed[a], kRefusedStream);
  EXPECT_TRUE(client_events.refused[a]);
  EXPECT_EQ(client_events.closed[b], kInternalError);
  EXPECT_FALSE(client_events.refused[b]);
  EXPECT_TRUE(client->accepting());
}

TEST_F(ClientConnectionTest, AResponseHeadOverTheLimitResetsTheStream) {
  ClientLimits tight;
  tight.max_fields = 4;
  make({}, tight);
  std::int32_t id = client->submit_request(get("/"));
  pump();
  std::vector<Field> many;
  for (int i = 0; i < 10; ++i) many.push_back({"x-f" + std::to_string(i), "v"});
  server->submit_response(id, 200, many, true);
  pump();
  EXPECT_EQ(client_events.heads.count(id), 0u);
  ASSERT_EQ(client_events.closed.count(id), 1u);
  EXPECT_NE(client_events.closed[id], kNoError);
  EXPECT_FALSE(client_events.refused[id]);
}

TEST_F(ClientConnectionTest, AConnectionErrorFromTheOriginEndsTheConnection) {
  make();
  std::int32_t id = client->submit_request(get("/"));
  pump();
  // DATA on stream 0 (RFC 9113 6.1: a connection error of type PROTOCOL_ERROR).
  client->recv(std::string("\0\0\4\0\0\0\0\0\0abcd", 13));
  std::string out;
  client->output(out);  // nghttp2's GOAWAY, then nothing
  EXPECT_FALSE(out.empty());
  EXPECT_FALSE(client->accepting());
  EXPECT_TRUE(client->done());
  EXPECT_FALSE(client->recv(std::string("\0\0\0\4\0\0\0\0\0", 9)));  // once over, over
  (void)id;
}

}  // namespace
}  // namespace ramjet::http::h2
