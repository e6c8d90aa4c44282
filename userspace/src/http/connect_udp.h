// UDP proxying over HTTP/1.1 (RFC 9298 3.2, 3.3, 5), the protocol half: which request
// heads ask for a UDP tunnel and where to, the 101 that opens one, the client's capsule
// stream read payload by payload. The load-time check of configured templates is
// http/connect_udp_config.h; the sockets and the relay are the proxy layer's
// (proxy/connect_udp_tunnel.h).
//
// A tunnel request (RFC 9298 3.2) is
//   GET <path matching the template> HTTP/1.1
//   Host: <the proxy>
//   Connection: Upgrade
//   Upgrade: connect-udp
//   Capsule-Protocol: ?1
// with no body. Only "connect-udp" in Upgrade makes a request one: anything else is served
// as before. A request that asks for connect-udp but breaks a rule is malformed (400).
//
// On HTTP/2 (RFC 9298 3.4, 3.5 over RFC 8441 extended CONNECT) it is one stream:
//   :method CONNECT, :protocol connect-udp, :scheme https (http on h2c),
//   :path <matching the template>, :authority <the proxy>, capsule-protocol: ?1
// answered 200 (any 2xx), then capsules in DATA frames both ways.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "http/capsule.h"
#include "http/h1/parser.h"
#include "http/h2/message.h"
#include "http/masque_template.h"

namespace ramjet::http {

inline constexpr std::string_view kConnectUdpUpgradeToken = "connect-udp";

// ----------------------------------------------------------------------------------------
// The request
// ----------------------------------------------------------------------------------------

enum class ConnectUdpVerdict : std::uint8_t {
  kNotConnectUdp,  // Upgrade does not list connect-udp: not a tunnel request
  kTunnel,         // well-formed; `target` names the UDP target
  kMalformed,      // asks for connect-udp but breaks RFC 9298 3.2: 400 with `reason`
};

struct ConnectUdpRequest {
  ConnectUdpVerdict verdict = ConnectUdpVerdict::kNotConnectUdp;
  std::string reason;    // kMalformed: for Proxy-Status details, never the client's bytes
  TemplateMatch target;  // kTunnel
  std::string path;      // kTunnel: the path and query matched (origin-form)
};

// Classifies a parsed request head. The request target may be origin-form (matched as it
// is) or absolute-form (its path and query matched): a connect-udp upgrade is never
// forwarded to an origin, so whichever form it comes in, it is addressed to this proxy.
// When the template is an absolute URI, the request's authority (absolute-form, else Host)
// must be the template's.
[[nodiscard]] ConnectUdpRequest classify_connect_udp_request(const h1::Head& head,
                                                             const MasqueTemplate& tmpl);

// Classifies an HTTP/2 request head (nghttp2 validated its pseudo-header fields): only
// :protocol connect-udp makes it a tunnel request. `tls`: the connection is TLS (h2), where
// :scheme must be https; on h2c it may be http too.
[[nodiscard]] ConnectUdpRequest classify_connect_udp_request(const h2::RequestHead& head,
                                                             const MasqueTemplate& tmpl, bool tls);

// The 101 that opens a tunnel (RFC 9298 3.3): no Content-Length nor Transfer-Encoding.
// `extra_fields`: complete "Name: value\r\n" lines (from a hook) placed before the blank line.
std::string connect_udp_switching_protocols(std::string_view extra_fields = {});

// ----------------------------------------------------------------------------------------
// The client's capsules
// ----------------------------------------------------------------------------------------

// Reads the capsule stream a client sends on a tunnel and yields the UDP payloads in it
// (DATAGRAM capsules with Context ID 0), skipping what RFC 9297 3.2 and RFC 9298 5 let a
// proxy skip: capsules of other types, and datagrams of other context IDs (none is
// registered on these tunnels, so they could not be understood later either). Errors are
// those of the stream (CapsuleParser) and of an HTTP Datagram (parse_udp_proxying_datagram);
// every one is fatal to the tunnel (RFC 9297 3.3).
class ConnectUdpReader {
 public:
  enum class Status : std::uint8_t { kPayload, kNeedMore, kError };
  struct Result {
    Status status = Status::kNeedMore;
    std::size_t consumed = 0;                             // bytes of this call's input used
    std::span<const std::uint8_t> payload;                // kPayload: valid until the next call
    CapsuleError error = CapsuleError::kCapsuleTooLarge;  // kError
    std::uint64_t offset = 0;  // kError: stream offset of the capsule at fault
  };

  // Parses from the front of `input` (what follows the bytes earlier calls consumed) up to
  // the next payload; call again with input.subspan(consumed) until kNeedMore.
  [[nodiscard]] Result next(std::span<const std::uint8_t> input);
  [[nodiscard]] Result next(std::string_view input) { return next(as_bytes(input)); }
  // The client ended the stream: kError kTruncatedCapsule when inside a capsule.
  [[nodiscard]] Result finish();

  std::uint64_t skipped_capsules() const { return skipped_capsules_; }
  std::uint64_t skipped_datagrams() const { return skipped_datagrams_; }

 private:
  Result fail(CapsuleError error, std::uint64_t offset) const;

  CapsuleParser parser_;
  std::uint64_t skipped_capsules_ = 0;   // types other than DATAGRAM
  std::uint64_t skipped_datagrams_ = 0;  // DATAGRAM capsules of a context ID other than 0
};

}  // namespace ramjet::http
