// What became of a DATAGRAM frame payload (RFC 9221) handed to a QUIC connection to send.
// Its own header so the layers above name it without ngtcp2's.
#pragma once

#include <cstdint>

namespace ramjet::quic {

enum class DatagramQueued : std::uint8_t {
  kQueued,         // goes out with the next packets
  kNotNegotiated,  // the client's transport parameters allow no DATAGRAM frames (or yet)
  kTooLarge,       // over the client's max_datagram_frame_size or the path's MTU
  kQueueFull,      // ServerConnection::kMaxQueuedDatagrams wait already: dropped, not queued
};

}  // namespace ramjet::quic
