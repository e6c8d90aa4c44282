// ramjetctl's human output: units and column alignment.
#include "table.h"

#include <gtest/gtest.h>

namespace ramjet::ctl {
namespace {

TEST(HumanUnits, BytesRatesAndDurations) {
  EXPECT_EQ(human_bytes(999), "999");
  EXPECT_EQ(human_bytes(1536), "1.5K");
  EXPECT_EQ(human_bytes(12ull << 20), "12M");
  EXPECT_EQ(human_bytes(5ull << 40), "5.0T");
  EXPECT_EQ(human_rate(0.2), "0/s");
  EXPECT_EQ(human_rate(2048), "2.0K/s");
  EXPECT_EQ(human_duration(850), "850ms");
  EXPECT_EQ(human_duration(12'000), "12s");
  EXPECT_EQ(human_duration(184'000), "3m04s");
  EXPECT_EQ(human_duration(7'980'000), "2h13m");
  EXPECT_EQ(human_duration(356'400'000), "4d03h");
}

TEST(Tables, AutoTableSizesColumnsAndAlignsNumbersRight) {
  AutoTable t({{"NAME"}, {"COUNT", 0, true}, {"NOTE"}});
  t.add({"a", "5", "x"});
  t.add({"longer", "12345", "y"});
  EXPECT_EQ(t.render(),
            "NAME    COUNT  NOTE\n"
            "a           5  x\n"
            "longer  12345  y\n");
}

TEST(Tables, StreamTableKeepsFixedWidthsAndLetsWideCellsPush) {
  StreamTable t({{"ID", 4, true}, {"ADDR", 6}, {"END", 0}});
  std::string out;
  t.header(out);
  t.row(out, {"7", "a", "z"});
  t.row(out, {"12345", "abcdefgh", "z"});
  EXPECT_EQ(out,
            "  ID  ADDR    END\n"
            "   7  a       z\n"
            "12345  abcdefgh  z\n");
}

}  // namespace
}  // namespace ramjet::ctl
