#include "proxy/ip_packet.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "runtime/siphash.h"

namespace ramjet::proxy {

namespace {

std::uint16_t load16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }

void store16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}

// The one's-complement sum of `len` bytes, big-endian 16-bit words, not yet folded.
std::uint64_t sum_bytes(const std::uint8_t* p, std::size_t len, std::uint64_t sum = 0) {
  for (; len >= 2; p += 2, len -= 2) sum += load16(p);
  if (len) sum += static_cast<std::uint64_t>(p[0]) << 8;
  return sum;
}

std::uint16_t fold(std::uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

// Bytes of the transport header that must be present to take ports or re-sum.
std::size_t l4_header_size(std::uint8_t protocol) {
  switch (protocol) {
    case IPPROTO_TCP: return 20;
    case IPPROTO_UDP: return 8;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6: return 8;
    default: return 0;
  }
}

constexpr int kMaxExtensionHeaders = 8;

}  // namespace

const char* to_string(IpDropReason r) {
  switch (r) {
#define RAMJET_X(name, help) \
  case IpDropReason::name:   \
    return #name;
    RAMJET_IP_DROP_REASONS(RAMJET_X)
#undef RAMJET_X
  }
  return "unknown";
}

std::size_t IpFlowKeyHash::operator()(const IpFlowKey& k) const {
  // Keyed with a process-wide secret: the ports and, behind a router, the addresses
  // are the clients' choice, and a table they could aim at one bucket would cost every
  // packet of every flow a long chain walk.
  std::uint8_t buf[16 + 16 + 5];
  std::size_t n = 0;
  std::memcpy(buf + n, k.src.data(), k.src.size());
  n += k.src.size();
  std::memcpy(buf + n, k.dst.data(), k.dst.size());
  n += k.dst.size();
  const std::uint8_t rest[5] = {k.protocol, static_cast<std::uint8_t>(k.src_port >> 8),
                                static_cast<std::uint8_t>(k.src_port),
                                static_cast<std::uint8_t>(k.dst_port >> 8),
                                static_cast<std::uint8_t>(k.dst_port)};
  std::memcpy(buf + n, rest, sizeof rest);
  n += sizeof rest;
  return static_cast<std::size_t>(runtime::siphash13(runtime::table_hash_key(), {buf, n}));
}

std::optional<IpFlowKey> icmp_error_about_udp(std::span<const std::uint8_t> packet,
                                              const ParsedIp& ip) {
  if (ip.fragment) return std::nullopt;
  const bool v4 = ip.key.src.is_v4();
  const std::uint8_t* p = packet.data();
  const std::size_t end = std::min(ip.length, packet.size());
  if (ip.l4_offset + 8 > end) return std::nullopt;
  const std::uint8_t type = p[ip.l4_offset];
  if (v4 ? ip.key.protocol != IPPROTO_ICMP || (type != 3 && type != 11 && type != 12)
         : ip.key.protocol != IPPROTO_ICMPV6 || type < 1 || type > 4)
    return std::nullopt;
  const std::size_t q = ip.l4_offset + 8;  // the quoted datagram
  std::size_t ports = 0;
  IpAddress src, dst;
  if (v4) {
    if (q + 20 > end || (p[q] >> 4) != 4 || p[q + 9] != IPPROTO_UDP) return std::nullopt;
    if ((load16(p + q + 6) & 0x1fff) != 0) return std::nullopt;  // no ports in it
    const std::size_t ihl = (p[q] & 0x0f) * 4u;
    if (ihl < 20) return std::nullopt;
    src = IpAddress::from_bytes(IpAddress::Family::kV4, p + q + 12);
    dst = IpAddress::from_bytes(IpAddress::Family::kV4, p + q + 16);
    ports = q + ihl;
  } else {
    if (q + 40 > end || (p[q] >> 4) != 6 || p[q + 6] != IPPROTO_UDP) return std::nullopt;
    src = IpAddress::from_bytes(IpAddress::Family::kV6, p + q + 8);
    dst = IpAddress::from_bytes(IpAddress::Family::kV6, p + q + 24);
    ports = q + 40;
  }
  // The error goes back to where the quoted datagram came from (the original
  // destination a session replied from); one addressed elsewhere is not about it.
  if (ports + 4 > end || !(ip.key.dst == src)) return std::nullopt;
  IpFlowKey about;
  about.src = dst;
  about.dst = src;
  about.protocol = IPPROTO_UDP;
  about.src_port = load16(p + ports + 2);
  about.dst_port = load16(p + ports);
  return about;
}

bool is_tcp_syn(std::span<const std::uint8_t> packet) {
  auto parsed = parse_ip(packet);
  const auto* ip = std::get_if<ParsedIp>(&parsed);
  if (ip == nullptr || ip->fragment || ip->key.protocol != IPPROTO_TCP ||
      ip->l4_offset + 14 > packet.size())
    return false;
  return (packet[ip->l4_offset + 13] & 0x12) == 0x02;
}

std::variant<ParsedIp, IpDropReason> parse_ip(std::span<const std::uint8_t> packet) {
  const std::uint8_t* p = packet.data();
  const std::size_t n = packet.size();
  if (n < 1) return IpDropReason::too_short;
  ParsedIp out;
  std::uint8_t protocol = 0;
  std::size_t offset = 0;
  const unsigned version = p[0] >> 4;
  if (version == 4) {
    if (n < 20) return IpDropReason::too_short;
    const std::size_t ihl = (p[0] & 0x0f) * 4u;
    if (ihl < 20 || ihl > n) return IpDropReason::bad_header_length;
    const std::size_t total = load16(p + 2);
    if (total < ihl || total > n) return IpDropReason::bad_total_length;
    out.length = total;
    const std::uint16_t frag = load16(p + 6);
    out.fragment = (frag & 0x3fff) != 0;  // MF set or an offset
    const bool later_fragment = (frag & 0x1fff) != 0;
    protocol = p[9];
    out.key.src = IpAddress::from_bytes(IpAddress::Family::kV4, p + 12);
    out.key.dst = IpAddress::from_bytes(IpAddress::Family::kV4, p + 16);
    offset = ihl;
    out.key.protocol = protocol;
    out.l4_offset = offset;
    if (later_fragment) return out;  // no transport header: keyed by the 3-tuple
  } else if (version == 6) {
    if (n < 40) return IpDropReason::too_short;
    const std::size_t total = 40 + static_cast<std::size_t>(load16(p + 4));
    if (total > n) return IpDropReason::bad_total_length;
    out.length = total;
    out.key.src = IpAddress::from_bytes(IpAddress::Family::kV6, p + 8);
    out.key.dst = IpAddress::from_bytes(IpAddress::Family::kV6, p + 24);
    protocol = p[6];
    offset = 40;
    for (int i = 0;; ++i) {
      const bool extension = protocol == IPPROTO_HOPOPTS || protocol == IPPROTO_ROUTING ||
                             protocol == IPPROTO_DSTOPTS || protocol == IPPROTO_FRAGMENT;
      if (!extension) break;
      if (i == kMaxExtensionHeaders || offset + 8 > total)
        return IpDropReason::bad_extension_header;
      const std::uint8_t next = p[offset];
      if (protocol == IPPROTO_FRAGMENT) {
        out.fragment = true;
        const std::uint16_t frag = load16(p + offset + 2);
        offset += 8;
        protocol = next;
        if ((frag & 0xfff8) != 0) {  // not the first fragment: no transport header
          out.key.protocol = protocol;
          out.l4_offset = offset;
          return out;
        }
        continue;
      }
      const std::size_t len = (static_cast<std::size_t>(p[offset + 1]) + 1) * 8;
      if (offset + len > total) return IpDropReason::bad_extension_header;
      offset += len;
      protocol = next;
    }
    out.key.protocol = protocol;
    out.l4_offset = offset;
  } else {
    return IpDropReason::bad_version;
  }
  // Only unicast beyond this link can leave through the off-ramp: the rest comes from
  // the device itself (the kernel's own multicast on it), never from a routed client.
  const std::uint8_t* d = out.key.dst.data();
  if (out.key.dst.is_v4() ? (d[0] >= 224 || (d[0] == 169 && d[1] == 254) ||
                             (d[0] == 0))
                          : (d[0] == 0xff || (d[0] == 0xfe && (d[1] & 0xc0) == 0x80)))
    return IpDropReason::not_routable;
  const std::size_t need = l4_header_size(protocol);
  if (out.l4_offset + need > out.length) return IpDropReason::truncated_l4_header;
  if (protocol == IPPROTO_TCP || protocol == IPPROTO_UDP) {
    out.key.src_port = load16(p + out.l4_offset);
    out.key.dst_port = load16(p + out.l4_offset + 2);
  }
  return out;
}

bool fix_checksums(std::span<std::uint8_t> packet) {
  std::uint8_t* p = packet.data();
  const std::size_t n = packet.size();
  if (n < 1) return false;
  // The length fields first, so that a shortened packet parses as what it now is.
  if ((p[0] >> 4) == 4 && n >= 20 && n <= 0xffff) {
    store16(p + 2, static_cast<std::uint16_t>(n));
  } else if ((p[0] >> 4) == 6 && n >= 40 && n - 40 <= 0xffff) {
    store16(p + 4, static_cast<std::uint16_t>(n - 40));
  }
  auto parsed = parse_ip(packet);
  if (!std::holds_alternative<ParsedIp>(parsed)) return false;
  const ParsedIp& ip = std::get<ParsedIp>(parsed);
  const bool v4 = ip.key.src.is_v4();
  if (v4) {
    const std::size_t ihl = (p[0] & 0x0f) * 4u;
    store16(p + 10, 0);
    store16(p + 10, fold(sum_bytes(p, ihl)));
  }
  if (ip.fragment) return true;  // the checksum covers the reassembled datagram
  std::size_t csum_at = 0;
  switch (ip.key.protocol) {
    case IPPROTO_TCP: csum_at = 16; break;
    case IPPROTO_UDP: csum_at = 6; break;
    case IPPROTO_ICMP: csum_at = 2; break;
    case IPPROTO_ICMPV6: csum_at = 2; break;
    default: return true;
  }
  std::uint8_t* l4 = p + ip.l4_offset;
  const std::size_t l4_len = ip.length - ip.l4_offset;
  // UDP over IPv4 may leave its checksum 0 ("none"); keep it so.
  if (ip.key.protocol == IPPROTO_UDP && v4 && load16(l4 + 6) == 0) return true;
  store16(l4 + csum_at, 0);
  std::uint64_t sum = 0;
  if (ip.key.protocol != IPPROTO_ICMP) {  // the pseudo-header (ICMPv4 has none)
    sum = sum_bytes(ip.key.src.data(), ip.key.src.size(), sum);
    sum = sum_bytes(ip.key.dst.data(), ip.key.dst.size(), sum);
    sum += ip.key.protocol;
    sum += l4_len;
  }
  sum = sum_bytes(l4, l4_len, sum);
  std::uint16_t c = fold(sum);
  if (ip.key.protocol == IPPROTO_UDP && c == 0) c = 0xffff;
  store16(l4 + csum_at, c);
  return true;
}

}  // namespace ramjet::proxy
