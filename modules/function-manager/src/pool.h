#pragma once
// The instances of one function: started on demand (up to instance.max) through a Launcher,
// kept warm down to instance.min, stopped after instance.idletime without a call, discarded
// (stopped) after a failed call.
//
// An instance serves up to instance.calls calls at a time (asynchronous gRPC calls on its
// one channel): acquire() hands out a call slot, release() gives it back.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <spdlog/logger.h>

#include "baetyl/histogram.h"
#include "call_stream.h"
#include "config.h"
#include "function.grpc.pb.h"

namespace baetyl::function {

// The figures of one function's calls (every rule's, every retry), reported to the master. A
// call counts once it has ended, so `calls` and the histogram's count agree.
struct CallStats {
  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> errors{0};  // ended with a gRPC status other than OK
  std::atomic<std::int64_t> in_flight{0};
  LatencyHistogram duration;

  void started() { in_flight.fetch_add(1, std::memory_order_relaxed); }
  void ended(std::chrono::nanoseconds took, bool ok) {
    duration.observe(took);
    if (!ok) errors.fetch_add(1, std::memory_order_relaxed);
    calls.fetch_add(1, std::memory_order_relaxed);
    in_flight.fetch_sub(1, std::memory_order_relaxed);
  }
  // {"calls", "errors", "in_flight", "call_duration_seconds"}.
  nlohmann::json to_json() const;
};

// Starts and stops runtime instances. start() returns the address to dial ("host:port").
class Launcher {
 public:
  virtual ~Launcher() = default;
  virtual std::string start(const std::string& service, const std::string& instance) = 0;
  virtual void stop(const std::string& service, const std::string& instance) = 0;
  // False once the instance is known to have ended (its runtime exited): a start that will never
  // listen. Asked a few times a second while a new instance is awaited.
  virtual bool running(const std::string& /*service*/, const std::string& /*instance*/) {
    return true;
  }
};

struct Instance {
  ~Instance() {
    if (stream_owner) stream_owner->close();
  }
  // Null until the instance's first call ended; calls go on it once it is open.
  CallStream* stream() const { return stream_ptr.load(std::memory_order_acquire); }

  int id = 0;
  std::string name;
  std::string address;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<baetyl::Function::Stub> stub;
  // Opened once, after the first call (a runtime without CallStream then answers UNIMPLEMENTED
  // off the path of that call); calls go on it once the runtime said it serves it, else one
  // unary Call each.
  std::once_flag stream_once;
  std::shared_ptr<CallStream> stream_owner;
  std::atomic<CallStream*> stream_ptr{nullptr};
  // Guarded by the pool's mutex.
  std::chrono::steady_clock::time_point last_used;
  int calls = 0;           // call slots held
  bool discarded = false;  // failed: no new calls; stopped once its calls have returned
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

  // A call slot: on an instance without calls if there is one, else on a new instance when
  // fewer than instance.max exist (started in the background while the busy ones keep serving),
  // else on the least busy instance with a free slot, else the first slot released before
  // `deadline`. Throws std::runtime_error when none is available by then (or the start of a new
  // instance failed with nothing else available, or the pool is closed).
  std::shared_ptr<Instance> acquire(std::chrono::steady_clock::time_point deadline);
  // The same without waiting: a slot, or null (a start may have begun in the background).
  std::shared_ptr<Instance> try_acquire();
  // Gives a call slot back. When not `healthy` the instance takes no new calls; it is stopped
  // once its other calls have returned, and its id freed once the stop returned (so a
  // replacement never collides with it).
  void release(std::shared_ptr<Instance> instance, bool healthy);

  // Calls the function on `instance` with the function's timeout as deadline.
  grpc::Status call(Instance& instance, const baetyl::FunctionMessage& request,
                    baetyl::FunctionMessage& reply) const;
  // The same without waiting: `done` runs on a gRPC thread when the call ends, on the
  // instance's CallStream when it has one, else as a unary call with a new `context`.
  // `context`, `request` and `reply` must live until then.
  void call_async(Instance& instance, std::unique_ptr<grpc::ClientContext>& context,
                  const baetyl::FunctionMessage& request, baetyl::FunctionMessage& reply,
                  std::function<void(grpc::Status)> done) const;

  // Stops idle instances unused for instance.idletime, keeping instance.min; the evictor thread
  // runs this every instance.evicttime.
  void evict();

  const FunctionConfig& config() const { return config_; }
  CallStats& stats() { return stats_; }
  const CallStats& stats() const { return stats_; }
  // Instances started and not yet stopped (busy, idle, starting and stopping).
  int size() const;
  // Ready instances without a call.
  int idle() const;
  static std::string instance_name(const std::string& service, const std::string& function, int id);

 private:
  std::shared_ptr<Instance> launch(int id);
  // Starts an instance on a thread of its own; it joins ready_ when ready.
  void launch_in_background_locked();
  void stop_instance(const std::shared_ptr<Instance>& instance);
  void discard_locked(const std::shared_ptr<Instance>& instance);
  // The ready instance with the fewest calls (the most recently used among equals), or null.
  std::shared_ptr<Instance> least_busy_locked() const;
  // The ready instance with an open call stream, a free slot and the most calls, or null.
  std::shared_ptr<Instance> busiest_streaming_with_room_locked() const;
  std::shared_ptr<Instance> take_slot_locked(std::shared_ptr<Instance> instance);
  std::shared_ptr<Instance> pick_slot_locked(bool may_launch);
  void open_stream_once(Instance& instance) const;
  int free_id_locked() const;

  FunctionConfig config_;
  Launcher& launcher_;
  std::shared_ptr<spdlog::logger> log_;
  CallStats stats_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  int waiters_ = 0;  // threads waiting on changed_
  std::condition_variable evictor_wake_;
  std::vector<bool> used_ids_;  // index id-1; an id stays used until its instance is stopped
  std::vector<std::shared_ptr<Instance>> ready_;
  int count_ = 0;
  int launching_ = 0;
  std::uint64_t failed_launches_ = 0;
  std::string last_launch_error_;
  bool closed_ = false;
  std::thread evictor_;
  std::vector<std::thread> launchers_;
  std::vector<std::thread> stoppers_;
};

}  // namespace baetyl::function
