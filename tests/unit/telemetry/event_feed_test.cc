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

TEST(EventFeed, ConnectionEventsAreWrittenWhenTakenInPublishOrder) {
  EventFeed feed(8);
  ConnectionEvent open;
  open.flow_id = 7;
  open.endpoint = "web \"a\"";
  open.worker = 1;
  open.src = *SocketAddress::parse("192.0.2.1:4000");
  open.dst = *SocketAddress::parse("198.51.100.2:443");
  open.time = std::chrono::system_clock::time_point{std::chrono::milliseconds(1'764'691'772'123)};
  ConnectionEvent close = open;
  close.closed = true;
  close.bytes_from_client = 10;
  close.bytes_to_client = 20;
  close.close_reason = "client_closed";
  close.duration_ms = 5;
  feed.publish(open);
  feed.publish("{\"type\":\"datapath\"}");
  feed.publish(close);
  auto b = feed.since(0, 10);
  ASSERT_EQ(b.lines.size(), 3u);
  EXPECT_EQ(b.lines[0],
            R"({"dst":"198.51.100.2:443","endpoint":"web \"a\"","flow_id":7,"proto":"tcp",)"
            R"("src":"192.0.2.1:4000","time":"2025-12-02T16:09:32.123Z",)"
            R"("type":"connection_open","verdict":"ENGINE","worker":1})");
  EXPECT_EQ(b.lines[1], R"({"type":"datapath"})");
  EXPECT_EQ(b.lines[2],
            R"({"bytes_from_client":10,"bytes_to_client":20,"close_reason":"client_closed",)"
            R"("dst":"198.51.100.2:443","duration_ms":5,"endpoint":"web \"a\"","flow_id":7,)"
            R"("proto":"tcp","src":"192.0.2.1:4000","time":"2025-12-02T16:09:32.123Z",)"
            R"("type":"connection_close","verdict":"ENGINE","worker":1})");
}

}  // namespace
}  // namespace ramjet::telemetry
