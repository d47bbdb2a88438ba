#pragma once
// The writing side of var/db/baetyl/ota.log (baetyl/api/ota_log.h: the file and its steps).
#include <filesystem>
#include <mutex>
#include <string>

#include "baetyl/api/ota_log.h"

namespace baetyl::master {

using api::kOtaLogFile;
namespace ota_step = api::ota_step;

class OtaLog {
 public:
  explicit OtaLog(std::filesystem::path path);
  // Appends one line and flushes it to disk; errors are returned as text (empty on success)
  // because a full disk must not stop the update itself.
  std::string append(const std::string& step, const std::string& type, const std::string& trace,
                     const std::string& error = {});

 private:
  std::filesystem::path path_;
  std::mutex mutex_;
};

}  // namespace baetyl::master
