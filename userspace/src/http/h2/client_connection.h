// ClientConnection: the client side of one HTTP/2 connection (RFC 9113), sans I/O -
// the proxy's end of a connection to an HTTP/2 origin.
//
// It wraps an nghttp2 client session: recv() takes the bytes the origin sent,
// output() gives the bytes to send it (the connection preface and SETTINGS first),
// and what happened in between is reported through ClientEvents. The owner starts
// requests with submit_request(), sends their bodies with send_data()/end_data() (as
// the origin's flow-control window allows) and gives received body bytes back with
// consume() once it passed them on, so a slow client slows the origin down.
//
// The origin's SETTINGS_MAX_CONCURRENT_STREAMS is respected: a request over the
// limit is queued by nghttp2 and its HEADERS go out when a stream closes; until the
// origin's SETTINGS arrive, the limit is one. After a
// GOAWAY no request starts; the streams it did not process (above its last stream id,
// or never sent) are closed with refused() true, so the owner knows that sending them
// again elsewhere is safe (RFC 9113 8.7), as it is for a REFUSED_STREAM reset.
//
// Responses are bounded like requests on the server side: a header list over the
// limit resets the stream. No threads, no clock, no I/O.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "http/h2/message.h"
#include "http/h2/nghttp2_glue.h"

namespace ramjet::http::h2 {

struct ClientLimits {
  std::uint32_t max_header_list = 64 * 1024;  // bytes of a response head, as RFC 9113 counts
  std::uint32_t max_fields = 100;
  std::uint32_t stream_window = 256 * 1024;       // what the origin may send ahead, per stream
  std::uint32_t connection_window = 1024 * 1024;  // ... and over all streams
};

class ClientEvents {
 public:
  virtual ~ClientEvents() = default;
  // An interim (1xx) or the final response head of a stream.
  virtual void on_response(std::int32_t stream, ResponseHead head) = 0;
  // Body bytes of a response; give them back with consume() once passed on.
  virtual void on_data(std::int32_t stream, std::string_view data) = 0;
  virtual void on_trailers(std::int32_t /*stream*/, std::vector<Field> /*fields*/) {}
  virtual void on_end_stream(std::int32_t stream) = 0;
  // The stream is gone: finished (error_code 0) or reset. `refused`: the origin did not
  // process it, so it may be sent again on another connection.
  virtual void on_stream_close(std::int32_t stream, std::uint32_t error_code, bool refused) = 0;
  virtual void on_goaway(std::int32_t /*last_stream_id*/, std::uint32_t /*error_code*/) {}
};

class ClientConnection {
 public:
  ClientConnection(ClientEvents& events, const ClientLimits& limits);
  ~ClientConnection();
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;

  // Feeds what the origin sent. false: the connection is over (a protocol error); send
  // what output() still has, then close. Some connection errors are known only once
  // output() produced nghttp2's GOAWAY: then accepting() is false and done() true.
  bool recv(std::string_view bytes);
  // Appends every frame that is ready to `out`.
  void output(std::string& out);
  // Nothing more will be read or written: close the connection.
  bool done() const;
  // A new request may be started (no GOAWAY either way, no fatal error).
  bool accepting() const { return !goaway_received_ && !goaway_sent_ && !failed_; }

  // Starts a request: the stream id, or -1 when none can start. With head.end_stream no
  // body follows, else send_data()/end_data().
  std::int32_t submit_request(const RequestHead& head);
  void send_data(std::int32_t stream, std::string_view data);
  // The request body is complete; `trailers`, if any, follow it.
  void end_data(std::int32_t stream, std::vector<Field> trailers = {});
  // Request body bytes queued and not yet framed (the origin's window is shut).
  std::size_t buffered(std::int32_t stream) const;
  void reset(std::int32_t stream, std::uint32_t error_code);
  // The owner passed on `n` response body bytes: the origin may send as many more.
  void consume(std::int32_t stream, std::size_t n);
  // No new requests from us: GOAWAY; open streams run to their end.
  void goaway();

  // Streams started and not yet closed (sent or queued).
  std::size_t open_streams() const { return streams_.size(); }
  // The origin's SETTINGS_MAX_CONCURRENT_STREAMS (nghttp2's assumption until it arrives).
  std::uint32_t peer_max_concurrent_streams() const;

 private:
  struct Stream {
    OutgoingBody body;  // the request body
    std::size_t header_bytes = 0;
    std::uint32_t fields_seen = 0;
    ResponseHead head;           // being received
    std::vector<Field> trailers;  // being received
    bool final_seen = false;     // the final response head arrived
    bool headers_sent = false;   // our HEADERS went out
    std::size_t unconsumed = 0;  // delivered by on_data, not yet consume()d
  };
  friend struct ClientCallbacks;

  Stream* find(std::int32_t id);
  const Stream* find(std::int32_t id) const;

  ClientEvents& events_;
  ClientLimits limits_;
  nghttp2_session* session_ = nullptr;
  std::map<std::int32_t, Stream> streams_;
  std::int32_t goaway_last_id_ = 0x7fffffff;
  bool goaway_received_ = false;
  bool goaway_sent_ = false;
  bool failed_ = false;
};

}  // namespace ramjet::http::h2
