// The admin API: HTTP/1.1 + JSON on a unix socket (mode 0600), one request per
// connection, served by its own thread so it answers even when workers are busy.
// Routes (v1): GET /v1/status, GET /v1/stats, GET /v1/hooks/trace.
// This is the minimal core the ramjetctl issue builds on.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ramjet/result.h"

namespace ramjet::admin {

class AdminServer {
 public:
  struct Response {
    int status = 200;
    std::string body;  // JSON text
  };
  // (method, target without query, query string) -> response
  using Handler = std::function<Response(const std::string&, const std::string&, const std::string&)>;

  // status() supplies the body of /v1/status (JSON text).
  explicit AdminServer(std::function<std::string()> status) : status_(std::move(status)) {}
  ~AdminServer();

  // Adds a route: `path` exactly, or every path under it when it ends in '/'.
  // Call before start().
  void route(std::string path, Handler handler) { routes_.emplace_back(std::move(path), std::move(handler)); }

  Result<void> start(const std::string& path);
  void stop();

 private:
  void serve();
  void handle(int fd);

  std::function<std::string()> status_;
  std::vector<std::pair<std::string, Handler>> routes_;
  std::string path_;
  int fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace ramjet::admin
