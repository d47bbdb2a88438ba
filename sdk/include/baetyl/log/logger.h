#pragma once
// Logging for every Baetyl binary: spdlog loggers configured by the `logger:` keys of the docs.
//
//   logger:
//     path: var/log/baetyl/service.log   # empty: stderr only
//     level: info                        # debug, info, warn, error
//     format: text                       # text, json
//     age: {max: 15}                     # days a rotated file is kept
//     size: {max: 50}                    # MB at which the file rotates
//     backup: {max: 15}                  # rotated files kept
//
// Lines always go to stderr and, with a path, also to that file. Rotated files are named like
// spdlog's rotating sink: service.log -> service.1.log (newest) ... service.<backup.max>.log.
//
// text: 2026-11-25 19:30:33.123 [info] message service=timer instance=timer   (local time)
// json: {"time":"2026-11-25T19:30:33.123Z","level":"info","msg":"message","service":"timer"}
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <spdlog/formatter.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/base_sink.h>

#include "baetyl/config/reader.h"

namespace baetyl::log {

struct LoggerConfig {
  std::string path;              // empty: no file
  std::string level = "info";    // debug, info, warn, error
  std::string format = "text";   // text, json
  int age_max = 15;              // days a rotated file is kept
  int size_max = 50;             // MB at which the file rotates
  int backup_max = 15;           // rotated files kept
};

void describe(config::Reader& r, LoggerConfig& c);

// Extra key/value pairs written on every line, e.g. {{"service", "timer"}}.
using Fields = std::vector<std::pair<std::string, std::string>>;

// A logger writing to stderr and, when config.path is set, to that file (parent directories are
// created). Not registered with spdlog's registry. Throws std::invalid_argument for an unknown
// level or format, and spdlog::spdlog_ex when the file cannot be opened.
std::shared_ptr<spdlog::logger> make_logger(const LoggerConfig& config, const std::string& name,
                                            Fields fields = {});
// The same with the rotation size given in bytes instead of config.size_max MB (for tests and
// callers that need finer limits).
std::shared_ptr<spdlog::logger> make_logger(const LoggerConfig& config, const std::string& name,
                                            Fields fields, std::uint64_t size_max_bytes);

// "debug", "info", "warn", "error" -> spdlog level; anything else throws std::invalid_argument.
spdlog::level::level_enum parse_level(std::string_view level);
// The name written in log lines: trace, debug, info, warn, error, fatal, off.
std::string_view level_name(spdlog::level::level_enum level);

enum class Format { kText, kJson };
// "text" or "json"; anything else throws std::invalid_argument.
Format parse_format(std::string_view format);

// Formats records as text or JSON lines, appending `fields` to each.
class LineFormatter final : public spdlog::formatter {
 public:
  LineFormatter(Format format, Fields fields);
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;

 private:
  void format_text(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest);
  void format_json(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest);

  Format format_;
  Fields fields_;
  // The time text up to the seconds, cached for the second it was made for.
  std::chrono::seconds cached_second_{-1};
  std::string cached_time_;
};

// Appends `text` to `dest` as the inside of a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by U+FFFD.
void append_json_escaped(std::string_view text, spdlog::memory_buf_t& dest);

struct RotationPolicy {
  // Rotate before a line would take the file past this size; 0: never rotate.
  std::uint64_t max_bytes = 50ull << 20;
  // Rotated files kept; 0: the file is truncated instead of rotated.
  int max_backups = 15;
  // Rotated files older than this are deleted; 0: kept whatever their age.
  std::chrono::hours max_age{15 * 24};
};

// A file that rotates by size and prunes rotated files by age (when opened and at each rotation).
// Rotated files with an index above max_backups (e.g. after the limit was lowered) are deleted too.
class RotatingFileSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  RotatingFileSink(std::filesystem::path path, RotationPolicy policy);
  ~RotatingFileSink() override;

  // Name of the index-th rotated file: service.log -> service.<index>.log.
  static std::filesystem::path backup_path(const std::filesystem::path& path, int index);

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override;

 private:
  void open(bool truncate);
  void rotate();
  void prune();

  std::filesystem::path path_;
  RotationPolicy policy_;
  std::FILE* file_ = nullptr;
  std::uint64_t size_ = 0;
};

}  // namespace baetyl::log
