#pragma once
// The instances of one function: started on demand (up to instance.max) through a Launcher,
// kept warm down to instance.min, stopped after instance.idletime without a call, discarded
// (stopped) after a failed call.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <spdlog/logger.h>

#include "config.h"
#include "function.grpc.pb.h"

namespace baetyl::function {

// Starts and stops runtime instances. start() returns the address to dial ("host:port").
class Launcher {
 public:
  virtual ~Launcher() = default;
  virtual std::string start(const std::string& service, const std::string& instance) = 0;
  virtual void stop(const std::string& service, const std::string& instance) = 0;
};

struct Instance {
  int id = 0;
  std::string name;
  std::string address;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<baetyl::Function::Stub> stub;
  std::chrono::steady_clock::time_point last_used;
};

class InstancePool {
 public:
  InstancePool(FunctionConfig config, Launcher& launcher, std::shared_ptr<spdlog::logger> logger);
  ~InstancePool();
  InstancePool(const InstancePool&) = delete;
  InstancePool& operator=(const InstancePool&) = delete;

  // Starts instance.min instances and the evictor thread.
  void start();
  // Stops the evictor and every instance; acquire() fails from now on.
  void close();

  // An idle instance, or a new one if fewer than instance.max exist, or the first one released
  // before `deadline`. Throws std::runtime_error when none is available by then (or the start of
  // a new one failed, or the pool is closed).
  std::shared_ptr<Instance> acquire(std::chrono::steady_clock::time_point deadline);
  // Gives an instance back: to the idle list when `healthy`, otherwise it is stopped and its id
  // freed once the stop returned (so a replacement never collides with it).
  void release(std::shared_ptr<Instance> instance, bool healthy);

  // Calls the function on `instance` with the function's timeout.
  grpc::Status call(Instance& instance, const baetyl::FunctionMessage& request,
                    baetyl::FunctionMessage& reply) const;

  // Stops idle instances unused for instance.idletime, keeping instance.min; the evictor thread
  // runs this every instance.evicttime.
  void evict();

  const FunctionConfig& config() const { return config_; }
  // Instances started and not yet stopped (busy, idle and starting).
  int size() const;
  int idle() const;
  static std::string instance_name(const std::string& service, const std::string& function, int id);

 private:
  std::shared_ptr<Instance> launch(int id);
  void stop_instance(const std::shared_ptr<Instance>& instance);
  int free_id_locked() const;

  FunctionConfig config_;
  Launcher& launcher_;
  std::shared_ptr<spdlog::logger> log_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<bool> used_ids_;  // index id-1; an id stays used until its instance is stopped
  std::vector<std::shared_ptr<Instance>> idle_;
  int count_ = 0;
  bool closed_ = false;
  std::thread evictor_;
  std::vector<std::thread> stoppers_;
};

}  // namespace baetyl::function
