#include "dns/cache.h"

#include <algorithm>

namespace ramjet::dns {

std::string Cache::normalize(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::string out(name);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::optional<CachedAnswer> Cache::lookup(std::string_view name, RecordType type,
                                          Clock::time_point now) {
  auto it = index_.find(Key{normalize(name), type});
  if (it == index_.end()) return std::nullopt;
  auto node = it->second;
  if (node->answer.expires <= now) {
    lru_.erase(node);
    index_.erase(it);
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, node);
  return node->answer;
}

void Cache::insert_positive(std::string_view name, RecordType type,
                            std::vector<IpAddress> addresses, std::chrono::seconds ttl,
                            Clock::time_point now) {
  if (addresses.empty()) return;  // that is NODATA, and the caller knows which it is
  std::chrono::milliseconds life = std::max<std::chrono::milliseconds>(ttl, settings_.min_ttl);
  life = std::min(life, settings_.max_ttl);
  Key key{normalize(name), type};
  if (life.count() <= 0) {
    erase(key.name, type);
    return;
  }
  store(std::move(key), CachedAnswer{std::nullopt, std::move(addresses), now + life});
}

void Cache::insert_negative(std::string_view name, RecordType type, NegativeKind kind,
                            std::optional<std::chrono::seconds> soa_ttl, Clock::time_point now) {
  std::chrono::milliseconds life = settings_.negative_ttl;
  if (soa_ttl) life = std::min<std::chrono::milliseconds>(life, *soa_ttl);
  Key key{normalize(name), type};
  if (life.count() <= 0) {
    erase(key.name, type);
    return;
  }
  store(std::move(key), CachedAnswer{kind, {}, now + life});
}

void Cache::store(Key key, CachedAnswer answer) {
  if (settings_.capacity == 0) return;
  if (auto it = index_.find(key); it != index_.end()) {
    it->second->answer = std::move(answer);
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  // Evicting the least recently used entry, expired or not, keeps insertion O(1);
  // expired entries are otherwise dropped lazily by lookup().
  while (index_.size() >= settings_.capacity) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
  lru_.push_front(Node{key, std::move(answer)});
  index_.emplace(std::move(key), lru_.begin());
}

void Cache::erase(std::string_view name, RecordType type) {
  auto it = index_.find(Key{normalize(name), type});
  if (it == index_.end()) return;
  lru_.erase(it->second);
  index_.erase(it);
}

void Cache::clear() {
  index_.clear();
  lru_.clear();
}

}  // namespace ramjet::dns
