#pragma once
// Runs the cloud's OTA events one at a time on a thread of its own: puts the event's volume (and,
// for APP, every volume of its application.yml that has a URL) in place, calls the master's
// update API with the new application.yml (APP) or binary (MST), follows the master's ota.log
// until a final step or the timeout, and after a success removes the volume directories no
// longer referenced. At start it takes up an update that ota.log shows unfinished (the master
// restarts the agent during a master update, and during an application update that changes it).
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <spdlog/logger.h>

#include "baetyl/api/inspect.h"
#include "event.h"
#include "ota_log.h"
#include "progress.h"
#include "volume_store.h"

namespace baetyl::agent {

struct OtaRunnerOptions {
  std::chrono::milliseconds timeout = std::chrono::minutes(5);  // from the event to a final step
  std::chrono::milliseconds poll = std::chrono::milliseconds(200);  // how often ota.log is read
};

class OtaRunner {
 public:
  using UpdateSystem = std::function<void(const api::UpdateRequest&)>;

  OtaRunner(VolumeStore& store, OtaLogReader log, ProgressBook& book, UpdateSystem update_system,
            OtaRunnerOptions options, std::shared_ptr<spdlog::logger> logger);
  ~OtaRunner();
  OtaRunner(const OtaRunner&) = delete;
  OtaRunner& operator=(const OtaRunner&) = delete;

  // Reads ota.log for an unfinished update to follow, then starts the worker thread.
  void start();
  // A message of the desire topic, from any thread; never waits for an update. An invalid event
  // and an event while another runs are reported as failures under their trace; a trace the
  // agent ran already is ignored (a repeated delivery).
  void submit(std::string_view payload);
  // Ends the worker: an update being followed is left to the master (and to the next start).
  void stop();

 private:
  struct Follow {
    std::string trace;
    std::string type;
    std::uint64_t offset = 0;
    std::chrono::system_clock::time_point deadline;
  };

  void run();
  void handle(const OtaEvent& event);
  std::string prepare(const OtaEvent& event);
  void follow(const Follow& follow);
  void clean_after_success();
  bool wait_for(std::chrono::milliseconds duration);  // true when stopping

  VolumeStore& store_;
  OtaLogReader log_;
  ProgressBook& book_;
  UpdateSystem update_system_;
  OtaRunnerOptions options_;
  std::shared_ptr<spdlog::logger> logger_;

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::optional<OtaEvent> pending_;
  std::optional<Follow> resume_;
  bool clean_pending_ = false;  // ota.log ended with UPDATED when the agent started
  std::string running_;         // trace of the update being handled or followed
  std::thread worker_;
};

}  // namespace baetyl::agent
