#include "core/ota_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <nlohmann/json.hpp>

#include "baetyl/api/inspect.h"

namespace baetyl::master {

OtaLog::OtaLog(std::filesystem::path path) : path_(std::move(path)) {}

std::string OtaLog::append(const std::string& step, const std::string& type,
                           const std::string& trace, const std::string& error) {
  nlohmann::json line = {{"step", step},
                         {"type", type},
                         {"trace", trace},
                         {"time", api::to_rfc3339(std::chrono::system_clock::now())}};
  if (!error.empty()) line["error"] = error;
  std::string text = line.dump() + "\n";

  std::lock_guard lock(mutex_);
  std::error_code ec;
  std::filesystem::create_directories(path_.parent_path(), ec);
  int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return path_.string() + ": " + std::strerror(errno);
  std::string problem;
  if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    problem = path_.string() + ": short write: " + std::strerror(errno);
  } else if (::fsync(fd) != 0) {
    problem = path_.string() + ": fsync: " + std::strerror(errno);
  }
  ::close(fd);
  return problem;
}

}  // namespace baetyl::master
