// Tiny packet builder for BPF_PROG_TEST_RUN tables: Ethernet, VLAN tags, IPv4
// (options, fragments), IPv6 (+ extension headers), TCP, UDP, ICMP, ICMPv6.
// Layers are declared outer to inner; build() chains EtherTypes / next headers,
// fills lengths and computes every checksum (IPv4 header, TCP/UDP/ICMP/ICMPv6
// with the pseudo-header where the protocol has one).
#pragma once

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace ramjet::test {

using Bytes = std::vector<uint8_t>;
using Mac = std::array<uint8_t, 6>;

inline constexpr uint16_t kEthP8021Q = 0x8100;
inline constexpr uint16_t kEthP8021AD = 0x88A8;
inline constexpr uint8_t kNextHdrHop = 0;
inline constexpr uint8_t kNextHdrRouting = 43;
inline constexpr uint8_t kNextHdrFragment = 44;
inline constexpr uint8_t kNextHdrDest = 60;
inline constexpr uint8_t kProtoIcmpv6 = 58;

inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpAck = 0x10;

// An IPv4 or IPv6 address in network order (IPv4 in the first 4 bytes).
struct IpAddr {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};

  static IpAddr parse(const std::string& text) {
    IpAddr a;
    a.v6 = text.find(':') != std::string::npos;
    if (inet_pton(a.v6 ? AF_INET6 : AF_INET, text.c_str(), a.bytes.data()) != 1)
      throw std::invalid_argument("bad address: " + text);
    return a;
  }
  size_t size() const { return v6 ? 16 : 4; }
};

// One's-complement sum of big-endian 16-bit words.
inline uint32_t csum_add(const uint8_t* p, size_t len, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += uint32_t(p[i] << 8 | p[i + 1]);
  if (len & 1) sum += uint32_t(p[len - 1] << 8);
  return sum;
}
inline uint16_t csum_finish(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}
inline void put16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
inline uint16_t get16(const uint8_t* p) {
  return uint16_t(p[0] << 8 | p[1]);
}

class PacketBuilder {
 public:
  PacketBuilder& eth(Mac dst = {2, 0, 0, 0, 0, 0xbb}, Mac src = {2, 0, 0, 0, 0, 0xaa}) {
    Layer l{Kind::kEth};
    l.dst_mac = dst;
    l.src_mac = src;
    layers_.push_back(l);
    return *this;
  }
  // A tag; `tpid` is the EtherType announcing it (0x8100 or 0x88A8).
  PacketBuilder& vlan(uint16_t vid, uint16_t tpid = kEthP8021Q) {
    Layer l{Kind::kVlan};
    l.vid = vid;
    l.tpid = tpid;
    layers_.push_back(l);
    return *this;
  }
  // Overrides the EtherType of the previous L2 layer (e.g. ARP).
  PacketBuilder& ethertype(uint16_t type) {
    layers_.back().ethertype_override = type;
    return *this;
  }
  struct Ipv4Options {
    uint8_t ttl = 64;
    uint8_t tos = 0;
    uint16_t frag_off = 0;  // host order: flags (MF = 0x2000) | offset in 8-byte units
    Bytes options;          // raw option bytes, padded with EOL (0) to a multiple of 4
    uint16_t id = 0x1234;
  };
  PacketBuilder& ipv4(const std::string& src, const std::string& dst) {
    return ipv4(src, dst, Ipv4Options{});
  }
  PacketBuilder& ipv4(const std::string& src, const std::string& dst, Ipv4Options o) {
    Layer l{Kind::kIpv4};
    l.src = IpAddr::parse(src);
    l.dst = IpAddr::parse(dst);
    l.ttl = o.ttl;
    l.tos = o.tos;
    l.frag_off = o.frag_off;
    l.options = std::move(o.options);
    while (l.options.size() % 4) l.options.push_back(0);
    l.id = o.id;
    layers_.push_back(l);
    return *this;
  }
  PacketBuilder& ipv6(const std::string& src, const std::string& dst, uint8_t hop_limit = 64) {
    Layer l{Kind::kIpv6};
    l.src = IpAddr::parse(src);
    l.dst = IpAddr::parse(dst);
    l.ttl = hop_limit;
    layers_.push_back(l);
    return *this;
  }
  // Hop-by-hop / routing / destination options: `len8` is the header length in
  // 8-byte units (total = len8 * 8, at least 1).
  PacketBuilder& ipv6_ext(uint8_t type, uint8_t len8 = 1) {
    Layer l{Kind::kIpv6Ext};
    l.ext_type = type;
    l.ext_len8 = len8;
    layers_.push_back(l);
    return *this;
  }
  // Fragment header: offset in 8-byte units, more-fragments flag.
  PacketBuilder& ipv6_frag(uint16_t offset, bool more) {
    Layer l{Kind::kIpv6Frag};
    l.frag_off = uint16_t(offset << 3 | (more ? 1 : 0));
    layers_.push_back(l);
    return *this;
  }
  PacketBuilder& tcp(uint16_t sport, uint16_t dport, uint8_t flags = kTcpSyn) {
    Layer l{Kind::kTcp};
    l.sport = sport;
    l.dport = dport;
    l.flags = flags;
    layers_.push_back(l);
    return *this;
  }
  PacketBuilder& udp(uint16_t sport, uint16_t dport) {
    Layer l{Kind::kUdp};
    l.sport = sport;
    l.dport = dport;
    layers_.push_back(l);
    return *this;
  }
  PacketBuilder& icmp(uint8_t type, uint8_t code, uint16_t id = 0, uint16_t seq = 0) {
    Layer l{Kind::kIcmp};
    l.icmp_type = type;
    l.icmp_code = code;
    l.sport = id;
    l.dport = seq;
    layers_.push_back(l);
    return *this;
  }
  PacketBuilder& icmpv6(uint8_t type, uint8_t code, uint16_t id = 0, uint16_t seq = 0) {
    Layer l{Kind::kIcmpv6};
    l.icmp_type = type;
    l.icmp_code = code;
    l.sport = id;
    l.dport = seq;
    layers_.push_back(l);
    return *this;
  }
  PacketBuilder& payload(Bytes bytes) {
    Layer l{Kind::kPayload};
    l.options = std::move(bytes);
    layers_.push_back(l);
    return *this;
  }
  PacketBuilder& payload(size_t n, uint8_t fill = 0xab) { return payload(Bytes(n, fill)); }

  Bytes build() const {
    Bytes out;
    std::vector<size_t> offsets(layers_.size());
    for (size_t i = 0; i < layers_.size(); i++) {
      offsets[i] = out.size();
      emit(i, out);
    }
    // Inner to outer: lengths and checksums depend on what follows.
    for (size_t i = layers_.size(); i-- > 0;) finish(i, offsets, out);
    return out;
  }

 private:
  enum class Kind {
    kEth,
    kVlan,
    kIpv4,
    kIpv6,
    kIpv6Ext,
    kIpv6Frag,
    kTcp,
    kUdp,
    kIcmp,
    kIcmpv6,
    kPayload
  };
  struct Layer {
    Kind kind;
    Mac dst_mac{}, src_mac{};
    uint16_t vid = 0, tpid = 0, ethertype_override = 0;
    IpAddr src, dst;
    uint8_t ttl = 64, tos = 0;
    uint16_t frag_off = 0, id = 0;
    Bytes options;
    uint8_t ext_type = 0, ext_len8 = 1;
    uint16_t sport = 0, dport = 0;
    uint8_t flags = 0, icmp_type = 0, icmp_code = 0;
  };

  // EtherType or IP protocol number that announces layer i.
  uint16_t type_of(size_t i) const {
    if (i >= layers_.size()) return 59;  // IPv6 "no next header"; IPv4 payload-less
    switch (layers_[i].kind) {
      case Kind::kVlan:
        return layers_[i].tpid;
      case Kind::kIpv4:
        return 0x0800;
      case Kind::kIpv6:
        return 0x86DD;
      case Kind::kIpv6Ext:
        return layers_[i].ext_type;
      case Kind::kIpv6Frag:
        return kNextHdrFragment;
      case Kind::kTcp:
        return IPPROTO_TCP;
      case Kind::kUdp:
        return IPPROTO_UDP;
      case Kind::kIcmp:
        return IPPROTO_ICMP;
      case Kind::kIcmpv6:
        return kProtoIcmpv6;
      default:
        return 0;
    }
  }

  void emit(size_t i, Bytes& out) const {
    const Layer& l = layers_[i];
    size_t at = out.size();
    switch (l.kind) {
      case Kind::kEth:
        out.resize(at + 14);
        std::memcpy(&out[at], l.dst_mac.data(), 6);
        std::memcpy(&out[at + 6], l.src_mac.data(), 6);
        put16(&out[at + 12], l.ethertype_override ? l.ethertype_override : type_of(i + 1));
        break;
      case Kind::kVlan:
        // The tag's TPID was written by the previous layer; emit TCI + inner type.
        out.resize(at + 4);
        put16(&out[at], l.vid);
        put16(&out[at + 2], l.ethertype_override ? l.ethertype_override : type_of(i + 1));
        break;
      case Kind::kIpv4: {
        size_t hl = 20 + l.options.size();
        out.resize(at + hl);
        out[at] = uint8_t(0x40 | hl / 4);
        out[at + 1] = l.tos;
        put16(&out[at + 4], l.id);
        put16(&out[at + 6], l.frag_off);
        out[at + 8] = l.ttl;
        out[at + 9] = uint8_t(type_of(i + 1));
        std::memcpy(&out[at + 12], l.src.bytes.data(), 4);
        std::memcpy(&out[at + 16], l.dst.bytes.data(), 4);
        std::memcpy(&out[at + 20], l.options.data(), l.options.size());
        break;
      }
      case Kind::kIpv6:
        out.resize(at + 40);
        out[at] = 0x60;
        out[at + 6] = uint8_t(type_of(i + 1));
        out[at + 7] = l.ttl;
        std::memcpy(&out[at + 8], l.src.bytes.data(), 16);
        std::memcpy(&out[at + 24], l.dst.bytes.data(), 16);
        break;
      case Kind::kIpv6Ext:
        out.resize(at + 8 * size_t(l.ext_len8 ? l.ext_len8 : 1));
        out[at] = uint8_t(type_of(i + 1));
        out[at + 1] = uint8_t((l.ext_len8 ? l.ext_len8 : 1) - 1);
        if (l.ext_type != kNextHdrRouting) out[at + 2] = 1;  // PadN option covering the rest
        if (l.ext_type != kNextHdrRouting) out[at + 3] = uint8_t(out.size() - at - 4);
        break;
      case Kind::kIpv6Frag:
        out.resize(at + 8);
        out[at] = uint8_t(type_of(i + 1));
        put16(&out[at + 2], l.frag_off);
        put16(&out[at + 6], 0x4242);
        break;
      case Kind::kTcp:
        out.resize(at + 20);
        put16(&out[at], l.sport);
        put16(&out[at + 2], l.dport);
        put16(&out[at + 4], 0x0100);  // seq
        out[at + 12] = 5 << 4;
        out[at + 13] = l.flags;
        put16(&out[at + 14], 0xffff);
        break;
      case Kind::kUdp:
        out.resize(at + 8);
        put16(&out[at], l.sport);
        put16(&out[at + 2], l.dport);
        break;
      case Kind::kIcmp:
      case Kind::kIcmpv6:
        out.resize(at + 8);
        out[at] = l.icmp_type;
        out[at + 1] = l.icmp_code;
        put16(&out[at + 4], l.sport);
        put16(&out[at + 6], l.dport);
        break;
      case Kind::kPayload:
        out.insert(out.end(), l.options.begin(), l.options.end());
        break;
    }
  }

  // Nearest enclosing IP layer of layer i, or -1.
  long ip_layer_before(size_t i) const {
    for (size_t j = i; j-- > 0;)
      if (layers_[j].kind == Kind::kIpv4 || layers_[j].kind == Kind::kIpv6) return long(j);
    return -1;
  }

  uint32_t pseudo_header(long ip, uint8_t proto, size_t l4_len) const {
    if (ip < 0) return 0;
    const Layer& l = layers_[size_t(ip)];
    uint32_t sum = csum_add(l.src.bytes.data(), l.src.size());
    sum = csum_add(l.dst.bytes.data(), l.dst.size(), sum);
    sum += proto;
    sum += uint32_t(l4_len & 0xffff) + uint32_t(l4_len >> 16);
    return sum;
  }

  void finish(size_t i, const std::vector<size_t>& offs, Bytes& out) const {
    const Layer& l = layers_[i];
    size_t at = offs[i];
    size_t rest = out.size() - at;
    switch (l.kind) {
      case Kind::kIpv4: {
        put16(&out[at + 2], uint16_t(rest));
        size_t hl = 20 + l.options.size();
        out[at + 10] = out[at + 11] = 0;
        put16(&out[at + 10], csum_finish(csum_add(&out[at], hl)));
        break;
      }
      case Kind::kIpv6:
        put16(&out[at + 4], uint16_t(rest - 40));
        break;
      case Kind::kTcp:
      case Kind::kUdp:
      case Kind::kIcmpv6: {
        uint8_t proto = uint8_t(type_of(i));
        size_t csum_at = l.kind == Kind::kTcp ? 16 : l.kind == Kind::kUdp ? 6 : 2;
        if (l.kind == Kind::kUdp) put16(&out[at + 4], uint16_t(rest));
        put16(&out[at + csum_at], 0);
        uint32_t sum = pseudo_header(ip_layer_before(i), proto, rest);
        uint16_t c = csum_finish(csum_add(&out[at], rest, sum));
        if (l.kind == Kind::kUdp && c == 0) c = 0xffff;
        put16(&out[at + csum_at], c);
        break;
      }
      case Kind::kIcmp:
        put16(&out[at + 2], 0);
        put16(&out[at + 2], csum_finish(csum_add(&out[at], rest)));
        break;
      default:
        break;
    }
  }

  std::vector<Layer> layers_;
};

// Convenience: a copy of `p` cut to its first n bytes.
inline Bytes truncated(Bytes p, size_t n) {
  p.resize(n);
  return p;
}

// Verifies the IPv4 header checksum of a frame whose IP header starts at l3.
inline bool ipv4_header_checksum_ok(const Bytes& frame, size_t l3 = 14) {
  size_t hl = size_t(frame[l3] & 0x0f) * 4;
  return csum_finish(csum_add(&frame[l3], hl)) == 0;
}

}  // namespace ramjet::test
