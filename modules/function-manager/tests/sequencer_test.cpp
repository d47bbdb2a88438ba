// The reorder buffer that keeps outputs in input order with instance.max 1.
#include "sequencer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <thread>
#include <vector>

namespace baetyl::function {
namespace {

TEST(OutputSequencer, HoldsEarlyResultsUntilEveryEarlierOneCompleted) {
  std::vector<int> emitted;
  OutputSequencer<int> sequencer(true, [&](int& v) { emitted.push_back(v); });
  auto a = sequencer.reserve(), b = sequencer.reserve(), c = sequencer.reserve();
  sequencer.complete(c, 3);
  sequencer.complete(b, 2);
  EXPECT_TRUE(emitted.empty());
  EXPECT_EQ(sequencer.held(), 2u);
  sequencer.complete(a, 1);
  EXPECT_EQ(emitted, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(sequencer.held(), 0u);
  auto d = sequencer.reserve();
  sequencer.complete(d, 4);
  EXPECT_EQ(emitted.back(), 4);
}

TEST(OutputSequencer, UnorderedEmitsAtOnce) {
  std::vector<int> emitted;
  OutputSequencer<int> sequencer(false, [&](int& v) { emitted.push_back(v); });
  auto a = sequencer.reserve(), b = sequencer.reserve();
  sequencer.complete(b, 2);
  sequencer.complete(a, 1);
  EXPECT_EQ(emitted, (std::vector<int>{2, 1}));
}

TEST(OutputSequencer, ConcurrentCompletionsComeOutInOrder) {
  constexpr int kCount = 20000;
  std::vector<int> emitted;
  OutputSequencer<int> sequencer(true, [&](int& v) { emitted.push_back(v); });
  std::vector<std::uint64_t> positions;
  for (int i = 0; i < kCount; ++i) positions.push_back(sequencer.reserve());
  std::vector<int> order(kCount);
  for (int i = 0; i < kCount; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(7));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < kCount; i += 4) sequencer.complete(positions[order[i]], order[i]);
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(emitted.size(), static_cast<std::size_t>(kCount));
  EXPECT_TRUE(std::is_sorted(emitted.begin(), emitted.end()));
}

}  // namespace
}  // namespace baetyl::function
