// The pieces of `baetyl list` and `baetyl logs` that need no master: rows, table, log files.
#include "core/cli_ops.h"

#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "baetyl/testing/temp_dir.h"

namespace baetyl::master {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

nlohmann::json sample() {
  return nlohmann::json::parse(R"({"services": [
    {"name": "hub", "image": "baetyl-hub:1", "instances": [
      {"name": "hub", "status": "running", "start_time": "2026-12-07T00:00:00.25Z",
       "restart_count": 3, "process": {"id": 42, "name": "hub"},
       "cpu_stats": {"used_percent": 1.25}, "mem_stats": {"used": 3145728}}]},
    {"name": "fn", "image": "baetyl-function-python", "instances": [
      {"name": "fn.i1", "status": "restarting", "restart_count": 1,
       "start_time": "2026-12-07T00:00:00Z", "container": {"id": "0123456789abcdef", "name": "x"}}]}
  ]})");
}

TEST(CliOps, ListRowsTakeWhatInspectSays) {
  auto now = std::chrono::system_clock::from_time_t(1796601600 + 125);
  auto rows = list_rows(sample(), now);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["service"], "hub");
  EXPECT_EQ(rows[0]["restarts"], 3);
  EXPECT_EQ(rows[0]["uptime"], 125);
  EXPECT_EQ(rows[0]["pid"], 42);
  EXPECT_EQ(rows[0]["memory"], 3145728);
  EXPECT_EQ(rows[0]["image"], "baetyl-hub:1");
  // Not running: no uptime, no pid or container.
  EXPECT_TRUE(rows[1]["uptime"].is_null());
  EXPECT_TRUE(rows[1]["container"].is_null());
  EXPECT_EQ(rows[1]["status"], "restarting");
}

TEST(CliOps, TheTableIsAligned) {
  auto now = std::chrono::system_clock::from_time_t(1796601600 + 3700);
  const std::string table = format_table(list_rows(sample(), now));
  EXPECT_THAT(table, HasSubstr("SERVICE  INSTANCE  STATUS      RESTARTS  UPTIME  PID/CONTAINER"));
  EXPECT_THAT(table, HasSubstr("hub      hub       running     3         1h1m    42"));
  EXPECT_THAT(table, HasSubstr("1.2%"));
  EXPECT_THAT(table, HasSubstr("3.0MiB"));
  EXPECT_THAT(table, HasSubstr("fn       fn.i1     restarting  1         -       -"));
}

TEST(CliOps, LogFilesOldestFirstAndSelectedByTimeAndTail) {
  testing::TempDir dir;
  dir.write("hub.log", "2026-12-07T00:00:05.000Z five\n2026-12-07T00:00:06.000Z six\n");
  dir.write("hub.1.log", "2026-12-07T00:00:03.000Z three\n2026-12-07T00:00:04.000Z four\n");
  dir.write("hub.2.log", "2026-12-07T00:00:01.000Z one\n");
  dir.write("hub.i1.log", "2026-12-07T00:00:02.000Z other instance\n");
  auto files = instance_log_files(dir.path(), "hub");
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0].filename(), "hub.2.log");
  EXPECT_EQ(files[2].filename(), "hub.log");

  auto all = select_log_lines(files, std::nullopt, std::nullopt);
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all.front(), "2026-12-07T00:00:01.000Z one");
  EXPECT_THAT(select_log_lines(files, std::nullopt, 2),
              ElementsAre("2026-12-07T00:00:05.000Z five", "2026-12-07T00:00:06.000Z six"));
  auto since = std::chrono::system_clock::from_time_t(1796601600 + 4);
  EXPECT_THAT(select_log_lines(files, since, std::nullopt),
              ElementsAre("2026-12-07T00:00:04.000Z four", "2026-12-07T00:00:05.000Z five",
                          "2026-12-07T00:00:06.000Z six"));
  EXPECT_TRUE(select_log_lines(files, std::nullopt, 0).empty());
  EXPECT_TRUE(instance_log_files(dir.path(), "nosuch").empty());
}

}  // namespace
}  // namespace baetyl::master
