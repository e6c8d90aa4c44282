// HTTP/2 towards origins: one multiplexed connection per origin and worker, shared
// by the requests of every session on that worker.
//
// An origin speaks HTTP/2 when it chooses h2 by ALPN on the TLS connection a session
// opened to it (http endpoints offer h2 and http/1.1 unless upstream_tls.alpn says
// otherwise). The session hands such a connection to the worker's H2Upstreams, and
// from then on every request to that origin address, for the same verified name, is a
// stream on it (H2Request) - never a second connection while this one takes streams.
//
// The origin's SETTINGS_MAX_CONCURRENT_STREAMS is respected: requests over it wait in
// nghttp2's queue until a stream closes. After a GOAWAY the connection takes no new
// stream (the next request opens a new connection) and runs the streams it kept to
// their end; the streams the origin did not process are reported refused() and the
// sessions send those without a body again. An idle connection is closed after
// UpstreamPool's idle time.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/h2/client_connection.h"
#include "ramjet/net.h"
#include "ramjet/task.h"
#include "runtime/stream.h"
#include "runtime/wakeup.h"
#include "runtime/worker.h"
#include "telemetry/stats.h"

namespace ramjet::proxy {

class H2Upstream;

// One request on an H2Upstream, as a Stream of body bytes: write_all() sends request
// body bytes (waiting while the origin's window keeps them queued), shutdown_write()
// ends the request (with the trailers set before), read() receives response body bytes
// (0 at its end, -ECONNRESET when the stream was reset, -ETIMEDOUT). Destroying an
// unfinished request resets its stream.
class H2Request final : public runtime::Stream {
 public:
  ~H2Request() override;

  bool plain() const override { return false; }
  Task<int> read(std::string& out, std::size_t max, std::chrono::milliseconds timeout) override;
  Task<bool> write_all(std::string_view data) override;
  Task<void> shutdown_write() override;

  // The next response head: interim (1xx) ones, then the final one. nullopt when the
  // stream ended without one (see refused(), timed_out(), error()).
  Task<std::optional<http::h2::ResponseHead>> response(std::chrono::milliseconds timeout);
  void set_trailers(std::vector<http::h2::Field> trailers) { trailers_out_ = std::move(trailers); }
  // The response's trailers, once read() returned 0.
  const std::vector<http::h2::Field>& trailers() const { return trailers_in_; }
  // Ends the stream now (a reset), waking whoever waits on it.
  void cancel();

  // The origin did not process the request: sending it again elsewhere is safe.
  bool refused() const { return refused_; }
  bool timed_out() const { return timed_out_; }
  // Why the stream ended without a complete response.
  std::string error() const;

 private:
  friend class H2Upstream;
  H2Request(std::shared_ptr<H2Upstream> conn, std::int32_t id);
  Task<bool> wait_input(std::chrono::milliseconds timeout);

  std::shared_ptr<H2Upstream> conn_;
  std::int32_t id_;
  std::vector<http::h2::ResponseHead> heads_;  // received, not yet taken by response()
  std::string body_;                          // response body received, not yet read
  std::vector<http::h2::Field> trailers_in_;
  std::vector<http::h2::Field> trailers_out_;
  bool ended_ = false;   // END_STREAM from the origin
  bool closed_ = false;  // the stream is gone
  bool refused_ = false;
  bool timed_out_ = false;
  bool lost_ = false;    // the connection ended under it
  std::uint32_t error_code_ = 0;
  runtime::Clock::time_point deadline_{};  // while waiting for input with a timeout
  runtime::Wakeup input_;   // a head, body bytes, the end or a close arrived
  runtime::Wakeup window_;  // request body bytes left the queue, or a close
};

class H2Upstream final : public std::enable_shared_from_this<H2Upstream>,
                         private http::h2::ClientEvents {
 public:
  // `stream` is TLS over the connected socket `fd` (both owned from now on), verified
  // for `reuse_key` (UpstreamLink::reuse_key). Counts its GOAWAYs in `counters`.
  H2Upstream(runtime::Worker& worker, int fd, std::unique_ptr<runtime::Stream> stream,
             SocketAddress address, std::string reuse_key, telemetry::CounterRow& counters,
             std::chrono::milliseconds max_idle);
  ~H2Upstream() override;

  // Reads and writes until the connection ends (run by H2Upstreams).
  Task<void> run();
  // New streams may start on it.
  bool usable() const { return !dead_ && conn_.accepting(); }
  // Starts a request: null when the connection takes no new stream.
  std::unique_ptr<H2Request> open(const http::h2::RequestHead& head);
  // Ends the connection: pending reads fail, every stream is closed.
  void close();

  const SocketAddress& address() const { return address_; }
  const std::string& reuse_key() const { return reuse_key_; }

 private:
  friend class H2Request;

  // ClientEvents: called inside nghttp2; they only record and schedule wake-ups.
  void on_response(std::int32_t stream, http::h2::ResponseHead head) override;
  void on_data(std::int32_t stream, std::string_view data) override;
  void on_trailers(std::int32_t stream, std::vector<http::h2::Field> fields) override;
  void on_end_stream(std::int32_t stream) override;
  void on_stream_close(std::int32_t stream, std::uint32_t error_code, bool refused) override;
  void on_goaway(std::int32_t last_stream_id, std::uint32_t error_code) override;

  H2Request* find(std::int32_t id);
  Task<void> writer();
  void kick() { writer_wake_.notify_later(worker_); }  // one write per loop turn
  void deliver_wakeups();
  // Streams waiting past their deadline are reset and woken.
  void expire(runtime::Clock::time_point now);

  runtime::Worker& worker_;
  int fd_;
  std::unique_ptr<runtime::Stream> stream_;
  SocketAddress address_;
  std::string reuse_key_;
  telemetry::CounterRow& counters_;
  std::chrono::milliseconds max_idle_;
  http::h2::ClientConnection conn_;
  std::map<std::int32_t, H2Request*> requests_;
  std::vector<std::int32_t> to_wake_;
  runtime::Wakeup writer_wake_;
  runtime::Event writer_done_;
  bool dead_ = false;
};

// The worker's HTTP/2 upstream connections.
class H2Upstreams {
 public:
  H2Upstreams(runtime::Worker& worker, std::chrono::milliseconds max_idle)
      : worker_(worker), max_idle_(max_idle) {}
  H2Upstreams(const H2Upstreams&) = delete;
  H2Upstreams& operator=(const H2Upstreams&) = delete;

  // A connection taking streams to one of `addresses` (in order), verified for
  // `reuse_key`; null if none. Sets `which` to its address.
  std::shared_ptr<H2Upstream> find(const std::vector<SocketAddress>& addresses,
                                   std::string_view reuse_key, SocketAddress& which) const;
  // Takes over a connection whose TLS chose h2 and starts it. When one to the same
  // origin appeared meanwhile, that one is returned and this one closed: one per origin.
  std::shared_ptr<H2Upstream> adopt(int fd, std::unique_ptr<runtime::Stream> stream,
                                    const SocketAddress& address, std::string reuse_key,
                                    telemetry::CounterRow& counters);
  // One connection to an origin at a time: while a TLS connection that may choose h2 is
  // being made to `address` for `reuse_key`, the others wait for its outcome (an HTTP/2
  // connection to share, or HTTP/1.1: then they connect too). The connector sets `done`.
  struct Connecting {
    SocketAddress address;
    std::string reuse_key;
    runtime::Event done;
  };
  // The connect under way to `address` for `reuse_key`, or null.
  std::shared_ptr<Connecting> connecting(const SocketAddress& address, std::string_view reuse_key);
  // Announces a connect; null when nobody needs to wait for it (a known HTTP/1.1 origin).
  std::shared_ptr<Connecting> begin_connect(const SocketAddress& address, std::string reuse_key);
  // The origin chose HTTP/1.1 (nobody waits for its connections from now on).
  void learned_http1(const SocketAddress& address, const std::string& reuse_key);

  // Closes every connection and waits for them to end (the worker is stopping).
  Task<void> close();
  std::size_t size() const { return live_.size(); }

 private:
  Task<void> run(std::shared_ptr<H2Upstream> conn);

  runtime::Worker& worker_;
  std::chrono::milliseconds max_idle_;
  std::vector<std::shared_ptr<H2Upstream>> live_;
  std::vector<std::weak_ptr<Connecting>> connecting_;
  std::vector<std::pair<SocketAddress, std::string>> http1_;  // origins that chose HTTP/1.1
  runtime::JoinSet loops_;
};


}  // namespace ramjet::proxy
