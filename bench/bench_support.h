#pragma once
// Small helpers shared by the standalone benchmark programs.
#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "baetyl/http/client.h"

namespace baetyl::bench {

// The p-th percentile (0..100) by nearest rank; 0 for no values.
inline double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  auto index = static_cast<std::size_t>(p / 100.0 * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

// The master's admin credentials of a running `baetyl start -w workdir`, as API headers; none
// until the master has written var/run/baetyl/admin.json.
inline baetyl::http::Headers admin_headers(const std::filesystem::path& workdir) {
  std::ifstream in(workdir / "var/run/baetyl/admin.json");
  auto admin = nlohmann::json::parse(in, nullptr, false);
  if (admin.is_discarded()) return {};
  return {{"x-openedge-username", admin.value("username", "")},
          {"x-openedge-password", admin.value("password", "")}};
}

}  // namespace baetyl::bench
