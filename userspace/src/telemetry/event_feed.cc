#include "telemetry/event_feed.h"

#include <ctime>

namespace ramjet::telemetry {

void EventFeed::publish(std::string line) {
  {
    std::lock_guard lock(mu_);
    lines_.push_back(std::move(line));
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
  for (; next <= seq_ && b.lines.size() < max; ++next) b.lines.push_back(lines_[next - first]);
  b.cursor = next - 1;
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
