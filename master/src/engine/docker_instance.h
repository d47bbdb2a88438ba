#pragma once
// One container started by the docker engine (see Instance for the contract).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <spdlog/logger.h>

#include "engine/docker_client.h"
#include "engine/engine.h"

namespace baetyl::master {

// Removes container `id` with its anonymous volumes (force: a running one is killed first) and
// returns once it is gone; a container already gone is fine. Throws std::runtime_error when the
// daemon refuses or cannot be reached.
void remove_container(const DockerClient& client, const std::string& id);

// Exit detection: one thread at a time holds a POST /containers/{id}/wait open (answered by the
// daemon the moment the container stops); whoever else needs the exit waits on the condition
// variable. The thread that saw the exit removes the container before anyone learns of it, so a
// restart under the same name never finds the name taken; a container that failed on its own
// (not stopped) first has the last lines of its output logged, since they go with it. stop() asks Docker to stop it (SIGTERM,
// `grace`, SIGKILL), kills it when that call fails, then waits for the exit the same way.
class DockerInstance final : public Instance {
 public:
  DockerInstance(std::string name, std::string id, DockerClient client,
                 std::shared_ptr<spdlog::logger> logger);
  // Leaves a running container alone: stopping instances is the master's decision.
  ~DockerInstance() override;
  DockerInstance(const DockerInstance&) = delete;
  DockerInstance& operator=(const DockerInstance&) = delete;

  const std::string& name() const override { return name_; }
  const std::string& id() const { return id_; }
  // {"container":{"id","name"}} and the figures of the last stats reading. A reading older than a
  // second starts a new one in the background (Docker takes a second or two to answer one), so
  // inspect never waits for the daemon.
  nlohmann::json stats() override;
  ExitStatus wait() override;
  void stop(std::chrono::milliseconds grace) override;

 private:
  using Clock = std::chrono::steady_clock;
  struct StatsCache;
  // True once the container exited (and was removed), with the lock held; false only when
  // `deadline` passed first.
  bool await_exit(std::unique_lock<std::mutex>& lock, std::optional<Clock::time_point> deadline);
  // Without the lock: how the container exited, nullopt when `deadline` passed first.
  std::optional<ExitStatus> poll_exit(std::optional<Clock::time_point> deadline);
  bool post(const std::string& action, std::chrono::milliseconds timeout);
  void log_last_output(const ExitStatus& status);

  const std::string name_;
  const std::string id_;
  const DockerClient client_;
  std::shared_ptr<spdlog::logger> logger_;
  std::shared_ptr<StatsCache> stats_;
  // Set when stop() gave up on a daemon that does not answer: the waiting thread returns.
  std::atomic<bool> abandoned_{false};
  std::atomic<bool> stop_requested_{false};

  std::mutex mutex_;
  std::condition_variable changed_;
  bool waiting_ = false;  // a thread waits for the exit without the lock
  bool exited_ = false;   // exited and removed; status_ is set
  ExitStatus status_;
};

}  // namespace baetyl::master
