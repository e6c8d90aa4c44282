// The admin API: HTTP/1.1 + JSON on a unix socket (mode 0600), one request per
// connection, served by its own thread so it answers even when workers are busy.
// Routes (v1): GET /v1/status, GET /v1/stats, GET /v1/hooks/trace.
// This is the minimal core the ramjetctl issue builds on.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "ramjet/result.h"

namespace ramjet::admin {

class AdminServer {
 public:
  // status() supplies the body of /v1/status (JSON text).
  explicit AdminServer(std::function<std::string()> status) : status_(std::move(status)) {}
  ~AdminServer();

  Result<void> start(const std::string& path);
  void stop();

 private:
  void serve();
  void handle(int fd);

  std::function<std::string()> status_;
  std::string path_;
  int fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace ramjet::admin
