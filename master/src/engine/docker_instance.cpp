#include "engine/docker_instance.h"

#include <algorithm>
#include <thread>

#include "engine/docker_container.h"

namespace baetyl::master {

namespace {

using namespace std::chrono_literals;

// How often an inspect may start a stats reading, as HostStats refreshes (kRefresh).
constexpr auto kStatsRefresh = 1s;
constexpr auto kStatsTimeout = 10s;
// Beyond `grace`, how long Docker may take to answer a stop.
constexpr auto kStopMargin = 30s;
constexpr auto kCallTimeout = 30s;
// After stop() or kill, how long the exit may take to show before stop() gives up on the daemon.
constexpr auto kExitAfterStop = 60s;
constexpr auto kExitAfterFailedStop = 10s;
constexpr auto kRemoveTimeout = 60s;
// Of a container that failed by itself, this many last lines of output go to the log before the
// container, and with it its output, is removed.
constexpr int kLogLines = 20;

}  // namespace

void remove_container(const DockerClient& client, const std::string& id) {
  // A removal already under way answers 409 until it is done, then 404.
  for (int attempt = 0; attempt < 200; ++attempt) {
    auto response =
        client.call("DELETE", "/containers/" + id + "?force=1&v=1", std::nullopt, kRemoveTimeout);
    if (response.status == 204 || response.status == 404) return;
    if (response.status != 409) throw DockerApiError(response.status, response.message());
    std::this_thread::sleep_for(50ms);
  }
  throw std::runtime_error("container " + id + " is still being removed after 10 s");
}

struct DockerInstance::StatsCache {
  std::mutex mutex;
  nlohmann::json figures;
  std::optional<Clock::time_point> read_at;
  bool reading = false;
};

DockerInstance::DockerInstance(std::string name, std::string id, DockerClient client,
                               std::shared_ptr<spdlog::logger> logger)
    : name_(std::move(name)),
      id_(std::move(id)),
      client_(std::move(client)),
      logger_(std::move(logger)),
      stats_(std::make_shared<StatsCache>()) {}

DockerInstance::~DockerInstance() = default;

nlohmann::json DockerInstance::stats() {
  nlohmann::json json = {{"container", {{"id", id_}, {"name", name_}}}};
  bool exited = false;
  {
    std::lock_guard lock(mutex_);
    exited = exited_;
  }
  std::lock_guard lock(stats_->mutex);
  const auto now = Clock::now();
  if (!exited && !stats_->reading &&
      (!stats_->read_at || now - *stats_->read_at >= kStatsRefresh)) {
    stats_->reading = true;
    std::thread([cache = stats_, client = client_, id = id_] {
      nlohmann::json figures;
      try {
        auto response = client.call("GET", "/containers/" + id + "/stats?stream=false",
                                    std::nullopt, kStatsTimeout);
        if (response.ok()) {
          figures = container_stats_figures(nlohmann::json::parse(response.body, nullptr, false));
        }
      } catch (const std::exception&) {
        // No figures this time; the next inspect tries again.
      }
      std::lock_guard done(cache->mutex);
      cache->figures = std::move(figures);
      cache->read_at = Clock::now();
      cache->reading = false;
    }).detach();
  }
  if (stats_->figures.is_object()) json.update(stats_->figures);
  return json;
}

ExitStatus DockerInstance::wait() {
  std::unique_lock lock(mutex_);
  await_exit(lock, std::nullopt);
  return status_;
}

void DockerInstance::log_last_output(const ExitStatus& status) {
  try {
    auto response = client_.call(
        "GET", "/containers/" + id_ + "/logs?stdout=1&stderr=1&tail=" + std::to_string(kLogLines),
        std::nullopt, kCallTimeout);
    if (!response.ok()) return;
    std::string text = demultiplex_logs(response.body);
    while (!text.empty() && text.back() == '\n') text.pop_back();
    if (text.empty()) return;
    logger_->warn("instance {} {}; the last lines of its output:\n{}", name_, status.describe(),
                  text);
  } catch (const std::exception& e) {
    logger_->debug("instance {}: cannot read its output: {}", name_, e.what());
  }
}

void DockerInstance::stop(std::chrono::milliseconds grace) {
  stop_requested_ = true;
  {
    std::lock_guard lock(mutex_);
    if (exited_) return;
  }
  const auto seconds = std::chrono::ceil<std::chrono::seconds>(grace).count();
  bool stopped = post("stop?t=" + std::to_string(seconds), grace + kStopMargin);
  if (!stopped) {
    logger_->warn("instance {}: docker stop failed; killing container {}", name_, id_);
    stopped = post("kill", kCallTimeout);
  }
  std::unique_lock lock(mutex_);
  // A daemon that answered neither call is given less time.
  if (await_exit(lock, Clock::now() + (stopped ? kExitAfterStop : kExitAfterFailedStop))) return;
  logger_->error("instance {}: container {} did not stop; the Docker daemon does not answer", name_,
                 id_);
  abandoned_ = true;
}

bool DockerInstance::post(const std::string& action, std::chrono::milliseconds timeout) {
  try {
    auto response =
        client_.call("POST", "/containers/" + id_ + "/" + action, std::nullopt, timeout);
    // 304: not running any more; 404: gone; 409 (kill): not running.
    if (response.ok() || response.status == 304 || response.status == 404 ||
        response.status == 409) {
      return true;
    }
    logger_->warn("instance {}: {} of container {}: {}", name_, action, id_, response.message());
  } catch (const std::exception& e) {
    logger_->warn("instance {}: {}", name_, e.what());
  }
  return false;
}

bool DockerInstance::await_exit(std::unique_lock<std::mutex>& lock,
                                std::optional<Clock::time_point> deadline) {
  while (!exited_) {
    if (waiting_) {
      if (!deadline) {
        changed_.wait(lock);
      } else if (changed_.wait_until(lock, *deadline) == std::cv_status::timeout) {
        return exited_;
      }
      continue;
    }
    waiting_ = true;
    lock.unlock();
    auto status = poll_exit(deadline);
    if (status && !status->success() && !stop_requested_ && !abandoned_) log_last_output(*status);
    if (status) {
      try {
        remove_container(client_, id_);
      } catch (const std::exception& e) {
        logger_->error("instance {}: cannot remove container {}: {}", name_, id_, e.what());
      }
    }
    lock.lock();
    waiting_ = false;
    if (status) {
      status_ = *status;
      exited_ = true;
    }
    changed_.notify_all();
    if (!status) return false;
  }
  return true;
}

std::optional<ExitStatus> DockerInstance::poll_exit(std::optional<Clock::time_point> deadline) {
  std::chrono::milliseconds retry = 100ms;
  for (;;) {
    if (abandoned_) return ExitStatus{-1, 0};
    std::chrono::milliseconds timeout{0};  // none: the daemon answers when the container stops
    if (deadline) {
      timeout = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
      if (timeout.count() <= 0) return std::nullopt;
    }
    try {
      auto response = client_.call("POST", "/containers/" + id_ + "/wait?condition=not-running",
                                   std::nullopt, timeout);
      if (response.status == 200) {
        auto json = nlohmann::json::parse(response.body, nullptr, false);
        if (json.is_object() && json.contains("StatusCode") && json["StatusCode"].is_number()) {
          return ExitStatus{json["StatusCode"].get<int>(), 0};
        }
        logger_->warn("instance {}: unexpected answer to the wait for container {}: {}", name_, id_,
                      response.body);
      } else if (response.status == 404) {
        logger_->warn("instance {}: container {} is gone (removed outside the master)", name_, id_);
        return ExitStatus{-1, 0};
      } else {
        logger_->warn("instance {}: waiting for container {}: {}", name_, id_, response.message());
      }
    } catch (const std::exception& e) {
      if (deadline && Clock::now() >= *deadline) return std::nullopt;
      logger_->warn("instance {}: {}; trying again", name_, e.what());
    }
    auto pause = retry;
    if (deadline) {
      pause =
          std::min(pause, std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now()));
    }
    std::this_thread::sleep_for(std::max(pause, std::chrono::milliseconds(0)));
    retry = std::min<std::chrono::milliseconds>(retry * 2, 2s);
  }
}

}  // namespace baetyl::master
