// The cloud's OTA event: what is read and what is refused (with the trace, to report under it).
#include "event.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "store_path.h"

namespace baetyl::agent {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// 16 zero bytes.
constexpr const char* kMd5 = "AAAAAAAAAAAAAAAAAAAAAA==";

json event(json content_changes = json::object()) {
  json content = {
      {"type", "APP"},
      {"trace", "t-1"},
      {"version", "v2"},
      {"volume",
       {{"name", "app"},
        {"path", "var/db/baetyl/app/v2"},
        {"meta",
         {{"url", "https://cloud/volumes/app-v2.zip"}, {"md5", kMd5}, {"version", "v2"}}}}}};
  content.merge_patch(content_changes);
  return {{"time", "2019-04-18T16:04:45Z"}, {"event", "OTA"}, {"content", content}};
}

std::string error_of(const json& document, std::string* trace = nullptr) {
  try {
    parse_event(document.dump());
  } catch (const EventError& e) {
    if (trace) *trace = e.trace();
    return e.what();
  }
  return "";
}

TEST(Event, ReadsTheOriginalsOtaEvent) {
  const OtaEvent e = parse_event(event().dump());
  EXPECT_EQ(e.type, "APP");
  EXPECT_EQ(e.trace, "t-1");
  EXPECT_EQ(e.version, "v2");
  EXPECT_EQ(e.volume.name, "app");
  EXPECT_EQ(e.volume.path, "var/db/baetyl/app/v2");
  EXPECT_EQ(e.volume.meta.url, "https://cloud/volumes/app-v2.zip");
  EXPECT_EQ(e.volume.meta.md5, kMd5);
  EXPECT_EQ(e.volume.meta.version, "v2");
  EXPECT_EQ(parse_event(event({{"type", "MST"}}).dump()).type, "MST");
  EXPECT_EQ(parse_event(event({{"type", nullptr}}).dump()).type, "APP") << "no type means APP";
}

TEST(Event, TheDeprecatedUpdateEventIsAnApplicationUpdate) {
  json legacy = {
      {"event", "UPDATE"},
      {"content", {{"trace", "t-2"}, {"version", "v3"}, {"config", event()["content"]["volume"]}}}};
  const OtaEvent e = parse_event(legacy.dump());
  EXPECT_EQ(e.type, "APP");
  EXPECT_EQ(e.trace, "t-2");
  EXPECT_EQ(e.volume.name, "app");
}

TEST(Event, ProblemsNameTheFieldAndKeepTheTrace) {
  std::string trace;
  EXPECT_THAT(error_of(event({{"type", "BIN"}}), &trace),
              HasSubstr("content.type: 'BIN' is not APP or MST"));
  EXPECT_EQ(trace, "t-1");
  EXPECT_THAT(error_of(event({{"volume", {{"path", "/etc"}}}})),
              HasSubstr("content.volume.path: '/etc' is absolute"));
  EXPECT_THAT(error_of(event({{"volume", {{"path", "var/db/baetyl/../../etc"}}}})),
              HasSubstr("has a '..' component"));
  EXPECT_THAT(error_of(event({{"volume", {{"path", "var/db/other"}}}})),
              HasSubstr("is not inside var/db/baetyl"));
  EXPECT_THAT(error_of(event({{"volume", {{"path", "var/db/baetyl"}}}})),
              HasSubstr("is not inside var/db/baetyl"));
  EXPECT_THAT(error_of(event({{"volume", {{"path", "var/db/baetyl/application.yml"}}}})),
              HasSubstr("names a file of the master or the agent"));
  EXPECT_THAT(error_of(event({{"volume", {{"name", "../x"}}}})),
              HasSubstr("content.volume.name: '../x' does not match"));
  EXPECT_THAT(error_of(event({{"volume", {{"meta", {{"url", "http://cloud/x.zip"}}}}}})),
              HasSubstr("content.volume.meta.url: 'http://cloud/x.zip' is not an https:// URL"));
  EXPECT_THAT(
      error_of(event({{"volume", {{"meta", {{"md5", "d41d8cd98f00b204e9800998ecf8427e"}}}}}})),
      HasSubstr("is not the base64 of an MD5 digest (16 bytes)"));
  EXPECT_THAT(error_of(event({{"volume", {{"meta", {{"md5", 5}}}}}})),
              HasSubstr("content.volume.meta.md5: must be a string"));
  EXPECT_THAT(error_of(event({{"trace", nullptr}}), &trace),
              HasSubstr("content.trace: is required"));
  EXPECT_EQ(trace, "");
  json other = event();
  other["event"] = "REBOOT";
  EXPECT_THAT(error_of(other), HasSubstr("event: 'REBOOT' is not OTA"));
  try {
    parse_event("{not json");
    ADD_FAILURE();
  } catch (const EventError& e) {
    EXPECT_THAT(e.what(), HasSubstr("not JSON"));
  }
}

TEST(StorePath, VolumesLieStrictlyInsideTheStore) {
  std::string problem;
  EXPECT_EQ(store_relative("var/db/baetyl/app/v2", &problem), "app/v2");
  EXPECT_EQ(store_relative("./var//db/baetyl/./app/", &problem), "app");
  EXPECT_FALSE(store_relative("var/db/baetyl/.hidden", &problem));
  EXPECT_THAT(problem, HasSubstr("starting with '.'"));
  EXPECT_FALSE(store_relative("var/db/baetyl/ota.log", &problem));
  EXPECT_FALSE(store_relative("var/db/baetyl/agent-volumes.json", &problem));
  EXPECT_FALSE(store_relative("var/db/baetyl/x/../../..", &problem));
  EXPECT_FALSE(store_relative("", &problem));
}

TEST(StorePath, OverlapIsByComponents) {
  EXPECT_TRUE(paths_overlap("a/b", "a/b"));
  EXPECT_TRUE(paths_overlap("a", "a/b"));
  EXPECT_TRUE(paths_overlap("a/b/c", "a/b"));
  EXPECT_FALSE(paths_overlap("a/b", "a/bc"));
  EXPECT_FALSE(paths_overlap("a/b", "a/c"));
}

}  // namespace
}  // namespace baetyl::agent
