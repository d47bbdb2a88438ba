#include "store_path.h"

#include <algorithm>
#include <array>
#include <string_view>
#include <vector>

namespace baetyl::agent {
namespace {

bool reserved(std::string_view name) {
  static constexpr std::array<std::string_view, 4> prefixes = {
      "application.yml", "ota.log", "master-update", "agent-volumes.json"};
  for (auto prefix : prefixes) {
    if (name.starts_with(prefix)) return true;
  }
  return false;
}

}  // namespace

std::optional<std::string> store_relative(const std::string& path, std::string* problem) {
  auto fail = [&](const std::string& why) -> std::optional<std::string> {
    if (problem != nullptr) *problem = "'" + path + "' " + why;
    return std::nullopt;
  };
  if (path.empty()) return fail("is empty");
  if (path.front() == '/')
    return fail("is absolute: volume paths are relative to the work directory");
  const auto parts = path_components(path);
  for (const auto& part : parts) {
    if (part == "..") return fail("has a '..' component");
  }
  if (parts.size() < 4 || parts[0] != "var" || parts[1] != "db" || parts[2] != "baetyl") {
    return fail("is not inside var/db/baetyl, where the agent puts the volumes it downloads");
  }
  std::string relative;
  for (std::size_t i = 3; i < parts.size(); ++i) {
    if (parts[i].front() == '.') return fail("has a component starting with '.'");
    relative += (relative.empty() ? "" : "/") + parts[i];
  }
  if (reserved(parts[3])) return fail("names a file of the master or the agent in var/db/baetyl");
  return relative;
}

bool paths_overlap(const std::string& a, const std::string& b) {
  const auto pa = path_components(a);
  const auto pb = path_components(b);
  const std::size_t n = std::min(pa.size(), pb.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (pa[i] != pb[i]) return false;
  }
  return true;
}

std::vector<std::string> path_components(const std::string& path) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= path.size()) {
    auto end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(start, end - start);
    if (!part.empty() && part != ".") out.push_back(std::move(part));
    start = end + 1;
  }
  return out;
}

}  // namespace baetyl::agent
