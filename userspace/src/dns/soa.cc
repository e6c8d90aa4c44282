#include "dns/soa.h"

#include <arpa/nameser.h>

#include <algorithm>

namespace ramjet::dns {

namespace {
std::uint16_t be16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}
std::uint32_t be32(const std::uint8_t* p) {
  return std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | p[3];
}

// RFC 2181 section 8: a TTL with the top bit set is treated as zero.
std::uint32_t sane_ttl(std::uint32_t ttl) {
  return (ttl & 0x80000000u) ? 0 : ttl;
}

}  // namespace

std::optional<std::uint32_t> soa_negative_ttl(std::span<const std::uint8_t> msg) {
  const std::size_t size = msg.size();
  if (size < 12) return std::nullopt;
  const std::uint8_t* m = msg.data();
  // Skips a possibly compressed name; only its length matters here.
  auto skip_name = [m, size](std::size_t& p) {
    while (p < size) {
      std::uint8_t len = m[p];
      if ((len & 0xC0) == 0xC0) {
        p += 2;
        return p <= size;
      }
      if ((len & 0xC0) != 0) return false;  // reserved label types
      p += 1 + len;
      if (len == 0) return true;
    }
    return false;
  };
  std::size_t p = 12;
  for (unsigned i = be16(m + 4); i > 0; --i) {
    if (!skip_name(p) || (p += 4) > size) return std::nullopt;
  }
  for (unsigned i = be16(m + 6); i > 0; --i) {
    if (!skip_name(p) || p + 10 > size) return std::nullopt;
    p += 10 + be16(m + p + 8);
    if (p > size) return std::nullopt;
  }
  for (unsigned i = be16(m + 8); i > 0; --i) {
    if (!skip_name(p) || p + 10 > size) return std::nullopt;
    std::uint16_t type = be16(m + p);
    std::uint32_t ttl = sane_ttl(be32(m + p + 4));
    std::size_t rdlen = be16(m + p + 8);
    p += 10;
    if (p + rdlen > size) return std::nullopt;
    if (type == ns_t_soa) {
      // MNAME and RNAME (at least one byte each), then five 32-bit fields; MINIMUM
      // is the last, so the names need not be walked.
      if (rdlen < 22) return std::nullopt;
      return std::min(ttl, sane_ttl(be32(m + p + rdlen - 4)));
    }
    p += rdlen;
  }
  return std::nullopt;
}

}  // namespace ramjet::dns
