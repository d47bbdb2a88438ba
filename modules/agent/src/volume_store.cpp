#include "volume_store.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "agent_config.h"
#include "baetyl/config/reader.h"
#include "md5.h"
#include "store_path.h"

namespace baetyl::agent {

void describe(config::Reader& r, VolumeMeta& c) {
  r.field("url", c.url);
  r.field("md5", c.md5);
  r.field("version", c.version);
}

void describe(config::Reader& r, Volume& c) {
  r.field("name", c.name).required();
  r.field("path", c.path).required();
  r.field("meta", c.meta);
}

void describe(config::Reader& r, AppVolumes& c) { r.field("volumes", c.volumes); }

namespace {

namespace fs = std::filesystem;

constexpr std::uintmax_t kMaxAppFile = 1024 * 1024;
constexpr const char* kRecordFile = "agent-volumes.json";
constexpr const char* kAppFile = "application.yml";

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A name beside `target` that no other agent step uses: .<name>.<random>
fs::path temporary_beside(const fs::path& target, const char* suffix) {
  static std::atomic<unsigned> counter{0};
  static const unsigned seed = std::random_device{}();
  std::string name = ".";  // appended piece by piece: g++ 12 warns about "." + std::string
  name.append(target.filename().string()).append(".").append(std::to_string(::getpid()));
  name.append("-").append(std::to_string(seed)).append("-").append(std::to_string(++counter));
  return target.parent_path() / name.append(suffix);
}

bool inside(const fs::path& path, const fs::path& root) {
  auto p = path.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++p) {
    if (p == path.end() || *p != *r) return false;
  }
  return true;
}

// Removes a temporary file or directory when a step fails.
class Scratch {
 public:
  explicit Scratch(fs::path path) : path_(std::move(path)) {}
  ~Scratch() {
    if (!path_.empty()) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  const fs::path& path() const { return path_; }
  void release() { path_.clear(); }

 private:
  fs::path path_;
};

}  // namespace

AppVolumes load_app_volumes(const fs::path& file) {
  std::error_code ec;
  const auto size = fs::file_size(file, ec);
  if (ec) throw OtaFailure(file.string() + ": cannot be read: " + ec.message());
  if (size > kMaxAppFile) {
    throw OtaFailure(file.string() + ": larger than " + std::to_string(kMaxAppFile) + " bytes");
  }
  try {
    return config::load_string<AppVolumes>(read_text(file), file.string());
  } catch (const config::ConfigError& e) {
    std::string message = e.what();
    while (!message.empty() && message.back() == '\n') message.pop_back();
    throw OtaFailure(message);
  }
}

VolumeStore::VolumeStore(fs::path store, ExtractLimits limits, CloudHttp http,
                         std::shared_ptr<spdlog::logger> logger)
    : store_(std::move(store)),
      limits_(limits),
      http_(std::move(http)),
      logger_(std::move(logger)) {}

void VolumeStore::check_mounted() const {
  if (!fs::is_regular_file(store_ / kAppFile)) {
    throw OtaFailure("the master's var/db/baetyl is not mounted at " + store_.string() +
                     " (no application.yml there): mount the volume whose path is "
                     "var/db/baetyl at " +
                     store_.string() + " in the agent's service");
  }
}

std::vector<std::string> VolumeStore::volumes_in_use() const {
  std::vector<std::string> out;
  for (const auto& volume : load_app_volumes(store_ / kAppFile).volumes) {
    // Only volumes strictly inside var/db/baetyl can collide with what the agent writes; the
    // agent's own mount of var/db/baetyl holds everything and is no obstacle.
    if (auto relative = store_relative(volume.path, nullptr)) out.push_back(*relative);
  }
  return out;
}

void VolumeStore::download(const Volume& volume, const fs::path& file) const {
  try {
    http_.download(volume.meta.url, file, limits_.max_bytes);
  } catch (const CloudHttpError& e) {
    throw OtaFailure("volume '" + volume.name + "': download failed: " + e.what());
  }
}

VolumeStore::Prepared VolumeStore::prepare(const Volume& volume,
                                           const std::vector<std::string>& in_use) {
  std::string problem;
  const auto relative = store_relative(volume.path, &problem);
  if (!relative) throw OtaFailure("volume '" + volume.name + "': path " + problem);
  auto fail = [&](const std::string& why) {
    return OtaFailure("volume '" + volume.name + "' (" + volume.path + "): " + why);
  };
  const fs::path target = store_ / *relative;
  const fs::path zip_in_place = target / (volume.name + ".zip");
  Prepared prepared{target, std::string(kMasterStoreDir) + "/" + *relative, true};

  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (ec) throw fail("cannot create its parent directory: " + ec.message());
  const fs::path real_store = fs::canonical(store_, ec);
  const fs::path real_parent = ec ? fs::path() : fs::canonical(target.parent_path(), ec);
  if (ec || !inside(real_parent, real_store)) {
    throw fail("its parent directory leads outside var/db/baetyl through a symbolic link");
  }
  const auto status = fs::symlink_status(target, ec);
  if (fs::is_symlink(status)) throw fail("it is a symbolic link");
  if (fs::exists(status) && !fs::is_directory(status)) throw fail("it exists and is no directory");

  if (fs::is_regular_file(fs::symlink_status(zip_in_place, ec))) {
    try {
      if (file_md5_base64(zip_in_place) == volume.meta.md5) {
        logger_->info("volume '{}' ({}) is in place already (same MD5): not downloaded",
                      volume.name, volume.path);
        remember(*relative);
        prepared.downloaded = false;
        return prepared;
      }
    } catch (const std::runtime_error& e) {
      logger_->warn("volume '{}': {}; downloading it again", volume.name, e.what());
    }
  }
  for (const auto& used : in_use) {
    if (paths_overlap(*relative, used) && used.size() >= relative->size()) {
      throw fail("the running application uses " + std::string(kMasterStoreDir) + "/" + used +
                 ", which this volume would replace: give the new version a path of its own");
    }
  }

  logger_->info("volume '{}': downloading {}", volume.name, volume.meta.url);
  Scratch zip(temporary_beside(target, ".zip"));
  download(volume, zip.path());
  const std::string md5 = file_md5_base64(zip.path());
  if (md5 != volume.meta.md5) {
    throw fail("MD5 mismatch: the event says " + volume.meta.md5 + ", the download has " + md5);
  }
  Scratch unpacked(temporary_beside(target, ""));
  fs::create_directory(unpacked.path(), ec);
  if (ec) throw fail("cannot create " + unpacked.path().string() + ": " + ec.message());
  try {
    extract_zip(zip.path(), unpacked.path(), limits_);
  } catch (const ExtractError& e) {
    throw fail(std::string("refused to unpack its zip: ") + e.what());
  } catch (const fs::filesystem_error& e) {
    throw fail(std::string("cannot unpack its zip: ") + e.what());
  }
  const fs::path kept_zip = unpacked.path() / zip_in_place.filename();
  fs::remove_all(kept_zip, ec);
  fs::rename(zip.path(), kept_zip, ec);
  if (ec) throw fail("cannot keep its zip: " + ec.message());
  zip.release();

  // In one step when a previous version is there: the directory is the old one or the new one,
  // never a mix.
  if (fs::exists(fs::symlink_status(target))) {
    if (::renameat2(AT_FDCWD, unpacked.path().c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) !=
        0) {
      throw fail("cannot swap the new content in: " + std::string(std::strerror(errno)));
    }
  } else if (::rename(unpacked.path().c_str(), target.c_str()) != 0) {
    throw fail("cannot move the new content in: " + std::string(std::strerror(errno)));
  }
  // `unpacked` now names the previous version (if any), removed by its destructor.
  remember(*relative);
  logger_->info("volume '{}' ({}) unpacked", volume.name, volume.path);
  return prepared;
}

VolumeStore::Record VolumeStore::load_record() const {
  Record record;
  const fs::path file = store_ / kRecordFile;
  if (!fs::exists(file)) return record;
  try {
    const auto document = nlohmann::json::parse(read_text(file));
    for (const auto& path : document.value("volumes", nlohmann::json::array())) {
      if (path.is_string()) record.volumes.push_back(path.get<std::string>());
    }
    record.current = document.value("current", "");
  } catch (const nlohmann::json::exception& e) {
    logger_->warn("{}: unreadable ({}); starting a new list of volumes", file.string(), e.what());
  }
  return record;
}

void VolumeStore::save_record(const Record& record) const {
  const fs::path file = store_ / kRecordFile;
  const fs::path temporary = temporary_beside(file, ".tmp");
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << nlohmann::json({{"volumes", record.volumes}, {"current", record.current}}).dump(2)
        << "\n";
    if (!out.flush()) {
      logger_->warn("{}: cannot be written", temporary.string());
      return;
    }
  }
  std::error_code ec;
  fs::rename(temporary, file, ec);
  if (ec) logger_->warn("{}: cannot be written: {}", file.string(), ec.message());
}

void VolumeStore::remember(const std::string& relative) {
  Record record = load_record();
  for (const auto& known : record.volumes) {
    if (known == relative) return;
  }
  record.volumes.push_back(relative);
  save_record(record);
}

void VolumeStore::set_current(const std::string& volume_path) {
  Record record = load_record();
  record.current = store_relative(volume_path, nullptr).value_or("");
  save_record(record);
}

std::vector<std::string> VolumeStore::clean(const std::vector<std::string>& keep) {
  Record record = load_record();
  std::vector<std::string> kept_relative;
  for (const auto& path : keep) {
    if (auto relative = store_relative(path, nullptr)) kept_relative.push_back(*relative);
  }
  if (!record.current.empty()) kept_relative.push_back(record.current);

  std::error_code ec;
  const fs::path real_store = fs::canonical(store_, ec);
  std::vector<std::string> removed;
  std::vector<std::string> remaining;
  for (const auto& relative : record.volumes) {
    bool referenced = false;
    for (const auto& kept : kept_relative) referenced = referenced || paths_overlap(relative, kept);
    if (referenced) {
      remaining.push_back(relative);
      continue;
    }
    const fs::path dir = store_ / relative;
    const auto status = fs::symlink_status(dir, ec);
    const fs::path real_parent = fs::canonical(dir.parent_path(), ec);
    if (fs::is_directory(status) && !ec && inside(real_parent, real_store)) {
      fs::remove_all(dir, ec);
      if (ec) {
        logger_->warn("cannot remove the old volume directory {}: {}", dir.string(), ec.message());
        remaining.push_back(relative);
        continue;
      }
      logger_->info("removed the old volume directory {}/{}", kMasterStoreDir, relative);
      removed.push_back(std::string(kMasterStoreDir) + "/" + relative);
    }
  }
  record.volumes = remaining;
  save_record(record);
  return removed;
}

}  // namespace baetyl::agent
