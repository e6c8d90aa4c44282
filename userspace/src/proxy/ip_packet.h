// Raw IP packets of the IP on-ramp (docs/ip_onramp.md): what a packet read from the
// TUN device is (its flow key), why one is refused, and the checksums fixed after a
// hook rewrote it. Hand-written (no packaged library parses and re-sums IP headers
// for us; libpcap and friends only read), bounds-checked, fuzzed (ip_packet_fuzz).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <variant>

#include "ramjet/net.h"

namespace ramjet::proxy {

// Why a packet from the TUN device was dropped before any hook saw it. Each has its
// counter (ip_dropped_<name>).
#define RAMJET_IP_DROP_REASONS(X)                                                      \
  X(too_short, "shorter than its IP header")                                           \
  X(bad_version, "neither IPv4 nor IPv6")                                              \
  X(bad_header_length, "IPv4 IHL below 5 or past the packet")                          \
  X(bad_total_length, "IP length field longer than the packet")                        \
  X(bad_extension_header, "IPv6 extension header chain cut off or too long")           \
  X(truncated_l4_header, "TCP/UDP/ICMP header cut off")                                \
  X(not_routable, "to a multicast, broadcast or link-local address")

enum class IpDropReason : std::uint8_t {
#define RAMJET_X(name, help) name,
  RAMJET_IP_DROP_REASONS(RAMJET_X)
#undef RAMJET_X
};
const char* to_string(IpDropReason r);

// A flow is keyed by its 5-tuple (TCP, UDP) or its 3-tuple (ports 0: ICMP and every
// other protocol, and IP fragments after the first, which carry no ports).
struct IpFlowKey {
  IpAddress src;
  IpAddress dst;
  std::uint8_t protocol = 0;
  std::uint16_t src_port = 0;
  std::uint16_t dst_port = 0;

  bool operator==(const IpFlowKey&) const = default;
};

struct IpFlowKeyHash {
  std::size_t operator()(const IpFlowKey& k) const;
};

struct ParsedIp {
  IpFlowKey key;
  std::size_t l4_offset = 0;  // where the transport header starts
  std::size_t length = 0;     // the IP datagram's length (bytes after it are padding)
  bool fragment = false;      // any fragment (its L4 header, if any, is not re-summed)
};

// Parses the IP header (IPv6: and its extension headers) and the ports.
std::variant<ParsedIp, IpDropReason> parse_ip(std::span<const std::uint8_t> packet);

// For an ICMP or ICMPv6 error (destination unreachable, time exceeded, parameter
// problem, packet too big) addressed to the source of the UDP datagram it quotes: the
// key of the flow that datagram answers (from its destination, the client, to its
// source). Nothing for any other packet, or a quoted fragment after the first.
std::optional<IpFlowKey> icmp_error_about_udp(std::span<const std::uint8_t> packet,
                                              const ParsedIp& ip);

// A TCP segment opening a connection (SYN without ACK), not a fragment.
bool is_tcp_syn(std::span<const std::uint8_t> packet);

// After a rewrite: sets the IP length fields to `packet.size()` (a hook may have
// shortened it) and recomputes the IPv4 header checksum and the TCP, UDP, ICMP or
// ICMPv6 checksum. False when the packet no longer parses (it is then dropped).
bool fix_checksums(std::span<std::uint8_t> packet);

}  // namespace ramjet::proxy
