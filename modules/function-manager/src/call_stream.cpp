#include "call_stream.h"

#include <thread>
#include <utility>
#include <vector>

namespace baetyl::function {

std::shared_ptr<CallStream> CallStream::open(baetyl::Function::Stub& stub,
                                             std::chrono::milliseconds timeout) {
  std::shared_ptr<CallStream> stream(new CallStream(timeout));
  stream->self_ = stream;
  stub.async()->CallStream(&stream->context_, stream.get());
  // Writes are started by callers' threads, outside gRPC's reactions: the hold keeps the stream
  // from completing under them; it is released once the stream is broken.
  stream->AddHold();
  stream->StartRead(&stream->incoming_);
  stream->StartCall();
  std::thread([stream] { stream->watch_deadlines(); }).detach();
  return stream;
}

void CallStream::close() {
  bool release = false;
  {
    std::lock_guard lock(mutex_);
    release = break_locked();
  }
  changed_.notify_all();
  release_hold_if(release);
  context_.TryCancel();
}

bool CallStream::is_open() const {
  std::lock_guard lock(mutex_);
  return state_ == State::Open;
}

bool CallStream::broken() const {
  std::lock_guard lock(mutex_);
  return state_ == State::Broken;
}

bool CallStream::break_locked() {
  state_ = State::Broken;
  if (hold_released_ || starting_writes_ > 0) return false;
  hold_released_ = true;
  return true;
}

void CallStream::release_hold_if(bool release) {
  if (release) RemoveHold();
}

bool CallStream::call(const baetyl::FunctionMessage& request, baetyl::FunctionMessage& reply,
                      Done& done) {
  const baetyl::FunctionMessage* first = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (state_ != State::Open) return false;
    pending_.push_back(Pending{&reply, std::move(done), Clock::now() + timeout_});
    if (pending_.size() == 1) changed_.notify_all();  // the watcher may wait without a deadline
    writes_.push_back(request);
    if (!writing_) {
      writing_ = true;
      first = &writes_.front();
      ++starting_writes_;
    }
  }
  if (first == nullptr) return true;  // the write in flight starts this one when it is done
  // Not under mutex_: gRPC may run OnWriteDone before StartWrite returns.
  StartWrite(first);
  bool release = false;
  {
    std::lock_guard lock(mutex_);
    if (--starting_writes_ == 0 && state_ == State::Broken && !hold_released_) {
      hold_released_ = true;
      release = true;
    }
  }
  release_hold_if(release);
  return true;
}

void CallStream::OnReadInitialMetadataDone(bool ok) {
  bool serves = false;
  if (ok) {
    const auto& metadata = context_.GetServerInitialMetadata();
    serves = metadata.find(kCallStreamMetadata) != metadata.end();
  }
  bool release = false;
  {
    std::lock_guard lock(mutex_);
    if (state_ != State::Opening) return;
    if (serves) {
      state_ = State::Open;
    } else {
      release = break_locked();
    }
  }
  changed_.notify_all();
  if (!serves) {
    release_hold_if(release);
    context_.TryCancel();  // a runtime answering without the key is not one we can stream to
  }
}

void CallStream::OnReadDone(bool ok) {
  if (!ok) {
    bool release = false;
    {
      std::lock_guard lock(mutex_);
      release = break_locked();
    }
    changed_.notify_all();
    release_hold_if(release);
    return;  // OnDone fails the calls still waiting
  }
  Pending answered{};
  bool found = false;
  {
    std::lock_guard lock(mutex_);
    // Once broken (a call's deadline passed, or closed), replies are not matched any more: the
    // next one could be the late reply of a call already failed. OnDone fails the rest.
    if (state_ == State::Open && !pending_.empty()) {
      answered = std::move(pending_.front());
      pending_.pop_front();
      found = true;
    }
  }
  grpc::Status status;
  if (found) {
    if (incoming_.errorcode() != 0) {
      status = grpc::Status(static_cast<grpc::StatusCode>(incoming_.errorcode()),
                            incoming_.errormessage());
    } else {
      answered.reply->Swap(&incoming_);
    }
  }
  // A reply whose call gave up at its deadline is dropped.
  StartRead(&incoming_);
  if (found) answered.done(status);
}

void CallStream::OnWriteDone(bool ok) {
  const baetyl::FunctionMessage* next = nullptr;
  bool release = false;
  {
    std::lock_guard lock(mutex_);
    writes_.pop_front();
    if (ok && state_ == State::Open && !writes_.empty()) {
      next = &writes_.front();
    } else {
      writing_ = false;
      if (!ok) release = break_locked();
    }
  }
  release_hold_if(release);
  if (next != nullptr) StartWrite(next);
}

void CallStream::OnDone(const grpc::Status& status) {
  auto keep = std::move(self_);  // this may be destroyed when the function returns
  std::vector<Pending> failed;
  {
    std::lock_guard lock(mutex_);
    state_ = State::Broken;
    for (auto& pending : pending_) failed.push_back(std::move(pending));
    pending_.clear();
    writes_.clear();
  }
  changed_.notify_all();
  const grpc::Status error =
      status.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "call stream ended") : status;
  for (auto& pending : failed) pending.done(error);
}

// Sleeps until the oldest call's deadline; a call still unanswered then fails and the stream is
// cancelled (the instance is stuck or too slow). Ends once the stream is broken and drained.
void CallStream::watch_deadlines() {
  std::unique_lock lock(mutex_);
  while (true) {
    if (state_ == State::Broken && pending_.empty()) break;
    if (pending_.empty() || state_ == State::Broken) {
      changed_.wait(lock);  // a call, or OnDone failing the rest
      continue;
    }
    const auto deadline = pending_.front().deadline;
    if (Clock::now() < deadline) {
      changed_.wait_until(lock, deadline);
      continue;
    }
    Pending expired = std::move(pending_.front());
    pending_.pop_front();
    const bool release = break_locked();
    lock.unlock();
    release_hold_if(release);
    context_.TryCancel();
    expired.done(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded"));
    lock.lock();
  }
}

}  // namespace baetyl::function
