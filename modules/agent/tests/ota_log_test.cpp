// Reading the master's ota.log and the progress the agent reports from it.
#include "ota_log.h"

#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "baetyl/testing/temp_dir.h"
#include "progress.h"

namespace baetyl::agent {
namespace {

std::string line(const std::string& step, const std::string& trace, const std::string& error = "") {
  nlohmann::json record = {
      {"step", step}, {"type", "APP"}, {"trace", trace}, {"time", "2026-01-02T03:04:05.5Z"}};
  if (!error.empty()) record["error"] = error;
  return record.dump() + "\n";
}

std::vector<std::string> steps(const std::vector<OtaRecord>& records) {
  std::vector<std::string> out;
  for (const auto& r : records) out.push_back(r.step);
  return out;
}

TEST(OtaLogReader, ReadsCompleteLinesFromAnOffset) {
  baetyl::testing::TempDir dir;
  const auto path = dir.path() / "ota.log";
  OtaLogReader reader(path);
  std::uint64_t offset = reader.size();
  EXPECT_EQ(offset, 0u);
  EXPECT_TRUE(reader.read_from(offset).empty()) << "a missing file has no records";

  std::ofstream out(path);
  out << line("RECEIVED", "a") << "not json\n" << line("UPDATING", "a") << R"({"step":"UPD)";
  out.flush();
  auto records = reader.read_from(offset);
  EXPECT_EQ(steps(records), (std::vector<std::string>{"RECEIVED", "UPDATING"}));
  EXPECT_EQ(records[0].trace, "a");
  EXPECT_EQ(records[0].type, "APP");
  out << R"(ATED","trace":"a","error":"e"})"
      << "\n";
  out.flush();
  records = reader.read_from(offset);
  ASSERT_EQ(steps(records), std::vector<std::string>{"UPDATED"});
  EXPECT_EQ(records[0].error, "e");
  EXPECT_EQ(offset, reader.size());
}

TEST(OtaLogReader, TheLastUpdateIsTheTrailingRunOfOneTrace) {
  baetyl::testing::TempDir dir;
  const auto path = dir.path() / "ota.log";
  std::ofstream(path) << line("RECEIVED", "a") << line("UPDATED", "a") << line("RECEIVED", "b")
                      << line("UPDATING", "b") << line("RESTARTING", "b");
  OtaLogReader reader(path);
  std::uint64_t offset = 0;
  const auto last = reader.last_update(offset);
  EXPECT_EQ(steps(last), (std::vector<std::string>{"RECEIVED", "UPDATING", "RESTARTING"}));
  EXPECT_EQ(last[0].trace, "b");
  EXPECT_EQ(offset, reader.size());
  // Only the tail is read; its first, partial line is skipped.
  const auto tail = reader.last_update(offset, line("RESTARTING", "b").size() + 10);
  EXPECT_EQ(steps(tail), std::vector<std::string>{"RESTARTING"});
}

TEST(OtaLog, FinalStepsAndTimes) {
  for (const char* final_step : {"UPDATED", "ROLLEDBACK", "FAILURE", "TIMEOUT"}) {
    EXPECT_TRUE(is_final_step(final_step));
  }
  for (const char* step : {"RECEIVED", "UPDATING", "RESTARTING", "RESTARTED", "ROLLINGBACK"}) {
    EXPECT_FALSE(is_final_step(step));
  }
  auto t = parse_time("2019-04-18T16:04:45.920152Z");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*t), 1555603485);
  EXPECT_FALSE(parse_time("2019-04-18 16:04:45").has_value());
  EXPECT_FALSE(parse_time("yesterday").has_value());
}

TEST(ProgressBook, RecordsPerTraceWithOneReceived) {
  ProgressBook book(2);
  int changes = 0;
  book.set_listener([&] { ++changes; });
  book.start("a");
  book.add("a", "RECEIVED", "APP");
  book.add_master("a", {OtaRecord{"RECEIVED", "APP", "a", "t1", ""},
                        OtaRecord{"UPDATING", "APP", "a", "t2", ""},
                        OtaRecord{"UPDATING", "APP", "other", "t2", ""}});
  EXPECT_TRUE(book.started("a"));
  EXPECT_FALSE(book.started("b"));
  EXPECT_EQ(book.last_step("a"), "UPDATING");
  auto report = book.to_json();
  ASSERT_EQ(report["a"].size(), 2u);
  EXPECT_EQ(report["a"][0]["step"], "RECEIVED");
  EXPECT_EQ(report["a"][1]["step"], "UPDATING");
  EXPECT_EQ(report["a"][1]["time"], "t2");
  EXPECT_FALSE(report["a"][1].contains("error"));
  EXPECT_EQ(changes, 3);

  book.add("b", "FAILURE", "APP", "refused");  // a failure without start: not started
  EXPECT_FALSE(book.started("b"));
  EXPECT_EQ(book.to_json()["b"][0]["error"], "refused");
  book.add("c", "FAILURE", "", "bad");
  EXPECT_FALSE(book.to_json().contains("a")) << "only the latest two are kept";
  book.start("c");
  EXPECT_TRUE(book.to_json()["c"].empty()) << "a new start drops the older records";
}

}  // namespace
}  // namespace baetyl::agent
