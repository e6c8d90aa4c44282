// Network value types shared by hooks and the engine: IP addresses, socket
// addresses, CIDR prefixes and host:port pairs. Parsing never throws; it returns
// std::nullopt for anything that is not exactly the expected form.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <charconv>
#include <compare>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace ramjet {

// An IPv4 or IPv6 address. IPv4 is stored as such (not v4-mapped).
class IpAddress {
 public:
  enum class Family : std::uint8_t { kV4, kV6 };

  IpAddress() = default;
  static IpAddress v4(std::uint32_t host_order) {
    IpAddress a;
    a.family_ = Family::kV4;
    std::uint32_t n = htonl(host_order);
    std::memcpy(a.bytes_.data(), &n, 4);
    return a;
  }
  static IpAddress from_bytes(Family f, const void* p) {
    IpAddress a;
    a.family_ = f;
    std::memcpy(a.bytes_.data(), p, f == Family::kV4 ? 4 : 16);
    return a;
  }
  static std::optional<IpAddress> parse(std::string_view s) {
    if (s.empty() || s.size() >= INET6_ADDRSTRLEN) return std::nullopt;
    char buf[INET6_ADDRSTRLEN];
    std::memcpy(buf, s.data(), s.size());
    buf[s.size()] = 0;
    IpAddress a;
    if (inet_pton(AF_INET, buf, a.bytes_.data()) == 1) {
      a.family_ = Family::kV4;
      return a;
    }
    if (inet_pton(AF_INET6, buf, a.bytes_.data()) == 1) {
      a.family_ = Family::kV6;
      return a;
    }
    return std::nullopt;
  }

  Family family() const { return family_; }
  bool is_v4() const { return family_ == Family::kV4; }
  bool is_v6() const { return family_ == Family::kV6; }
  std::size_t size() const { return is_v4() ? 4 : 16; }
  const std::uint8_t* data() const { return bytes_.data(); }

  // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address it carries.
  IpAddress unmapped() const {
    static constexpr std::uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (is_v6() && std::memcmp(bytes_.data(), kPrefix, 12) == 0)
      return from_bytes(Family::kV4, bytes_.data() + 12);
    return *this;
  }

  std::string to_string() const {
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof buf);
    return buf;
  }

  friend bool operator==(const IpAddress& a, const IpAddress& b) {
    return a.family_ == b.family_ && std::memcmp(a.bytes_.data(), b.bytes_.data(), a.size()) == 0;
  }

 private:
  Family family_ = Family::kV4;
  std::array<std::uint8_t, 16> bytes_{};
};

// An IP address and a port: what a socket binds or connects to.
class SocketAddress {
 public:
  SocketAddress() = default;
  SocketAddress(IpAddress ip, std::uint16_t port) : ip_(ip), port_(port) {}

  // "1.2.3.4:80", "[::1]:80". Names are not addresses: see HostPort.
  static std::optional<SocketAddress> parse(std::string_view s) {
    std::string_view host;
    std::string_view port;
    if (!split_host_port(s, host, port)) return std::nullopt;
    auto ip = IpAddress::parse(host);
    auto p = parse_port(port);
    if (!ip || !p) return std::nullopt;
    return SocketAddress(*ip, *p);
  }
  static std::optional<SocketAddress> from_sockaddr(const sockaddr* sa, socklen_t len) {
    if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
      auto* in = reinterpret_cast<const sockaddr_in*>(sa);
      return SocketAddress(IpAddress::from_bytes(IpAddress::Family::kV4, &in->sin_addr),
                           ntohs(in->sin_port));
    }
    if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
      auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
      return SocketAddress(
          IpAddress::from_bytes(IpAddress::Family::kV6, &in6->sin6_addr).unmapped(),
          ntohs(in6->sin6_port));
    }
    return std::nullopt;
  }

  // Fills `out`; returns the length to pass to bind/connect.
  socklen_t to_sockaddr(sockaddr_storage& out) const {
    std::memset(&out, 0, sizeof out);
    if (ip_.is_v4()) {
      auto* in = reinterpret_cast<sockaddr_in*>(&out);
      in->sin_family = AF_INET;
      in->sin_port = htons(port_);
      std::memcpy(&in->sin_addr, ip_.data(), 4);
      return sizeof(sockaddr_in);
    }
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&out);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port_);
    std::memcpy(&in6->sin6_addr, ip_.data(), 16);
    return sizeof(sockaddr_in6);
  }

  const IpAddress& ip() const { return ip_; }
  std::uint16_t port() const { return port_; }
  int family() const { return ip_.is_v4() ? AF_INET : AF_INET6; }

  std::string to_string() const {
    if (ip_.is_v6()) return "[" + ip_.to_string() + "]:" + std::to_string(port_);
    return ip_.to_string() + ":" + std::to_string(port_);
  }

  friend bool operator==(const SocketAddress& a, const SocketAddress& b) {
    return a.ip_ == b.ip_ && a.port_ == b.port_;
  }

  static std::optional<std::uint16_t> parse_port(std::string_view s) {
    unsigned v = 0;
    if (s.empty() || s.size() > 5) return std::nullopt;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v > 65535) return std::nullopt;
    return static_cast<std::uint16_t>(v);
  }

  // "host:port" or "[v6]:port" -> host and port views. False if not of that shape.
  static bool split_host_port(std::string_view s, std::string_view& host, std::string_view& port) {
    if (!s.empty() && s.front() == '[') {
      auto close = s.find(']');
      if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':')
        return false;
      host = s.substr(1, close - 1);
      port = s.substr(close + 2);
      return !host.empty() && host.find(':') != std::string_view::npos;
    }
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    host = s.substr(0, colon);
    if (host.find(':') != std::string_view::npos) return false;  // bare v6 needs brackets
    port = s.substr(colon + 1);
    return true;
  }

 private:
  IpAddress ip_;
  std::uint16_t port_ = 0;
};

// A host (DNS name or IP literal) and a port, as written in config or a request.
struct HostPort {
  std::string host;  // without brackets for IPv6 literals
  std::uint16_t port = 0;

  static std::optional<HostPort> parse(std::string_view s) {
    std::string_view host;
    std::string_view port;
    if (!SocketAddress::split_host_port(s, host, port)) return std::nullopt;
    auto p = SocketAddress::parse_port(port);
    if (!p || !valid_host(host)) return std::nullopt;
    return HostPort{std::string(host), *p};
  }

  // An IP literal, or a name made of LDH labels (RFC 1123) of 1..63 bytes.
  static bool valid_host(std::string_view h) {
    if (IpAddress::parse(h)) return true;
    if (h.empty() || h.size() > 253) return false;
    std::size_t label = 0;
    for (char c : h) {
      if (c == '.') {
        if (label == 0) return false;
        label = 0;
        continue;
      }
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '_';
      if (!ok || ++label > 63) return false;
    }
    return true;
  }

  std::optional<IpAddress> ip() const { return IpAddress::parse(host); }

  std::string to_string() const {
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
  }
  friend bool operator==(const HostPort&, const HostPort&) = default;
};

// An address prefix: 10.0.0.0/8, fd00::/8. A bare address is a /32 or /128.
class Cidr {
 public:
  Cidr() = default;
  Cidr(IpAddress base, std::uint8_t len) : base_(mask(base, len)), len_(len) {}

  static std::optional<Cidr> parse(std::string_view s) {
    auto slash = s.find('/');
    auto ip = IpAddress::parse(s.substr(0, slash));
    if (!ip) return std::nullopt;
    unsigned max = ip->is_v4() ? 32 : 128;
    unsigned len = max;
    if (slash != std::string_view::npos) {
      auto rest = s.substr(slash + 1);
      if (rest.empty() || rest.size() > 3) return std::nullopt;
      auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), len);
      if (ec != std::errc() || p != rest.data() + rest.size() || len > max) return std::nullopt;
    }
    return Cidr(*ip, static_cast<std::uint8_t>(len));
  }

  bool contains(const IpAddress& raw) const {
    IpAddress a = raw.unmapped();
    if (a.family() != base_.family()) return false;
    return mask(a, len_) == base_;
  }

  const IpAddress& base() const { return base_; }
  std::uint8_t prefix_len() const { return len_; }
  std::string to_string() const { return base_.to_string() + "/" + std::to_string(len_); }
  friend bool operator==(const Cidr& a, const Cidr& b) {
    return a.base_ == b.base_ && a.len_ == b.len_;
  }

 private:
  static IpAddress mask(const IpAddress& a, unsigned len) {
    std::uint8_t b[16];
    std::memcpy(b, a.data(), a.size());
    for (unsigned i = 0; i < a.size(); ++i) {
      unsigned bits = len > i * 8 ? len - i * 8 : 0;
      if (bits < 8) b[i] &= static_cast<std::uint8_t>(0xff00u >> bits);
    }
    return IpAddress::from_bytes(a.family(), b);
  }

  IpAddress base_;
  std::uint8_t len_ = 0;
};

}  // namespace ramjet
