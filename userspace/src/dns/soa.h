// The one piece of DNS wire format we read ourselves: c-ares 1.18 parses answers but
// not the SOA of a negative response's authority section, which RFC 2308 says sets
// how long NXDOMAIN/NODATA may be cached.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace ramjet::dns {

// RFC 2308 section 5: the negative-caching TTL of a response, min(SOA TTL, SOA
// MINIMUM) of the first SOA in the authority section; nullopt if there is none or the
// message is malformed. Bounds-checked against untrusted input.
std::optional<std::uint32_t> soa_negative_ttl(std::span<const std::uint8_t> response);

}  // namespace ramjet::dns
