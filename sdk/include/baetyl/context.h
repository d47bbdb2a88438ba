#pragma once
// The context a module runs in: its configuration, logger, hub client, the master API and the
// stop signal. The C++ counterpart of the Go SDK's baetyl.Context.
//
//   int main(int argc, char** argv) {
//     return baetyl::run(argc, argv, [](baetyl::Context& ctx) {
//       auto cfg = ctx.load_config<MyConfig>();
//       auto hub = ctx.new_hub_client();
//       hub->start();
//       while (!ctx.wait_for(std::chrono::seconds(1))) { ... }
//     });
//   }
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/logger.h>

#include "baetyl/api/master_client.h"
#include "baetyl/config/reader.h"
#include "baetyl/log/logger.h"
#include "baetyl/mqtt/client.h"
#include "baetyl/mqtt/client_config.h"

namespace baetyl {

// Relative to the service's working directory, as in the original.
inline constexpr const char* kDefaultConfigFile = "etc/baetyl/service.yml";

// The keys every module shares: `hub` (the MQTT client to the local hub) and `logger`.
struct ServiceConfig {
  mqtt::ClientConfig hub;
  log::LoggerConfig logger;
};
void describe(config::Reader& r, ServiceConfig& c);

struct ContextOptions {
  std::string config_file = kDefaultConfigFile;
  // Handle SIGTERM and SIGINT (block them in every thread and wait for them on one). Off for
  // contexts embedded in tests, which call request_stop() instead. The constructing thread gets
  // its signal mask back when the Context is destroyed there (or its constructor throws).
  bool handle_signals = true;
};

class Context {
 public:
  // Loads the configuration file (a missing file means defaults), sets up the logger and reads
  // the BAETYL_* environment. Throws config::ConfigError for an invalid file.
  explicit Context(ContextOptions options = {});
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const ServiceConfig& config() const { return config_; }
  const std::string& config_file() const { return options_.config_file; }

  // Reads the module's own configuration from the same file. Throws config::ConfigError naming
  // the file and keys; keys that neither ServiceConfig nor T reads are logged as warnings.
  template <config::Describable T>
  T load_config();

  // A client to the hub of `hub:`; client_id and subscriptions override the configured ones.
  // Not started: call start() on it. Throws std::invalid_argument when hub.address is not set.
  std::unique_ptr<mqtt::Client> new_hub_client(
      const std::string& client_id = "",
      std::optional<std::vector<mqtt::TopicInfo>> subscriptions = std::nullopt) const;

  spdlog::logger& log() const { return *logger_; }
  std::shared_ptr<spdlog::logger> logger() const { return logger_; }

  // BAETYL_SERVICE_MODE: "docker" or "native" (empty when not started by the master).
  const std::string& mode() const { return mode_; }
  bool is_native() const { return mode_ == "native"; }
  const std::string& service_name() const { return service_name_; }
  const std::string& instance_name() const { return instance_name_; }

  // Blocks until SIGTERM or SIGINT (or request_stop()).
  void wait();
  // Returns true as soon as a stop was requested, false when the time passed first.
  bool wait_for(std::chrono::nanoseconds timeout);
  bool wait_until(std::chrono::steady_clock::time_point deadline);
  bool stop_requested() const { return stop_requested_.load(); }
  void request_stop();
  // Runs `fn` when a stop is requested (on the thread that requests it: the signal thread for
  // SIGTERM and SIGINT); runs it at once if a stop was requested already.
  void on_stop(std::function<void()> fn);
  // Drops the on_stop handlers not run yet. run() calls it when the body ends, because handlers
  // may refer to the body's local objects.
  void clear_stop_handlers();

  // The master API, with this service's name and token from the environment.
  api::MasterClient& master();
  api::Inspect inspect_system() { return master().inspect_system(); }
  void update_system(const api::UpdateRequest& request) { master().update_system(request); }
  std::string get_available_port() { return master().available_port(); }
  void report_instance(const nlohmann::json& stats);
  void start_instance(const std::string& service, const std::string& instance,
                      const std::map<std::string, std::string>& env) {
    master().start_instance(service, instance, env);
  }
  void stop_instance(const std::string& service, const std::string& instance) {
    master().stop_instance(service, instance);
  }

 private:
  void init();
  void start_signal_thread();
  void restore_signal_mask();
  void warn_unknown_keys();

  ContextOptions options_;
  std::optional<config::Reader> reader_;
  ServiceConfig config_;
  std::shared_ptr<spdlog::logger> logger_;
  std::string mode_;
  std::string service_name_;
  std::string instance_name_;
  std::set<std::string> warned_keys_;

  std::mutex master_mutex_;
  std::unique_ptr<api::MasterClient> master_;

  mutable std::mutex stop_mutex_;
  std::condition_variable stop_changed_;
  std::atomic<bool> stop_requested_{false};
  std::vector<std::function<void()>> stop_handlers_;
  std::thread signal_thread_;
  std::atomic<bool> closing_{false};
  // The constructing thread's signal mask before handle_signals blocked the stop signals.
  std::optional<sigset_t> previous_signal_mask_;
  std::thread::id signal_mask_thread_;
};

template <config::Describable T>
T Context::load_config() {
  std::size_t issues_before = reader_->issues().size();
  T value{};
  reader_->read(value);
  const auto& issues = reader_->issues();
  if (issues.size() > issues_before) {
    throw config::ConfigError(reader_->source(), std::vector<config::Issue>(
                                                     issues.begin() + issues_before, issues.end()));
  }
  warn_unknown_keys();
  return value;
}

// Runs a module: parses `-c FILE` (default etc/baetyl/service.yml), builds the Context, calls
// `body`, and returns the process exit code: 0 when `body` returns, 1 (after logging the error)
// when the configuration is invalid or `body` throws.
int run(int argc, char** argv, const std::function<void(Context&)>& body);

// Version facts of this build.
const char* version();
const char* git_revision();

}  // namespace baetyl
