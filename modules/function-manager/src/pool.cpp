#include "pool.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <thread>

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
      ready_.push_back(std::move(instance));
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
      while (!closed_ && Clock::now() < next) evictor_wake_.wait_until(lock, next);
      if (closed_) break;
      lock.unlock();
      evict();
      lock.lock();
    }
  });
}

void InstancePool::close() {
  {
    std::lock_guard lock(mutex_);
    if (closed_ && !evictor_.joinable() && launchers_.empty() && stoppers_.empty() &&
        ready_.empty()) {
      return;
    }
    closed_ = true;
    changed_.notify_all();
    evictor_wake_.notify_all();
  }
  if (evictor_.joinable()) evictor_.join();
  std::vector<std::thread> launchers;
  {
    std::lock_guard lock(mutex_);
    launchers.swap(launchers_);
  }
  // A launch that finishes now finds the pool closed and stops its instance.
  for (auto& t : launchers) t.join();
  std::vector<std::shared_ptr<Instance>> ready;
  {
    std::lock_guard lock(mutex_);
    ready.swap(ready_);
  }
  for (auto& instance : ready) stop_instance(instance);
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

// ---- Readiness of a starting instance ----

namespace {

// How often launch() checks whether a starting runtime listens: the most its first call waits
// past that moment.
constexpr auto kListenPoll = std::chrono::milliseconds(5);
// The longest one check waits for an answer (a host that is not up yet drops the SYN).
constexpr auto kConnectWait = std::chrono::milliseconds(100);
// How often launch() asks whether a starting runtime is still running (one that exits, a bad
// handler say, is given up at once instead of after the whole timeout).
constexpr auto kRunningPoll = std::chrono::milliseconds(250);

// "host:port" or "[v6]:port" split into host and port; false when there is no port.
bool split_address(const std::string& address, std::string& host, std::string& port) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 == address.size()) return false;
  host = address.substr(0, colon);
  port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return true;
}

// Whether `fd`, connecting without blocking, gets connected within `wait`.
bool connects_within(int fd, const sockaddr* address, socklen_t length,
                     std::chrono::milliseconds wait) {
  if (::connect(fd, address, length) == 0) return true;
  if (errno != EINPROGRESS) return false;
  pollfd pending{fd, POLLOUT, 0};
  if (::poll(&pending, 1, static_cast<int>(wait.count())) != 1) return false;
  int error = 0;
  socklen_t size = sizeof error;
  return ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) == 0 && error == 0;
}

// Whether something accepts TCP connections at `address` ("host:port").
bool accepts_connections(const std::string& address, std::chrono::milliseconds wait) {
  std::string host, port;
  if (!split_address(address, host, port)) return false;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) return false;
  bool accepted = false;
  for (auto* a = found; a != nullptr && !accepted; a = a->ai_next) {
    int fd =
        ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    accepted = connects_within(fd, a->ai_addr, a->ai_addrlen, wait);
    ::close(fd);
  }
  ::freeaddrinfo(found);
  return accepted;
}

enum class Listening { yes, timed_out, ended };

// Polls until something listens at `address`, `deadline` passes, or `running` says the instance
// ended (asked every kRunningPoll).
Listening wait_listening(const std::string& address, Clock::time_point deadline,
                         const std::function<bool()>& running) {
  auto next_running_check = Clock::now() + kRunningPoll;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left <= std::chrono::milliseconds(0)) return Listening::timed_out;
    if (accepts_connections(address, std::min(left, std::chrono::milliseconds(kConnectWait)))) {
      return Listening::yes;
    }
    if (Clock::now() >= next_running_check) {
      if (!running()) return Listening::ended;
      next_running_check = Clock::now() + kRunningPoll;
    }
    std::this_thread::sleep_for(kListenPoll);
  }
}

// The channel's bound on a message either way.
int message_bytes(const FunctionConfig& config) {
  return static_cast<int>(std::min<std::uint64_t>(config.message_length_max.bytes, INT32_MAX));
}

std::shared_ptr<grpc::Channel> open_channel(const FunctionConfig& config,
                                           const std::string& address) {
  grpc::ChannelArguments args;
  int length = message_bytes(config);
  args.SetMaxReceiveMessageSize(length);
  args.SetMaxSendMessageSize(length);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 20);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 20);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(std::max<std::int64_t>(20, config.backoff_max.count())));
  // Each instance gets its own connection even when addresses repeat.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // The rule retries on its own (with backoff, on another instance when this one failed); gRPC's
  // retry layer would only buffer every call's messages.
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

}  // namespace

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
  auto started = Clock::now();
  auto deadline = started + config_.timeout;
  // The channel is created once the runtime listens, so its first dial succeeds: gRPC's reconnect
  // backoff grows by 1.6 per refused dial and added up to a third of the start-up time (measured:
  // 40-240 ms median between listening and ready) to the first call.
  auto listening = wait_listening(instance->address, deadline, [&] {
    return launcher_.running(config_.service, instance->name);
  });
  bool ready = listening == Listening::yes;
  if (ready) {
    instance->channel = open_channel(config_, instance->address);
    ready = instance->channel->WaitForConnected(std::chrono::system_clock::now() +
                                                (deadline - Clock::now()));
  }
  if (listening == Listening::ended) {
    log_->error("function {}: instance {} ended before it listened at {} (see its log); stopping it",
                config_.name, instance->name, instance->address);
  } else if (!ready) {
    log_->error("function {}: instance {} at {} not ready within {} ms; stopping it", config_.name,
                instance->name, instance->address, config_.timeout.count());
  }
  if (!ready) {
    try {
      launcher_.stop(config_.service, instance->name);
    } catch (const std::exception& e) {
      log_->warn("function {}: stopping instance {} failed: {}", config_.name, instance->name,
                 e.what());
    }
    return nullptr;
  }
  instance->stub = baetyl::Function::NewStub(instance->channel);
  log_->info("function {}: instance {} ready at {} after {} ms", config_.name, instance->name,
             instance->address,
             std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count());
  instance->last_used = Clock::now();
  return instance;
}

void InstancePool::launch_in_background_locked() {
  int id = free_id_locked();
  used_ids_[id - 1] = true;
  ++count_;
  ++launching_;
  launchers_.emplace_back([this, id] {
    auto instance = launch(id);
    std::unique_lock lock(mutex_);
    --launching_;
    if (instance && !closed_) {
      ready_.push_back(std::move(instance));
    } else if (instance) {
      lock.unlock();
      stop_instance(instance);
      return;
    } else {
      used_ids_[id - 1] = false;
      --count_;
      ++failed_launches_;
      last_launch_error_ = "function " + config_.name + ": instance " +
                           instance_name(config_.service, config_.name, id) +
                           " could not be started";
    }
    changed_.notify_all();
  });
}

std::shared_ptr<Instance> InstancePool::least_busy_locked() const {
  std::shared_ptr<Instance> best;
  for (const auto& instance : ready_) {
    // Most recently used first among equals, so the others grow idle and can be evicted.
    if (!best || instance->calls < best->calls ||
        (instance->calls == best->calls && instance->last_used > best->last_used)) {
      best = instance;
    }
  }
  return best;
}

// Calls on an open stream of a runtime that answers them as it reads them, in microseconds
// (SQL; Python while its function's calls end fast): spreading them over more instances only
// multiplies threads and wake-ups and shrinks the batches (SQL at QoS 1 with instance.max 4:
// about 20 % more CPU per message than with one instance). So such an instance takes calls up
// to instance.calls before another one is used or started. Calls to other runtimes, and to one
// whose stream said its calls take time now, spread. The answer is read at every choice, so an
// instance follows what its runtime last said on the stream.
std::shared_ptr<Instance> InstancePool::busiest_streaming_with_room_locked() const {
  std::shared_ptr<Instance> best;
  for (const auto& instance : ready_) {
    const CallStream* stream = instance->stream();
    if (instance->calls >= config_.instance.calls || stream == nullptr || !stream->is_open() ||
        !stream->answers_inline()) {
      continue;
    }
    if (!best || instance->calls > best->calls) best = instance;
  }
  return best;
}

std::shared_ptr<Instance> InstancePool::take_slot_locked(std::shared_ptr<Instance> instance) {
  ++instance->calls;
  return instance;
}

std::shared_ptr<Instance> InstancePool::pick_slot_locked(bool may_launch) {
  if (closed_) throw std::runtime_error("function " + config_.name + ": pool closed");
  if (auto streaming = busiest_streaming_with_room_locked()) {
    return take_slot_locked(std::move(streaming));
  }
  auto best = least_busy_locked();
  if (best && best->calls == 0) return take_slot_locked(std::move(best));
  // Under load the pool doubles at most per start-up time: one start more than ready instances.
  if (may_launch && launching_ <= static_cast<int>(ready_.size()) &&
      count_ < config_.instance.max) {
    launch_in_background_locked();
  }
  if (best && best->calls < config_.instance.calls) return take_slot_locked(std::move(best));
  return nullptr;
}

std::shared_ptr<Instance> InstancePool::try_acquire() {
  std::lock_guard lock(mutex_);
  return pick_slot_locked(true);
}

std::shared_ptr<Instance> InstancePool::acquire(Clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  const std::uint64_t failures_before = failed_launches_;
  while (true) {
    bool launch_failed = failed_launches_ != failures_before;
    if (auto slot = pick_slot_locked(!launch_failed)) return slot;
    if (launch_failed && launching_ == 0) throw std::runtime_error(last_launch_error_);
    ++waiters_;
    auto woken = changed_.wait_until(lock, deadline);
    --waiters_;
    if (woken == std::cv_status::timeout && Clock::now() >= deadline) {
      throw std::runtime_error("function " + config_.name + ": no instance available (all " +
                               std::to_string(config_.instance.max) + " busy)");
    }
  }
}

void InstancePool::release(std::shared_ptr<Instance> instance, bool healthy) {
  if (!instance) return;
  std::lock_guard lock(mutex_);
  --instance->calls;
  instance->last_used = Clock::now();
  if (!healthy || closed_) discard_locked(instance);
  // Waking nobody is the common case at full load: no futex call then.
  if (waiters_ > 0) changed_.notify_all();
}

void InstancePool::discard_locked(const std::shared_ptr<Instance>& instance) {
  if (instance->discarded) return;
  instance->discarded = true;
  auto it = std::find(ready_.begin(), ready_.end(), instance);
  // Not in ready_ when close() has taken it to stop it already.
  if (it == ready_.end()) return;
  ready_.erase(it);
  // Stop in the background; the id is freed when the stop returned.
  stoppers_.emplace_back([this, instance] { stop_instance(instance); });
}

void InstancePool::stop_instance(const std::shared_ptr<Instance>& instance) {
  log_->info("function {}: stopping instance {}", config_.name, instance->name);
  {
    // Its other calls end by their deadline at the latest (at once when the runtime died).
    std::unique_lock lock(mutex_);
    ++waiters_;
    changed_.wait_for(lock, config_.timeout + std::chrono::seconds(1),
                      [&] { return instance->calls == 0; });
    --waiters_;
  }
  // Close our connection first: a runtime shutting down gracefully may wait for open ones.
  if (auto* stream = instance->stream()) stream->close();
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
    std::vector<std::shared_ptr<Instance>> idle;
    for (const auto& instance : ready_) {
      if (instance->calls == 0) idle.push_back(instance);
    }
    // Oldest first.
    std::sort(idle.begin(), idle.end(),
              [](const auto& a, const auto& b) { return a->last_used < b->last_used; });
    int keep = count_;
    for (const auto& instance : idle) {
      if (keep <= config_.instance.min || now - instance->last_used < config_.instance.idle_time) {
        break;
      }
      expired.push_back(instance);
      std::erase(ready_, instance);
      --keep;
    }
  }
  for (auto& instance : expired) stop_instance(instance);
}

grpc::Status InstancePool::call(Instance& instance, const baetyl::FunctionMessage& request,
                                baetyl::FunctionMessage& reply) const {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + config_.timeout);
  return instance.stub->Call(&context, request, &reply);
}

void InstancePool::call_async(Instance& instance, std::unique_ptr<grpc::ClientContext>& context,
                              const baetyl::FunctionMessage& request,
                              baetyl::FunctionMessage& reply,
                              std::function<void(grpc::Status)> done) const {
  // A stream not open yet, or one that broke, takes no call: this one goes as a unary call
  // (which fails at once too when the instance is gone, and the instance is then discarded).
  CallStream* stream = instance.stream();
  if (stream != nullptr && stream->call(request, reply, done)) return;
  context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + config_.timeout);
  if (stream == nullptr) {
    // The instance's first calls: the stream is opened when one ends, before `done` may give
    // the instance back (the instance lives at least until then).
    done = [this, &instance, done = std::move(done)](grpc::Status status) {
      open_stream_once(instance);
      done(std::move(status));
    };
  }
  instance.stub->async()->Call(context.get(), &request, &reply, std::move(done));
}

void InstancePool::open_stream_once(Instance& instance) const {
  std::call_once(instance.stream_once, [&] {
    auto on_inline_changed = [log = log_, function = config_.name,
                              name = instance.name](bool answers_inline) {
      if (answers_inline) {
        log->info(
            "function {}: instance {} answers calls as it reads them again: it takes "
            "calls up to instance.calls before another instance is used",
            function, name);
      } else {
        log->info(
            "function {}: instance {} says its calls take time now: calls spread over instances",
            function, name);
      }
    };
    instance.stream_owner =
        CallStream::open(*instance.stub, config_.timeout,
                         static_cast<std::size_t>(message_bytes(config_)), on_inline_changed);
    instance.stream_ptr.store(instance.stream_owner.get(), std::memory_order_release);
  });
}

nlohmann::json CallStats::to_json() const {
  return {{"calls", calls.load(std::memory_order_relaxed)},
          {"errors", errors.load(std::memory_order_relaxed)},
          {"in_flight", std::max<std::int64_t>(in_flight.load(std::memory_order_relaxed), 0)},
          {"call_duration_seconds", duration.to_json()}};
}

int InstancePool::size() const {
  std::lock_guard lock(mutex_);
  return count_;
}

int InstancePool::idle() const {
  std::lock_guard lock(mutex_);
  return static_cast<int>(
      std::count_if(ready_.begin(), ready_.end(), [](const auto& i) { return i->calls == 0; }));
}

}  // namespace baetyl::function
