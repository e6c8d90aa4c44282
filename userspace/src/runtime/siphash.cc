#include "runtime/siphash.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdlib>

namespace ramjet::runtime {
namespace {

constexpr std::uint64_t rotl(std::uint64_t x, int b) {
  return (x << b) | (x >> (64 - b));
}

struct SipState {
  std::uint64_t v0, v1, v2, v3;

  SipState(const SipKey& key, bool wide)
      : v0(0x736f6d6570736575ULL ^ key.k0),
        v1(0x646f72616e646f6dULL ^ key.k1 ^ (wide ? 0xee : 0)),
        v2(0x6c7967656e657261ULL ^ key.k0),
        v3(0x7465646279746573ULL ^ key.k1) {}

  void round() {
    v0 += v1, v1 = rotl(v1, 13), v1 ^= v0, v0 = rotl(v0, 32);
    v2 += v3, v3 = rotl(v3, 16), v3 ^= v2;
    v0 += v3, v3 = rotl(v3, 21), v3 ^= v0;
    v2 += v1, v1 = rotl(v1, 17), v1 ^= v2, v2 = rotl(v2, 32);
  }
  void rounds(int n) {
    for (int i = 0; i < n; ++i) round();
  }
  // Every 8-byte little-endian word of the input, then the last partial word with the
  // length in its top byte.
  void compress(std::span<const std::uint8_t> data, int c_rounds) {
    const std::uint8_t* p = data.data();
    const std::size_t full = data.size() / 8 * 8;
    auto absorb = [&](std::uint64_t m) {
      v3 ^= m;
      rounds(c_rounds);
      v0 ^= m;
    };
    for (std::size_t i = 0; i < full; i += 8) {
      std::uint64_t m = 0;
      for (int j = 7; j >= 0; --j) m = m << 8 | p[i + static_cast<std::size_t>(j)];
      absorb(m);
    }
    std::uint64_t last = static_cast<std::uint64_t>(data.size()) << 56;
    for (std::size_t j = 0; j < data.size() - full; ++j) {
      last |= static_cast<std::uint64_t>(p[full + j]) << (8 * j);
    }
    absorb(last);
  }
  std::uint64_t fold() const { return v0 ^ v1 ^ v2 ^ v3; }
};

}  // namespace

bool fill_random(void* out, std::size_t size) {
  auto* p = static_cast<unsigned char*>(out);
  while (size > 0) {
    const ssize_t n = getrandom(p, size, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

const SipKey& table_hash_key() {
  // getrandom without GRND_NONBLOCK only waits before the pool is first seeded, which is
  // long over by the time a daemon serves traffic; failing it leaves no sane fallback.
  static const SipKey key = [] {
    SipKey k;
    if (!fill_random(&k, sizeof k)) std::abort();
    return k;
  }();
  return key;
}

std::uint64_t siphash13(const SipKey& key, std::span<const std::uint8_t> data) {
  SipState s(key, false);
  s.compress(data, 1);
  s.v2 ^= 0xff;
  s.rounds(3);
  return s.fold();
}

SipDigest128 siphash24_128(const SipKey& key, std::span<const std::uint8_t> data) {
  SipState s(key, true);
  s.compress(data, 2);
  s.v2 ^= 0xee;
  s.rounds(4);
  SipDigest128 out;
  out.lo = s.fold();
  s.v1 ^= 0xdd;
  s.rounds(4);
  out.hi = s.fold();
  return out;
}

}  // namespace ramjet::runtime
