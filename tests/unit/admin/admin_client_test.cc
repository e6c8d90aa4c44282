// admin::AdminClient reads answers with the h1 parser: every body framing the admin
// API uses, streamed lines, and malformed answers. A one-shot unix-socket server
// plays the daemon with canned bytes.
#include "admin/admin_client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "support/temp_dir.h"

namespace ramjet::admin {
namespace {

class AdminClientTest : public testing_support::TempDirTest {
 protected:
  // Accepts one connection, reads the request head, writes `answer`, closes.
  void serve(std::string answer) {
    path_ = dir_ + "/admin.sock";
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path_.c_str(), path_.size() + 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ASSERT_EQ(::listen(fd, 1), 0);
    server_ = std::thread([fd, answer = std::move(answer)] {
      int c = ::accept(fd, nullptr, nullptr);
      std::string req;
      char buf[4096];
      while (req.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        req.append(buf, static_cast<std::size_t>(n));
      }
      (void)!::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
      ::close(c);
      ::close(fd);
    });
  }
  void TearDown() override {
    if (server_.joinable()) server_.join();
    TempDirTest::TearDown();
  }

  std::string path_;
  std::thread server_;
};

TEST_F(AdminClientTest, ContentLengthBody) {
  serve(
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
      "{\"a\":true}\n");
  auto r = AdminClient(path_).request("GET", "/v1/status");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "{\"a\":true}\n");
}

TEST_F(AdminClientTest, ChunkedLinesArriveOneByOne) {
  serve(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "6\r\n{\"a\":1\r\n8\r\n}\n{\"b\":2\r\n2\r\n}\n\r\n0\r\n\r\n");
  std::vector<std::string> lines;
  auto status = AdminClient(path_).stream_lines("GET", "/v1/events", [&](std::string_view l) {
    lines.emplace_back(l);
    return true;
  });
  ASSERT_TRUE(status.ok()) << status.error().message;
  EXPECT_EQ(*status, 200);
  EXPECT_EQ(lines, (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"}));
}

TEST_F(AdminClientTest, ABodyEndingWithTheConnection) {
  serve("HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n{\"error\":\"no flow 7\"}");
  auto r = AdminClient(path_).request("GET", "/v1/flows/7");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(error_text(*r), "no flow 7");
}

TEST_F(AdminClientTest, AMalformedHeadIsAnError) {
  serve("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab");
  auto r = AdminClient(path_).request("GET", "/v1/status");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("malformed answer from " + path_), std::string::npos)
      << r.error().message;
}

TEST_F(AdminClientTest, ABodyCutShortIsAnError) {
  serve("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort");
  auto r = AdminClient(path_).request("GET", "/v1/status");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "truncated answer from " + path_);
}

// A daemon that has just died: its socket still takes the connection (io_uring lets go
// of a ring's files after the process), then closes it with nothing said.
TEST_F(AdminClientTest, ClosedWithoutAWordIsADaemonThatJustExited) {
  serve("");
  auto r = AdminClient(path_).request("GET", "/v1/status");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(daemon_not_running(r.error())) << r.error().message;
  EXPECT_NE(r.error().message.find("closed without an answer"), std::string::npos);
}

TEST_F(AdminClientTest, NoDaemon) {
  auto r = AdminClient(dir_ + "/none.sock").request("GET", "/v1/status");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(daemon_not_running(r.error()));
}

}  // namespace
}  // namespace ramjet::admin
