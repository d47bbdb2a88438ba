// LatencyHistogram: buckets, sum and count as the master's endpoint reads them.
#include "baetyl/histogram.h"

#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace baetyl {
namespace {

using namespace std::chrono_literals;

TEST(LatencyHistogram, CumulativeBucketsSumAndCount) {
  LatencyHistogram histogram;
  histogram.observe(300us);  // <= 0.0005
  histogram.observe(500us);  // on a bound: in that bucket
  histogram.observe(3ms);    // <= 0.005
  histogram.observe(20s);    // above every bound: only in the count
  const auto json = histogram.to_json();
  ASSERT_EQ(json["le"].size(), kLatencyBuckets.size());
  EXPECT_EQ(json["le"][0], 0.0005);
  EXPECT_EQ(json["le"].back(), 10);
  EXPECT_EQ(json["buckets"][0], 2);  // 0.0005
  EXPECT_EQ(json["buckets"][1], 2);  // 0.001
  EXPECT_EQ(json["buckets"][2], 2);  // 0.0025
  EXPECT_EQ(json["buckets"][3], 3);  // 0.005
  EXPECT_EQ(json["buckets"].back(), 3);
  EXPECT_EQ(json["count"], 4);
  EXPECT_DOUBLE_EQ(json["sum"].get<double>(), 0.0003 + 0.0005 + 0.003 + 20);
}

TEST(LatencyHistogram, ANegativeDurationCountsAsZero) {
  LatencyHistogram histogram;
  histogram.observe(-5ms);
  const auto json = histogram.to_json();
  EXPECT_EQ(json["buckets"][0], 1);
  EXPECT_EQ(json["sum"], 0);
}

TEST(LatencyHistogram, ObservationsFromManyThreadsAreAllCounted) {
  LatencyHistogram histogram;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) histogram.observe(1ms);
    });
  }
  for (auto& thread : threads) thread.join();
  const auto json = histogram.to_json();
  EXPECT_EQ(json["count"], 40000);
  EXPECT_EQ(json["buckets"][1], 40000);  // 0.001
  EXPECT_EQ(json["buckets"][0], 0);
  EXPECT_NEAR(json["sum"].get<double>(), 40.0, 1e-9);
}

}  // namespace
}  // namespace baetyl
