#include "pool.h"

#include <algorithm>
#include <stdexcept>

namespace baetyl::function {

namespace {
using Clock = std::chrono::steady_clock;
}

InstancePool::InstancePool(FunctionConfig config, Launcher& launcher,
                           std::shared_ptr<spdlog::logger> logger)
    : config_(std::move(config)),
      launcher_(launcher),
      log_(std::move(logger)),
      used_ids_(static_cast<std::size_t>(config_.instance.max), false) {}

InstancePool::~InstancePool() { close(); }

std::string InstancePool::instance_name(const std::string& service, const std::string& function,
                                        int id) {
  return service + "." + function + "." + std::to_string(id);
}

void InstancePool::start() {
  for (int i = 0; i < config_.instance.min; ++i) {
    int id = 0;
    {
      std::lock_guard lock(mutex_);
      id = free_id_locked();
      used_ids_[id - 1] = true;
      ++count_;
    }
    auto instance = launch(id);
    std::lock_guard lock(mutex_);
    if (instance) {
      idle_.push_back(std::move(instance));
    } else {
      used_ids_[id - 1] = false;
      --count_;
    }
    changed_.notify_all();
  }
  evictor_ = std::thread([this] {
    std::unique_lock lock(mutex_);
    while (!closed_) {
      auto next = Clock::now() + config_.instance.evict_time;
      while (!closed_ && Clock::now() < next) changed_.wait_until(lock, next);
      if (closed_) break;
      lock.unlock();
      evict();
      lock.lock();
    }
  });
}

void InstancePool::close() {
  std::vector<std::shared_ptr<Instance>> idle;
  {
    std::lock_guard lock(mutex_);
    if (closed_ && !evictor_.joinable() && stoppers_.empty() && idle_.empty()) return;
    closed_ = true;
    idle.swap(idle_);
    changed_.notify_all();
  }
  if (evictor_.joinable()) evictor_.join();
  for (auto& instance : idle) stop_instance(instance);
  std::vector<std::thread> stoppers;
  {
    std::lock_guard lock(mutex_);
    stoppers.swap(stoppers_);
  }
  for (auto& t : stoppers) t.join();
}

int InstancePool::free_id_locked() const {
  for (std::size_t i = 0; i < used_ids_.size(); ++i) {
    if (!used_ids_[i]) return static_cast<int>(i) + 1;
  }
  return 0;
}

std::shared_ptr<Instance> InstancePool::launch(int id) {
  auto instance = std::make_shared<Instance>();
  instance->id = id;
  instance->name = instance_name(config_.service, config_.name, id);
  try {
    instance->address = launcher_.start(config_.service, instance->name);
  } catch (const std::exception& e) {
    log_->error("function {}: starting instance {} failed: {}", config_.name, instance->name,
                e.what());
    return nullptr;
  }
  grpc::ChannelArguments args;
  int length =
      static_cast<int>(std::min<std::uint64_t>(config_.message_length_max.bytes, INT32_MAX));
  args.SetMaxReceiveMessageSize(length);
  args.SetMaxSendMessageSize(length);
  // The runtime listens within a few hundred milliseconds: retry the dial quickly instead of
  // waiting out gRPC's default one-second reconnect backoff.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 20);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 20);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(std::max<std::int64_t>(20, config_.backoff_max.count())));
  // Each instance gets its own connection even when addresses repeat.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  instance->channel =
      grpc::CreateCustomChannel(instance->address, grpc::InsecureChannelCredentials(), args);
  auto started = Clock::now();
  if (!instance->channel->WaitForConnected(std::chrono::system_clock::now() + config_.timeout)) {
    log_->error("function {}: instance {} at {} not ready within {} ms; stopping it", config_.name,
                instance->name, instance->address, config_.timeout.count());
    try {
      launcher_.stop(config_.service, instance->name);
    } catch (const std::exception& e) {
      log_->warn("function {}: stopping instance {} failed: {}", config_.name, instance->name,
                 e.what());
    }
    return nullptr;
  }
  log_->info("function {}: instance {} ready at {} after {} ms", config_.name, instance->name,
             instance->address,
             std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count());
  instance->stub = baetyl::Function::NewStub(instance->channel);
  instance->last_used = Clock::now();
  return instance;
}

std::shared_ptr<Instance> InstancePool::acquire(Clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  while (true) {
    if (closed_) throw std::runtime_error("function " + config_.name + ": pool closed");
    if (!idle_.empty()) {
      // Most recently used first, so the others grow idle and can be evicted.
      auto instance = std::move(idle_.back());
      idle_.pop_back();
      return instance;
    }
    int id = count_ < config_.instance.max ? free_id_locked() : 0;
    if (id != 0) {
      used_ids_[id - 1] = true;
      ++count_;
      lock.unlock();
      auto instance = launch(id);
      lock.lock();
      if (!instance) {
        used_ids_[id - 1] = false;
        --count_;
        changed_.notify_all();
        throw std::runtime_error("function " + config_.name + ": instance " +
                                 instance_name(config_.service, config_.name, id) +
                                 " could not be started");
      }
      return instance;
    }
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout &&
        Clock::now() >= deadline) {
      throw std::runtime_error("function " + config_.name + ": no instance available (all " +
                               std::to_string(config_.instance.max) + " busy)");
    }
  }
}

void InstancePool::release(std::shared_ptr<Instance> instance, bool healthy) {
  if (!instance) return;
  std::unique_lock lock(mutex_);
  if (healthy && !closed_) {
    instance->last_used = Clock::now();
    idle_.push_back(std::move(instance));
    changed_.notify_all();
    return;
  }
  // Stop in the background; the id is freed when the stop returned.
  stoppers_.emplace_back([this, instance] { stop_instance(instance); });
}

void InstancePool::stop_instance(const std::shared_ptr<Instance>& instance) {
  log_->info("function {}: stopping instance {}", config_.name, instance->name);
  // Close our connection first: a runtime shutting down gracefully may wait for open ones.
  instance->stub.reset();
  instance->channel.reset();
  try {
    launcher_.stop(config_.service, instance->name);
  } catch (const std::exception& e) {
    log_->warn("function {}: stopping instance {} failed: {}", config_.name, instance->name,
               e.what());
  }
  std::lock_guard lock(mutex_);
  used_ids_[instance->id - 1] = false;
  --count_;
  changed_.notify_all();
}

void InstancePool::evict() {
  std::vector<std::shared_ptr<Instance>> expired;
  {
    std::lock_guard lock(mutex_);
    auto now = Clock::now();
    // Oldest first: idle_ is ordered by release time.
    std::sort(idle_.begin(), idle_.end(),
              [](const auto& a, const auto& b) { return a->last_used < b->last_used; });
    int keep = count_;
    auto it = idle_.begin();
    while (it != idle_.end() && keep > config_.instance.min &&
           now - (*it)->last_used >= config_.instance.idle_time) {
      expired.push_back(std::move(*it));
      ++it;
      --keep;
    }
    idle_.erase(idle_.begin(), it);
  }
  for (auto& instance : expired) stop_instance(instance);
}

grpc::Status InstancePool::call(Instance& instance, const baetyl::FunctionMessage& request,
                                baetyl::FunctionMessage& reply) const {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + config_.timeout);
  return instance.stub->Call(&context, request, &reply);
}

int InstancePool::size() const {
  std::lock_guard lock(mutex_);
  return count_;
}

int InstancePool::idle() const {
  std::lock_guard lock(mutex_);
  return static_cast<int>(idle_.size());
}

}  // namespace baetyl::function
