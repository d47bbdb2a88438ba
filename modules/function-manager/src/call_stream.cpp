#include "call_stream.h"

#include <algorithm>
#include <limits>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace baetyl::function {

namespace {

// A batch of requests grows to about this size (or the runtime's or channel's bound, when
// lower) before the next one is started.
constexpr std::size_t kRequestBatchBytes = 256 * 1024;
// The bytes a message adds to a batch besides its own: its field tag and length.
constexpr std::size_t kBatchEntryOverhead = 6;
// Written batches that wait for their replies before the next is written: the calls made
// meanwhile wait and go together, so a runtime that is slower than the calls come gets them in
// a few large batches rather than many small ones (each costs it a read and a wake-up); two
// keep it busy while a reply travels back.
constexpr std::size_t kBatchesInFlight = 2;

// The runtime's bound on a batch of requests (the value of its kCallStreamMetadata); 0 when the
// value is not a positive number or does not fit a size_t (32 bits on armhf).
std::size_t announced_bytes(const grpc::string_ref& value) {
  constexpr std::size_t kMax = std::numeric_limits<std::size_t>::max();
  std::size_t bytes = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return 0;
    const auto digit = static_cast<std::size_t>(c - '0');
    if (bytes > (kMax - digit) / 10) return 0;
    bytes = bytes * 10 + digit;
  }
  return bytes;
}

}  // namespace

std::shared_ptr<CallStream> CallStream::open(baetyl::Function::Stub& stub,
                                             std::chrono::milliseconds timeout,
                                             std::size_t message_bytes,
                                             InlineChanged on_inline_changed) {
  std::shared_ptr<CallStream> stream(
      new CallStream(timeout, message_bytes, std::move(on_inline_changed)));
  stream->self_ = stream;
  stream->context_.AddMetadata(kReplyBytesMetadata, std::to_string(message_bytes));
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

void CallStream::queue_locked(const baetyl::FunctionMessage& request, std::size_t bytes) {
  const bool last_is_written = writing_ && batches_.size() == 1;
  if (batches_.empty() || last_is_written || batches_.back().bytes + bytes > batch_bytes_) {
    batches_.emplace_back();
  }
  Batch& batch = batches_.back();
  *batch.messages.add_messages() = request;
  batch.bytes += bytes;
}

const baetyl::FunctionMessages* CallStream::next_write_locked() {
  if (writing_ || state_ != State::Open || batches_.empty() ||
      unanswered_.size() >= kBatchesInFlight) {
    return nullptr;
  }
  writing_ = true;
  unanswered_.push_back(batches_.front().messages.messages_size());
  return &batches_.front().messages;
}

bool CallStream::call(const baetyl::FunctionMessage& request, baetyl::FunctionMessage& reply,
                      Done& done) {
  const std::size_t bytes = request.ByteSizeLong() + kBatchEntryOverhead;
  const baetyl::FunctionMessages* first = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (state_ != State::Open || bytes > batch_bytes_) return false;
    pending_.push_back(Pending{&reply, std::move(done), Clock::now() + timeout_});
    if (pending_.size() == 1) changed_.notify_all();  // the watcher may wait without a deadline
    queue_locked(request, bytes);
    first = next_write_locked();
    if (first != nullptr) ++starting_writes_;
  }
  // Otherwise the end of the write in flight, or a batch's replies, start this one.
  if (first == nullptr) return true;
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
  std::size_t runtime_bytes = 0;
  if (ok) {
    const auto& metadata = context_.GetServerInitialMetadata();
    auto found = metadata.find(kCallStreamMetadata);
    if (found != metadata.end()) runtime_bytes = announced_bytes(found->second);
    answers_inline_.store(metadata.find(kInlineMetadata) != metadata.end(),
                          std::memory_order_release);
  }
  const bool serves = runtime_bytes > 0;
  bool release = false;
  {
    std::lock_guard lock(mutex_);
    if (state_ != State::Opening) return;
    if (serves) {
      batch_bytes_ = std::min({kRequestBatchBytes, runtime_bytes, message_bytes_});
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
  if (incoming_.has_answersinline()) set_answers_inline(incoming_.answersinline());
  struct Answer {
    Pending pending;
    grpc::Status status;
  };
  std::vector<Answer> answers;
  const baetyl::FunctionMessages* next = nullptr;
  {
    std::lock_guard lock(mutex_);
    // Once broken (a call's deadline passed, or closed), replies are not matched any more: the
    // next one could be the late reply of a call already failed. OnDone fails the rest.
    if (state_ == State::Open) {
      answers.reserve(static_cast<std::size_t>(incoming_.messages_size()));
      for (auto& reply : *incoming_.mutable_messages()) {
        if (pending_.empty()) break;
        Answer answer{std::move(pending_.front()), grpc::Status::OK};
        pending_.pop_front();
        if (reply.errorcode() != 0) {
          answer.status = grpc::Status(static_cast<grpc::StatusCode>(reply.errorcode()),
                                       reply.errormessage());
        } else {
          answer.pending.reply->Swap(&reply);
        }
        answers.push_back(std::move(answer));
        if (!unanswered_.empty() && --unanswered_.front() == 0) unanswered_.pop_front();
      }
      next = next_write_locked();
    }
  }
  // A reply whose call gave up at its deadline is dropped.
  StartRead(&incoming_);
  if (next != nullptr) StartWrite(next);
  for (auto& answer : answers) answer.pending.done(answer.status);
}

void CallStream::set_answers_inline(bool answers_inline) {
  const bool before = answers_inline_.exchange(answers_inline, std::memory_order_acq_rel);
  if (before != answers_inline && on_inline_changed_) on_inline_changed_(answers_inline);
}

void CallStream::OnWriteDone(bool ok) {
  const baetyl::FunctionMessages* next = nullptr;
  bool release = false;
  {
    std::lock_guard lock(mutex_);
    batches_.pop_front();
    writing_ = false;
    if (ok) {
      next = next_write_locked();
    } else {
      release = break_locked();
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
    batches_.clear();
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
