#include "baetyl/env.h"

#include <cstdlib>

namespace baetyl::env {

namespace {

std::optional<std::string> lookup(std::string_view name) {
  const char* value = std::getenv(std::string(name).c_str());
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

}  // namespace

std::optional<std::string> get(const Variable& variable) {
  if (auto value = lookup(variable.name)) return value;
  if (!variable.legacy.empty()) return lookup(variable.legacy);
  return std::nullopt;
}

std::string get_or(const Variable& variable, std::string fallback) {
  if (auto value = get(variable)) return std::move(*value);
  return fallback;
}

std::vector<std::pair<std::string, std::string>> export_both_names(
    const std::vector<std::pair<Variable, std::string>>& values) {
  std::vector<std::pair<std::string, std::string>> result;
  result.reserve(values.size() * 2);
  for (const auto& [variable, value] : values) {
    result.emplace_back(std::string(variable.name), value);
    if (!variable.legacy.empty()) result.emplace_back(std::string(variable.legacy), value);
  }
  return result;
}

std::string default_master_api_address() {
#if defined(__linux__)
  return "unix:///var/run/baetyl.sock";
#else
  return "tcp://127.0.0.1:50050";
#endif
}

}  // namespace baetyl::env
