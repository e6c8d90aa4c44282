// Relay: moves bytes both ways between two connected TCP sockets until both
// directions are finished, honouring half-close, backpressure (a direction reads
// only after its previous chunk is fully written), idle timeout and max lifetime.
//
// Three data paths, chosen per endpoint (`relay:`):
//  - splice: socket -> pipe -> socket with nonblocking splice(2), woken by io_uring
//    poll; the bytes never enter userspace. Fastest for bulk (make bench), but every
//    connection pays for a pipe pair and more syscalls per wake-up.
//  - buffer: io_uring recv into a provided buffer ring, then send. Cheapest for short
//    connections; idle connections hold no buffer.
//  - auto (the default): buffer, and each direction that turns out to carry bulk (two
//    full buffers in a row) moves to splice.
// When either side is TLS (a Stream that is not plain) bytes go through the streams'
// read and write_all whatever the mode: only plaintext can be spliced.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "ramjet/config/values.h"
#include "ramjet/hooks/connection.h"
#include "ramjet/task.h"
#include "runtime/stream.h"
#include "runtime/worker.h"

namespace ramjet::proxy {

enum class RelayMode : std::uint8_t { kSplice, kBuffer, kAuto };

inline RelayMode relay_mode(config::RelayMode m) {
  switch (m) {
    case config::RelayMode::kSplice:
      return RelayMode::kSplice;
    case config::RelayMode::kBuffer:
      return RelayMode::kBuffer;
    case config::RelayMode::kAuto:
      break;
  }
  return RelayMode::kAuto;
}

struct RelayLimits {
  std::chrono::milliseconds idle_timeout{0};  // 0: none
  std::chrono::milliseconds max_lifetime{0};  // 0: none
};

class Relay {
 public:
  // `buffers` is required for kBuffer and kAuto and ignored for kSplice.
  Relay(runtime::Worker& w, runtime::Stream& client, runtime::Stream& upstream, RelayMode mode,
        RelayLimits limits, runtime::BufferRing* buffers);

  // Runs until both directions finish; sets reason() if something cut it short.
  Task<void> run();

  // Ends the relay early (idle watchdog, drain deadline, an operator's kill).
  // Safe to call at any time, any number of times; the first reason wins.
  void force_close(CloseReason why);

  std::uint64_t bytes_from_client() const { return bytes_from_client_; }
  std::uint64_t bytes_to_client() const { return bytes_to_client_; }
  std::optional<CloseReason> reason() const { return reason_; }
  // Directions that relay: auto moved to splice (0, 1 or 2).
  unsigned spliced_directions() const { return spliced_directions_; }

 private:
  struct Direction {
    int from;
    int to;
    runtime::Stream* from_stream;
    runtime::Stream* to_stream;
    std::uint64_t* counter;
    CloseReason read_error;   // what a failure reading `from` means
    CloseReason write_error;  // what a failure writing `to` means
  };

  Task<void> pump_splice(Direction d);
  Task<void> pump_buffer(Direction d, unsigned splice_after);
  Task<void> pump_stream(Direction d);
  Task<void> watchdog();
  void fail(CloseReason why);
  void touch() { last_activity_ = runtime::Clock::now(); }

  runtime::Worker& worker_;
  runtime::Stream& client_;
  runtime::Stream& upstream_;
  int client_fd_;
  int upstream_fd_;
  RelayMode mode_;
  RelayLimits limits_;
  runtime::BufferRing* buffers_;
  std::uint64_t bytes_from_client_ = 0;
  std::uint64_t bytes_to_client_ = 0;
  std::optional<CloseReason> reason_;
  runtime::Clock::time_point started_;
  runtime::Clock::time_point last_activity_;
  runtime::CancelSlot watchdog_slot_;
  bool closing_ = false;
  unsigned spliced_directions_ = 0;
};

}  // namespace ramjet::proxy
