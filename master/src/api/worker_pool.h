#pragma once
// Threads for the API's backend calls, which may block (stopping an instance waits out its grace
// period), so that one slow call never holds up the server's I/O thread or the other requests.
// Threads start on demand up to a maximum and stay until stop().
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace baetyl::master {

class WorkerPool {
 public:
  WorkerPool(std::size_t max_threads, std::size_t max_queued);
  ~WorkerPool();  // stops
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues a task; false when the queue is full or the pool stopped. Tasks must not throw.
  bool submit(std::function<void()> task);
  // Lets running tasks finish, drops the queued ones and joins the threads. Submitting after
  // stop() fails; restart() makes the pool usable again.
  void stop();
  void restart();

  std::size_t thread_count() const;

 private:
  void run();

  const std::size_t max_threads_;
  const std::size_t max_queued_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;
  std::size_t idle_ = 0;
  bool stopped_ = false;
};

}  // namespace baetyl::master
