// The PROXY protocol header (HAProxy's proxy-protocol.txt, v1 and v2) as hooks see it:
// what a trusted load balancer in front of an endpoint said about the connection it relays.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ramjet/net.h"

namespace ramjet {

// One TLV kept as it arrived (custom 0xE0-0xEF types, and every type not decoded below).
struct ProxyTlv {
  std::uint8_t type = 0;
  std::string value;  // raw bytes

  friend bool operator==(const ProxyTlv&, const ProxyTlv&) = default;
};

// PP2_TYPE_SSL (0x20): what the sender's TLS termination learnt about the client.
struct ProxySslInfo {
  // PP2_CLIENT_* bits of the `client` field.
  static constexpr std::uint8_t kClientSsl = 0x01;
  static constexpr std::uint8_t kClientCertConn = 0x02;
  static constexpr std::uint8_t kClientCertSess = 0x04;

  std::uint8_t client = 0;
  std::uint32_t verify = 0;     // 0: the client presented a certificate that verified
  std::string version;          // PP2_SUBTYPE_SSL_VERSION, e.g. "TLSv1.3"
  std::string cn;               // PP2_SUBTYPE_SSL_CN, the client certificate's Common Name
  std::string cipher;           // PP2_SUBTYPE_SSL_CIPHER
  std::string sig_alg;          // PP2_SUBTYPE_SSL_SIG_ALG
  std::string key_alg;          // PP2_SUBTYPE_SSL_KEY_ALG
  std::vector<ProxyTlv> other;  // sub-TLVs of other types, raw, in arrival order

  friend bool operator==(const ProxySslInfo&, const ProxySslInfo&) = default;
};

struct ProxyHeader {
  enum class Version : std::uint8_t { kV1 = 1, kV2 = 2 };
  // LOCAL: the sender's own connection (a health check); the real peer stays the client.
  enum class Command : std::uint8_t { kLocal = 0, kProxy = 1 };
  enum class Family : std::uint8_t { kUnspec = 0, kInet = 1, kInet6 = 2, kUnix = 3 };
  enum class Transport : std::uint8_t { kUnspec = 0, kStream = 1, kDgram = 2 };

  Version version = Version::kV2;
  Command command = Command::kProxy;
  Family family = Family::kUnspec;  // v1: TCP4 -> kInet, TCP6 -> kInet6, UNKNOWN -> kUnspec
  Transport transport = Transport::kUnspec;

  // kInet / kInet6: the original client and the address it connected to.
  std::optional<SocketAddress> source;
  std::optional<SocketAddress> destination;
  // kUnix: the socket paths (up to 108 bytes each, trailing NULs removed).
  std::string source_path;
  std::string destination_path;

  // v2 TLVs (all empty for v1).
  std::string alpn;             // PP2_TYPE_ALPN
  std::string authority;        // PP2_TYPE_AUTHORITY: the host name the client asked for (SNI)
  std::string unique_id;        // PP2_TYPE_UNIQUE_ID (at most 128 bytes)
  std::string netns;            // PP2_TYPE_NETNS
  bool crc32c_checked = false;  // a PP2_TYPE_CRC32C was present and matched
  std::optional<ProxySslInfo> ssl;
  std::vector<ProxyTlv> other;  // every other TLV (custom 0xE0-0xEF included), raw

  // The address the connection should be attributed to: the header's source when the
  // header names one (PROXY command, inet family), otherwise none (keep the real peer).
  std::optional<SocketAddress> client() const {
    if (command != Command::kProxy) return std::nullopt;
    return source;
  }

  // The first raw TLV of `type`, if any.
  const ProxyTlv* find(std::uint8_t type) const {
    for (const auto& t : other)
      if (t.type == type) return &t;
    return nullptr;
  }

  friend bool operator==(const ProxyHeader&, const ProxyHeader&) = default;
};

}  // namespace ramjet
