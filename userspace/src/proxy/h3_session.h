// H3Session: the HTTP/3 requests of one QUIC connection on an `onramp: http` endpoint's
// `quic:` listener - a StreamSession (proxy/stream_session.h) whose streams are nghttp3's
// (http/h3/server_connection.h), so every request gets what it gets on HTTP/2: the same
// hooks, heads, egress chain, upstreams, CONNECT and connect-udp tunnels.
//
// The QUIC connection (proxy/quic_onramp.h) owns the session and carries its bytes: it
// calls after_input() once its datagrams are processed (the streams act on what HTTP/3
// delivered) and after_output() once it has sent (streams waiting for the client's
// window go on); the session asks it through Carrier to send soon, to give window back,
// to reset a stream and to close. The session begins at accept; IngressHook runs once the
// handshake is done (the TLS facts are known), and no request starts before it allowed
// the connection.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "http/h3/server_connection.h"
#include "proxy/http_datagrams.h"
#include "proxy/stream_session.h"
#include "quic/datagram_queued.h"

namespace ramjet::proxy {

class H3Session final : public StreamSession,
                        private http::h3::Events,
                        private ClientStreams,
                        private HttpDatagrams {
 public:
  // What the session needs of the QUIC connection that carries it.
  class Carrier {
   public:
    // Send what HTTP/3 has queued, soon (at the end of the loop's turn).
    virtual void wake() = 0;
    // `n` body bytes of the stream were passed on: extend the client's windows.
    virtual void consumed(std::int64_t stream, std::size_t n) = 0;
    virtual void reset_stream(std::int64_t stream, std::uint64_t app_error_code) = 0;
    // Close the connection (CONNECTION_CLOSE with an HTTP/3 code).
    virtual void close(std::uint64_t app_error_code, std::string_view reason) = 0;
    // QUIC DATAGRAM frames (RFC 9221): whether the client's transport parameters allow
    // them, and one to send (its payload: Quarter Stream ID and HTTP datagram).
    virtual bool datagrams_negotiated() const = 0;
    virtual quic::DatagramQueued send_datagram(std::span<const std::uint8_t> payload) = 0;

   protected:
    ~Carrier() = default;
  };

  H3Session(WorkerContext& wc, const config::Endpoint& ep, telemetry::CounterRow& counters,
            ConnectionInfo info, Carrier& carrier, const http::h3::Limits& limits);
  ~H3Session() override;

  http::h3::ServerConnection& h3() { return h3_; }

  // The session's life: waits for the handshake, runs IngressHook, serves the requests
  // until the connection is gone, then ends with the usual close epilogue.
  Task<void> run();
  // The handshake is done: the TLS facts hooks see.
  void handshake_completed(TlsInfo tls);
  void after_input();
  void after_output() { notify_windows(); }
  // Stop taking requests (drain): GOAWAY; true once no request is left running and
  // every response is acknowledged.
  bool drain();
  // The QUIC connection is over (closed, timed out or dropped): no byte moves any more.
  void connection_gone(CloseReason why);
  void force_close(CloseReason why) override;

 private:
  // http::h3::Events: called inside nghttp3; they only record.
  void on_request(std::int64_t stream, http::h3::RequestHead head) override;
  void on_data(std::int64_t stream, std::string_view data) override;
  void on_trailers(std::int64_t stream, std::vector<http::h2::Field> fields) override {
    stream_trailers(stream, std::move(fields));
  }
  void on_end_stream(std::int64_t stream) override;
  void on_stream_close(std::int64_t stream, std::uint64_t app_error_code) override;
  void on_consumed(std::int64_t stream, std::size_t n) override { carrier_.consumed(stream, n); }
  // HTTP/3 datagrams in QUIC DATAGRAM frames (RFC 9297 2.1): to the connect-udp tunnel of
  // their stream, once it is established; the rest is dropped and counted.
  void on_datagram(std::int64_t stream, std::span<const std::uint8_t> payload) override;
  void on_malformed_datagram() override;

  // HttpDatagrams: a connect-udp tunnel's way out in DATAGRAM frames, when the client sent
  // SETTINGS_H3_DATAGRAM = 1, its transport parameters allow them, and we offered both.
  bool datagrams_enabled() const override;
  quic::DatagramQueued send_datagram(std::int64_t stream,
                                     std::span<const std::uint8_t> payload) override;
  HttpDatagrams* http_datagrams() override { return this; }

  // ClientStreams, on nghttp3.
  bool submit_response(std::int64_t stream, int status, const std::vector<http::h2::Field>& fields,
                       bool end_stream) override;
  void submit_interim(std::int64_t stream, int status,
                      const std::vector<http::h2::Field>& fields) override;
  void send_data(std::int64_t stream, std::string_view data) override;
  void end_data(std::int64_t stream, std::vector<http::h2::Field> trailers) override;
  std::size_t buffered(std::int64_t stream) const override { return h3_.buffered(stream); }
  void reset(std::int64_t stream, StreamError why) override;
  void consume(std::int64_t stream, std::size_t n) override { carrier_.consumed(stream, n); }

  void kick() override { carrier_.wake(); }
  // IngressHook, then the requests start (or the connection closes).
  Task<void> admit();

  Carrier& carrier_;
  http::h3::ServerConnection h3_;
  runtime::Event ready_;  // the handshake is done, or the connection is gone
  runtime::Event gone_;
  bool handshake_done_ = false;
  bool admitted_ = false;  // IngressHook allowed the connection: requests may start
  bool gone_set_ = false;
  bool draining_ = false;
};

}  // namespace ramjet::proxy
