#include "engine/instance_registry.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

namespace baetyl::master {

void to_json(nlohmann::json& j, const InstanceRecord& record) {
  j = {{"pid", record.pid},
       {"pgid", record.pgid},
       {"start_ticks", record.start_ticks},
       {"service", record.service},
       {"instance", record.instance}};
}

void from_json(const nlohmann::json& j, InstanceRecord& record) {
  j.at("pid").get_to(record.pid);
  j.at("pgid").get_to(record.pgid);
  j.at("start_ticks").get_to(record.start_ticks);
  record.service = j.value("service", "");
  record.instance = j.value("instance", "");
}

InstanceRegistry::InstanceRegistry(std::filesystem::path file,
                                   std::shared_ptr<spdlog::logger> logger)
    : file_(std::move(file)), logger_(std::move(logger)) {
  std::ifstream in(file_);
  if (!in) return;
  try {
    auto json = nlohmann::json::parse(in);
    leftovers_ = json.at("instances").get<std::vector<InstanceRecord>>();
  } catch (const std::exception& e) {
    logger_->warn("ignoring the unreadable state file {}: {}", file_.string(), e.what());
  }
  // Records that cannot name a process group must never reach kill(-pgid).
  std::erase_if(leftovers_, [](const InstanceRecord& r) { return r.pid <= 1 || r.pgid <= 1; });
}

std::vector<InstanceRecord> InstanceRegistry::leftovers() const {
  std::lock_guard lock(mutex_);
  return leftovers_;
}

void InstanceRegistry::clear_leftovers() {
  std::lock_guard lock(mutex_);
  leftovers_.clear();
  save_locked();
}

void InstanceRegistry::add(const InstanceRecord& record) {
  std::lock_guard lock(mutex_);
  running_[record.pid] = record;
  save_locked();
}

void InstanceRegistry::remove(pid_t pid) {
  std::lock_guard lock(mutex_);
  if (running_.erase(pid) > 0) save_locked();
}

void InstanceRegistry::save_locked() {
  auto json = nlohmann::json::object();
  auto& list = json["instances"] = nlohmann::json::array();
  for (const auto& record : leftovers_) list.push_back(record);
  for (const auto& [pid, record] : running_) list.push_back(record);
  std::string text = json.dump() + "\n";

  auto temp = file_;
  temp += ".tmp";
  try {
    std::filesystem::create_directories(file_.parent_path());
    int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), temp.string());
    std::size_t written = 0;
    while (written < text.size()) {
      auto n = ::write(fd, text.data() + written, text.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int error = errno;
        ::close(fd);
        throw std::system_error(error, std::generic_category(), temp.string());
      }
      written += static_cast<std::size_t>(n);
    }
    // The file is for a crash of the master, which leaves the page cache intact: the rename alone
    // leaves the old or the new file, never a truncated one. No fsync: after a crash of the whole
    // machine no instance survives to be cleaned up (and a torn file is ignored), while an fsync
    // per instance start would cost milliseconds each.
    int error = ::close(fd) != 0 ? errno : 0;
    if (error != 0) throw std::system_error(error, std::generic_category(), temp.string());
    std::filesystem::rename(temp, file_);
  } catch (const std::exception& e) {
    // Running instances matter more than crash recovery: carry on without the record.
    logger_->error("cannot write the state file {}: {}", file_.string(), e.what());
  }
}

}  // namespace baetyl::master
