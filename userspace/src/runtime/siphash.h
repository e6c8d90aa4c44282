// SipHash (Aumasson and Bernstein), keyed. Tables whose keys a client chooses (UDP
// sessions by client address and port, IP flows by 5-tuple, the proxy-auth cache by
// header value) hash with a secret key so nobody can aim many keys at one bucket.
// SipHash-1-3 for hash tables (what Rust's HashMap uses: cheap, flood-resistant in
// practice) and SipHash-2-4 where a 128-bit digest stands in for the value itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace ramjet::runtime {

struct SipKey {
  std::uint64_t k0 = 0;
  std::uint64_t k1 = 0;
};

struct SipDigest128 {
  std::uint64_t lo = 0;
  std::uint64_t hi = 0;
  bool operator==(const SipDigest128&) const = default;
};

// A key drawn from getrandom once per process, for in-memory hash tables.
const SipKey& table_hash_key();

// SipHash-1-3, 64-bit output, for hash tables.
std::uint64_t siphash13(const SipKey& key, std::span<const std::uint8_t> data);

// SipHash-2-4, 128-bit output.
SipDigest128 siphash24_128(const SipKey& key, std::span<const std::uint8_t> data);

// getrandom(2) until `size` bytes are filled; false (errno set) if it fails.
bool fill_random(void* out, std::size_t size);

}  // namespace ramjet::runtime
