#pragma once
// Reading the master's ota.log (baetyl/api/ota_log.h: the file and its steps; docs/master.md,
// Updates). The agent follows it to report progress.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "baetyl/api/ota_log.h"

namespace baetyl::agent {

namespace step = api::ota_step;

struct OtaRecord {
  std::string step;
  std::string type;
  std::string trace;
  std::string time;  // RFC 3339
  std::string error;

  nlohmann::json to_json() const;  // the original's record: time, step, trace, error (omitempty)
};

// UPDATED, ROLLEDBACK, FAILURE and TIMEOUT end an update.
bool is_final_step(const std::string& step);

// "2019-04-18T16:04:45.920152Z" (UTC, as the master writes it); nullopt for anything else.
std::optional<std::chrono::system_clock::time_point> parse_time(const std::string& text);

class OtaLogReader {
 public:
  explicit OtaLogReader(std::filesystem::path path) : path_(std::move(path)) {}

  const std::filesystem::path& path() const { return path_; }
  // The file's size now (0 when it does not exist): where reading new records starts.
  std::uint64_t size() const;
  // The complete lines appended since `offset`, which moves past them. A file shorter than
  // `offset` (replaced) is read from its start. Lines that are not records are skipped.
  std::vector<OtaRecord> read_from(std::uint64_t& offset) const;
  // The records of the last update in the file (the trace of its last record), from the file's
  // last `tail_bytes`; `offset` is set to the file's end.
  std::vector<OtaRecord> last_update(std::uint64_t& offset,
                                     std::uint64_t tail_bytes = 256 * 1024) const;

 private:
  std::filesystem::path path_;
};

}  // namespace baetyl::agent
