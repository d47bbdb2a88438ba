#pragma once
// Small helpers shared by the standalone benchmark programs.
#include <algorithm>
#include <cstddef>
#include <vector>

namespace baetyl::bench {

// The p-th percentile (0..100) by nearest rank; 0 for no values.
inline double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  auto index = static_cast<std::size_t>(p / 100.0 * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

}  // namespace baetyl::bench
