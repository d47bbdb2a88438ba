#include "zip_extract.h"

#include "store_path.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <memory>
#include <string>
#include <vector>

namespace baetyl::agent {
namespace {

namespace fs = std::filesystem;

using ReadArchive = std::unique_ptr<archive, decltype(&archive_read_free)>;
using WriteArchive = std::unique_ptr<archive, decltype(&archive_write_free)>;

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& part : parts) out += (out.empty() ? "" : "/") + part;
  return out;
}

// An entry path made relative and clean ("a/b"), or the reason it cannot be one.
std::string clean_entry(const std::string& name, std::string& problem) {
  if (name.empty()) {
    problem = "has an empty name";
    return {};
  }
  if (name.front() == '/') {
    problem = "is an absolute path";
    return {};
  }
  const auto parts = path_components(name);
  for (const auto& part : parts) {
    if (part == "..") {
      problem = "has a '..' component: it would be written outside the volume";
      return {};
    }
  }
  return join(parts);
}

std::string archive_problem(archive* a) {
  const char* text = archive_error_string(a);
  return text == nullptr ? "unknown libarchive error" : text;
}

}  // namespace

std::string check_link_target(const std::string& entry, const std::string& target) {
  if (target.empty()) return "is a symbolic link with an empty target";
  if (target.front() == '/') {
    return "is a symbolic link to the absolute path '" + target + "' (outside the volume)";
  }
  const auto parts = path_components(target);
  const std::size_t depth = path_components(entry).size() - 1;  // directories above the link
  std::size_t up = 0;
  bool named = false;
  for (const auto& part : parts) {
    if (part != "..") {
      named = true;
    } else if (named) {
      return "is a symbolic link to '" + target +
             "': a '..' after a name could climb out of the volume through another link";
    } else {
      ++up;
    }
  }
  if (up > depth) return "is a symbolic link to '" + target + "', outside the volume";
  return {};
}

void extract_zip(const fs::path& zip, const fs::path& dir, const ExtractLimits& limits) {
  // Entries are written below the real path of `dir`, so that no component of it is a link
  // (ARCHIVE_EXTRACT_SECURE_SYMLINKS refuses to write through one, which also covers the links
  // that earlier entries made).
  const fs::path root = fs::canonical(dir);
  ReadArchive in(archive_read_new(), archive_read_free);
  WriteArchive out(archive_write_disk_new(), archive_write_free);
  if (!in || !out) throw ExtractError("cannot allocate libarchive objects");
  archive_read_support_format_zip(in.get());
  archive_write_disk_set_options(out.get(), ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                                ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                                ARCHIVE_EXTRACT_UNLINK);
  if (archive_read_open_filename(in.get(), zip.c_str(), 64 * 1024) != ARCHIVE_OK) {
    throw ExtractError("not a zip file: " + archive_problem(in.get()));
  }

  std::uint64_t entries = 0;
  std::uint64_t total = 0;
  for (;;) {
    archive_entry* entry = nullptr;
    const int status = archive_read_next_header(in.get(), &entry);
    if (status == ARCHIVE_EOF) break;
    if (status < ARCHIVE_WARN) throw ExtractError("bad zip: " + archive_problem(in.get()));
    if (++entries > limits.max_entries) {
      throw ExtractError("more than " + std::to_string(limits.max_entries) + " entries");
    }
    const char* raw_name = archive_entry_pathname(entry);
    const std::string name = raw_name == nullptr ? "" : raw_name;
    auto fail = [&](const std::string& why) { return ExtractError("entry '" + name + "' " + why); };

    std::string problem;
    const std::string relative = clean_entry(name, problem);
    if (!problem.empty()) throw fail(problem);
    if (relative.empty()) continue;  // "./": the directory itself

    // Zip has no hard links; an entry that says it is one is refused rather than followed.
    if (archive_entry_hardlink(entry) != nullptr) throw fail("is a hard link");
    if (const mode_t type = archive_entry_filetype(entry); type == AE_IFLNK) {
      const char* target = archive_entry_symlink(entry);
      problem = check_link_target(relative, target == nullptr ? "" : target);
      if (!problem.empty()) throw fail(problem);
    } else if (type != AE_IFREG && type != AE_IFDIR) {
      throw fail("is not a file, directory or link (a device, FIFO or socket)");
    }
    const mode_t type = archive_entry_filetype(entry);
    mode_t mode = archive_entry_perm(entry) & 0777;
    mode |= type == AE_IFDIR ? 0700 : 0600;
    archive_entry_set_perm(entry, mode);
    archive_entry_set_pathname(entry, (root / relative).c_str());

    if (archive_write_header(out.get(), entry) < ARCHIVE_WARN) {
      throw fail("cannot be written: " + archive_problem(out.get()));
    }
    const void* block = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    for (;;) {
      const int read = archive_read_data_block(in.get(), &block, &size, &offset);
      if (read == ARCHIVE_EOF) break;
      if (read < ARCHIVE_WARN) throw fail("cannot be read: " + archive_problem(in.get()));
      total += size;
      if (total > limits.max_bytes) {
        throw ExtractError("the content is larger than " + std::to_string(limits.max_bytes) +
                           " bytes unpacked (at entry '" + name + "')");
      }
      if (archive_write_data_block(out.get(), block, size, offset) < ARCHIVE_WARN) {
        throw fail("cannot be written: " + archive_problem(out.get()));
      }
    }
    if (archive_write_finish_entry(out.get()) < ARCHIVE_WARN) {
      throw fail("cannot be written: " + archive_problem(out.get()));
    }
  }
  if (archive_write_close(out.get()) < ARCHIVE_WARN) {
    throw ExtractError("cannot finish unpacking: " + archive_problem(out.get()));
  }
}

}  // namespace baetyl::agent
