#include "ota_runner.h"

#include <filesystem>
#include <utility>

#include "baetyl/api/master_client.h"
#include "baetyl/http/client.h"

namespace baetyl::agent {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::system_clock;

constexpr const char* kAppFile = "application.yml";
constexpr const char* kMasterBinary = "bin/baetyl";

}  // namespace

OtaRunner::OtaRunner(VolumeStore& store, OtaLogReader log, ProgressBook& book,
                     UpdateSystem update_system, OtaRunnerOptions options,
                     std::shared_ptr<spdlog::logger> logger)
    : store_(store),
      log_(std::move(log)),
      book_(book),
      update_system_(std::move(update_system)),
      options_(options),
      logger_(std::move(logger)) {}

OtaRunner::~OtaRunner() { stop(); }

void OtaRunner::start() {
  std::uint64_t offset = 0;
  const auto records = log_.last_update(offset);
  if (!records.empty()) {
    const OtaRecord& last = records.back();
    book_.start(last.trace);
    book_.add_master(last.trace, records);
    if (last.step == step::kUpdated) {
      // The update ended while no agent ran (the master restarts an agent whose definition
      // changed, and logs UPDATED once every service runs): what it no longer needs goes now.
      std::lock_guard lock(mutex_);
      clean_pending_ = true;
    } else if (!is_final_step(last.step)) {
      const auto since = parse_time(records.front().time).value_or(Clock::now());
      Follow follow{last.trace, last.type, offset, since + options_.timeout};
      if (Clock::now() >= follow.deadline) {
        logger_->warn("update {} ({}) in {} has not finished within {} ms", last.trace, last.type,
                      log_.path().string(), options_.timeout.count());
        book_.add(last.trace, step::kTimeout, last.type, "no final step within the OTA timeout");
      } else {
        logger_->info("following update {} ({}), at step {}", last.trace, last.type, last.step);
        std::lock_guard lock(mutex_);
        resume_ = follow;
        running_ = last.trace;
      }
    }
  }
  worker_ = std::thread([this] { run(); });
}

void OtaRunner::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void OtaRunner::submit(std::string_view payload) {
  OtaEvent event;
  try {
    event = parse_event(payload);
  } catch (const EventError& e) {
    logger_->warn("invalid OTA event (trace '{}'): {}", e.trace(), e.what());
    // Not under the trace of an update that runs or ran: its records stay what they are.
    if (!book_.started(e.trace())) {
      book_.add(e.trace(), step::kFailure, "", std::string("invalid OTA event: ") + e.what());
    }
    return;
  }
  std::string refusal;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    if (book_.started(event.trace)) {
      logger_->info("OTA event {} was handled already; this delivery is ignored", event.trace);
      return;
    }
    if (!running_.empty()) {
      refusal = "refused: the update " + running_ + " is in progress";
    } else {
      running_ = event.trace;
      book_.start(event.trace);
      book_.add(event.trace, step::kReceived, event.type);
      pending_ = std::move(event);
    }
  }
  if (!refusal.empty()) {
    logger_->warn("OTA event {} {}", event.trace, refusal);
    book_.add(event.trace, step::kReceived, event.type);
    book_.add(event.trace, step::kFailure, event.type, refusal);
    return;
  }
  wake_.notify_all();
}

bool OtaRunner::wait_for(std::chrono::milliseconds duration) {
  std::unique_lock lock(mutex_);
  return wake_.wait_for(lock, duration, [&] { return stopping_; });
}

void OtaRunner::run() {
  for (;;) {
    std::optional<OtaEvent> event;
    std::optional<Follow> resume;
    bool clean = false;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || pending_ || resume_ || clean_pending_; });
      if (stopping_) return;
      event.swap(pending_);
      resume.swap(resume_);
      clean = std::exchange(clean_pending_, false);
    }
    if (clean) clean_after_success();
    if (resume) follow(*resume);
    if (event) handle(*event);
    std::lock_guard lock(mutex_);
    if (!pending_ && !resume_) running_.clear();
  }
}

std::string OtaRunner::prepare(const OtaEvent& event) {
  store_.check_mounted();
  const auto in_use = store_.volumes_in_use();
  const auto prepared = store_.prepare(event.volume, in_use);
  if (event.type == "MST") {
    if (!fs::is_regular_file(fs::symlink_status(prepared.local / kMasterBinary))) {
      throw OtaFailure("volume '" + event.volume.name + "' holds no " + kMasterBinary +
                       " (the new master binary)");
    }
    return prepared.master_path + "/" + kMasterBinary;
  }
  const fs::path app_file = prepared.local / kAppFile;
  if (!fs::is_regular_file(fs::symlink_status(app_file))) {
    throw OtaFailure("volume '" + event.volume.name + "' holds no " + kAppFile);
  }
  const AppVolumes app = load_app_volumes(app_file);
  for (std::size_t i = 0; i < app.volumes.size(); ++i) {
    const Volume& volume = app.volumes[i];
    if (volume.meta.url.empty()) continue;
    const std::string field =
        event.volume.path + "/" + kAppFile + ": volumes[" + std::to_string(i) + "]";
    if (std::string problem = check_download_volume(volume, field); !problem.empty()) {
      throw OtaFailure(problem);
    }
    store_.prepare(volume, in_use);
  }
  return prepared.master_path + "/" + kAppFile;
}

void OtaRunner::handle(const OtaEvent& event) {
  const auto deadline = Clock::now() + options_.timeout;
  logger_->info("OTA event {}: {} update to version '{}' with volume '{}' ({})", event.trace,
                event.type, event.version, event.volume.name, event.volume.path);
  try {
    const std::string target = prepare(event);
    if (Clock::now() >= deadline) {
      book_.add(event.trace, step::kTimeout, event.type,
                "the volumes were not ready within the OTA timeout");
      return;
    }
    store_.set_current(event.volume.path);
    Follow next{event.trace, event.type, log_.size(), deadline};
    try {
      update_system_(api::UpdateRequest{event.type, target, event.trace});
    } catch (const api::ApiError& e) {
      throw OtaFailure(std::string("the master refused the update: ") + e.what());
    } catch (const http::HttpError& e) {
      throw OtaFailure(std::string("the master cannot be reached: ") + e.what());
    }
    logger_->info("OTA event {}: the master updates with {}", event.trace, target);
    follow(next);
  } catch (const OtaFailure& e) {
    logger_->error("OTA event {} failed: {}", event.trace, e.what());
    book_.add(event.trace, step::kFailure, event.type, e.what());
  } catch (const std::exception& e) {
    logger_->error("OTA event {} failed: {}", event.trace, e.what());
    book_.add(event.trace, step::kFailure, event.type, e.what());
  }
}

void OtaRunner::follow(const Follow& follow) {
  std::uint64_t offset = follow.offset;
  for (;;) {
    const auto records = log_.read_from(offset);
    book_.add_master(follow.trace, records);
    for (const auto& record : records) {
      if (record.trace != follow.trace || !is_final_step(record.step)) continue;
      logger_->info("update {} ended with {}{}", follow.trace, record.step,
                    record.error.empty() ? "" : ": " + record.error);
      if (record.step == step::kUpdated) clean_after_success();
      return;
    }
    if (Clock::now() >= follow.deadline) {
      logger_->warn("update {} has not finished within the OTA timeout", follow.trace);
      book_.add(follow.trace, step::kTimeout, follow.type, "no final step within the OTA timeout");
      return;
    }
    if (wait_for(options_.poll)) return;
  }
}

void OtaRunner::clean_after_success() {
  try {
    std::vector<std::string> keep;
    for (const auto& volume : load_app_volumes(store_.root() / kAppFile).volumes) {
      keep.push_back(volume.path);
    }
    store_.clean(keep);
  } catch (const std::exception& e) {
    logger_->warn("old volumes not cleaned: {}", e.what());
  }
}

}  // namespace baetyl::agent
