// Untrusted DNS responses through the SOA scanner: it must never read out of bounds,
// whatever the counts and lengths claim.
#include <cstddef>
#include <cstdint>
#include <span>

#include "dns/soa.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto ttl = ramjet::dns::soa_negative_ttl(std::span<const std::uint8_t>(data, size));
  // RFC 2181: a TTL with the top bit set counts as zero; none may escape.
  if (ttl && (*ttl & 0x80000000u)) __builtin_trap();
  return 0;
}
