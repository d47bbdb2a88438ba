#include "baetyl/log/logger.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace baetyl::log {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "baetyl-log-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  LoggerConfig file_config(const std::string& format = "text") const {
    LoggerConfig config;
    config.path = (dir_ / "logs" / "nested" / "service.log").string();
    config.format = format;
    config.level = "debug";
    return config;
  }

  static std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }

  static std::vector<std::string> read_lines(const fs::path& path) {
    std::vector<std::string> lines;
    std::istringstream in(read_file(path));
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

  static void touch(const fs::path& path, const std::string& content) {
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << content;
  }

  static void age(const fs::path& path, std::chrono::hours by) {
    fs::last_write_time(path, fs::file_time_type::clock::now() - by);
  }

  fs::path dir_;
};

constexpr std::chrono::hours kDays20{20 * 24};

TEST_F(LogTest, TextLinesWithFields) {
  auto config = file_config("text");
  auto logger = make_logger(config, "timer", {{"service", "timer"}, {"instance", "timer"}});
  logger->info("hello {}", "world");
  logger->warn("with spaces");
  logger->flush();

  auto lines = read_lines(config.path);
  ASSERT_EQ(lines.size(), 2u);
  std::regex text(R"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[(\w+)\] (.*))");
  std::smatch match;
  ASSERT_TRUE(std::regex_match(lines[0], match, text)) << lines[0];
  EXPECT_EQ(match[1], "info");
  EXPECT_EQ(match[2], "hello world service=timer instance=timer");
  ASSERT_TRUE(std::regex_match(lines[1], match, text)) << lines[1];
  EXPECT_EQ(match[1], "warn");
  EXPECT_EQ(match[2], "with spaces service=timer instance=timer");
}

TEST_F(LogTest, TextFieldValuesNeedingQuotesAreQuoted) {
  auto config = file_config("text");
  auto logger = make_logger(config, "x", {{"a", "two words"}, {"b", ""}, {"c", "say \"hi\""}});
  logger->info("m");
  logger->flush();
  auto lines = read_lines(config.path);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], ::testing::EndsWith(R"([info] m a="two words" b="" c="say \"hi\"")"));
}

TEST_F(LogTest, JsonLinesParse) {
  auto config = file_config("json");
  auto logger = make_logger(config, "timer", {{"service", "timer"}, {"msg", "clash"}});
  std::string tricky = "quote \" backslash \\ newline \n tab \t ctrl \x01 utf8 \xC3\xA9 end";
  logger->info("{}", tricky);
  logger->error("invalid utf8 \xFF\xC3 here");
  logger->flush();

  auto lines = read_lines(config.path);
  ASSERT_EQ(lines.size(), 2u);  // the newline in the message is escaped, not written
  auto first = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(first["msg"], tricky);
  EXPECT_EQ(first["level"], "info");
  EXPECT_EQ(first["service"], "timer");
  EXPECT_EQ(first["fields.msg"], "clash");
  std::string time = first["time"];
  EXPECT_TRUE(std::regex_match(time, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
      << time;
  EXPECT_THAT(lines[0], ::testing::StartsWith(R"({"time":")"));

  auto second = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(second["level"], "error");
  EXPECT_EQ(second["msg"], "invalid utf8 \xEF\xBF\xBD\xEF\xBF\xBD here");
}

TEST_F(LogTest, JsonTimeIsUtc) {
  spdlog::details::log_msg msg("x", spdlog::level::info, "m");
  msg.time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1795635033123));
  LineFormatter formatter(Format::kJson, {});
  spdlog::memory_buf_t out;
  formatter.format(msg, out);
  EXPECT_EQ(std::string(out.data(), out.size()),
            "{\"time\":\"2026-11-25T19:30:33.123Z\",\"level\":\"info\",\"msg\":\"m\"}\n");
}

TEST_F(LogTest, LevelFilters) {
  auto config = file_config("text");
  config.level = "warn";
  auto logger = make_logger(config, "x");
  logger->debug("d");
  logger->info("i");
  logger->warn("w");
  logger->error("e");
  logger->flush();
  auto lines = read_lines(config.path);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[0], ::testing::EndsWith("[warn] w"));
  EXPECT_THAT(lines[1], ::testing::EndsWith("[error] e"));

  config.level = "debug";
  config.path = (dir_ / "debug.log").string();
  auto verbose = make_logger(config, "y");
  verbose->debug("d");
  verbose->flush();
  EXPECT_EQ(read_lines(config.path).size(), 1u);
}

TEST_F(LogTest, UnknownLevelOrFormatThrows) {
  LoggerConfig config;
  config.level = "verbose";
  EXPECT_THROW(make_logger(config, "x"), std::invalid_argument);
  config.level = "info";
  config.format = "xml";
  EXPECT_THROW(make_logger(config, "x"), std::invalid_argument);
  EXPECT_THROW(parse_level("warning"), std::invalid_argument);
  EXPECT_EQ(parse_level("error"), spdlog::level::err);
}

TEST_F(LogTest, StderrOnlyWithoutPath) {
  LoggerConfig config;
  auto logger = make_logger(config, "x", {{"service", "hub"}});
  ::testing::internal::CaptureStderr();
  logger->info("to stderr");
  logger->flush();
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, HasSubstr("[info] to stderr service=hub\n"));
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(LogTest, FileAlsoGoesToStderr) {
  auto config = file_config("json");
  auto logger = make_logger(config, "x");
  ::testing::internal::CaptureStderr();
  logger->info("both");
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, HasSubstr(R"("msg":"both")"));
  EXPECT_THAT(read_file(config.path), HasSubstr(R"("msg":"both")"));
}

TEST_F(LogTest, RotationKeepsBackupMaxFiles) {
  auto config = file_config("text");
  config.backup_max = 3;
  constexpr std::uint64_t kLimit = 256;
  auto logger = make_logger(config, "x", {}, kLimit);
  for (int i = 0; i < 100; ++i) logger->info("line {:04}", i);
  logger->flush();

  fs::path base = config.path;
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(base.parent_path())) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"service.1.log", "service.2.log", "service.3.log",
                                             "service.log"}));

  // Oldest to newest: .3, .2, .1, current; lines are consecutive and end with the last one.
  std::vector<std::string> all;
  for (auto path : {RotatingFileSink::backup_path(base, 3), RotatingFileSink::backup_path(base, 2),
                    RotatingFileSink::backup_path(base, 1), base}) {
    EXPECT_LE(fs::file_size(path), kLimit) << path;
    auto lines = read_lines(path);
    EXPECT_FALSE(lines.empty()) << path;
    all.insert(all.end(), lines.begin(), lines.end());
  }
  ASSERT_FALSE(all.empty());
  int first = std::stoi(all.front().substr(all.front().size() - 4));
  for (std::size_t i = 0; i < all.size(); ++i) {
    char expected[16];
    std::snprintf(expected, sizeof expected, "line %04d", first + static_cast<int>(i));
    EXPECT_THAT(all[i], ::testing::EndsWith(expected));
  }
  EXPECT_THAT(all.back(), ::testing::EndsWith("line 0099"));
}

TEST_F(LogTest, ExistingFileIsAppendedAndCountsTowardsTheLimit) {
  auto config = file_config("text");
  touch(config.path, std::string(200, 'x') + "\n");
  auto logger = make_logger(config, "x", {}, 256);
  logger->info("this line does not fit any more");
  logger->flush();
  fs::path base = config.path;
  EXPECT_EQ(read_file(RotatingFileSink::backup_path(base, 1)), std::string(200, 'x') + "\n");
  EXPECT_EQ(read_lines(base).size(), 1u);
}

TEST_F(LogTest, AgePruningAtStart) {
  auto config = file_config("text");
  config.backup_max = 3;
  config.age_max = 15;
  fs::path base = config.path;
  fs::path dir = base.parent_path();
  touch(base, "current\n");
  touch(dir / "service.1.log", "fresh\n");
  touch(dir / "service.2.log", "old\n");
  touch(dir / "service.7.log", "beyond backup.max\n");
  touch(dir / "other.log", "not ours\n");
  touch(dir / "service.x.log", "not a backup\n");
  age(dir / "service.2.log", kDays20);
  age(dir / "other.log", kDays20);
  age(dir / "service.x.log", kDays20);

  auto logger = make_logger(config, "x");
  EXPECT_TRUE(fs::exists(dir / "service.1.log"));
  EXPECT_FALSE(fs::exists(dir / "service.2.log"));
  EXPECT_FALSE(fs::exists(dir / "service.7.log"));
  EXPECT_TRUE(fs::exists(dir / "other.log"));
  EXPECT_TRUE(fs::exists(dir / "service.x.log"));
  EXPECT_EQ(read_file(base), "current\n");
}

TEST_F(LogTest, AgePruningAtRotation) {
  auto config = file_config("text");
  config.backup_max = 5;
  config.age_max = 15;
  fs::path base = config.path;
  // With a 1-byte limit every line after the first starts a new file.
  auto logger = make_logger(config, "x", {}, 1);
  logger->info("A");
  logger->info("B");
  logger->info("C");
  logger->flush();
  ASSERT_THAT(read_file(RotatingFileSink::backup_path(base, 2)), HasSubstr("] A"));
  ASSERT_THAT(read_file(RotatingFileSink::backup_path(base, 1)), HasSubstr("] B"));
  age(RotatingFileSink::backup_path(base, 2), kDays20);

  logger->info("D");  // A moves to .3 and is deleted as too old; B and C stay
  logger->flush();
  EXPECT_FALSE(fs::exists(RotatingFileSink::backup_path(base, 3)));
  EXPECT_THAT(read_file(RotatingFileSink::backup_path(base, 2)), HasSubstr("] B"));
  EXPECT_THAT(read_file(RotatingFileSink::backup_path(base, 1)), HasSubstr("] C"));
  EXPECT_THAT(read_file(base), HasSubstr("] D"));
}

TEST_F(LogTest, BackupPathNaming) {
  EXPECT_EQ(RotatingFileSink::backup_path("/var/log/baetyl/hub.log", 2),
            fs::path("/var/log/baetyl/hub.2.log"));
  EXPECT_EQ(RotatingFileSink::backup_path("hub", 1), fs::path("hub.1"));
}

// ---- Configuration ----

struct ServiceConfig {
  LoggerConfig logger;
};

void describe(config::Reader& r, ServiceConfig& c) { r.field("logger", c.logger); }

TEST(LoggerConfigTest, Defaults) {
  auto config = config::load_string<LoggerConfig>("{}");
  EXPECT_EQ(config.path, "");
  EXPECT_EQ(config.level, "info");
  EXPECT_EQ(config.format, "text");
  EXPECT_EQ(config.age_max, 15);
  EXPECT_EQ(config.size_max, 50);
  EXPECT_EQ(config.backup_max, 15);
}

TEST(LoggerConfigTest, AllKeys) {
  std::vector<std::string> unknown;
  auto config = config::load_string<ServiceConfig>(R"(
logger:
  path: var/log/baetyl/service.log
  level: debug
  format: json
  age:
    max: 3
  size:
    max: 10
  backup:
    max: 2
)",
                                                   "conf.yml", &unknown);
  EXPECT_EQ(config.logger.path, "var/log/baetyl/service.log");
  EXPECT_EQ(config.logger.level, "debug");
  EXPECT_EQ(config.logger.format, "json");
  EXPECT_EQ(config.logger.age_max, 3);
  EXPECT_EQ(config.logger.size_max, 10);
  EXPECT_EQ(config.logger.backup_max, 2);
  EXPECT_TRUE(unknown.empty()) << ::testing::PrintToString(unknown);
}

std::vector<config::Issue> issues_of(const std::string& yaml) {
  try {
    config::load_string<ServiceConfig>(yaml, "conf.yml");
  } catch (const config::ConfigError& e) {
    return e.issues();
  }
  return {};
}

std::vector<std::string> keys_of(const std::vector<config::Issue>& issues) {
  std::vector<std::string> keys;
  for (const auto& issue : issues) keys.push_back(issue.key);
  return keys;
}

TEST(LoggerConfigTest, BadLevelNamesTheKey) {
  auto issues = issues_of("logger: {level: verbose}");
  ASSERT_EQ(keys_of(issues), std::vector<std::string>{"logger.level"});
  EXPECT_THAT(issues[0].message, HasSubstr("verbose"));

  try {
    config::load_string<LoggerConfig>("level: warning", "logger.yml");
    FAIL() << "no error";
  } catch (const config::ConfigError& e) {
    ASSERT_EQ(e.issues().size(), 1u);
    EXPECT_EQ(e.issues()[0].key, "level");
    EXPECT_THAT(e.what(), HasSubstr("logger.yml"));
  }
}

TEST(LoggerConfigTest, ZeroLimitsNameTheirKeys) {
  auto issues = issues_of("logger: {age: {max: 0}, size: {max: 0}, backup: {max: -1}}");
  auto keys = keys_of(issues);
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys, (std::vector<std::string>{"logger.age.max", "logger.backup.max",
                                            "logger.size.max"}));
}

TEST(LoggerConfigTest, BadFormatAndWrongTypes) {
  auto keys = keys_of(issues_of("logger: {format: xml, size: {max: big}}"));
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys, (std::vector<std::string>{"logger.format", "logger.size.max"}));
}

}  // namespace
}  // namespace baetyl::log
