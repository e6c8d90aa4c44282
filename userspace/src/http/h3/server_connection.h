// ServerConnection: the server side of one HTTP/3 connection (RFC 9114), sans I/O and
// sans QUIC. It wraps an nghttp3 server connection: the owner (the QUIC on-ramp) passes
// each stream's bytes to recv(), asks next_output() which stream has bytes to send and
// reports how many QUIC took (written()), and how many the peer acknowledged (acked()).
// Requests arrive through Events with the same heads HTTP/2 produces (http/h2/message.h),
// so the request pipeline need not know the version.
//
// Flow control stays with QUIC: recv() returns how many bytes of the stream nghttp3 has
// consumed (the owner extends the QUIC windows by that much), and on_consumed() reports
// bytes consumed later (QPACK-blocked headers, the body of a request that was refused).
// Body bytes given by on_data are the owner's to give back to QUIC once passed on.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "http/h2/message.h"
#include "http/h3/settings.h"

struct nghttp3_conn;

namespace ramjet::http::h3 {

using h2::Field;
using h2::RequestHead;

struct Limits {
  std::uint64_t max_field_section_size = 64 * 1024;
  std::size_t max_fields = 100;
  // Send SETTINGS_H3_DATAGRAM = 1 (RFC 9297 2.1.1): we take HTTP datagrams in QUIC
  // DATAGRAM frames (the QUIC side must offer max_datagram_frame_size too).
  bool h3_datagram = false;
};

class Events {
 public:
  virtual ~Events() = default;
  virtual void on_request(std::int64_t stream, RequestHead head) = 0;
  // Body bytes: the owner gives them back to QUIC's window once it has passed them on.
  virtual void on_data(std::int64_t stream, std::string_view data) = 0;
  // Request trailers (RFC 9114 4.1), before on_end_stream; bounded like the head (past
  // max_fields or the field section size they are dropped, as on HTTP/2).
  virtual void on_trailers(std::int64_t stream, std::vector<Field> fields) = 0;
  virtual void on_end_stream(std::int64_t stream) = 0;
  // Only for streams on_request announced; app_error_code 0x100 (H3_NO_ERROR) when done.
  virtual void on_stream_close(std::int64_t stream, std::uint64_t app_error_code) = 0;
  // Stream bytes nghttp3 consumed after recv() returned (give them to QUIC's windows).
  virtual void on_consumed(std::int64_t /*stream*/, std::size_t /*n*/) {}
  // An HTTP datagram (RFC 9297 2.1) for request stream `stream`, any stream the client
  // may have opened: the owner checks it has one of that id that takes datagrams.
  virtual void on_datagram(std::int64_t /*stream*/, std::span<const std::uint8_t> /*payload*/) {}
  // A QUIC DATAGRAM frame without a valid Quarter Stream ID: dropped (the owner counts it).
  virtual void on_malformed_datagram() {}
};

// Bytes of one stream ready for QUIC: their pieces, and whether the stream ends there.
struct Output {
  std::int64_t stream = -1;  // -1: nothing to send
  std::vector<std::span<const std::uint8_t>> pieces;
  bool fin = false;
};

class ServerConnection {
 public:
  ServerConnection(Events& events, const Limits& limits);
  ~ServerConnection();
  ServerConnection(const ServerConnection&) = delete;
  ServerConnection& operator=(const ServerConnection&) = delete;

  // The server's three unidirectional streams, opened by the owner on QUIC (RFC 9114
  // 6.2.1, RFC 9204 4.2). false on an error from nghttp3.
  bool bind_streams(std::int64_t control, std::int64_t qpack_encoder, std::int64_t qpack_decoder);
  // Stream bytes from the client; the bytes consumed, or a negative nghttp3 error
  // (fatal: close the connection with nghttp3_err_infer_quic_app_error_code()).
  std::int64_t recv(std::int64_t stream, std::span<const std::uint8_t> data, bool fin);
  // The payload of a QUIC DATAGRAM frame from the client: to Events::on_datagram, or
  // Events::on_malformed_datagram.
  void recv_datagram(std::span<const std::uint8_t> frame_payload);
  // Whether the client sent SETTINGS_H3_DATAGRAM = 1 (read off its control stream, as
  // nghttp3 0.8 ignores the setting: http/h3/settings.h). Its transport parameters must
  // allow DATAGRAM frames too before we send any.
  bool peer_h3_datagram() const { return peer_settings_.h3_datagram(); }
  // Whether our SETTINGS went out with H3_DATAGRAM = 1 (Limits::h3_datagram).
  bool sent_h3_datagram() const { return control_rewrite_ && control_rewrite_->rewritten(); }
  Output next_output();
  void written(std::int64_t stream, std::size_t n);
  void acked(std::int64_t stream, std::size_t n);
  // QUIC will take no more of the stream now (flow control): stop offering it, then
  // resume it when the window opens.
  void block(std::int64_t stream);
  void unblock(std::int64_t stream);
  // The client may open this many request streams in all (QUIC's limit).
  void set_max_client_streams_bidi(std::uint64_t max);
  // QUIC closed the stream (both directions done, or reset).
  void stream_closed(std::int64_t stream, std::uint64_t app_error_code);

  // A response: its head (with end_stream, nothing follows), then body bytes as they
  // come, then its end with trailers if any (RFC 9114 4.1). false if nghttp3 refused it.
  bool submit_response(std::int64_t stream, int status, const std::vector<Field>& fields,
                       bool end_stream = false);
  // An interim (1xx) response ahead of the final one.
  void submit_interim(std::int64_t stream, int status, const std::vector<Field>& fields);
  void send_data(std::int64_t stream, std::string_view data);
  void end_data(std::int64_t stream, std::vector<Field> trailers = {});
  // Response body bytes queued and not yet handed to QUIC.
  std::size_t buffered(std::int64_t stream) const;
  // The owner resets the stream (on QUIC, with its code): nghttp3 neither writes nor
  // reads it any more.
  void shutdown_stream(std::int64_t stream);
  // Request streams not yet closed by QUIC (their response not all acknowledged).
  std::size_t open_streams() const { return streams_.size(); }
  // Announces that no new request will be served (GOAWAY, RFC 9114 5.2): the client's
  // requests up to the last one received run to their end.
  void goaway();

  // Internal: the nghttp3 callbacks' way in.
  bool submit_trailers(std::int64_t stream, const std::vector<Field>& fields);
  struct Stream {
    RequestHead head;
    std::size_t fields = 0;
    bool announced = false;
    bool too_many_fields = false;
    std::vector<Field> trailers_in;  // request trailers as they arrive
    std::size_t trailer_bytes = 0;   // their size as RFC 9114 4.2.2 counts it
    // Response body chunks not yet acknowledged by the peer: nghttp3 sends from them
    // without copying, so each stays where it is until acknowledged.
    std::deque<std::string> chunks;
    std::size_t given = 0;        // chunks handed to nghttp3
    std::size_t acked_front = 0;  // bytes of chunks.front() already acknowledged
    std::size_t queued = 0;       // bytes of the chunks not yet handed to nghttp3
    bool body_ended = false;
    std::vector<Field> trailers;  // sent after the body, when it ends
    bool blocked = false;  // read_data said WOULDBLOCK: resume when data comes
  };
  Events& events() { return events_; }
  Stream& stream(std::int64_t id) { return streams_[id]; }
  Stream* find(std::int64_t id);
  const Stream* find(std::int64_t id) const;
  void erase(std::int64_t id) { streams_.erase(id); }
  const Limits& limits() const { return limits_; }
  nghttp3_conn* native() { return conn_; }

 private:
  Events& events_;
  Limits limits_;
  nghttp3_conn* conn_ = nullptr;
  std::map<std::int64_t, Stream> streams_;
  std::int64_t control_stream_ = -1;
  // Our control stream's SETTINGS with H3_DATAGRAM added (only with Limits::h3_datagram).
  std::optional<ControlStreamRewrite> control_rewrite_;
  PeerSettings peer_settings_;
};

}  // namespace ramjet::http::h3
