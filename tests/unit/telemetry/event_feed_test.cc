#include "telemetry/event_feed.h"

#include <gtest/gtest.h>

#include <thread>

namespace ramjet::telemetry {
namespace {

using namespace std::chrono_literals;

TEST(EventFeed, ReadersTakeWhatCameAfterTheirCursor) {
  EventFeed feed(8);
  feed.publish("a");
  feed.publish("b");
  auto first = feed.since(0, 100);
  EXPECT_EQ(first.lines, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(first.cursor, 2u);
  feed.publish("c");
  auto second = feed.since(first.cursor, 100);
  EXPECT_EQ(second.lines, (std::vector<std::string>{"c"}));
  EXPECT_EQ(second.missed, 0u);
  EXPECT_TRUE(feed.since(second.cursor, 100).lines.empty());
}

TEST(EventFeed, MaxLimitsOneBatchAndTheRestFollows) {
  EventFeed feed(8);
  for (const char* s : {"1", "2", "3"}) feed.publish(s);
  auto b = feed.since(0, 2);
  EXPECT_EQ(b.lines.size(), 2u);
  auto rest = feed.since(b.cursor, 2);
  EXPECT_EQ(rest.lines, (std::vector<std::string>{"3"}));
}

TEST(EventFeed, ASlowReaderIsToldHowManyLinesItLost) {
  EventFeed feed(2);
  feed.publish("1");
  auto b = feed.since(0, 10);
  for (const char* s : {"2", "3", "4", "5"}) feed.publish(s);
  auto late = feed.since(b.cursor, 10);
  EXPECT_EQ(late.lines, (std::vector<std::string>{"4", "5"}));
  EXPECT_EQ(late.missed, 2u);  // "2" and "3"
  EXPECT_EQ(late.cursor, 5u);
}

TEST(EventFeed, AWaitingReaderWakesOnPublish) {
  EventFeed feed;
  std::thread publisher([&] {
    std::this_thread::sleep_for(50ms);
    feed.publish("late");
  });
  auto t0 = std::chrono::steady_clock::now();
  auto b = feed.since(0, 10, 5s);
  publisher.join();
  EXPECT_EQ(b.lines, (std::vector<std::string>{"late"}));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);
}

TEST(EventFeed, Rfc3339HasMillisecondsAndZ) {
  std::chrono::system_clock::time_point t{std::chrono::milliseconds(1'764'691'772'123)};
  EXPECT_EQ(rfc3339_ms(t), "2025-12-02T16:09:32.123Z");
}

}  // namespace
}  // namespace ramjet::telemetry
