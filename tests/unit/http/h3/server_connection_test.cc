// http::h3::ServerConnection against nghttp3's own client, stream bytes passed in memory
// as QUIC would carry them (client streams 0 (request), 2, 6, 10; server's 3, 7, 11).
#include "http/h3/server_connection.h"

#include <gtest/gtest.h>
#include <nghttp3/nghttp3.h>

#include <map>

#include "http/h3/test_client.h"

namespace ramjet::http::h3 {
namespace {

// Client streams 2, 6 and 10 carry its control and QPACK streams, as QUIC numbers them.
struct Client : test_support::H3Client {
  Client() { bind(2, 6, 10); }
  void request(const std::string& method, const std::string& path, const std::string& body) {
    H3Client::request(0, method, path, body, {{"user-agent", "t"}});
  }
};

class H3ServerTest : public ::testing::Test, public Events {
 protected:
  void on_request(std::int64_t stream, RequestHead head) override {
    requests_[stream] = std::move(head);
  }
  void on_data(std::int64_t stream, std::string_view data) override { bodies_[stream] += data; }
  void on_trailers(std::int64_t stream, std::vector<Field> fields) override {
    EXPECT_FALSE(ended_[stream]) << "trailers come before the end of the stream";
    trailers_[stream] = std::move(fields);
  }
  void on_end_stream(std::int64_t stream) override {
    ended_[stream] = true;
    if (!answer_) return;
    // An origin that echoes: the pipeline's place.
    const RequestHead& h = requests_[stream];
    server_.submit_response(stream, 200, {{"Content-Type", "text/plain"}, {"Connection", "close"}});
    server_.send_data(stream, h.method + " " + h.path + "\n");
    server_.send_data(stream, bodies_[stream]);
    server_.end_data(stream);
  }
  void on_stream_close(std::int64_t stream, std::uint64_t code) override { closed_[stream] = code; }

  // Moves every byte both ways until neither side has more.
  void pump() {
    for (int round = 0; round < 50; ++round) {
      bool moved = false;
      for (;;) {  // client -> server
        nghttp3_vec vec[16];
        std::int64_t id = -1;
        int fin = 0;
        nghttp3_ssize n = nghttp3_conn_writev_stream(client_.conn, &id, &fin, vec, 16);
        ASSERT_GE(n, 0);
        if (id < 0) break;
        std::string bytes;
        for (nghttp3_ssize i = 0; i < n; ++i) bytes.append(reinterpret_cast<char*>(vec[i].base), vec[i].len);
        if (bytes.empty() && !fin) break;
        ASSERT_GE(server_.recv(id, {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()}, fin), 0);
        nghttp3_conn_add_write_offset(client_.conn, id, bytes.size());
        nghttp3_conn_add_ack_offset(client_.conn, id, bytes.size());
        moved = true;
      }
      for (;;) {  // server -> client
        Output out = server_.next_output();
        if (out.stream < 0) break;
        std::string bytes;
        for (auto p : out.pieces) bytes.append(reinterpret_cast<const char*>(p.data()), p.size());
        if (bytes.empty() && !out.fin) break;
        ASSERT_GE(nghttp3_conn_read_stream(client_.conn, out.stream,
                                           reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                           bytes.size(), out.fin),
                  0);
        server_.written(out.stream, bytes.size());
        server_.acked(out.stream, bytes.size());
        moved = true;
      }
      if (!moved) return;
    }
  }

  ServerConnection server_{*this, Limits{}};
  Client client_;
  std::map<std::int64_t, RequestHead> requests_;
  std::map<std::int64_t, std::string> bodies_;
  std::map<std::int64_t, std::vector<Field>> trailers_;
  std::map<std::int64_t, bool> ended_;
  std::map<std::int64_t, std::uint64_t> closed_;
  bool answer_ = true;  // on_end_stream answers as an echoing origin
};

TEST_F(H3ServerTest, AGetArrivesAsTheHeadHttp2ProducesAndGetsItsResponse) {
  ASSERT_TRUE(server_.bind_streams(3, 7, 11));
  client_.request("GET", "/path?q=1", "");
  pump();
  ASSERT_EQ(requests_.count(0), 1u);
  const RequestHead& h = requests_[0];
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.scheme, "https");
  EXPECT_EQ(h.authority, "www.example.test");
  EXPECT_EQ(h.path, "/path?q=1");
  EXPECT_TRUE(h.end_stream);
  ASSERT_EQ(h.fields.size(), 1u);
  EXPECT_EQ(h.fields[0].name, "user-agent");
  EXPECT_EQ(client_.response_fields[":status"], "200");
  EXPECT_EQ(client_.response_fields["content-type"], "text/plain");
  EXPECT_EQ(client_.response_fields.count("connection"), 0u) << "no connection-specific fields";
  EXPECT_EQ(client_.response_body, "GET /path?q=1\n");
  EXPECT_TRUE(client_.response_ended);
}

TEST_F(H3ServerTest, APostBodyReachesTheOwnerAndTheResponseBodyTheClient) {
  ASSERT_TRUE(server_.bind_streams(3, 7, 11));
  const std::string body(100'000, 'b');
  client_.request("POST", "/upload", body);
  pump();
  ASSERT_EQ(requests_.count(0), 1u);
  EXPECT_FALSE(requests_[0].end_stream);
  EXPECT_EQ(bodies_[0], body);
  EXPECT_EQ(client_.response_body, "POST /upload\n" + body);
  EXPECT_TRUE(client_.response_ended);
}

TEST_F(H3ServerTest, RequestTrailersReachTheOwnerBeforeTheEnd) {
  ASSERT_TRUE(server_.bind_streams(3, 7, 11));
  client_.H3Client::request(0, "POST", "/upload", "abc", {{"te", "trailers"}},
                  {{"x-checksum", "900150983cd24fb0"}, {"x-count", "3"}});
  pump();
  EXPECT_EQ(bodies_[0], "abc");
  ASSERT_EQ(trailers_.count(0), 1u);
  std::vector<std::pair<std::string, std::string>> got;
  for (const Field& f : trailers_[0]) got.emplace_back(f.name, f.value);
  const std::vector<std::pair<std::string, std::string>> want = {
      {"x-checksum", "900150983cd24fb0"}, {"x-count", "3"}};
  EXPECT_EQ(got, want);
  EXPECT_TRUE(ended_[0]);
  EXPECT_TRUE(client_.response_ended);
}

TEST_F(H3ServerTest, RequestTrailersPastTheFieldLimitAreDropped) {
  ASSERT_TRUE(server_.bind_streams(3, 7, 11));
  std::vector<std::pair<std::string, std::string>> many;
  for (int i = 0; i < 150; ++i) many.push_back({"x-t" + std::to_string(i), "v"});
  client_.H3Client::request(0, "POST", "/", "abc", {}, many);
  pump();
  ASSERT_EQ(trailers_.count(0), 1u);
  EXPECT_EQ(trailers_[0].size(), Limits{}.max_fields);
  EXPECT_EQ(trailers_[0].front().name, "x-t0");
  EXPECT_TRUE(ended_[0]);
}

TEST_F(H3ServerTest, BufferedCountsTheBodyBytesQuicHasNotTakenYet) {
  ASSERT_TRUE(server_.bind_streams(3, 7, 11));
  client_.request("GET", "/", "");
  // Take the request in, but answer it here rather than in on_end_stream.
  answer_ = false;
  pump();
  ASSERT_EQ(requests_.count(0), 1u);
  ASSERT_TRUE(server_.submit_response(0, 200, {}));
  server_.send_data(0, std::string(1000, 'x'));
  server_.send_data(0, std::string(500, 'y'));
  EXPECT_EQ(server_.buffered(0), 1500u);
  server_.end_data(0);
  pump();
  EXPECT_EQ(server_.buffered(0), 0u);
  EXPECT_EQ(client_.response_body, std::string(1000, 'x') + std::string(500, 'y'));
  EXPECT_TRUE(client_.response_ended);
}

TEST_F(H3ServerTest, AResponseWithEndStreamHasNoBody) {
  ASSERT_TRUE(server_.bind_streams(3, 7, 11));
  client_.request("HEAD", "/", "");
  answer_ = false;
  pump();
  ASSERT_EQ(requests_.count(0), 1u);
  ASSERT_TRUE(server_.submit_response(0, 204, {{"X-Answer", "none"}}, /*end_stream=*/true));
  pump();
  EXPECT_EQ(client_.response_fields[":status"], "204");
  EXPECT_EQ(client_.response_fields["x-answer"], "none");
  EXPECT_EQ(client_.response_body, "");
  EXPECT_TRUE(client_.response_ended);
}

}  // namespace
}  // namespace ramjet::http::h3
