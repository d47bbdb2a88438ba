#include "echo_filter.h"

#include <gtest/gtest.h>

namespace baetyl::remote {
namespace {

using namespace std::chrono_literals;
using Clock = EchoFilter::Clock;

TEST(EchoFilter, EachForwardedCopyCancelsOneEcho) {
  EchoFilter filter;
  auto now = Clock::now();
  auto key = echo_key("a/b", "payload");
  EXPECT_FALSE(filter.consume(key, now)) << "nothing expected yet";
  filter.expect(key, now);
  filter.expect(key, now);
  EXPECT_EQ(filter.pending(), 2u);
  EXPECT_TRUE(filter.consume(key, now));
  EXPECT_TRUE(filter.consume(key, now));
  EXPECT_FALSE(filter.consume(key, now)) << "a third identical message is not an echo";
  EXPECT_EQ(filter.pending(), 0u);
}

TEST(EchoFilter, TopicAndPayloadBothCount) {
  EchoFilter filter;
  auto now = Clock::now();
  filter.expect(echo_key("a", "x"), now);
  EXPECT_FALSE(filter.consume(echo_key("b", "x"), now));
  EXPECT_FALSE(filter.consume(echo_key("a", "y"), now));
  EXPECT_FALSE(filter.consume(echo_key("ax", ""), now));
  EXPECT_TRUE(filter.consume(echo_key("a", "x"), now));
}

TEST(EchoFilter, ExpectationsLapseAfterTheWindow) {
  EchoFilter filter(1s);
  auto start = Clock::now();
  auto key = echo_key("t", "p");
  filter.expect(key, start);
  filter.expect(key, start + 600ms);
  EXPECT_TRUE(filter.consume(key, start + 1100ms)) << "the second one is still expected";
  EXPECT_FALSE(filter.consume(key, start + 1100ms));
  filter.expect(key, start + 1200ms);
  EXPECT_FALSE(filter.consume(key, start + 2300ms)) << "lapsed";
  EXPECT_EQ(filter.pending(), 0u);
}

TEST(EchoFilter, CapacityDropsTheOldestExpectations) {
  EchoFilter filter(10s, 3);
  auto now = Clock::now();
  for (int i = 0; i < 5; ++i) filter.expect(echo_key("t", std::to_string(i)), now);
  EXPECT_EQ(filter.pending(), 3u);
  EXPECT_FALSE(filter.consume(echo_key("t", "0"), now));
  EXPECT_FALSE(filter.consume(echo_key("t", "1"), now));
  EXPECT_TRUE(filter.consume(echo_key("t", "2"), now));
  EXPECT_TRUE(filter.consume(echo_key("t", "4"), now));
}

TEST(EchoFilter, EchoesInOrderFreeTheirPlaceAtOnce) {
  EchoFilter filter(10s, 2);
  auto now = Clock::now();
  for (int i = 0; i < 100; ++i) {
    auto key = echo_key("t", std::to_string(i));
    filter.expect(key, now);
    ASSERT_TRUE(filter.consume(key, now)) << i;
  }
  filter.expect(echo_key("t", "a"), now);
  filter.expect(echo_key("t", "b"), now);
  EXPECT_TRUE(filter.consume(echo_key("t", "a"), now));
  EXPECT_TRUE(filter.consume(echo_key("t", "b"), now));
}

}  // namespace
}  // namespace baetyl::remote
