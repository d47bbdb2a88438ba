#pragma once
// The calls to one instance carried on one CallStream (a bidirectional gRPC stream) instead of
// one unary Call each: no HTTP/2 stream of its own with headers and trailers per call, and the
// calls made while a write is in flight go together in the next one (one write, one read and
// one wake-up on each side for the lot). Requests are written in order, one write in flight at
// a time and at most two batches unanswered; the runtime answers them in the same order, its
// replies batched as well.
//
// Each call has the function's timeout: a call still unanswered then fails with
// DEADLINE_EXCEEDED and the stream is cancelled, failing the others with UNAVAILABLE (the
// instance is then discarded, as after a failed unary call). A broken stream takes no calls.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

#include <grpcpp/grpcpp.h>

#include "function.grpc.pb.h"

namespace baetyl::function {

// The initial metadata key with which a runtime tells that it serves CallStream (a runtime
// without it answers UNIMPLEMENTED, without initial metadata of its own).
// Its value: the largest batch of requests the runtime takes, in bytes.
inline constexpr const char* kCallStreamMetadata = "baetyl-call-stream";
// Sent by a runtime that answers each call as it reads it, in microseconds. A runtime whose
// answer changes later tells so with AnswersInline on a batch of replies.
inline constexpr const char* kInlineMetadata = "baetyl-call-stream-inline";
// Sent by the manager: the largest batch of replies it takes, in bytes.
inline constexpr const char* kReplyBytesMetadata = "baetyl-call-stream-reply-bytes";

class CallStream final
    : public grpc::ClientBidiReactor<baetyl::FunctionMessages, baetyl::FunctionMessages>,
      public std::enable_shared_from_this<CallStream> {
 public:
  using Done = std::function<void(grpc::Status)>;
  // Runs on a gRPC thread when the runtime's answer to answers_inline() changes.
  using InlineChanged = std::function<void(bool answers_inline)>;

  // Starts opening a stream on `stub` without waiting: calls are taken once the runtime has
  // told that it serves CallStream (a round trip later); until then, and for good when it does
  // not (UNIMPLEMENTED), call() returns false and the caller makes unary calls. `timeout` is
  // each call's; `message_bytes` the channel's bound on a message either way.
  static std::shared_ptr<CallStream> open(baetyl::Function::Stub& stub,
                                          std::chrono::milliseconds timeout,
                                          std::size_t message_bytes,
                                          InlineChanged on_inline_changed = {});
  CallStream(const CallStream&) = delete;
  CallStream& operator=(const CallStream&) = delete;

  // Cancels the stream without waiting: calls still waiting fail with CANCELLED.
  void close();

  // Sends `request`; `done` runs on a gRPC thread (or the deadline watcher) with the outcome and
  // `reply` filled in when it is OK. `reply` must live until then. False when the stream is not
  // open or broken, or the request is too large to share a batch (it goes as a unary call, where
  // being too large fails it alone): nothing was sent and `done` will not run.
  bool call(const baetyl::FunctionMessage& request, baetyl::FunctionMessage& reply, Done& done);
  bool is_open() const;
  bool broken() const;
  // The runtime answers calls as it reads them (kInlineMetadata at the start, then the latest
  // AnswersInline of its reply batches): spreading calls over more instances would gain nothing.
  bool answers_inline() const { return answers_inline_.load(std::memory_order_acquire); }

  void OnReadInitialMetadataDone(bool ok) override;
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  using Clock = std::chrono::steady_clock;
  struct Pending {
    baetyl::FunctionMessage* reply;
    Done done;
    Clock::time_point deadline;
  };

  struct Batch {
    baetyl::FunctionMessages messages;
    std::size_t bytes = 0;
  };

  CallStream(std::chrono::milliseconds timeout, std::size_t message_bytes,
             InlineChanged on_inline_changed)
      : timeout_(timeout),
        message_bytes_(message_bytes),
        on_inline_changed_(std::move(on_inline_changed)) {}
  // The AnswersInline of a batch of replies, applied before their calls' `done` run, so the
  // call slots those give back are handed out by the new answer.
  void set_answers_inline(bool answers_inline);
  // Into the last batch not being written, unless that one is full.
  void queue_locked(const baetyl::FunctionMessage& request, std::size_t bytes);
  // The batch to write now, if one may start: marked as being written.
  const baetyl::FunctionMessages* next_write_locked();
  // Marks the stream broken; true when the caller must release the hold that covers calls
  // started from outside gRPC's reactions (none is starting a write now).
  bool break_locked();
  void release_hold_if(bool release);
  void watch_deadlines();

  std::chrono::milliseconds timeout_;
  std::size_t message_bytes_;
  InlineChanged on_inline_changed_;
  std::atomic<bool> answers_inline_{false};
  grpc::ClientContext context_;
  baetyl::FunctionMessages incoming_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  enum class State { Opening, Open, Broken } state_ = State::Opening;
  std::shared_ptr<CallStream> self_;  // kept by gRPC's use of this reactor, until OnDone
  int starting_writes_ = 0;           // call()s between their check of state_ and StartWrite
  bool hold_released_ = false;
  bool writing_ = false;
  std::size_t batch_bytes_ = 0;  // the bound on a batch of requests, once open
  std::deque<Batch> batches_;    // front: being written while writing_
  std::deque<int> unanswered_;   // per written batch in order: its calls not answered yet
  std::deque<Pending> pending_;  // in send order: the order of the replies
};

}  // namespace baetyl::function
