// The OTA worker without a master: which events it takes, refuses or ignores, and what it reports.
#include "ota_runner.h"

#include <chrono>
#include <fstream>
#include <mutex>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>

#include "baetyl/testing/temp_dir.h"

namespace baetyl::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

std::string event(const std::string& trace, const std::string& md5 = "AAAAAAAAAAAAAAAAAAAAAA==") {
  return nlohmann::json{{"event", "OTA"},
                        {"content",
                         {{"type", "APP"},
                          {"trace", trace},
                          {"volume",
                           {{"name", "app"},
                            {"path", "var/db/baetyl/app/" + trace},
                            {"meta", {{"url", "https://127.0.0.1:1/app.zip"}, {"md5", md5}}}}}}}}
      .dump();
}

std::vector<std::string> steps(const ProgressBook& book, const std::string& trace) {
  std::vector<std::string> out;
  for (const auto& record : book.to_json().value(trace, nlohmann::json::array())) {
    out.push_back(record.value("step", ""));
  }
  return out;
}

bool eventually(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

class OtaRunnerTest : public ::testing::Test {
 protected:
  OtaRunnerTest()
      : logger_(std::make_shared<spdlog::logger>("test",
                                                 std::make_shared<spdlog::sinks::null_sink_mt>())),
        store_(dir_.path() / "store", {}, CloudHttp(CloudHttpOptions{.timeout = 2s}), logger_),
        runner_(
            store_, OtaLogReader(dir_.path() / "store/ota.log"), book_,
            [this](const api::UpdateRequest& request) {
              std::lock_guard lock(mutex_);
              updates_.push_back(request);
            },
            OtaRunnerOptions{.timeout = 10s}, logger_) {}

  baetyl::testing::TempDir dir_;
  std::shared_ptr<spdlog::logger> logger_;
  ProgressBook book_;
  VolumeStore store_;
  std::mutex mutex_;
  std::vector<api::UpdateRequest> updates_;
  OtaRunner runner_;
};

TEST_F(OtaRunnerTest, AFailureIsReportedUnderItsTraceAndARepeatedTraceIsIgnored) {
  runner_.start();
  // No master's var/db/baetyl mounted: the update fails before anything is downloaded.
  runner_.submit(event("t1"));
  ASSERT_TRUE(eventually([&] { return steps(book_, "t1").size() == 2; }));
  EXPECT_THAT(steps(book_, "t1"), ElementsAre("RECEIVED", "FAILURE"));
  EXPECT_THAT(book_.to_json()["t1"][1].value("error", ""),
              HasSubstr("the master's var/db/baetyl is not mounted at " +
                        (dir_.path() / "store").string()));

  // The same trace again (a repeated delivery), even as an invalid event: nothing changes.
  runner_.submit(event("t1"));
  runner_.submit(event("t1", "not-base64"));
  std::this_thread::sleep_for(200ms);
  EXPECT_THAT(steps(book_, "t1"), ElementsAre("RECEIVED", "FAILURE"));

  // An invalid event under a new trace is reported there; one without a trace under "".
  runner_.submit(event("t2", "not-base64"));
  runner_.submit("{not json");
  ASSERT_TRUE(eventually([&] { return !steps(book_, "t2").empty() && !steps(book_, "").empty(); }));
  EXPECT_THAT(steps(book_, "t2"), ElementsAre("FAILURE"));
  EXPECT_THAT(book_.to_json()["t2"][0].value("error", ""),
              HasSubstr("invalid OTA event: content.volume.meta.md5"));
  EXPECT_THAT(book_.to_json()[""][0].value("error", ""), HasSubstr("invalid OTA event: not JSON"));
  std::lock_guard lock(mutex_);
  EXPECT_TRUE(updates_.empty()) << "the master was never called";
}

TEST_F(OtaRunnerTest, AnUnfinishedUpdateInOtaLogIsFollowedAndAnEventMeanwhileRefused) {
  const auto line = [](const std::string& step, const std::string& trace, const std::string& time) {
    return nlohmann::json{{"step", step}, {"type", "MST"}, {"trace", trace}, {"time", time}}
               .dump() +
           "\n";
  };
  const std::string now = api::to_rfc3339(std::chrono::system_clock::now());
  dir_.write("store/ota.log", line("RECEIVED", "old", "2020-01-01T00:00:00Z") +
                                  line("RECEIVED", "m1", now) + line("RESTARTING", "m1", now));
  runner_.start();
  EXPECT_THAT(steps(book_, "m1"), ElementsAre("RECEIVED", "RESTARTING"));
  // An event while it is followed is refused.
  runner_.submit(event("t3"));
  EXPECT_THAT(steps(book_, "t3"), ElementsAre("RECEIVED", "FAILURE"));
  EXPECT_THAT(book_.to_json()["t3"][1].value("error", ""),
              HasSubstr("refused: the update m1 is in progress"));
  {
    std::ofstream out(dir_.path() / "store/ota.log", std::ios::app);
    out << line("RESTARTED", "m1", now) << line("UPDATED", "m1", now);
  }
  ASSERT_TRUE(eventually([&] { return book_.last_step("m1") == "UPDATED"; }));
  EXPECT_THAT(steps(book_, "m1"), ElementsAre("RECEIVED", "RESTARTING", "RESTARTED", "UPDATED"));
}

TEST(OtaRunnerStart, AnUpdateOlderThanTheTimeoutEndsWithTimeout) {
  baetyl::testing::TempDir dir;
  auto logger =
      std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
  dir.write("ota.log", nlohmann::json{{"step", "UPDATING"},
                                      {"type", "APP"},
                                      {"trace", "stale"},
                                      {"time", "2020-01-01T00:00:00Z"}}
                               .dump() +
                           "\n");
  ProgressBook book;
  VolumeStore store(dir.path(), {}, CloudHttp({}), logger);
  OtaRunner runner(
      store, OtaLogReader(dir.path() / "ota.log"), book, [](const api::UpdateRequest&) {},
      OtaRunnerOptions{.timeout = 1min}, logger);
  runner.start();
  EXPECT_THAT(steps(book, "stale"), ElementsAre("UPDATING", "TIMEOUT"));
}

}  // namespace
}  // namespace baetyl::agent
