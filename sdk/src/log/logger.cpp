#include "baetyl/log/logger.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <system_error>

#include <spdlog/sinks/stdout_sinks.h>

namespace baetyl::log {

namespace fs = std::filesystem;

void describe(config::Reader& r, LoggerConfig& c) {
  r.field("path", c.path);
  r.field("level", c.level).one_of({"debug", "info", "warn", "error"});
  r.field("format", c.format).one_of({"text", "json"});
  r.section("age", [&](config::Reader& s) { s.field("max", c.age_max).min(1); });
  r.section("size", [&](config::Reader& s) { s.field("max", c.size_max).min(1); });
  r.section("backup", [&](config::Reader& s) { s.field("max", c.backup_max).min(1); });
}

spdlog::level::level_enum parse_level(std::string_view level) {
  if (level == "debug") return spdlog::level::debug;
  if (level == "info") return spdlog::level::info;
  if (level == "warn") return spdlog::level::warn;
  if (level == "error") return spdlog::level::err;
  throw std::invalid_argument("unknown log level '" + std::string(level) +
                              "' (expected debug, info, warn or error)");
}

std::string_view level_name(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace: return "trace";
    case spdlog::level::debug: return "debug";
    case spdlog::level::info: return "info";
    case spdlog::level::warn: return "warn";
    case spdlog::level::err: return "error";
    case spdlog::level::critical: return "fatal";
    default: return "off";
  }
}

Format parse_format(std::string_view format) {
  if (format == "text") return Format::kText;
  if (format == "json") return Format::kJson;
  throw std::invalid_argument("unknown log format '" + std::string(format) +
                              "' (expected text or json)");
}

// ---- Formatting ----

namespace {

void append(spdlog::memory_buf_t& dest, std::string_view text) {
  dest.append(text.data(), text.data() + text.size());
}

void append_digits(spdlog::memory_buf_t& dest, long value, int width) {
  char buffer[24];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  (void)ec;
  for (auto n = end - buffer; n < width; ++n) dest.push_back('0');
  dest.append(buffer, end);
}

// Length of the valid UTF-8 sequence starting at text[i], or 0 when it is not valid.
std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char lead = byte(i);
  std::size_t length;
  std::uint32_t code;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    code = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    code = lead & 0x0F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    code = lead & 0x07;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  for (std::size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    code = (code << 6) | (byte(i + k) & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are invalid.
  if ((length == 3 && code < 0x800) || (length == 4 && code < 0x10000) || code > 0x10FFFF ||
      (code >= 0xD800 && code <= 0xDFFF)) {
    return 0;
  }
  return length;
}

// A logfmt value: bare when it has no spaces, quotes, '=' or control characters; quoted otherwise.
void append_text_value(std::string_view value, spdlog::memory_buf_t& dest) {
  bool bare = !value.empty();
  for (char c : value) {
    if (static_cast<unsigned char>(c) <= ' ' || c == '"' || c == '=' || c == '\\') {
      bare = false;
      break;
    }
  }
  if (bare) {
    append(dest, value);
    return;
  }
  dest.push_back('"');
  append_json_escaped(value, dest);
  dest.push_back('"');
}

bool is_reserved_json_key(std::string_view key) {
  return key == "time" || key == "level" || key == "msg";
}

}  // namespace

void append_json_escaped(std::string_view text, spdlog::memory_buf_t& dest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::size_t i = 0;
  while (i < text.size()) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      std::size_t length = utf8_sequence_length(text, i);
      if (length == 0) {
        append(dest, "\xEF\xBF\xBD");  // U+FFFD REPLACEMENT CHARACTER
        ++i;
      } else {
        append(dest, text.substr(i, length));
        i += length;
      }
      continue;
    }
    switch (c) {
      case '"': append(dest, "\\\""); break;
      case '\\': append(dest, "\\\\"); break;
      case '\n': append(dest, "\\n"); break;
      case '\r': append(dest, "\\r"); break;
      case '\t': append(dest, "\\t"); break;
      case '\b': append(dest, "\\b"); break;
      case '\f': append(dest, "\\f"); break;
      default:
        if (c < 0x20 || c == 0x7F) {
          append(dest, "\\u00");
          dest.push_back(kHex[c >> 4]);
          dest.push_back(kHex[c & 0xF]);
        } else {
          dest.push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
}

LineFormatter::LineFormatter(Format format, Fields fields)
    : format_(format), fields_(std::move(fields)) {}

std::unique_ptr<spdlog::formatter> LineFormatter::clone() const {
  return std::make_unique<LineFormatter>(format_, fields_);
}

void LineFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  auto since_epoch = msg.time.time_since_epoch();
  auto second = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  if (second != cached_second_) {
    std::time_t t = static_cast<std::time_t>(second.count());
    std::tm tm{};
    char buffer[32];
    if (format_ == Format::kJson) {
      gmtime_r(&t, &tm);
      std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &tm);
    } else {
      localtime_r(&t, &tm);
      std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S", &tm);
    }
    cached_time_ = buffer;
    cached_second_ = second;
  }
  if (format_ == Format::kJson) {
    format_json(msg, dest);
  } else {
    format_text(msg, dest);
  }
}

void LineFormatter::format_text(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch());
  append(dest, cached_time_);
  dest.push_back('.');
  append_digits(dest, static_cast<long>(millis.count() % 1000), 3);
  append(dest, " [");
  append(dest, level_name(msg.level));
  append(dest, "] ");
  append(dest, std::string_view(msg.payload.data(), msg.payload.size()));
  for (const auto& [key, value] : fields_) {
    dest.push_back(' ');
    append(dest, key);
    dest.push_back('=');
    append_text_value(value, dest);
  }
  dest.push_back('\n');
}

void LineFormatter::format_json(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch());
  append(dest, "{\"time\":\"");
  append(dest, cached_time_);
  dest.push_back('.');
  append_digits(dest, static_cast<long>(millis.count() % 1000), 3);
  append(dest, "Z\",\"level\":\"");
  append(dest, level_name(msg.level));
  append(dest, "\",\"msg\":\"");
  append_json_escaped(std::string_view(msg.payload.data(), msg.payload.size()), dest);
  dest.push_back('"');
  for (const auto& [key, value] : fields_) {
    // As logrus does, a field may not replace the fixed keys.
    append(dest, is_reserved_json_key(key) ? ",\"fields." : ",\"");
    append_json_escaped(key, dest);
    append(dest, "\":\"");
    append_json_escaped(value, dest);
    dest.push_back('"');
  }
  append(dest, "}\n");
}

// ---- Rotating file ----

RotatingFileSink::RotatingFileSink(fs::path path, RotationPolicy policy)
    : path_(std::move(path)), policy_(policy) {
  if (path_.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(path_.parent_path(), ec);
    if (ec) {
      throw spdlog::spdlog_ex("cannot create log directory " + path_.parent_path().string() +
                              ": " + ec.message());
    }
  }
  open(false);
  prune();
}

RotatingFileSink::~RotatingFileSink() {
  if (file_) std::fclose(file_);
}

fs::path RotatingFileSink::backup_path(const fs::path& path, int index) {
  fs::path name = path.stem();
  name += "." + std::to_string(index);
  name += path.extension();
  return path.parent_path() / name;
}

void RotatingFileSink::open(bool truncate) {
  if (file_) {
    std::fclose(file_);
    file_ = nullptr;
  }
  file_ = std::fopen(path_.c_str(), truncate ? "wb" : "ab");
  if (!file_) {
    throw spdlog::spdlog_ex("cannot open log file " + path_.string() + ": " +
                                std::strerror(errno),
                            errno);
  }
  std::error_code ec;
  auto size = truncate ? 0 : fs::file_size(path_, ec);
  size_ = ec ? 0 : size;
}

void RotatingFileSink::sink_it_(const spdlog::details::log_msg& msg) {
  spdlog::memory_buf_t line;
  formatter_->format(msg, line);
  if (policy_.max_bytes > 0 && size_ > 0 && size_ + line.size() > policy_.max_bytes) rotate();
  if (!file_) open(false);
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size()) {
    throw spdlog::spdlog_ex("cannot write log file " + path_.string(), errno);
  }
  size_ += line.size();
}

void RotatingFileSink::flush_() {
  if (file_) std::fflush(file_);
}

void RotatingFileSink::rotate() {
  std::fclose(file_);
  file_ = nullptr;
  if (policy_.max_backups <= 0) {
    open(true);
    return;
  }
  std::error_code ec;
  fs::remove(backup_path(path_, policy_.max_backups), ec);
  for (int i = policy_.max_backups; i > 1; --i) {
    fs::path from = backup_path(path_, i - 1);
    if (fs::exists(from, ec)) fs::rename(from, backup_path(path_, i), ec);
  }
  ec.clear();
  fs::rename(path_, backup_path(path_, 1), ec);
  open(false);
  // When the file could not be moved aside, logging goes on in it and the next attempt comes
  // after another max_bytes rather than at every line.
  if (ec) size_ = 0;
  prune();
}

void RotatingFileSink::prune() {
  // Rotated files are <stem>.<index><extension> in the directory of the log file.
  std::string stem = path_.stem().string() + ".";
  std::string extension = path_.extension().string();
  fs::path directory = path_.has_parent_path() ? path_.parent_path() : fs::path(".");
  auto oldest = fs::file_time_type::clock::now() - policy_.max_age;
  std::error_code ec;
  for (fs::directory_iterator it(directory, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.size() <= stem.size() + extension.size() || !name.starts_with(stem) ||
        !name.ends_with(extension)) {
      continue;
    }
    std::string_view digits(name.data() + stem.size(),
                            name.size() - stem.size() - extension.size());
    int index = 0;
    auto [end_ptr, parse_error] =
        std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (parse_error != std::errc() || end_ptr != digits.data() + digits.size() || index < 1) {
      continue;
    }
    std::error_code file_ec;
    bool expired = false;
    if (policy_.max_age.count() > 0) {
      auto modified = fs::last_write_time(it->path(), file_ec);
      expired = !file_ec && modified < oldest;
    }
    if (expired || index > policy_.max_backups) fs::remove(it->path(), file_ec);
  }
}

// ---- Loggers ----

namespace {

std::shared_ptr<spdlog::logger> build_logger(const LoggerConfig& config, const std::string& name,
                                             Fields fields, std::uint64_t size_max_bytes) {
  auto level = parse_level(config.level);
  auto format = parse_format(config.format);
  std::vector<spdlog::sink_ptr> sinks;
  sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (!config.path.empty()) {
    RotationPolicy policy;
    policy.max_bytes = size_max_bytes;
    policy.max_backups = config.backup_max > 0 ? config.backup_max : 0;
    policy.max_age = std::chrono::hours(config.age_max > 0 ? 24 * config.age_max : 0);
    sinks.push_back(std::make_shared<RotatingFileSink>(config.path, policy));
  }
  auto logger = std::make_shared<spdlog::logger>(name, sinks.begin(), sinks.end());
  logger->set_formatter(std::make_unique<LineFormatter>(format, std::move(fields)));
  logger->set_level(level);
  // Every line reaches the file at once, as with the original's unbuffered writes, so the last
  // lines before a crash are not lost.
  logger->flush_on(spdlog::level::trace);
  return logger;
}

}  // namespace

std::shared_ptr<spdlog::logger> make_logger(const LoggerConfig& config, const std::string& name,
                                            Fields fields) {
  std::uint64_t bytes = config.size_max > 0 ? static_cast<std::uint64_t>(config.size_max) << 20 : 0;
  return build_logger(config, name, std::move(fields), bytes);
}

std::shared_ptr<spdlog::logger> make_logger(const LoggerConfig& config, const std::string& name,
                                            Fields fields, std::uint64_t size_max_bytes) {
  return build_logger(config, name, std::move(fields), size_max_bytes);
}

}  // namespace baetyl::log
