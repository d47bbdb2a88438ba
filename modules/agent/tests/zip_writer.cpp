#include "zip_writer.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <memory>
#include <stdexcept>

#include "baetyl/testing/process.h"

namespace baetyl::agent::testing {

void write_zip(const std::filesystem::path& path, const std::vector<ZipEntry>& entries) {
  std::unique_ptr<archive, decltype(&archive_write_free)> out(archive_write_new(),
                                                              archive_write_free);
  auto check = [&](int status, const char* what) {
    if (status < ARCHIVE_WARN) {
      const char* text = archive_error_string(out.get());
      throw std::runtime_error(std::string(what) + ": " + (text ? text : "?"));
    }
  };
  check(archive_write_set_format_zip(out.get()), "zip format");
  check(archive_write_open_filename(out.get(), path.c_str()), "open");
  for (const auto& item : entries) {
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> entry(archive_entry_new(),
                                                                        archive_entry_free);
    archive_entry_set_pathname(entry.get(), item.name.c_str());
    archive_entry_set_perm(entry.get(), static_cast<mode_t>(item.mode));
    archive_entry_set_mtime(entry.get(), 1700000000, 0);
    switch (item.kind) {
      case ZipEntry::Kind::file:
        archive_entry_set_filetype(entry.get(), AE_IFREG);
        archive_entry_set_size(entry.get(), static_cast<la_int64_t>(item.content.size()));
        break;
      case ZipEntry::Kind::directory:
        archive_entry_set_filetype(entry.get(), AE_IFDIR);
        break;
      case ZipEntry::Kind::symlink:
        archive_entry_set_filetype(entry.get(), AE_IFLNK);
        archive_entry_set_symlink(entry.get(), item.content.c_str());
        break;
    }
    check(archive_write_header(out.get(), entry.get()), item.name.c_str());
    if (item.kind == ZipEntry::Kind::file && !item.content.empty()) {
      if (archive_write_data(out.get(), item.content.data(), item.content.size()) < 0) {
        check(ARCHIVE_FATAL, item.name.c_str());
      }
    }
  }
  check(archive_write_close(out.get()), "close");
}



void write_zip_with_mode(const std::filesystem::path& path, const std::string& name,
                         unsigned mode) {
  baetyl::testing::Process python(
      {"/usr/bin/python3", "-c",
       "import sys, zipfile\n"
       "info = zipfile.ZipInfo(sys.argv[2])\n"
       "info.create_system = 3\n"
       "info.external_attr = int(sys.argv[3]) << 16\n"
       "with zipfile.ZipFile(sys.argv[1], 'w') as out:\n"
       "    out.writestr(info, b'')\n",
       path.string(), name, std::to_string(mode)});
  const auto code = python.wait(std::chrono::seconds(20));
  if (code != 0) throw std::runtime_error("python3 could not write " + path.string());
}

}  // namespace baetyl::agent::testing
