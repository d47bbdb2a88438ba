#pragma once
// The volumes the agent downloads, in its view of the master's var/db/baetyl (kStoreDir): each
// volume directory holds the content of its zip plus the zip itself (<name>.zip), whose MD5 tells
// whether a volume is already in place. A new version is downloaded and unpacked beside its
// directory and swapped in only when complete, so a failure leaves the old one as it was. The
// directories the agent made are listed in agent-volumes.json there, and only those are ever
// removed (clean()).
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "cloud_http.h"
#include "event.h"
#include "zip_extract.h"

namespace baetyl::agent {

// A step of an update that failed; the message says which and why.
class OtaFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What an application.yml says about its volumes (every other key is the master's business).
struct AppVolumes {
  std::vector<Volume> volumes;
};

// Reads the volumes of an application.yml (at most 1 MiB, as the master reads it). Throws
// OtaFailure naming the file and the key.
AppVolumes load_app_volumes(const std::filesystem::path& file);

class VolumeStore {
 public:
  // Volumes are downloaded with `http`, at most limits.max_bytes each.
  VolumeStore(std::filesystem::path store, ExtractLimits limits, CloudHttp http,
              std::shared_ptr<spdlog::logger> logger);

  const std::filesystem::path& root() const { return store_; }

  // Throws OtaFailure unless the store is the master's var/db/baetyl (its application.yml is
  // there): the agent's service must mount it at kStoreDir.
  void check_mounted() const;

  // The store-relative paths of the running application's volumes inside var/db/baetyl.
  std::vector<std::string> volumes_in_use() const;

  struct Prepared {
    std::filesystem::path local;  // the volume's directory as the agent sees it
    std::string master_path;      // the same as the master names it (var/db/baetyl/...)
    bool downloaded = false;      // false: the zip in place had the MD5 already
  };
  // Puts the volume in place (see above). A volume whose content changes must not replace a
  // directory that is, or holds, a volume of the running application (`in_use`). Throws
  // OtaFailure.
  Prepared prepare(const Volume& volume, const std::vector<std::string>& in_use);

  // Remembers the volume of the update in progress; clean() keeps it.
  void set_current(const std::string& volume_path);
  // Removes the directories the agent unpacked that neither `keep` (volume paths as the master
  // names them) nor the current update's volume overlaps. Returns what it removed.
  std::vector<std::string> clean(const std::vector<std::string>& keep);

 private:
  struct Record {
    std::vector<std::string> volumes;  // store-relative
    std::string current;
  };
  Record load_record() const;
  void save_record(const Record& record) const;
  void remember(const std::string& relative);
  void download(const Volume& volume, const std::filesystem::path& file) const;

  std::filesystem::path store_;
  ExtractLimits limits_;
  CloudHttp http_;
  std::shared_ptr<spdlog::logger> logger_;
};

}  // namespace baetyl::agent
