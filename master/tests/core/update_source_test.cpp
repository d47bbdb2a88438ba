#include "core/update_source.h"

#include <sys/stat.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "baetyl/testing/temp_dir.h"
#include "config/app_config.h"
#include "core/atomic_file.h"

namespace baetyl::master {
namespace {

namespace fs = std::filesystem;
using baetyl::testing::read_text;
using ::testing::HasSubstr;
using ::testing::Not;

std::string refusal(const fs::path& workdir, const std::string& path) {
  try {
    open_update_source(workdir, path);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(UpdateSource, OpensOnlyRegularFilesInsideTheUpdateDirectory) {
  testing::TempDir dir;
  const fs::path& w = dir.path();
  dir.write("var/db/baetyl/v2/application.yml", "version: v2\n");
  dir.write("etc/secret.yml", "secret\n");
  fs::create_symlink("v2/application.yml", w / "var/db/baetyl/current.yml");
  fs::create_symlink("../../../etc/secret.yml", w / "var/db/baetyl/out.yml");
  fs::create_symlink(w / "etc", w / "var/db/baetyl/etc");

  auto source = open_update_source(w, "var/db/baetyl/current.yml");
  EXPECT_EQ(source.read_all(100), "version: v2\n");
  EXPECT_EQ(source.resolved(), fs::canonical(w / "var/db/baetyl/v2/application.yml"));
  EXPECT_EQ(open_update_source(w, (w / "var/db/baetyl/v2/application.yml").string()).read_all(100),
            "version: v2\n");

  EXPECT_THAT(refusal(w, "var/db/baetyl/out.yml"),
              HasSubstr("update path 'var/db/baetyl/out.yml' is outside "));
  EXPECT_THAT(refusal(w, "var/db/baetyl/etc/secret.yml"), HasSubstr("is outside"));
  EXPECT_THAT(refusal(w, "etc/secret.yml"), HasSubstr("is outside"));
  EXPECT_THAT(refusal(w, "var/db/baetyl-other/x.yml"), HasSubstr("is outside"));
  EXPECT_THAT(refusal(w, "var/db/baetyl/v2"), HasSubstr("is a directory, not a file"));
  EXPECT_THAT(refusal(w, "var/db/baetyl/none.yml"), HasSubstr("does not exist"));
  EXPECT_THAT(refusal(w, ""), HasSubstr("update path is required"));
  EXPECT_THAT(refusal(w, std::string("var/db/baetyl/a\0b", 17)), HasSubstr("NUL"));
  fs::create_hard_link(w / "etc/secret.yml", w / "var/db/baetyl/hard.yml");
  EXPECT_THAT(refusal(w, "var/db/baetyl/hard.yml"), HasSubstr("has more than one hard link"));
  ASSERT_EQ(::mkfifo((w / "var/db/baetyl/fifo").c_str(), 0600), 0);
  EXPECT_THAT(refusal(w, "var/db/baetyl/fifo"), HasSubstr("is not a regular file"));
}

TEST(UpdateSource, ReadsUpToALimitAndCopies) {
  testing::TempDir dir;
  dir.write("var/db/baetyl/big.yml", std::string(2000, 'x'));
  auto source = open_update_source(dir.path(), "var/db/baetyl/big.yml");
  try {
    source.read_all(1000);
    ADD_FAILURE() << "no limit";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("'var/db/baetyl/big.yml' is larger than 1000 bytes"));
  }
  source.copy_to(dir.path() / "copy", 0750);
  EXPECT_EQ(read_text(dir.path() / "copy"), std::string(2000, 'x'));
  EXPECT_EQ(fs::status(dir.path() / "copy").permissions(),
            fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);
}

std::string shown(const std::string& text) {
  try {
    check_replacement(parse_app_config(text, "new.yml"), "new.yml");
  } catch (const config::ConfigError& e) {
    return describe_update_error(e);
  }
  return "";
}

TEST(UpdateSource, ErrorsNameFileKeyAndPositionButNoValue) {
  EXPECT_EQ(shown("password hunter2\n"),
            "new.yml: expected a map of keys, got something else (not shown)");
  EXPECT_EQ(shown("services: [{name: a, image: b, restart: {policy: hunter2}}]\n"),
            "new.yml: services[0].restart.policy: invalid value (not shown)");
  EXPECT_EQ(shown("services: [{name: a, image: b, replica: hunter2}]\n"),
            "new.yml: services[0].replica: expected an integer, got something else (not shown)");
  const std::string syntax = shown("version: \"\\qhunter2\"\n");
  EXPECT_THAT(syntax, ::testing::MatchesRegex("new.yml: line 1, column [0-9]+: YAML syntax error"));
  EXPECT_EQ(shown("services: []\n"), "new.yml: services: an update needs at least one service");
  EXPECT_EQ(shown("services: [{name: a}]\n"), "new.yml: services[0].image: is required");
  EXPECT_EQ(shown(std::string(70, 'k') + ": 1\n"),
            "new.yml: " + std::string(64, 'k') +
                "...: unknown key; an application has only version, services and volumes");
}

TEST(FileReplacement, KeepsThePreviousTextAndPutsItBack) {
  testing::TempDir dir;
  const fs::path file = dir.write("application.yml", "version: v1\n");
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
  FileReplacement replacement(file, "version: v2\n");
  EXPECT_EQ(read_text(file), "version: v2\n");
  EXPECT_EQ(read_text(dir.path() / "application.yml.old"), "version: v1\n");
  EXPECT_EQ(fs::status(file).permissions(), fs::perms::owner_read | fs::perms::owner_write);
  replacement.restore();
  EXPECT_EQ(read_text(file), "version: v1\n");
  EXPECT_FALSE(fs::exists(dir.path() / "application.yml.tmp"));
}

TEST(FileReplacement, WithoutAPreviousFileRestoreRemovesIt) {
  testing::TempDir dir;
  const fs::path file = dir.path() / "db/application.yml";
  FileReplacement replacement(file, "version: v2\n");
  EXPECT_EQ(read_text(file), "version: v2\n");
  EXPECT_FALSE(fs::exists(dir.path() / "db/application.yml.old"));
  replacement.restore();
  EXPECT_FALSE(fs::exists(file));
}

TEST(FileReplacement, AFailedWriteLeavesTheFileAsItWas) {
  testing::TempDir dir;
  const fs::path file = dir.write("application.yml", "version: v1\n");
  fs::create_directories(dir.path() / "application.yml.tmp/in-the-way");
  try {
    FileReplacement replacement(file, "version: v2\n");
    ADD_FAILURE() << "the write went through";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("cannot write " + file.string() + ".tmp: Is a directory"));
  }
  EXPECT_EQ(read_text(file), "version: v1\n");
}

}  // namespace
}  // namespace baetyl::master
