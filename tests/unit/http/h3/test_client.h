// nghttp3's client for tests: binds its three streams, submits requests (with a body or
// without) and keeps the response. The transport is the test's: it moves the bytes
// nghttp3_conn_writev_stream gives and feeds nghttp3_conn_read_stream; on_consumed (if
// set) hears of response body bytes, for a QUIC client's windows.
#pragma once

#include <nghttp3/nghttp3.h>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace ramjet::http::h3::test_support {

class H3Client {
 public:
  H3Client() {
    nghttp3_callbacks cb{};
    cb.recv_header = [](nghttp3_conn*, std::int64_t, std::int32_t, nghttp3_rcbuf* name,
                        nghttp3_rcbuf* value, std::uint8_t, void* user, void*) {
      nghttp3_vec n = nghttp3_rcbuf_get_buf(name);
      nghttp3_vec v = nghttp3_rcbuf_get_buf(value);
      static_cast<H3Client*>(user)->response_fields[std::string(n.base, n.base + n.len)] =
          std::string(v.base, v.base + v.len);
      return 0;
    };
    cb.recv_data = [](nghttp3_conn*, std::int64_t id, const std::uint8_t* d, std::size_t n,
                      void* user, void*) {
      H3Client* c = static_cast<H3Client*>(user);
      c->response_body.append(reinterpret_cast<const char*>(d), n);
      if (c->on_consumed) c->on_consumed(id, n);
      return 0;
    };
    cb.end_stream = [](nghttp3_conn*, std::int64_t, void* user, void*) {
      static_cast<H3Client*>(user)->response_ended = true;
      return 0;
    };
    nghttp3_settings settings;
    nghttp3_settings_default(&settings);
    nghttp3_conn_client_new(&conn, &cb, &settings, nghttp3_mem_default(), this);
  }
  ~H3Client() { nghttp3_conn_del(conn); }
  H3Client(const H3Client&) = delete;
  H3Client& operator=(const H3Client&) = delete;

  void bind(std::int64_t control, std::int64_t encoder, std::int64_t decoder) {
    nghttp3_conn_bind_control_stream(conn, control);
    nghttp3_conn_bind_qpack_streams(conn, encoder, decoder);
  }

  // A request on `stream`; `body` ("" = none) is sent at once, then `trailers` if any,
  // then the stream ends.
  void request(std::int64_t stream, const std::string& method, const std::string& path,
               const std::string& body, std::vector<std::pair<std::string, std::string>> extra = {},
               std::vector<std::pair<std::string, std::string>> trailers = {}) {
    body_ = body;
    body_sent_ = false;
    trailers_ = std::move(trailers);
    std::vector<std::pair<std::string, std::string>> fields = {
        {":method", method}, {":scheme", "https"}, {":authority", "www.example.test"},
        {":path", path}};
    fields.insert(fields.end(), extra.begin(), extra.end());
    std::vector<nghttp3_nv> nva = nv(fields);
    nghttp3_data_reader reader{[](nghttp3_conn* conn, std::int64_t stream, nghttp3_vec* vec,
                                  std::size_t,
                                  std::uint32_t* flags, void* user, void*) -> nghttp3_ssize {
      H3Client* c = static_cast<H3Client*>(user);
      *flags |= NGHTTP3_DATA_FLAG_EOF;
      if (!c->trailers_.empty()) {
        *flags |= NGHTTP3_DATA_FLAG_NO_END_STREAM;
        std::vector<nghttp3_nv> tva = nv(c->trailers_);
        if (nghttp3_conn_submit_trailers(conn, stream, tva.data(), tva.size()) != 0)
          return NGHTTP3_ERR_CALLBACK_FAILURE;
        c->trailers_.clear();
      }
      if (c->body_sent_) return 0;
      c->body_sent_ = true;
      vec[0].base = reinterpret_cast<std::uint8_t*>(c->body_.data());
      vec[0].len = c->body_.size();
      return 1;
    }};
    nghttp3_conn_submit_request(conn, stream, nva.data(), nva.size(),
                                body.empty() ? nullptr : &reader, nullptr);
  }

  // Views of `fields` as nghttp3 takes them (copied by nghttp3 when submitted).
  static std::vector<nghttp3_nv> nv(const std::vector<std::pair<std::string, std::string>>& fields) {
    std::vector<nghttp3_nv> out;
    for (const auto& [n, v] : fields)
      out.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(n.data())),
                     reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())), n.size(),
                     v.size(), NGHTTP3_NV_FLAG_NONE});
    return out;
  }

  nghttp3_conn* conn = nullptr;
  std::map<std::string, std::string> response_fields;
  std::string response_body;
  bool response_ended = false;
  std::function<void(std::int64_t, std::size_t)> on_consumed;

 private:
  std::string body_;
  bool body_sent_ = false;
  std::vector<std::pair<std::string, std::string>> trailers_;
};

}  // namespace ramjet::http::h3::test_support
