#include "telemetry/access_log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

namespace ramjet::telemetry {

AccessLog::AccessLog(AccessLogFormat format, const std::string& path)
    : format_(format), path_(path) {
  reopen();
}

void AccessLog::reopen() {
  if (format_ == AccessLogFormat::kOff) return;
  std::shared_ptr<spdlog::sinks::sink> sink;
  if (path_.empty())
    sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
  else
    sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path_);
  auto logger = std::make_shared<spdlog::logger>("access", sink);
  logger->set_pattern("%v");
  logger->flush_on(spdlog::level::info);
  logger_ = std::move(logger);
}

void AccessLog::record(const ConnectionInfo& c, const ConnectionStats& s) {
  if (format_ == AccessLogFormat::kOff || !logger_) return;
  auto ms = std::chrono::duration<double, std::milli>(s.duration).count();
  if (format_ == AccessLogFormat::kJson) {
    nlohmann::json j = {
        {"flow", c.id},
        {"endpoint", c.endpoint},
        {"client", c.client.to_string()},
        {"upstream", s.upstream},
        {"bytes_from_client", s.bytes_from_client},
        {"bytes_to_client", s.bytes_to_client},
        {"duration_ms", ms},
        {"rtt_us", s.rtt.count()},
        {"retransmits", s.retransmits},
        {"reason", to_string(s.reason)},
    };
    if (c.proxied_by) j["proxied_by"] = c.proxied_by->to_string();
    logger_->info(j.dump());
    return;
  }
  logger_->info(
      "flow={} endpoint={} client={} upstream={} in={} out={} duration_ms={:.3f} rtt_us={} "
      "retrans={} reason={}{}",
      c.id, c.endpoint, c.client.to_string(), s.upstream.empty() ? "-" : s.upstream,
      s.bytes_from_client, s.bytes_to_client, ms, s.rtt.count(), s.retransmits,
      to_string(s.reason), c.proxied_by ? " proxied_by=" + c.proxied_by->to_string() : "");
}

}  // namespace ramjet::telemetry
