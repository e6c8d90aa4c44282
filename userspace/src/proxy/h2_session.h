// H2Session: one HTTP/2 client connection on an `onramp: http` endpoint (h2 chosen by
// ALPN on TLS, or h2c by prior knowledge): a StreamSession (proxy/stream_session.h)
// whose streams are nghttp2's (http/h2/server_connection.h). One reading coroutine feeds
// the connection; one writing coroutine sends what it produces. Drain sends GOAWAY with
// the last stream id; open streams run to their end.
#pragma once

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <string>
#include <vector>

#include "http/h2/server_connection.h"
#include "proxy/stream_session.h"

namespace ramjet::proxy {

// h2c by prior knowledge (RFC 9113 3.3): whether the client's first bytes on `fd` are the
// HTTP/2 connection preface. Peeks only: the bytes stay for whichever session reads them.
// Gives up (false) after `timeout` or once `draining` is set.
Task<bool> client_preface_follows(runtime::Worker& worker, int fd,
                                  std::chrono::milliseconds timeout, const bool& draining);

class H2Session final : public StreamSession,
                        private http::h2::ServerEvents,
                        private ClientStreams {
 public:
  // `client` carries the connection (PlainStream for h2c, a TLS stream for h2);
  // `received` holds bytes already read from it (the client preface, when sniffed).
  H2Session(WorkerContext& wc, const config::Endpoint& ep, telemetry::CounterRow& counters,
            runtime::Stream& client, ConnectionInfo info, std::string received = {});
  ~H2Session() override;

  Task<void> run();
  void force_close(CloseReason why) override;

 private:
  // ServerEvents: called inside nghttp2; they only record and schedule wake-ups.
  void on_request(std::int32_t stream, http::h2::RequestHead head) override;
  void on_data(std::int32_t stream, std::string_view data) override;
  void on_trailers(std::int32_t stream, std::vector<http::h2::Field> fields) override;
  void on_end_stream(std::int32_t stream) override;
  void on_stream_close(std::int32_t stream, std::uint32_t error_code) override;
  void on_defence(http::h2::Defence d) override;

  // ClientStreams, on nghttp2.
  bool submit_response(std::int64_t stream, int status, const std::vector<http::h2::Field>& fields,
                       bool end_stream) override;
  void submit_interim(std::int64_t stream, int status,
                      const std::vector<http::h2::Field>& fields) override;
  void send_data(std::int64_t stream, std::string_view data) override;
  void end_data(std::int64_t stream, std::vector<http::h2::Field> trailers) override;
  std::size_t buffered(std::int64_t stream) const override;
  void reset(std::int64_t stream, StreamError why) override;
  void consume(std::int64_t stream, std::size_t n) override;

  Task<void> writer();
  // Wakes the writer (frames are ready) at the end of the loop's turn.
  void kick() override;

  runtime::Stream& client_;
  std::string received_;
  http::h2::ServerConnection h2_;
  Wakeup writer_wake_;
  bool write_failed_ = false;
  bool draining_sent_ = false;
  runtime::Event writer_done_;
};

}  // namespace ramjet::proxy
