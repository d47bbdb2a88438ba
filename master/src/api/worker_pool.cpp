#include "api/worker_pool.h"

#include <utility>

namespace baetyl::master {

WorkerPool::WorkerPool(std::size_t max_threads, std::size_t max_queued)
    : max_threads_(max_threads == 0 ? 1 : max_threads), max_queued_(max_queued) {}

WorkerPool::~WorkerPool() { stop(); }

bool WorkerPool::submit(std::function<void()> task) {
  std::lock_guard lock(mutex_);
  if (stopped_ || queue_.size() >= max_queued_) return false;
  queue_.push_back(std::move(task));
  if (queue_.size() > idle_ && threads_.size() < max_threads_) {
    threads_.emplace_back([this] { run(); });
  }
  wake_.notify_one();
  return true;
}

void WorkerPool::stop() {
  std::vector<std::thread> threads;
  std::deque<std::function<void()>> dropped;
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
    threads.swap(threads_);
    dropped.swap(queue_);
  }
  wake_.notify_all();
  for (auto& thread : threads) thread.join();
  // Dropped tasks are destroyed here, outside the lock, as they may own arbitrary state.
}

void WorkerPool::restart() {
  std::lock_guard lock(mutex_);
  stopped_ = false;
}

std::size_t WorkerPool::thread_count() const {
  std::lock_guard lock(mutex_);
  return threads_.size();
}

void WorkerPool::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    ++idle_;
    wake_.wait(lock, [this] { return stopped_ || !queue_.empty(); });
    --idle_;
    if (stopped_) return;
    std::function<void()> task = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    task();
    task = nullptr;
    lock.lock();
  }
}

}  // namespace baetyl::master
