// extract_zip against zips written entry by entry by Python (zip_writer.h): what a volume may hold,
// and every way an entry could reach outside the directory it is unpacked into.
#include "zip_extract.h"

#include <sys/stat.h>

#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "baetyl/testing/temp_dir.h"
#include "zip_writer.h"

namespace baetyl::agent {
namespace {

namespace fs = std::filesystem;
using baetyl::testing::read_text;
using ::testing::HasSubstr;
using testing::ZipEntry;

class ZipExtractTest : public ::testing::Test {
 protected:
  ZipExtractTest() {
    fs::create_directories(target());
    fs::create_directories(outside());
  }
  fs::path target() const { return dir_.path() / "store/volume"; }
  fs::path outside() const { return dir_.path() / "outside"; }

  // Unpacks `entries` into target(); the error's message, or "" when it worked.
  std::string unpack(const std::vector<ZipEntry>& entries, ExtractLimits limits = {}) {
    const fs::path zip = dir_.path() / "v.zip";
    testing::write_zip(zip, entries);
    try {
      extract_zip(zip, target(), limits);
    } catch (const ExtractError& e) {
      return e.what();
    }
    return "";
  }
  // Whether anything was written next to the target or in outside().
  bool nothing_outside() const {
    return fs::is_empty(outside()) &&
           std::distance(fs::directory_iterator(dir_.path() / "store"), {}) == 1;
  }

  baetyl::testing::TempDir dir_;
};

TEST_F(ZipExtractTest, FilesDirectoriesModesAndLinksInsideAreUnpacked) {
  EXPECT_EQ(
      unpack({ZipEntry::directory("lib/"), ZipEntry::file("lib/run.sh", "#!/bin/sh\n", 0755),
              ZipEntry::file("conf/service.yml", "a: 1\n", 0640),
              ZipEntry::file("./top.txt", "top", 06755), ZipEntry::symlink("lib/current", "run.sh"),
              ZipEntry::symlink("conf/up", "../lib/run.sh"), ZipEntry::directory("empty/")}),
      "");
  EXPECT_EQ(read_text(target() / "lib/run.sh"), "#!/bin/sh\n");
  EXPECT_EQ(read_text(target() / "conf/service.yml"), "a: 1\n");
  EXPECT_EQ(fs::status(target() / "lib/run.sh").permissions() & fs::perms::all,
            static_cast<fs::perms>(0755));
  EXPECT_EQ(fs::status(target() / "conf/service.yml").permissions() & fs::perms::all,
            static_cast<fs::perms>(0640));
  struct stat top {};
  ASSERT_EQ(::stat((target() / "top.txt").c_str(), &top), 0);
  EXPECT_EQ(top.st_mode & 07000, 0u) << "set-id and sticky bits are dropped";
  EXPECT_EQ(fs::read_symlink(target() / "lib/current"), "run.sh");
  EXPECT_EQ(read_text(target() / "conf/up"), "#!/bin/sh\n");
  EXPECT_TRUE(fs::is_directory(target() / "empty"));
  EXPECT_TRUE(nothing_outside());
}

TEST_F(ZipExtractTest, EntriesWithDotDotAreRefused) {
  EXPECT_THAT(unpack({ZipEntry::file("ok.txt", "x"), ZipEntry::file("../evil", "x")}),
              HasSubstr("entry '../evil' has a '..' component"));
  EXPECT_THAT(unpack({ZipEntry::file("a/../../outside/evil", "x")}),
              HasSubstr("entry 'a/../../outside/evil' has a '..' component"));
  EXPECT_FALSE(fs::exists(dir_.path() / "store/evil"));
  EXPECT_TRUE(nothing_outside());
}

TEST_F(ZipExtractTest, AbsoluteEntriesAreRefused) {
  const std::string absolute = (outside() / "abs.txt").string();
  EXPECT_THAT(unpack({ZipEntry::file(absolute, "x")}),
              HasSubstr("entry '" + absolute + "' is an absolute path"));
  EXPECT_TRUE(nothing_outside());
}

TEST_F(ZipExtractTest, LinksThatLeadOutAreRefused) {
  EXPECT_THAT(unpack({ZipEntry::symlink("etc", outside().string())}),
              HasSubstr("is a symbolic link to the absolute path"));
  EXPECT_THAT(unpack({ZipEntry::symlink("a/up", "../../outside")}),
              HasSubstr("entry 'a/up' is a symbolic link to '../../outside', outside the volume"));
  // Lexically inside, but through another link ("s" is the top) it would climb out.
  EXPECT_THAT(unpack({ZipEntry::symlink("s", "."), ZipEntry::symlink("a/b/l", "s/../../..")}),
              HasSubstr("a '..' after a name could climb out"));
  EXPECT_TRUE(nothing_outside());
}

TEST_F(ZipExtractTest, NothingIsWrittenThroughALink) {
  // A later entry below a link (even one that stays inside) does not go through it: the link is
  // replaced by a directory.
  EXPECT_EQ(unpack({ZipEntry::directory("real/"), ZipEntry::symlink("via", "real"),
                    ZipEntry::file("via/file.txt", "x")}),
            "");
  EXPECT_FALSE(fs::is_symlink(target() / "via"));
  EXPECT_EQ(read_text(target() / "via/file.txt"), "x");
  EXPECT_FALSE(fs::exists(target() / "real/file.txt"));
  EXPECT_TRUE(nothing_outside());
}

TEST_F(ZipExtractTest, DevicesAndSocketsAreRefusedAndAFifoIsAPlainFile) {
  for (const unsigned mode : {S_IFCHR | 0600u, S_IFBLK | 0600u, S_IFSOCK | 0600u}) {
    EXPECT_THAT(unpack({ZipEntry::special("special", mode)}),
                HasSubstr("entry 'special' is not a file, directory or link"))
        << std::oct << mode;
    EXPECT_FALSE(fs::exists(fs::symlink_status(target() / "special")));
  }
  // libarchive reads a zip entry with a FIFO's mode as a regular file.
  EXPECT_EQ(unpack({ZipEntry::special("special", S_IFIFO | 0644u)}), "");
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(target() / "special")));
}

TEST_F(ZipExtractTest, TheUnpackedSizeAndTheNumberOfEntriesAreBounded) {
  // 4 MiB of zeros compress to a few KiB: a small zip, a large volume.
  EXPECT_THAT(unpack({ZipEntry::file("zeros", std::string(4 << 20, '\0'))},
                     ExtractLimits{.max_bytes = 1 << 20}),
              HasSubstr("the content is larger than 1048576 bytes unpacked (at entry 'zeros')"));
  std::vector<ZipEntry> many;
  for (char c = 'a'; c <= 'k'; ++c) many.push_back(ZipEntry::file(std::string(1, c), "x"));
  EXPECT_THAT(unpack(many, ExtractLimits{.max_entries = 10}), HasSubstr("more than 10 entries"));
}

TEST_F(ZipExtractTest, NotAZipIsRefused) {
  std::ofstream(dir_.path() / "v.zip") << "this is not a zip";
  try {
    extract_zip(dir_.path() / "v.zip", target(), {});
    ADD_FAILURE() << "expected ExtractError";
  } catch (const ExtractError& e) {
    EXPECT_THAT(e.what(), HasSubstr("zip"));
  }
}

TEST(CheckLinkTarget, CountsTheLevelsTheLinkMayClimb) {
  EXPECT_EQ(check_link_target("a/b/l", "../x"), "");
  EXPECT_EQ(check_link_target("a/b/l", "../../x"), "");
  EXPECT_NE(check_link_target("a/b/l", "../../../x"), "");
  EXPECT_EQ(check_link_target("l", "x/y"), "");
  EXPECT_NE(check_link_target("l", "x/../y"), "");
  EXPECT_NE(check_link_target("l", ""), "");
  EXPECT_NE(check_link_target("l", "/etc"), "");
}

}  // namespace
}  // namespace baetyl::agent
