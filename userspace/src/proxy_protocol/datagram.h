// PROXY protocol v2 over UDP (docs/udp.md "PROXY protocol"): every datagram a load
// balancer forwards starts with a whole v2 header naming the original client, and the
// client's payload follows it in the same datagram. A datagram is never split, so there
// is no "need more": a header cut short is an error for that datagram alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "proxy_protocol/parser.h"
#include "proxy_protocol/reason.h"
#include "ramjet/hooks/proxy_protocol.h"

namespace ramjet::proxy_protocol {

// What the endpoint's proxy_protocol settings say of one datagram's sender.
struct DatagramPolicy {
  bool required = true;  // mode required: every datagram must start with a header
  bool trusted = false;  // the sender is in proxy_protocol.trusted
  std::size_t max_v2_length = Limits{}.max_v2_length;
};

enum class DatagramVerdict : std::uint8_t {
  kHeader,    // `header` is filled; the payload starts at payload_offset
  kNoHeader,  // optional mode, no signature: the whole datagram is payload, from the sender
  kDrop,      // `reason` says why (counted as proxy_protocol_<reason>), `offset` where
};

struct DatagramResult {
  DatagramVerdict verdict = DatagramVerdict::kDrop;
  std::size_t payload_offset = 0;
  Reason reason = Reason::kBadSignature;
  std::size_t offset = 0;
};

// Reads the v2 header at the start of `datagram`. Only v2 travels over UDP (a v1 line is
// kVersionNotAllowed); a PROXY command must name UDP4 or UDP6 addresses (else
// kV2BadFamily); LOCAL (a health check) leaves the sender the client. A header from an
// untrusted sender is kUntrustedPeer, as is, in required mode, any datagram of one.
[[nodiscard]] DatagramResult parse_datagram(std::span<const std::uint8_t> datagram,
                                            ProxyHeader& header, const DatagramPolicy& policy);

}  // namespace ramjet::proxy_protocol
