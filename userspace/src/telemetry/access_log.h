// One line per finished connection, text or JSON, through spdlog (async-safe,
// one logger shared by all workers).
#pragma once

#include <memory>
#include <string>

#include "ramjet/hooks/connection.h"

namespace spdlog {
class logger;
}

namespace ramjet::telemetry {

enum class AccessLogFormat { kText, kJson, kOff };

class AccessLog {
 public:
  // path "" writes to standard output.
  AccessLog(AccessLogFormat format, const std::string& path);
  void record(const ConnectionInfo& conn, const ConnectionStats& stats);
  void reopen();

 private:
  AccessLogFormat format_;
  std::string path_;
  std::shared_ptr<spdlog::logger> logger_;
};

}  // namespace ramjet::telemetry
