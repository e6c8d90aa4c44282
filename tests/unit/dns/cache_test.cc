#include "dns/cache.h"

#include <gtest/gtest.h>

namespace ramjet::dns {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = Cache::Clock;

const Clock::time_point kT0 = Clock::time_point{} + std::chrono::hours(10);

IpAddress ip(const char* s) {
  return *IpAddress::parse(s);
}

TEST(DnsCache, PositiveEntryLivesForItsTtl) {
  Cache cache({});
  cache.insert_positive("example.com", RecordType::kA, {ip("192.0.2.1"), ip("192.0.2.2")},
                        seconds(30), kT0);
  auto hit = cache.lookup("example.com", RecordType::kA, kT0 + seconds(29));
  ASSERT_TRUE(hit);
  EXPECT_FALSE(hit->negative);
  EXPECT_EQ(hit->addresses.size(), 2u);
  EXPECT_EQ(hit->expires, kT0 + seconds(30));
  EXPECT_FALSE(cache.lookup("example.com", RecordType::kAaaa, kT0));
  EXPECT_FALSE(cache.lookup("example.com", RecordType::kA, kT0 + seconds(30)));
  EXPECT_EQ(cache.size(), 0u) << "an expired entry is dropped on lookup";
}

TEST(DnsCache, NamesAreCaseInsensitiveAndTrailingDotFree) {
  Cache cache({});
  cache.insert_positive("WWW.Example.COM.", RecordType::kAaaa, {ip("2001:db8::1")}, seconds(5),
                        kT0);
  EXPECT_TRUE(cache.lookup("www.example.com", RecordType::kAaaa, kT0));
  EXPECT_TRUE(cache.lookup("www.EXAMPLE.com.", RecordType::kAaaa, kT0));
  EXPECT_EQ(Cache::normalize("A.B."), "a.b");
}

TEST(DnsCache, TtlIsClampedToMinAndMax) {
  Cache cache({.min_ttl = milliseconds(10000), .max_ttl = milliseconds(60000)});
  cache.insert_positive("short", RecordType::kA, {ip("192.0.2.1")}, seconds(1), kT0);
  cache.insert_positive("long", RecordType::kA, {ip("192.0.2.1")}, seconds(86400), kT0);
  EXPECT_EQ(cache.lookup("short", RecordType::kA, kT0)->expires, kT0 + seconds(10));
  EXPECT_EQ(cache.lookup("long", RecordType::kA, kT0)->expires, kT0 + seconds(60));
}

TEST(DnsCache, ZeroTtlIsNotCachedAndDropsTheOldEntry) {
  Cache cache({});
  cache.insert_positive("n", RecordType::kA, {ip("192.0.2.1")}, seconds(60), kT0);
  cache.insert_positive("n", RecordType::kA, {ip("192.0.2.2")}, seconds(0), kT0 + seconds(1));
  EXPECT_FALSE(cache.lookup("n", RecordType::kA, kT0 + seconds(1)));
}

TEST(DnsCache, NegativeEntriesUseSoaTtlCappedByNegativeTtl) {
  Cache cache({.negative_ttl = milliseconds(30000)});
  cache.insert_negative("gone", RecordType::kA, NegativeKind::kNxDomain, seconds(5), kT0);
  cache.insert_negative("capped", RecordType::kA, NegativeKind::kNoData, seconds(3600), kT0);
  cache.insert_negative("nosoa", RecordType::kAaaa, NegativeKind::kNoData, std::nullopt, kT0);
  auto gone = cache.lookup("gone", RecordType::kA, kT0);
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->negative, NegativeKind::kNxDomain);
  EXPECT_TRUE(gone->addresses.empty());
  EXPECT_EQ(gone->expires, kT0 + seconds(5));
  EXPECT_EQ(cache.lookup("capped", RecordType::kA, kT0)->expires, kT0 + seconds(30));
  EXPECT_EQ(cache.lookup("nosoa", RecordType::kAaaa, kT0)->negative, NegativeKind::kNoData);
  EXPECT_EQ(cache.lookup("nosoa", RecordType::kAaaa, kT0)->expires, kT0 + seconds(30));
  EXPECT_FALSE(cache.lookup("gone", RecordType::kA, kT0 + seconds(5)));
}

TEST(DnsCache, PositiveAnswerReplacesNegative) {
  Cache cache({});
  cache.insert_negative("x", RecordType::kA, NegativeKind::kNxDomain, seconds(60), kT0);
  cache.insert_positive("x", RecordType::kA, {ip("192.0.2.9")}, seconds(60), kT0);
  auto e = cache.lookup("x", RecordType::kA, kT0);
  ASSERT_TRUE(e);
  EXPECT_FALSE(e->negative);
  EXPECT_EQ(cache.size(), 1u);
}

TEST(DnsCache, EvictsLeastRecentlyUsed) {
  Cache cache({.capacity = 3});
  for (const char* n : {"a", "b", "c"})
    cache.insert_positive(n, RecordType::kA, {ip("192.0.2.1")}, seconds(60), kT0);
  ASSERT_TRUE(cache.lookup("a", RecordType::kA, kT0));  // "b" is now the oldest
  cache.insert_positive("d", RecordType::kA, {ip("192.0.2.1")}, seconds(60), kT0);
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_TRUE(cache.lookup("a", RecordType::kA, kT0));
  EXPECT_FALSE(cache.lookup("b", RecordType::kA, kT0));
  EXPECT_TRUE(cache.lookup("c", RecordType::kA, kT0));
  EXPECT_TRUE(cache.lookup("d", RecordType::kA, kT0));
}

TEST(DnsCache, CapacityZeroDisablesCaching) {
  Cache cache({.capacity = 0});
  cache.insert_positive("a", RecordType::kA, {ip("192.0.2.1")}, seconds(60), kT0);
  cache.insert_negative("b", RecordType::kA, NegativeKind::kNxDomain, seconds(60), kT0);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_FALSE(cache.lookup("a", RecordType::kA, kT0));
}

TEST(DnsCache, EraseAndClear) {
  Cache cache({});
  cache.insert_positive("a", RecordType::kA, {ip("192.0.2.1")}, seconds(60), kT0);
  cache.insert_positive("a", RecordType::kAaaa, {ip("2001:db8::1")}, seconds(60), kT0);
  cache.erase("A.", RecordType::kA);
  EXPECT_FALSE(cache.lookup("a", RecordType::kA, kT0));
  EXPECT_TRUE(cache.lookup("a", RecordType::kAaaa, kT0));
  cache.clear();
  EXPECT_EQ(cache.size(), 0u);
}

}  // namespace
}  // namespace ramjet::dns
