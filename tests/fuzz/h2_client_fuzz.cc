// Untrusted frames from an origin through the HTTP/2 client connection (nghttp2 and
// the callbacks around it), split at points the input chooses. The owner has started
// requests with and without bodies, as the proxy does, consumes response bodies and
// keeps sending request bodies, so the flow-control, trailer, GOAWAY and reset paths
// run too. Must never crash, leak or hang; a connection that says it is over must stay
// over, and no stream may be reported closed twice.
//
// Input layout: byte 0 seeds the split points and the body sizes, the rest are frames
// as an origin sends them (its SETTINGS first).
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "http/h2/client_connection.h"

namespace {

using namespace ramjet::http::h2;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

struct Owner : ClientEvents {
  ClientConnection* conn = nullptr;
  std::set<std::int32_t> closed;
  void on_response(std::int32_t, ResponseHead head) override {
    check(head.status >= 100 && head.status <= 999);
  }
  void on_data(std::int32_t stream, std::string_view data) override {
    check(closed.count(stream) == 0);
    conn->consume(stream, data.size());
  }
  void on_end_stream(std::int32_t stream) override { check(closed.count(stream) == 0); }
  void on_stream_close(std::int32_t stream, std::uint32_t, bool) override {
    check(closed.insert(stream).second);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  unsigned seed = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);

  ClientLimits limits;
  limits.max_fields = 16;
  limits.max_header_list = 1024;
  limits.stream_window = 1024;
  limits.connection_window = 4096;
  Owner owner;
  ClientConnection conn(owner, limits);
  owner.conn = &conn;
  std::vector<std::int32_t> uploads;
  for (int i = 0; i < 4; ++i) {
    RequestHead h;
    h.method = i % 2 == 0 ? "GET" : "POST";
    h.scheme = "https";
    h.authority = "origin.test";
    h.path = "/" + std::to_string(i);
    h.end_stream = i % 2 == 0;
    h.fields = {{"x-i", std::to_string(i)}};
    std::int32_t id = conn.submit_request(h);
    check(id > 0);
    if (!h.end_stream) uploads.push_back(id);
  }
  std::string out;
  conn.output(out);

  bool open = true;
  while (!rest.empty()) {
    std::size_t step = 1 + (seed * 7 + rest.size()) % 61;
    if (step > rest.size()) step = rest.size();
    bool ok = conn.recv(rest.substr(0, step));
    check(open || !ok);  // once over, always over
    open = open && ok;
    rest.remove_prefix(step);
    for (std::int32_t id : uploads) {
      conn.send_data(id, std::string(seed * 13 % 2000, 'u'));
      if (rest.size() % 3 == 0) conn.end_data(id, {{"x-sum", "1"}});
    }
    out.clear();
    conn.output(out);
  }
  conn.goaway();
  out.clear();
  conn.output(out);
  return 0;
}
