#include "baetyl/config/units.h"

#include <gtest/gtest.h>

using namespace std::chrono_literals;
using baetyl::config::ByteSize;
using baetyl::config::format_byte_size;
using baetyl::config::format_duration;
using baetyl::config::parse_byte_size;
using baetyl::config::parse_duration;

TEST(ByteSize, ParsesEveryUnit) {
  EXPECT_EQ(parse_byte_size("0")->bytes, 0u);
  EXPECT_EQ(parse_byte_size("100")->bytes, 100u);
  EXPECT_EQ(parse_byte_size("512b")->bytes, 512u);
  EXPECT_EQ(parse_byte_size("32k")->bytes, 32u * 1024);
  EXPECT_EQ(parse_byte_size("32K")->bytes, 32u * 1024);
  EXPECT_EQ(parse_byte_size("4m")->bytes, 4u * 1024 * 1024);
  EXPECT_EQ(parse_byte_size("4mb")->bytes, 4u * 1024 * 1024);
  EXPECT_EQ(parse_byte_size("1g")->bytes, 1024ull * 1024 * 1024);
  EXPECT_EQ(parse_byte_size(" 2G ")->bytes, 2048ull * 1024 * 1024);
}

TEST(ByteSize, RejectsInvalidTextWithReason) {
  std::string error;
  EXPECT_FALSE(parse_byte_size("", &error));
  EXPECT_NE(error.find("empty"), std::string::npos);
  EXPECT_FALSE(parse_byte_size("abc", &error));
  EXPECT_NE(error.find("invalid size 'abc'"), std::string::npos);
  EXPECT_FALSE(parse_byte_size("10t", &error));
  EXPECT_NE(error.find("unknown unit 't'"), std::string::npos);
  EXPECT_FALSE(parse_byte_size("-1k", &error));
  EXPECT_FALSE(parse_byte_size("1.5m", &error));
  EXPECT_FALSE(parse_byte_size("99999999999999999999", &error));
  EXPECT_NE(error.find("too large"), std::string::npos);
  EXPECT_FALSE(parse_byte_size("17179869184g", &error));
}

TEST(ByteSize, FormatsWithLargestExactUnit) {
  EXPECT_EQ(format_byte_size(ByteSize{32 * 1024}), "32k");
  EXPECT_EQ(format_byte_size(ByteSize{4 << 20}), "4m");
  EXPECT_EQ(format_byte_size(ByteSize{1ull << 30}), "1g");
  EXPECT_EQ(format_byte_size(ByteSize{1000}), "1000b");
}

TEST(Duration, ParsesGoSyntax) {
  EXPECT_EQ(*parse_duration("30s"), 30s);
  EXPECT_EQ(*parse_duration("1m"), 1min);
  EXPECT_EQ(*parse_duration("1m30s"), 90s);
  EXPECT_EQ(*parse_duration("2h45m"), 2h + 45min);
  EXPECT_EQ(*parse_duration("1h1m1s"), 3661s);
  EXPECT_EQ(*parse_duration("500ms"), 500ms);
  EXPECT_EQ(*parse_duration("1.5h"), 90min);
  EXPECT_EQ(*parse_duration("0.5s"), 500ms);
  EXPECT_EQ(*parse_duration("100us"), 100us);
  EXPECT_EQ(*parse_duration("5µs"), 5us);
  EXPECT_EQ(*parse_duration("10ns"), 10ns);
  EXPECT_EQ(*parse_duration("0"), 0ns);
  EXPECT_EQ(*parse_duration("-1s"), -1s);
  EXPECT_EQ(*parse_duration("48h"), 48h);
}

TEST(Duration, RejectsMissingOrUnknownUnits) {
  std::string error;
  EXPECT_FALSE(parse_duration("5", &error));
  EXPECT_NE(error.find("missing unit"), std::string::npos) << error;
  EXPECT_FALSE(parse_duration("1m30", &error));
  EXPECT_NE(error.find("missing unit"), std::string::npos) << error;
  EXPECT_FALSE(parse_duration("3d", &error));
  EXPECT_NE(error.find("unknown unit 'd'"), std::string::npos) << error;
  EXPECT_FALSE(parse_duration("", &error));
  EXPECT_FALSE(parse_duration("s", &error));
  EXPECT_FALSE(parse_duration("1..2s", &error));
  EXPECT_FALSE(parse_duration("-", &error));
}

TEST(Duration, FormatsLikeGo) {
  EXPECT_EQ(format_duration(0s), "0s");
  EXPECT_EQ(format_duration(90s), "1m30s");
  EXPECT_EQ(format_duration(2h), "2h0m0s");
  EXPECT_EQ(format_duration(500ms), "500ms");
  EXPECT_EQ(format_duration(1500ms), "1.5s");
  EXPECT_EQ(format_duration(-30s), "-30s");
}

TEST(Duration, FormatThenParseRoundTrips) {
  for (auto d : {1s, 59s, 60s, 61s, 3599s, 3600s, 86400s}) {
    EXPECT_EQ(*parse_duration(format_duration(d)), d) << format_duration(d);
  }
}
