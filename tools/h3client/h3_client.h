// One HTTP/3 exchange over one QUIC connection (ngtcp2 + GnuTLS + nghttp3): the
// connection, the request stream and the loop that drives them, for ramjet-h3client.
// What the response carries goes to a ResponseHandler; how the exchange ended is the
// returned Result. The load mode drives many such connections, each with many request
// streams, in one poll loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace ramjet::h3client {

struct Field {
  std::string name;
  std::string value;
};
using Fields = std::vector<Field>;

struct ConnectOptions {
  std::string host;
  std::string port;
  // TLS server name, sent (unless it is an IP literal) and verified; empty: `host`.
  std::string sni;
  std::string ca_file;  // empty: the system's trust store
  bool insecure = false;
  // The handshake's deadline, and QUIC's idle timeout after it.
  std::chrono::milliseconds timeout{10'000};
};

enum class ExchangeKind {
  // The body (if any) goes out at once and ends the stream, or the trailers do. The
  // exchange is over when the response is complete.
  kRequest,
  // CONNECT: the body waits for a 2xx head and the stream stays open until the body's
  // source ends. Over when both directions ended (after a non-2xx: when the response did).
  kTunnel,
};

struct Request {
  ExchangeKind kind = ExchangeKind::kRequest;
  Fields fields;     // pseudo-header fields first; names in lower case
  int body_fd = -1;  // read until EOF (poll()ed, so a pipe works); -1: no body
  Fields trailers;   // request only
  // Once this many response body bytes arrived, stop reading the stream: STOP_SENDING
  // with H3_REQUEST_CANCELLED (RFC 9114 4.1.1), as a browser cancelling a download does.
  std::uint64_t stop_reading_after = UINT64_MAX;
  // Tunnel only: HTTP/3 datagrams in QUIC DATAGRAM frames (RFC 9297 2.1). We offer
  // max_datagram_frame_size and SETTINGS_H3_DATAGRAM = 1; if the server offered both too,
  // the DATAGRAM capsules read from body_fd go out as DATAGRAM frames (other capsules stay
  // on the stream) and DATAGRAM frames of our stream come out as DATAGRAM capsules, so
  // the bytes on stdin and stdout are framed as in capsule mode.
  bool datagrams = false;
  // With `datagrams`: stdin's capsules all go on the stream anyway (datagrams are still
  // received in frames) - RFC 9297 lets a sender choose per datagram.
  bool send_capsules = false;
  // Sent as they are, as DATAGRAM frame payloads, once the tunnel is up (tests: malformed
  // or misaddressed datagrams).
  std::vector<std::vector<std::uint8_t>> raw_datagrams;
};

class ResponseHandler {
 public:
  virtual ~ResponseHandler() = default;
  // The final head (interim 1xx heads are skipped); `fields` without `:status`.
  virtual void on_head(int status, const Fields& fields) = 0;
  // false: the bytes cannot be taken (stdout is gone); the exchange fails.
  virtual bool on_body(std::span<const std::uint8_t> data) = 0;
  virtual void on_trailers(const Fields& fields) = 0;
};

enum class Outcome {
  kDone,             // the exchange ended as its kind expects
  kStreamError,      // the request stream was reset or closed with an error code
  kConnectionError,  // the connection failed or was closed after the handshake
  kHandshakeError,   // no connection: refused, TLS failure, version negotiation
  kTimeout,          // handshake timeout or idle timeout
};

struct Result {
  Outcome outcome = Outcome::kDone;
  std::string message;  // why, with the QUIC / HTTP/3 error code when there is one
};

// Connects, sends `request`, hands the response to `handler` and closes the connection.
Result run_exchange(const ConnectOptions& options, const Request& request,
                    ResponseHandler& handler);

struct LoadOptions {
  std::uint64_t connections = 1;
  std::uint64_t requests = 1;     // over all connections together
  std::uint64_t concurrency = 1;  // request streams in flight per connection
};

struct LoadResult {
  std::uint64_t requests_ok = 0;      // the response arrived complete (any status)
  std::uint64_t requests_failed = 0;  // reset, connection lost, or never sent
  std::uint64_t status_2xx = 0;       // of requests_ok
  std::uint64_t body_bytes = 0;
  double seconds = 0;       // from the first handshake's start to the last response
  std::string first_error;  // the first connection failure, for stderr
};

// Opens `load.connections` QUIC connections at once and sends `request` (a request without
// body) `load.requests` times over them: a connection takes the next request whenever it
// has fewer than `load.concurrency` in flight and the server's MAX_STREAMS lets it open a
// stream. Response bodies are read and dropped. Each connection closes when no request is
// left to send and its own are answered.
LoadResult run_load(const ConnectOptions& options, const Request& request, const LoadOptions& load);

}  // namespace ramjet::h3client
