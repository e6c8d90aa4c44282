// A real nghttp2 client session for driving ServerConnection in tests: what it
// submits goes to the server through pump(), what the server answers comes back.
#pragma once

#include <nghttp2/nghttp2.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "http/h2/server_connection.h"

namespace ramjet::http::h2::test {

class TestClient {
 public:
  struct Response {
    int status = 0;
    std::vector<std::pair<std::string, std::string>> fields;
    std::string body;
    bool ended = false;
    std::uint32_t reset = 0;  // RST_STREAM error code received (0: none)
    bool closed = false;
  };

  TestClient() {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, &on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &on_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, &on_close);
    nghttp2_session_client_new(&session_, cb, this);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
  ~TestClient() { nghttp2_session_del(session_); }
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  nghttp2_session* session() { return session_; }

  // Submits a request; fields are (name, value) pairs including pseudo-headers. nghttp2
  // lowercases names it copies; with `names_as_given` it does not copy them (then `fields`
  // must outlive the next pump()), so an uppercase name goes out as written.
  std::int32_t request(const std::vector<std::pair<std::string, std::string>>& fields,
                       const std::string* body = nullptr, bool names_as_given = false) {
    std::vector<nghttp2_nv> nva;
    const std::uint8_t flags = names_as_given ? NGHTTP2_NV_FLAG_NO_COPY_NAME : NGHTTP2_NV_FLAG_NONE;
    for (const auto& [n, v] : fields)
      nva.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(n.data())),
                     reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())), n.size(),
                     v.size(), flags});
    nghttp2_data_provider prd{};
    if (body != nullptr) {
      prd.source.ptr = const_cast<std::string*>(body);
      prd.read_callback = &read_body;
      body_offset_ = 0;
    }
    return nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(),
                                  body != nullptr ? &prd : nullptr, this);
  }

  // Submits a request head without END_STREAM (a body or tunnel may follow).
  std::int32_t open(const std::vector<std::pair<std::string, std::string>>& fields) {
    std::vector<nghttp2_nv> nva;
    for (const auto& [n, v] : fields)
      nva.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(n.data())),
                     reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())), n.size(),
                     v.size(), NGHTTP2_NV_FLAG_NONE});
    return nghttp2_submit_headers(session_, NGHTTP2_FLAG_NONE, -1, nullptr, nva.data(), nva.size(),
                                  this);
  }

  static std::vector<std::pair<std::string, std::string>> get(std::string path,
                                                              std::string authority = "a.test") {
    return {{":method", "GET"}, {":scheme", "http"}, {":authority", authority}, {":path", path}};
  }

  // Moves bytes both ways until neither side has anything more to send. Returns what
  // the server's last recv() said.
  bool pump(ServerConnection& server, int rounds = 64) {
    bool ok = true;
    for (int i = 0; i < rounds; ++i) {
      std::string to_server;
      for (;;) {
        const std::uint8_t* data = nullptr;
        auto n = nghttp2_session_mem_send(session_, &data);
        if (n <= 0) break;
        to_server.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
      }
      to_server += raw_;
      raw_.clear();
      if (!to_server.empty() && ok) ok = server.recv(to_server, now);
      std::string to_client;
      server.output(to_client);
      if (!to_client.empty())
        nghttp2_session_mem_recv(session_, reinterpret_cast<const std::uint8_t*>(to_client.data()),
                                 to_client.size());
      if (to_server.empty() && to_client.empty()) break;
    }
    return ok;
  }

  // Bytes sent to the server ahead of the session's own on the next pump().
  void send_raw(std::string bytes) { raw_ += std::move(bytes); }

  std::map<std::int32_t, Response> responses;
  // Sent after the body of the next request() that has one.
  std::vector<std::pair<std::string, std::string>> request_trailers;
  std::int32_t goaway_last_stream = -1;
  std::uint32_t goaway_error = 0;
  std::chrono::steady_clock::time_point now =
      std::chrono::steady_clock::time_point{} + std::chrono::hours(1);

 private:
  static TestClient& self(void* p) { return *static_cast<TestClient*>(p); }
  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                       std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                       std::uint8_t, void* user) {
    std::string n(reinterpret_cast<const char*>(name), namelen);
    std::string v(reinterpret_cast<const char*>(value), valuelen);
    Response& r = self(user).responses[frame->hd.stream_id];
    if (n == ":status")
      r.status = std::stoi(v);
    else
      r.fields.emplace_back(n, v);
    return 0;
  }
  static int on_data(nghttp2_session* s, std::uint8_t, std::int32_t id, const std::uint8_t* data,
                     std::size_t len, void* user) {
    self(user).responses[id].body.append(reinterpret_cast<const char*>(data), len);
    (void)s;
    return 0;
  }
  static int on_frame(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto& c = self(user);
    if (frame->hd.type == NGHTTP2_GOAWAY) {
      c.goaway_last_stream = frame->goaway.last_stream_id;
      c.goaway_error = frame->goaway.error_code;
    } else if (frame->hd.type == NGHTTP2_RST_STREAM) {
      c.responses[frame->hd.stream_id].reset = frame->rst_stream.error_code;
    } else if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0 &&
               (frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS)) {
      c.responses[frame->hd.stream_id].ended = true;
    }
    return 0;
  }
  static int on_close(nghttp2_session*, std::int32_t id, std::uint32_t, void* user) {
    self(user).responses[id].closed = true;
    return 0;
  }
  static ssize_t read_body(nghttp2_session* s, std::int32_t id, std::uint8_t* buf,
                           std::size_t length, std::uint32_t* flags, nghttp2_data_source* src,
                           void* user) {
    auto& c = self(user);
    const auto& body = *static_cast<const std::string*>(src->ptr);
    std::size_t n = std::min(length, body.size() - c.body_offset_);
    std::copy_n(body.data() + c.body_offset_, n, buf);
    c.body_offset_ += n;
    if (c.body_offset_ == body.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!c.request_trailers.empty()) {
        std::vector<nghttp2_nv> nva;
        for (const auto& [tn, tv] : c.request_trailers)
          nva.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(tn.data())),
                         reinterpret_cast<std::uint8_t*>(const_cast<char*>(tv.data())), tn.size(),
                         tv.size(), NGHTTP2_NV_FLAG_NONE});
        nghttp2_submit_trailer(s, id, nva.data(), nva.size());
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      }
    }
    return static_cast<ssize_t>(n);
  }

  nghttp2_session* session_ = nullptr;
  std::string raw_;
  std::size_t body_offset_ = 0;
};

// One HTTP/2 frame by hand (RFC 9113 4.1).
inline std::string frame(std::uint8_t type, std::uint8_t flags, std::uint32_t stream,
                         const std::string& payload) {
  std::string f;
  const auto len = static_cast<std::uint32_t>(payload.size());
  f += static_cast<char>(len >> 16);
  f += static_cast<char>(len >> 8);
  f += static_cast<char>(len);
  f += static_cast<char>(type);
  f += static_cast<char>(flags);
  f += static_cast<char>((stream >> 24) & 0x7f);
  f += static_cast<char>(stream >> 16);
  f += static_cast<char>(stream >> 8);
  f += static_cast<char>(stream);
  return f + payload;
}

}  // namespace ramjet::http::h2::test
