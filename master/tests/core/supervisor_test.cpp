#include "core/supervisor.h"

#include <gtest/gtest.h>

namespace baetyl::master {
namespace {

using namespace std::chrono_literals;

TEST(Backoff, GrowsByTheFactorUpToMax) {
  Backoff backoff(BackoffPolicy{1s, 10s, 3});
  EXPECT_EQ(backoff.next(), 1s);
  EXPECT_EQ(backoff.next(), 3s);
  EXPECT_EQ(backoff.next(), 9s);
  EXPECT_EQ(backoff.next(), 10s);
  EXPECT_EQ(backoff.next(), 10s);
  backoff.reset();
  EXPECT_EQ(backoff.next(), 1s);
}

TEST(Backoff, FractionalFactorAndZeroMin) {
  Backoff fractional(BackoffPolicy{1000ms, 5000ms, 1.5});
  EXPECT_EQ(fractional.next(), 1000ms);
  EXPECT_EQ(fractional.next(), 1500ms);
  EXPECT_EQ(fractional.next(), 2250ms);
  Backoff immediate(BackoffPolicy{0ms, 1s, 2});
  EXPECT_EQ(immediate.next(), 0ms);
  EXPECT_EQ(immediate.next(), 0ms);
}

TEST(Backoff, HealthyAfterTenSecondsOrTheLongestWait) {
  EXPECT_EQ(Backoff(BackoffPolicy{1s, 5min, 2}).healthy_after(), 10s);
  EXPECT_EQ(Backoff(BackoffPolicy{100ms, 800ms, 2}).healthy_after(), 800ms);
}

TEST(ShouldRestart, FollowsThePolicy) {
  RestartPolicy always;
  ExitStatus ok{0, 0}, failed{1, 0}, killed{0, 9};
  EXPECT_TRUE(should_restart(always, ok, 100));
  EXPECT_TRUE(should_restart(always, killed, 0));

  RestartPolicy on_failure;
  on_failure.policy = "on-failure";
  EXPECT_FALSE(should_restart(on_failure, ok, 0));
  EXPECT_TRUE(should_restart(on_failure, failed, 0));
  EXPECT_TRUE(should_restart(on_failure, killed, 0));

  RestartPolicy never;
  never.policy = "no";
  EXPECT_FALSE(should_restart(never, failed, 0));

  RestartPolicy limited;
  limited.retry.max = 2;
  EXPECT_TRUE(should_restart(limited, failed, 1));
  EXPECT_FALSE(should_restart(limited, failed, 2));
  limited.retry.max = 0;
  EXPECT_FALSE(should_restart(limited, failed, 0));
}

}  // namespace
}  // namespace baetyl::master
