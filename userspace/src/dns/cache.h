// A TTL-respecting DNS answer cache, one per worker (no locks).
//
// Keys are (normalized name, record type). An entry is either the addresses of a
// positive answer or a negative answer (NXDOMAIN / NODATA, RFC 2308). Time is always
// passed in: the cache never reads a clock, so tests drive it with a fake one.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ramjet/net.h"

namespace ramjet::dns {

enum class RecordType : std::uint8_t { kA, kAaaa };

enum class NegativeKind : std::uint8_t {
  kNxDomain,  // the name does not exist
  kNoData,    // the name exists but has no record of this type
};

inline const char* to_string(RecordType t) {
  return t == RecordType::kA ? "A" : "AAAA";
}
inline const char* to_string(NegativeKind k) {
  return k == NegativeKind::kNxDomain ? "NXDOMAIN" : "NODATA";
}

struct CacheSettings {
  std::size_t capacity = 4096;  // entries; 0 disables caching
  std::chrono::milliseconds min_ttl{0};
  std::chrono::milliseconds max_ttl{3600000};
  // Upper bound for negative answers; also their TTL when the response has no SOA.
  std::chrono::milliseconds negative_ttl{30000};
};

struct CachedAnswer {
  std::optional<NegativeKind> negative;  // set: a cached NXDOMAIN/NODATA, no addresses
  std::vector<IpAddress> addresses;
  std::chrono::steady_clock::time_point expires;
};

class Cache {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Cache(CacheSettings settings) : settings_(settings) {}

  // The live entry for (name, type), refreshed as most recently used; an expired
  // entry is dropped and reported as absent.
  std::optional<CachedAnswer> lookup(std::string_view name, RecordType type, Clock::time_point now);

  // ttl is the smallest TTL of the answer's RRset as served; it is clamped to
  // [min_ttl, max_ttl]. A clamped TTL of zero means "do not cache" and removes any
  // older entry, so a stale answer is not served after the server said so.
  void insert_positive(std::string_view name, RecordType type, std::vector<IpAddress> addresses,
                       std::chrono::seconds ttl, Clock::time_point now);

  // soa_ttl is the RFC 2308 negative TTL (min of the SOA's TTL and MINIMUM) when the
  // response carried an SOA; the result is capped at negative_ttl either way.
  void insert_negative(std::string_view name, RecordType type, NegativeKind kind,
                       std::optional<std::chrono::seconds> soa_ttl, Clock::time_point now);

  void erase(std::string_view name, RecordType type);
  void clear();
  std::size_t size() const { return index_.size(); }
  const CacheSettings& settings() const { return settings_; }

  // Lowercase ASCII and no trailing dot: "Example.COM." and "example.com" are one key.
  static std::string normalize(std::string_view name);

 private:
  struct Key {
    std::string name;
    RecordType type;
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const {
      return std::hash<std::string>{}(k.name) * 31 + static_cast<std::size_t>(k.type);
    }
  };
  struct Node {
    Key key;
    CachedAnswer answer;
  };
  using Lru = std::list<Node>;  // front = most recently used

  void store(Key key, CachedAnswer answer);

  CacheSettings settings_;
  Lru lru_;
  std::unordered_map<Key, Lru::iterator, KeyHash> index_;
};

}  // namespace ramjet::dns
