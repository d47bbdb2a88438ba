#include "ota_log.h"

#include <ctime>
#include <fstream>
#include <iomanip>
#include <sstream>

namespace baetyl::agent {
namespace {

namespace fs = std::filesystem;

std::optional<OtaRecord> parse_record(const std::string& line) {
  try {
    const auto document = nlohmann::json::parse(line);
    if (!document.is_object()) return std::nullopt;
    auto text = [&](const char* key) {
      const auto it = document.find(key);
      return it != document.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    OtaRecord record{text("step"), text("type"), text("trace"), text("time"), text("error")};
    if (record.step.empty()) return std::nullopt;
    return record;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

// The complete lines of `path` from `offset` on; `offset` moves past the last of them.
std::vector<std::string> complete_lines(const fs::path& path, std::uint64_t& offset) {
  std::vector<std::string> lines;
  std::ifstream in(path, std::ios::binary);
  if (!in) return lines;
  in.seekg(static_cast<std::streamoff>(offset));
  std::string line;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // no newline yet: the master is still writing it
    offset += line.size() + 1;
    lines.push_back(line);
  }
  return lines;
}

}  // namespace

nlohmann::json OtaRecord::to_json() const {
  nlohmann::json out = nlohmann::json::object();
  if (!time.empty()) out["time"] = time;
  out["step"] = step;
  if (!trace.empty()) out["trace"] = trace;
  if (!type.empty()) out["type"] = type;
  if (!error.empty()) out["error"] = error;
  return out;
}

bool is_final_step(const std::string& step) {
  return step == step::kUpdated || step == step::kRolledBack || step == step::kFailure ||
         step == step::kTimeout;
}

std::optional<std::chrono::system_clock::time_point> parse_time(const std::string& text) {
  std::tm tm{};
  std::istringstream in(text);
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  if (in.fail()) return std::nullopt;
  std::string rest;
  std::getline(in, rest);
  if (rest.empty() || rest.back() != 'Z') return std::nullopt;
  const std::time_t seconds = ::timegm(&tm);
  return std::chrono::system_clock::from_time_t(seconds);
}

std::uint64_t OtaLogReader::size() const {
  std::error_code ec;
  const auto size = fs::file_size(path_, ec);
  return ec ? 0 : size;
}

std::vector<OtaRecord> OtaLogReader::read_from(std::uint64_t& offset) const {
  if (size() < offset) offset = 0;
  std::vector<OtaRecord> records;
  for (const auto& line : complete_lines(path_, offset)) {
    if (auto record = parse_record(line)) records.push_back(std::move(*record));
  }
  return records;
}

std::vector<OtaRecord> OtaLogReader::last_update(std::uint64_t& offset,
                                                 std::uint64_t tail_bytes) const {
  const std::uint64_t end = size();
  offset = end > tail_bytes ? end - tail_bytes : 0;
  const bool partial_first = offset > 0;
  std::vector<std::string> lines = complete_lines(path_, offset);
  if (partial_first && !lines.empty()) lines.erase(lines.begin());
  std::vector<OtaRecord> all;
  for (const auto& line : lines) {
    if (auto record = parse_record(line)) all.push_back(std::move(*record));
  }
  // The trailing records of one trace: the master runs one update at a time.
  std::size_t first = all.size();
  while (first > 0 && all[first - 1].trace == all.back().trace) --first;
  return std::vector<OtaRecord>(all.begin() + static_cast<std::ptrdiff_t>(first), all.end());
}

}  // namespace baetyl::agent
