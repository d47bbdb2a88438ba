#include "zip_writer.h"

#include <chrono>
#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "baetyl/testing/process.h"

namespace baetyl::agent::testing {
namespace {

namespace fs = std::filesystem;

// argv: the zip, the JSON list of entries {name, kind, mode, source}; a file's data is read from
// `source`, a link's target too.
constexpr const char* kWriter = R"(
import json, stat, sys, zipfile
entries = json.load(open(sys.argv[2]))
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as out:
    for entry in entries:
        info = zipfile.ZipInfo(entry["name"], date_time=(2023, 11, 14, 22, 13, 20))
        info.create_system = 3
        info.compress_type = zipfile.ZIP_DEFLATED
        kind, mode = entry["kind"], entry["mode"]
        data = open(entry["source"], "rb").read() if entry["source"] else b""
        if kind == "directory":
            info.external_attr = ((stat.S_IFDIR | mode) << 16) | 0x10
        elif kind == "symlink":
            info.external_attr = (stat.S_IFLNK | mode) << 16
        elif kind == "special":
            info.external_attr = mode << 16
        else:
            info.external_attr = (stat.S_IFREG | mode) << 16
        out.writestr(info, data)
)";

const char* kind_name(ZipEntry::Kind kind) {
  switch (kind) {
    case ZipEntry::Kind::directory:
      return "directory";
    case ZipEntry::Kind::symlink:
      return "symlink";
    case ZipEntry::Kind::special:
      return "special";
    case ZipEntry::Kind::file:
      break;
  }
  return "file";
}

}  // namespace

void write_zip(const fs::path& path, const std::vector<ZipEntry>& entries) {
  const fs::path sources = path.string() + ".sources";
  fs::create_directories(sources);
  nlohmann::json spec = nlohmann::json::array();
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const ZipEntry& entry = entries[i];
    std::string source;
    if (!entry.content.empty()) {
      source = (sources / std::to_string(i)).string();
      std::ofstream(source, std::ios::binary) << entry.content;
    }
    spec.push_back({{"name", entry.name},
                    {"kind", kind_name(entry.kind)},
                    {"mode", entry.mode},
                    {"source", source}});
  }
  const fs::path spec_file = sources / "entries.json";
  std::ofstream(spec_file) << spec.dump();
  baetyl::testing::Process python(
      {"/usr/bin/python3", "-c", kWriter, path.string(), spec_file.string()});
  const auto code = python.wait(std::chrono::seconds(30));
  fs::remove_all(sources);
  if (code != 0) throw std::runtime_error("python3 could not write " + path.string());
}

}  // namespace baetyl::agent::testing
