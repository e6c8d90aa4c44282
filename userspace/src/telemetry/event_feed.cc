#include "telemetry/event_feed.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <ctime>
#include <iterator>

namespace ramjet::telemetry {

std::string to_json(const ConnectionEvent& e) {
  // Written directly rather than built as an nlohmann::json tree; only the endpoint
  // name is free text and needs escaping.
  std::string out;
  out.reserve(320);
  auto it = std::back_inserter(out);
  if (e.closed) {
    fmt::format_to(it, R"({{"bytes_from_client":{},"bytes_to_client":{},"close_reason":"{}",)",
                   e.bytes_from_client, e.bytes_to_client, e.close_reason);
  } else {
    out += '{';
  }
  fmt::format_to(it, R"("dst":"{}",)", e.dst.to_string());
  if (e.closed) fmt::format_to(it, R"("duration_ms":{},)", e.duration_ms);
  fmt::format_to(it,
                 R"("endpoint":{},"flow_id":{},"proto":"{}","src":"{}","time":"{}",)"
                 R"("type":"{}","verdict":"{}","worker":{}}})",
                 nlohmann::json(e.endpoint).dump(), e.flow_id, e.proto, e.src.to_string(),
                 rfc3339_ms(e.time), e.closed ? "connection_close" : "connection_open",
                 e.escalated ? "ESCALATE" : "ENGINE", e.worker);
  return out;
}

void EventFeed::publish(std::string line) {
  {
    std::lock_guard lock(mu_);
    lines_.emplace_back(std::move(line));
    ++seq_;
    while (lines_.size() > capacity_) lines_.pop_front();
  }
  cv_.notify_all();
}

void EventFeed::publish(ConnectionEvent event) {
  {
    std::lock_guard lock(mu_);
    lines_.emplace_back(std::move(event));
    ++seq_;
    while (lines_.size() > capacity_) lines_.pop_front();
  }
  cv_.notify_all();
}

EventFeed::Batch EventFeed::since(std::uint64_t cursor, std::size_t max,
                                  std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  if (seq_ <= cursor && wait.count() > 0) cv_.wait_for(lock, wait, [&] { return seq_ > cursor; });
  Batch b;
  std::uint64_t first = seq_ - lines_.size() + 1;  // seq of lines_.front()
  std::uint64_t next = cursor + 1;
  if (next < first) {
    if (cursor != 0) b.missed = first - next;
    next = first;
  }
  // Copied under the lock, written as lines after it: publishers (workers) wait only
  // for the copies.
  std::vector<std::variant<std::string, ConnectionEvent>> taken;
  for (; next <= seq_ && taken.size() < max; ++next) taken.push_back(lines_[next - first]);
  b.cursor = next - 1;
  lock.unlock();
  b.lines.reserve(taken.size());
  for (auto& entry : taken) {
    if (auto* line = std::get_if<std::string>(&entry)) {
      b.lines.push_back(std::move(*line));
    } else {
      b.lines.push_back(to_json(std::get<ConnectionEvent>(entry)));
    }
  }
  return b;
}

std::uint64_t EventFeed::last_seq() const {
  std::lock_guard lock(mu_);
  return seq_;
}

EventFeed& event_feed() {
  static EventFeed feed;
  return feed;
}

std::string rfc3339_ms(std::chrono::system_clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[40];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ms % 1000));
  return buf;
}

}  // namespace ramjet::telemetry
