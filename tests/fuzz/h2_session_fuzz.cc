// Untrusted frames through the HTTP/2 server connection (nghttp2 and the on-ramp's
// callbacks around it), split at points the input chooses. The owner here answers every
// request it is told of with a streamed body and consumes request bodies, as the proxy
// does, so the response and flow-control paths run too. Must never crash, leak or
// hang; a connection that says it is over must stay over.
//
// Input layout: byte 0 seeds the split points and the clock steps, the rest are frames
// as a client sends them after its connection preface (the preface is added here).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "http/h2/server_connection.h"

namespace {

using namespace ramjet::http::h2;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

struct Owner : ServerEvents {
  ServerConnection* conn = nullptr;
  std::vector<std::int32_t> answer;
  void on_request(std::int32_t stream, RequestHead head) override {
    check(!head.method.empty());
    answer.push_back(stream);
  }
  void on_data(std::int32_t stream, std::string_view data) override {
    conn->consume(stream, data.size());
  }
  void on_end_stream(std::int32_t) override {}
  void on_stream_close(std::int32_t, std::uint32_t) override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  unsigned seed = data[0];
  std::string in = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  in.append(reinterpret_cast<const char*>(data + 1), size - 1);

  Limits limits;
  limits.max_concurrent_streams = 8;
  limits.max_fields = 16;
  limits.max_header_list = 1024;
  limits.reset_burst = 8;
  limits.ping_burst = 8;
  limits.settings_burst = 8;
  limits.stream_window = 1024;
  Owner owner;
  ServerConnection conn(owner, limits);
  owner.conn = &conn;

  auto now = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  std::string_view rest(in);
  bool open = true;
  std::string out;
  while (!rest.empty()) {
    std::size_t step = 1 + (seed * 7 + rest.size()) % 61;
    if (step > rest.size()) step = rest.size();
    bool ok = conn.recv(rest.substr(0, step), now);
    check(open || !ok);  // once over, always over
    open = open && ok;
    rest.remove_prefix(step);
    now += std::chrono::milliseconds(seed % 50);
    for (std::int32_t s : owner.answer) {
      if (conn.submit_response(s, 200, {{"content-type", "text/plain"}}, false)) {
        conn.send_data(s, std::string(seed * 13 % 3000, 'x'));
        conn.end_data(s);
      }
    }
    owner.answer.clear();
    out.clear();
    conn.output(out);
  }
  conn.goaway();
  out.clear();
  conn.output(out);
  return 0;
}
