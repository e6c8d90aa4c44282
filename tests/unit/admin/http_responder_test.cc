#include "admin/http_responder.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>

namespace ramjet::admin {
namespace {

using namespace std::chrono_literals;

// A responder on 127.0.0.1:<ephemeral> with a few routes.
class Responder : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.add("GET", "/hello", [](const HttpRequest& r) {
      return HttpResponse{200, "{\"query\":\"" + r.query + "\"}"};
    });
    router_.add("POST", "/echo", [](const HttpRequest& r) {
      return HttpResponse{200, r.body, "text/plain"};
    });
    router_.add("GET", "/stream", [](const HttpRequest&) {
      // Three pieces with pauses between them, then the end.
      auto n = std::make_shared<int>(0);
      HttpResponse r{200, "head;", "text/plain"};
      r.stream = [n]() -> std::optional<std::string> {
        int i = (*n)++;
        if (i >= 6) return std::nullopt;
        if (i % 2 == 0) return std::string();  // nothing yet
        return "piece" + std::to_string(i / 2) + ";";
      };
      return r;
    });
    router_.add("GET", "/forever", [this](const HttpRequest&) {
      HttpResponse r{200, "", "text/plain"};
      r.stream = [this]() -> std::optional<std::string> {
        ++forever_polls_;
        return std::string();
      };
      return r;
    });
    router_.add("GET", "/throw",
                [](const HttpRequest&) -> HttpResponse { throw std::runtime_error("boom"); });
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ASSERT_EQ(::listen(fd, 16), 0);
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    ResponderLimits limits;
    limits.deadline = 500ms;
    limits.max_body = 16;
    responder_ = std::make_unique<HttpResponder>(
        "test", [this](const HttpRequest& r) { return router_.dispatch(r); }, limits);
    ASSERT_TRUE(responder_->start(fd).ok());
  }

  int connect_client() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(port_);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
  }

  // Sends `request` and reads until the server closes.
  std::string exchange(const std::string& request) {
    int fd = connect_client();
    ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    std::string out;
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
  }

  Router router_;
  std::atomic<int> forever_polls_{0};
  std::unique_ptr<HttpResponder> responder_;
  std::uint16_t port_ = 0;
};

TEST_F(Responder, StreamsPiecesWithoutContentLengthUntilTheEnd) {
  std::string r = exchange("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_EQ(r.find("Content-Length"), std::string::npos) << r;
  EXPECT_TRUE(r.ends_with("\r\n\r\nhead;piece0;piece1;piece2;")) << r;
}

TEST_F(Responder, AStreamEndsWhenItsClientGoesAway) {
  int fd = connect_client();
  std::string req = "GET /forever HTTP/1.1\r\nHost: t\r\n\r\n";
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  char buf[512];
  ASSERT_GT(::recv(fd, buf, sizeof buf, 0), 0);  // the head
  std::this_thread::sleep_for(250ms);
  ASSERT_GT(forever_polls_.load(), 0);  // the stream is being polled
  ::close(fd);
  std::this_thread::sleep_for(400ms);  // a few stream_poll periods: it noticed
  int after_close = forever_polls_.load();
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(forever_polls_.load(), after_close) << "the stream outlived its client";
}

TEST_F(Responder, AnswersAndCloses) {
  std::string r = exchange("GET /hello?x=1 HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("Content-Type: application/json\r\n"), std::string::npos);
  EXPECT_NE(r.find("Content-Length: 15\r\n"), std::string::npos) << r;
  EXPECT_NE(r.find("Connection: close\r\n"), std::string::npos);
  EXPECT_EQ(r.substr(r.size() - 15), "{\"query\":\"x=1\"}");
}

TEST_F(Responder, ReadsContentLengthBodies) {
  std::string r = exchange("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_EQ(r.substr(r.size() - 5), "hello");
}

TEST_F(Responder, RoutingErrors) {
  std::string r = exchange("GET /nope HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 404 Not Found\r\n", 0), 0u) << r;
  r = exchange("DELETE /hello HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("Allow: GET\r\n"), std::string::npos) << r;
}

TEST_F(Responder, ProtocolErrors) {
  EXPECT_EQ(exchange("GET /hello\r\n\r\n").rfind("HTTP/1.1 400 ", 0), 0u);
  EXPECT_EQ(exchange("GET http://x/hello HTTP/1.1\r\nHost: x\r\n\r\n").rfind("HTTP/1.1 400 ", 0),
            0u);
  EXPECT_EQ(exchange("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
                .rfind("HTTP/1.1 411 ", 0),
            0u);
  EXPECT_EQ(exchange("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 17\r\n\r\n")
                .rfind("HTTP/1.1 413 ", 0),
            0u);
  std::string long_target = exchange("GET /" + std::string(10000, 'a') + " HTTP/1.1\r\n\r\n");
  EXPECT_EQ(long_target.rfind("HTTP/1.1 414 ", 0), 0u) << long_target;
}

TEST_F(Responder, HandlerExceptionIs500) {
  std::string r = exchange("GET /throw HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 500 ", 0), 0u) << r;
}

TEST_F(Responder, SlowClientIsCutOffAtTheDeadline) {
  auto t0 = std::chrono::steady_clock::now();
  std::string r = exchange("GET /hello HTTP/1.1\r\n");  // never finishes its head
  EXPECT_EQ(r, "");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);
}

TEST_F(Responder, StopEndsIdleConnectionsPromptly) {
  int idle = connect_client();
  std::this_thread::sleep_for(20ms);
  auto t0 = std::chrono::steady_clock::now();
  responder_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 400ms);
  char c;
  EXPECT_EQ(::recv(idle, &c, 1, 0), 0);  // closed without an answer
  ::close(idle);
}

TEST(Router, DispatchesByPathThenMethod) {
  Router r;
  r.add("GET", "/a", [](const HttpRequest&) { return HttpResponse{200, "get"}; });
  r.add("POST", "/a", [](const HttpRequest&) { return HttpResponse{200, "post"}; });
  EXPECT_EQ(r.dispatch({"POST", "/a"}).body, "post");
  auto not_allowed = r.dispatch({"PUT", "/a"});
  EXPECT_EQ(not_allowed.status, 405);
  EXPECT_EQ(not_allowed.extra_fields, "Allow: GET, POST\r\n");
  EXPECT_EQ(r.dispatch({"GET", "/b"}).status, 404);
}

TEST(Router, PrefixRoutesTakeThePathsUnderThem) {
  Router r;
  r.add("GET", "/v1/flows", [](const HttpRequest&) { return HttpResponse{200, "list"}; });
  r.add("GET", "/v1/flows/", [](const HttpRequest& q) {
    return HttpResponse{200, "one " + q.path};
  });
  r.add("GET", "/v1/flows/special/", [](const HttpRequest& q) {
    return HttpResponse{200, "special " + q.query};
  });
  r.add("GET", "/v1/flows/exact", [](const HttpRequest&) { return HttpResponse{200, "exact"}; });
  EXPECT_EQ(r.dispatch({"GET", "/v1/flows"}).body, "list");
  EXPECT_EQ(r.dispatch({"GET", "/v1/flows/42"}).body, "one /v1/flows/42");
  EXPECT_EQ(r.dispatch({"GET", "/v1/flows/special/x", "a=1"}).body, "special a=1");  // longest
  EXPECT_EQ(r.dispatch({"GET", "/v1/flows/exact"}).body, "exact");  // exact beats a prefix
  EXPECT_EQ(r.dispatch({"POST", "/v1/flows/42"}).status, 405);
  EXPECT_EQ(r.dispatch({"GET", "/v1/flowsx"}).status, 404);
}

}  // namespace
}  // namespace ramjet::admin
