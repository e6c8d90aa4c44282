// HttpDatagrams: how a connect-udp tunnel's datagrams leave outside its request stream -
// HTTP/3 datagrams in QUIC DATAGRAM frames (RFC 9297 2.1). The session that carries the
// stream implements it (H3Session); HTTP/1.1 and HTTP/2 have none, and there the tunnel
// writes DATAGRAM capsules on the stream (RFC 9297 3.5).
#pragma once

#include <cstdint>
#include <span>

#include "quic/datagram_queued.h"

namespace ramjet::proxy {

class HttpDatagrams {
 public:
  // Whether both sides agreed to datagrams (SETTINGS_H3_DATAGRAM = 1 each way, and
  // DATAGRAM frames in both transport parameters); until then the tunnel uses capsules.
  virtual bool datagrams_enabled() const = 0;
  // One HTTP datagram for request stream `stream` (`payload`: Context ID and UDP payload).
  virtual quic::DatagramQueued send_datagram(std::int64_t stream,
                                             std::span<const std::uint8_t> payload) = 0;

 protected:
  ~HttpDatagrams() = default;
};

}  // namespace ramjet::proxy
