// The event feed behind GET /v1/events and `ramjetctl events --follow`: one
// process-wide, bounded sequence of JSON lines from both halves of ramjet (the
// datapath's ring-buffer events, the engine's connection opens and closes).
//
// Publishers (workers, the datapath sweeper) append already-encoded lines; readers
// keep a cursor (the last sequence number they saw) and take what came after it,
// waiting up to a timeout when nothing did. A reader that falls more than
// `capacity` lines behind skips the lost ones and is told how many (`missed`).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

#include "ramjet/hooks/connection.h"
#include "ramjet/net.h"

namespace ramjet::telemetry {

// An engine connection's open or close. Two are published per connection and most are
// never read, so the feed keeps the fields and writes the JSON line only when a reader
// takes it (formatting at publish time cost ~4% of a resumed TLS handshake's CPU).
struct ConnectionEvent {
  FlowId flow_id = 0;
  std::string endpoint;
  unsigned worker = 0;
  SocketAddress src;  // the PROXY header's source when the endpoint reads one
  SocketAddress dst;
  bool escalated = false;
  const char* proto = "tcp";  // "tcp" or "udp" (a udp endpoint's session)
  std::chrono::system_clock::time_point time;
  bool closed = false;  // the fields below are only written for a close
  std::uint64_t bytes_from_client = 0;
  std::uint64_t bytes_to_client = 0;
  const char* close_reason = "";  // a static name (proxy::to_string(CloseReason))
  std::int64_t duration_ms = 0;
};

// The JSON object (keys sorted, as nlohmann writes them) for one connection event.
std::string to_json(const ConnectionEvent& e);

class EventFeed {
 public:
  explicit EventFeed(std::size_t capacity = 1024) : capacity_(capacity) {}

  // Appends one JSON object (no newline) and wakes waiting readers.
  void publish(std::string line);
  // Kept as fields; written as a line by to_json when a reader takes it.
  void publish(ConnectionEvent event);

  struct Batch {
    std::vector<std::string> lines;
    std::uint64_t cursor = 0;  // pass it to the next call
    std::uint64_t missed = 0;  // lines dropped before this reader took them
  };
  // Lines after `cursor` (0: everything still kept), at most `max`. When there are
  // none, waits up to `wait` for one.
  Batch since(std::uint64_t cursor, std::size_t max,
              std::chrono::milliseconds wait = std::chrono::milliseconds(0));

  std::uint64_t last_seq() const;

 private:
  std::size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t seq_ = 0;  // of the newest line; lines_.front() is seq_ - size + 1
  std::deque<std::variant<std::string, ConnectionEvent>> lines_;
};

EventFeed& event_feed();

// "2026-12-02T16:09:32.123Z" for a wall-clock time: the `time` field of events.
std::string rfc3339_ms(std::chrono::system_clock::time_point t);

}  // namespace ramjet::telemetry
