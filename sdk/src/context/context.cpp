#include "baetyl/context.h"

#include <pthread.h>
#include <signal.h>

#include <filesystem>

#include <spdlog/spdlog.h>

#include "baetyl/env.h"

namespace baetyl {
namespace {

sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

}  // namespace

void describe(config::Reader& r, ServiceConfig& c) {
  r.field("hub", c.hub);
  r.field("logger", c.logger);
}

Context::Context(ContextOptions options) : options_(std::move(options)) {
  if (options_.handle_signals) {
    // Before any thread starts, so that every thread inherits the mask and only the signal
    // thread receives SIGTERM and SIGINT.
    sigset_t set = stop_signals();
    sigset_t previous;
    pthread_sigmask(SIG_BLOCK, &set, &previous);
    previous_signal_mask_ = previous;
    signal_mask_thread_ = std::this_thread::get_id();
  }
  try {
    init();
  } catch (...) {
    restore_signal_mask();
    throw;
  }
}

void Context::init() {
  bool file_exists = std::filesystem::exists(options_.config_file);
  YAML::Node document =
      file_exists ? config::load_yaml_file(options_.config_file) : YAML::Node(YAML::NodeType::Map);
  reader_.emplace(document, options_.config_file);
  reader_->read(config_);
  reader_->throw_if_errors();

  mode_ = env::get_or(env::kServiceMode, "");
  service_name_ = env::get_or(env::kServiceName, "");
  instance_name_ = env::get_or(env::kServiceInstanceName, service_name_);

  log::Fields fields;
  if (!service_name_.empty()) fields.emplace_back("service", service_name_);
  if (!instance_name_.empty() && instance_name_ != service_name_) {
    fields.emplace_back("instance", instance_name_);
  }
  logger_ = log::make_logger(config_.logger, service_name_.empty() ? "baetyl" : service_name_,
                             std::move(fields));
  spdlog::set_default_logger(logger_);
  if (!file_exists) {
    logger_->info("no configuration file {}; using defaults", options_.config_file);
  }

  if (options_.handle_signals) start_signal_thread();
}

Context::~Context() {
  if (signal_thread_.joinable()) {
    closing_ = true;
    pthread_kill(signal_thread_.native_handle(), SIGTERM);
    signal_thread_.join();
  }
  restore_signal_mask();
}

void Context::restore_signal_mask() {
  if (!previous_signal_mask_ || std::this_thread::get_id() != signal_mask_thread_) return;
  // A stop signal that arrived after the signal thread ended is still pending; the old mask would
  // deliver it at once (ending the process by default). We are stopping already: consume it.
  sigset_t pending = stop_signals();
  for (int signal : {SIGTERM, SIGINT}) {
    if (sigismember(&*previous_signal_mask_, signal) == 1) sigdelset(&pending, signal);
  }
  const timespec no_wait{};
  while (sigtimedwait(&pending, nullptr, &no_wait) > 0) {
  }
  pthread_sigmask(SIG_SETMASK, &*previous_signal_mask_, nullptr);
  previous_signal_mask_.reset();
}

void Context::start_signal_thread() {
  signal_thread_ = std::thread([this] {
    sigset_t set = stop_signals();
    for (;;) {
      int signal = 0;
      if (sigwait(&set, &signal) != 0) continue;
      if (closing_) return;
      if (stop_requested_) {
        logger_->warn("received {} again; already stopping", strsignal(signal));
        continue;
      }
      logger_->info("received {}; stopping", strsignal(signal));
      request_stop();
    }
  });
}

void Context::warn_unknown_keys() {
  for (const auto& key : reader_->unknown_keys()) {
    if (warned_keys_.insert(key).second) {
      logger_->warn("{}: unknown key '{}' is ignored", options_.config_file, key);
    }
  }
}

std::unique_ptr<mqtt::Client> Context::new_hub_client(
    const std::string& client_id, std::optional<std::vector<mqtt::TopicInfo>> subscriptions) const {
  mqtt::ClientConfig hub = config_.hub;
  if (hub.address.empty()) {
    throw std::invalid_argument(options_.config_file +
                                ": hub.address: is required to connect to the hub");
  }
  if (!client_id.empty()) hub.client_id = client_id;
  if (subscriptions) hub.subscriptions = std::move(*subscriptions);
  return std::make_unique<mqtt::Client>(std::move(hub), logger_);
}

void Context::wait() {
  std::unique_lock lock(stop_mutex_);
  stop_changed_.wait(lock, [&] { return stop_requested_.load(); });
}

bool Context::wait_for(std::chrono::nanoseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point now = Clock::now();
  // now + timeout must not overflow: a timeout beyond the clock's range waits for the stop.
  if (timeout >= Clock::time_point::max() - now) return wait_until(Clock::time_point::max());
  return wait_until(now + std::chrono::duration_cast<Clock::duration>(timeout));
}

bool Context::wait_until(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(stop_mutex_);
  return stop_changed_.wait_until(lock, deadline, [&] { return stop_requested_.load(); });
}

void Context::request_stop() {
  std::vector<std::function<void()>> handlers;
  {
    std::lock_guard lock(stop_mutex_);
    if (stop_requested_) return;
    stop_requested_ = true;
    handlers.swap(stop_handlers_);
  }
  stop_changed_.notify_all();
  for (auto& handler : handlers) handler();
}

void Context::on_stop(std::function<void()> fn) {
  {
    std::lock_guard lock(stop_mutex_);
    if (!stop_requested_) {
      stop_handlers_.push_back(std::move(fn));
      return;
    }
  }
  fn();
}

void Context::clear_stop_handlers() {
  std::lock_guard lock(stop_mutex_);
  stop_handlers_.clear();
}

api::MasterClient& Context::master() {
  std::lock_guard lock(master_mutex_);
  if (!master_) {
    api::MasterClientOptions options;
    options.address = env::get_or(env::kMasterApiAddress, env::default_master_api_address());
    options.version = env::get_or(env::kMasterApiVersion, std::string(env::kDefaultApiVersion));
    options.username = service_name_;
    options.password = env::get_or(env::kServiceToken, "");
    master_ = std::make_unique<api::MasterClient>(std::move(options));
  }
  return *master_;
}

void Context::report_instance(const nlohmann::json& stats) {
  master().report_instance(service_name_, instance_name_, stats);
}

}  // namespace baetyl
