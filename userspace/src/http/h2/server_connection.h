// ServerConnection: the server side of one HTTP/2 connection (RFC 9113), sans I/O.
//
// It wraps an nghttp2 server session: recv() takes the bytes the client sent,
// output() gives the bytes to send back, and what happened in between is reported
// through ServerEvents (a validated request head, body data, the end of a stream, a
// reset, a GOAWAY). The owner answers with submit_response(), send_data()/end_data()
// (the body goes out as the client's flow-control window allows; send_data() with
// more resumes a stream that had nothing to send), reset() and goaway().
//
// Request bodies are flow controlled by the owner: the client may send only as much
// as consume() has given back, so a slow upstream slows the client down (a CONNECT
// tunnel's backpressure).
//
// The abuse defences are here, each reported once through on_defence(): rapid reset
// (nghttp2's stream reset rate limit), CONTINUATION, SETTINGS and PING floods, header
// lists over the limit (answered 431), too many concurrent streams (refused), and
// malformed requests (pseudo-headers, connection-specific fields, uppercase names,
// a :path with whitespace, content-length disagreeing with DATA: stream errors,
// reported before the owner sees anything of the stream).
//
// No threads, no clock of its own (recv() is given the time), no I/O.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "http/h2/message.h"
#include "http/h2/nghttp2_glue.h"
#include "http/h2/token_bucket.h"

struct nghttp2_session;

namespace ramjet::http::h2 {

// Why the connection acted against its client; each is counted by the owner.
enum class Defence : std::uint8_t {
  kRapidReset,             // streams reset faster than the limit: GOAWAY
  kContinuationFlood,      // too many CONTINUATION frames for one header block: GOAWAY
  kSettingsFlood,          // SETTINGS faster than the limit: GOAWAY
  kPingFlood,              // PING faster than the limit: GOAWAY
  kHeaderListTooLarge,     // a request's header list over the limit: 431
  kTooManyStreams,         // over SETTINGS_MAX_CONCURRENT_STREAMS: stream refused
  kMalformedRequest,       // bad fields or pseudo-headers: stream error
  kContentLengthMismatch,  // DATA disagreeing with content-length: stream error
  kProtocolError,          // any other connection error: GOAWAY
};
inline constexpr std::size_t kDefenceCount = 9;

const char* to_string(Defence d);

struct Limits {
  std::uint32_t max_concurrent_streams = 100;
  std::uint32_t max_header_list = 64 * 1024;  // bytes as RFC 9113 6.5.2 counts them
  std::uint32_t max_fields = 100;
  std::uint32_t reset_burst = 1000;  // RST_STREAM frames in a burst ...
  std::uint32_t reset_rate = 33;     // ... and per second after it
  std::uint32_t max_continuations = 8;
  std::uint32_t ping_burst = 100;
  std::uint32_t ping_rate = 10;
  std::uint32_t settings_burst = 100;
  std::uint32_t settings_rate = 10;
  std::uint32_t stream_window = 256 * 1024;       // what a client may send ahead, per stream
  std::uint32_t connection_window = 1024 * 1024;  // ... and over all streams
};

class ServerEvents {
 public:
  virtual ~ServerEvents() = default;
  virtual void on_request(std::int32_t stream, RequestHead head) = 0;
  // Body bytes of a request; give them back with consume() once they are passed on.
  virtual void on_data(std::int32_t stream, std::string_view data) = 0;
  // Trailer fields of a request body, just before its on_end_stream.
  virtual void on_trailers(std::int32_t /*stream*/, std::vector<Field> /*fields*/) {}
  virtual void on_end_stream(std::int32_t stream) = 0;
  // The stream is gone: finished (error_code 0) or reset by either side. Only for
  // streams on_request announced.
  virtual void on_stream_close(std::int32_t stream, std::uint32_t error_code) = 0;
  virtual void on_goaway(std::int32_t /*last_stream_id*/, std::uint32_t /*error_code*/) {}
  virtual void on_defence(Defence /*d*/) {}
};

class ServerConnection {
 public:
  using Clock = TokenBucket::Clock;

  ServerConnection(ServerEvents& events, const Limits& limits);
  ~ServerConnection();
  ServerConnection(const ServerConnection&) = delete;
  ServerConnection& operator=(const ServerConnection&) = delete;

  // Feeds what the client sent. false: the connection is over (a fatal protocol error
  // or a flood); send what output() still has (usually a GOAWAY), then close.
  bool recv(std::string_view bytes, Clock::time_point now);
  // Appends every frame that is ready to `out`.
  void output(std::string& out);
  // Neither side has anything more to say: close the connection.
  bool done() const;

  // The response head; with end_stream nothing follows, else send_data()/end_data().
  // Connection-specific fields are left out and names lowercased. false if the stream
  // is gone.
  bool submit_response(std::int32_t stream, int status, const std::vector<Field>& fields,
                       bool end_stream);
  // An interim (1xx) response ahead of the final one.
  void submit_interim(std::int32_t stream, int status, const std::vector<Field>& fields);
  void send_data(std::int32_t stream, std::string_view data);
  // The body is complete; `trailers`, if any, follow it (RFC 9113 8.1).
  void end_data(std::int32_t stream, std::vector<Field> trailers = {});
  // Body bytes queued for the stream and not yet framed (the client's window is shut).
  std::size_t buffered(std::int32_t stream) const;
  void reset(std::int32_t stream, std::uint32_t error_code);
  // Announces that no new stream will be served: GOAWAY with the last stream id
  // processed; the streams up to it run to their end.
  void goaway(std::uint32_t error_code = 0);
  // The owner passed on `n` body bytes of the stream: the client may send as many more.
  void consume(std::int32_t stream, std::size_t n);
  // Streams open now (announced and not yet closed).
  std::size_t open_streams() const { return streams_.size(); }
  std::uint64_t defence_count(Defence d) const { return defences_[static_cast<std::size_t>(d)]; }

 private:
  struct Stream {
    std::size_t header_bytes = 0;
    std::uint32_t fields_seen = 0;
    bool oversized = false;
    bool announced = false;  // on_request was called
    RequestHead head;
    OutgoingBody body;  // the response body
    std::vector<Field> trailers_in;   // request trailers received so far
    std::size_t unconsumed = 0;       // delivered by on_data, not yet consume()d
  };
  friend struct Callbacks;

  Stream* find(std::int32_t id);
  const Stream* find(std::int32_t id) const;
  void defend(Defence d);
  // Ends the connection for a flood or protocol error: GOAWAY with that code.
  void terminate(Defence d, std::uint32_t error_code);

  ServerEvents& events_;
  Limits limits_;
  nghttp2_session* session_ = nullptr;
  std::map<std::int32_t, Stream> streams_;
  std::set<std::int32_t> own_resets_;  // RST_STREAMs the owner asked for
  TokenBucket pings_;
  TokenBucket settings_;
  Clock::time_point now_{};
  std::uint8_t last_frame_type_ = 0xff;
  bool terminated_ = false;  // a connection-level defence already fired
  bool goaway_ours_ = false;
  std::array<std::uint64_t, kDefenceCount> defences_{};
};

}  // namespace ramjet::http::h2
