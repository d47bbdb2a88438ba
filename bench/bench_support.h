#pragma once
// Small helpers shared by the standalone benchmark programs.
#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <variant>
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

// The fields a program's `--key value` options set, by key. A list field takes a comma-separated
// list.
using OptionFields =
    std::map<std::string, std::variant<int*, long*, std::string*, std::optional<std::string>*,
                                       std::vector<std::string>*>>;

// Sets the fields of the `--key value` pairs of the command line; false, after naming it on
// stderr, at a key `fields` does not have.
inline bool read_options(int argc, char** argv, const OptionFields& fields) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const auto field = fields.find(argv[i]);
    if (field == fields.end()) {
      std::cerr << "unknown option " << argv[i] << "\n";
      return false;
    }
    const std::string value = argv[i + 1];
    std::visit(
        [&](auto* out) {
          using T = std::remove_pointer_t<decltype(out)>;
          if constexpr (std::is_same_v<T, int>) {
            *out = std::stoi(value);
          } else if constexpr (std::is_same_v<T, long>) {
            *out = std::stol(value);
          } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
            out->clear();
            std::istringstream list(value);
            for (std::string item; std::getline(list, item, ',');) out->push_back(item);
          } else {
            *out = value;
          }
        },
        field->second);
  }
  return true;
}

// The ID of the image scripts/build-images.sh built for `module`, from `dir`/<module>.id.
inline std::string image_id(const std::string& dir, const std::string& module) {
  std::string id;
  std::ifstream(std::filesystem::path(dir) / (module + ".id")) >> id;
  if (id.empty()) {
    throw std::runtime_error("no " + module + ".id in " + dir +
                             ": build the images first (scripts/build-images.sh BUILD_DIR)");
  }
  return id;
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
