#pragma once
// Durable state of the hub in SQLite (WAL): QoS 1/2 messages, the queue of each persistent
// session, subscriptions, retained messages and wills. Writes are committed in batches (group
// commit); a message's callback runs after its commit. A thread inside a CommitScope (a
// connection handling one read) commits what it submitted itself when the scope ends; everything
// else goes to the writer thread.
// A second thread with its own connection checkpoints the WAL into the database, so that the
// writer never pays for a checkpoint between two commits.
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include <spdlog/logger.h>

#include "baetyl/histogram.h"
#include "message.h"

namespace baetyl::hub {

struct StoreOptions {
  std::size_t message_batch_max = 50;  // message.ingress.qos1.batch.max
  std::size_t ack_batch_max = 100;     // message.offset.batch.max
  // How long acknowledgements alone wait for more work before they are committed.
  std::chrono::milliseconds ack_delay{20};
  // The checkpoint thread copies the log into the database each time the WAL grew by this
  // many pages.
  int checkpoint_pages = 1000;
  // false: SQLite's automatic checkpoint inside the writer's commits (for comparison in benches).
  bool checkpoint_thread = true;
  // synchronous=FULL: fsync of the WAL at every commit (survives a power cut) instead of NORMAL.
  bool sync_every_commit = false;
};

struct StoredWill {
  std::string client_id;
  Message message;
};

struct StoredDelivery {
  MessagePtr message;
  std::uint8_t qos = 0;
  bool released = false;  // QoS 2: PUBREC received, only PUBREL/PUBCOMP left
  bool sent = false;      // sent before (see Store::sent): sent again with DUP
};

// A persistent session as stored; its queue stays in the store (see Store::read_queue).
struct StoredSession {
  std::string client_id;
  std::vector<std::pair<std::string, Subscribed>> subscriptions;
  std::vector<std::uint16_t> incoming_qos2;  // QoS 2 ids received, PUBREL not yet
  std::string principal;  // "" when stored by a hub that did not record principals
  std::uint32_t expiry_interval = kNeverExpires;  // MQTT 5 Session Expiry Interval, seconds
  // Unix ms when it ends: recorded when its client disconnected; 0 while connected (and for a
  // session whose client was connected when the hub stopped: it counts from the restart).
  std::int64_t expires_at = 0;
};

// A part of a session's stored queue (Store::read_queue).
struct QueuePage {
  std::vector<StoredDelivery> deliveries;  // oldest first
  bool complete = false;                   // nothing after them was committed
};

struct StoredState {
  std::vector<StoredSession> sessions;
  std::vector<MessagePtr> retained;
  std::vector<StoredWill> wills;
  // The keys ("$share/{group}/{filter}") of the shared subscription groups with a stored queue:
  // read back with read_queue like a session's (a client id never starts with '$share/').
  std::vector<std::string> shared_queues;
};

class Store {
 public:
  // Opens (creating) `dir`/hub.db. Throws std::runtime_error naming the file on failure.
  Store(const std::string& dir, StoreOptions options, std::shared_ptr<spdlog::logger> log);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Everything stored; call before start().
  StoredState load();
  void start();
  // Commits what was submitted and stops the writer thread.
  void stop();

  // An id for a new persisted message.
  std::int64_t next_message_id() { return next_id_.fetch_add(1); }

  // Persists `message` and a queue entry for each (client id, delivery QoS); `done` runs on the
  // writer thread once committed. With `receipt_client`, the QoS 2 packet id `receipt_id` of that
  // persistent session is recorded in the same transaction (exactly once across restarts).
  void add_message(MessagePtr message, std::vector<std::pair<std::string, std::uint8_t>> queue,
                   std::function<void()> done, std::string receipt_client = {},
                   std::uint16_t receipt_id = 0);
  // PUBREL for a recorded QoS 2 packet id.
  void release_qos2(const std::string& client_id, std::uint16_t packet_id);
  // A persistent session acknowledged the message.
  void ack(const std::string& client_id, std::int64_t message_id);
  // A persistent session sent PUBREC for a QoS 2 delivery.
  void released(const std::string& client_id, std::int64_t message_id);
  // These deliveries were sent to a persistent session: sent again after a restart, they carry
  // DUP. Committed like acknowledgements, in batches (a crash may forget the last ones).
  void sent(const std::string& client_id, std::vector<std::int64_t> message_ids);
  // The queue entries of `client_id` after message id `after`, oldest first: at most `count`,
  // and none more once `bytes` of topics and payloads were read (at least one). Reads what is
  // committed, on a connection of its own; any thread.
  QueuePage read_queue(const std::string& client_id, std::int64_t after, std::size_t count,
                       std::size_t bytes);
  // `done` runs, on the committing thread, once everything submitted before is committed.
  void after_commit(std::function<void()> done);
  // Records the persistent session of `client_id` as belonging to `principal`, with its
  // Session Expiry Interval (seconds; kNeverExpires: never), connected.
  void save_session(const std::string& client_id, const std::string& principal = {},
                    std::uint32_t expiry_interval = kNeverExpires);
  // The session's client disconnected: it ends at `expires_at` (unix ms), unless it connects
  // again (save_session) before.
  void session_expires(const std::string& client_id, std::int64_t expires_at);
  void delete_session(const std::string& client_id);  // with its subscriptions and queue
  void add_subscription(const std::string& client_id, const std::string& filter, std::uint8_t qos);
  void add_subscription(const std::string& client_id, const std::string& filter,
                        const Subscribed& subscription);
  void remove_subscription(const std::string& client_id, const std::string& filter);
  void set_retained(MessagePtr message);
  void clear_retained(const std::string& topic);
  void set_will(const std::string& client_id, MessagePtr will);
  void clear_will(const std::string& client_id);
  // Deletes messages received before `cutoff_millis` (unix ms) and their queue entries.
  void cleanup(std::int64_t cutoff_millis);
  // Blocks until everything submitted so far is committed.
  void flush();

  // While one lives on a thread, the messages and other changes that thread submits are
  // committed by that thread when the scope ends, together with whatever else is waiting,
  // instead of waking the writer thread and waiting for it: no hand-off between threads per
  // batch. When another thread is committing at that moment, it takes them along.
  // Acknowledgements alone still wait for the writer's batch (see ack()).
  class CommitScope {
   public:
    explicit CommitScope(Store* store);
    ~CommitScope();
    CommitScope(const CommitScope&) = delete;
    CommitScope& operator=(const CommitScope&) = delete;

   private:
    Store* store_ = nullptr;  // null when nested in another scope or without a store
  };

  // Number of operations waiting for the writer.
  std::size_t backlog() const;
  // Nothing is waiting and the writer thread waits for work.
  bool idle() const;
  std::uint64_t commits() const { return commits_.load(); }
  // Time of each commit, BEGIN to COMMIT.
  const LatencyHistogram& commit_duration() const { return commit_duration_; }
  std::uint64_t checkpoints() const { return checkpoints_.load(); }

 private:
  struct AddMessage {
    MessagePtr message;
    std::vector<std::pair<std::string, std::uint8_t>> queue;
    std::function<void()> done;
    std::string receipt_client;
    std::uint16_t receipt_id = 0;
  };
  struct ReleaseQos2 {
    std::string client_id;
    std::uint16_t id;
  };
  struct Ack {
    std::string client_id;
    std::int64_t id;
  };
  struct Released {
    std::string client_id;
    std::int64_t id;
  };
  struct Sent {
    std::string client_id;
    std::vector<std::int64_t> ids;
  };
  struct SaveSession {
    std::string client_id;
    std::string principal;
    std::uint32_t expiry_interval = kNeverExpires;
  };
  struct SessionExpires {
    std::string client_id;
    std::int64_t expires_at = 0;
  };
  struct DeleteSession {
    std::string client_id;
  };
  struct AddSubscription {
    std::string client_id;
    std::string filter;
    Subscribed subscription;
  };
  struct RemoveSubscription {
    std::string client_id;
    std::string filter;
  };
  struct SetRetained {
    MessagePtr message;
  };
  struct ClearRetained {
    std::string topic;
  };
  struct SetWill {
    std::string client_id;
    MessagePtr will;
  };
  struct ClearWill {
    std::string client_id;
  };
  struct Cleanup {
    std::int64_t cutoff;
  };
  struct Barrier {
    std::function<void()> done;
  };
  using Op = std::variant<AddMessage, ReleaseQos2, Ack, Released, SaveSession, DeleteSession,
                          AddSubscription, RemoveSubscription, SetRetained, ClearRetained, SetWill,
                          ClearWill, Cleanup, Barrier, Sent, SessionExpires>;
  // Acknowledgements and sent marks: they wait for other work or a batch of them.
  static bool lazy(const Op& op) {
    return std::holds_alternative<Ack>(op) || std::holds_alternative<Sent>(op);
  }

  void submit(Op op);
  void run();
  // Waits for work; false when stopping with nothing left.
  bool wait_for_work();
  // Moves the next batch out of ops_ (empty when another thread took everything); call with
  // mutex_ held.
  void take_batch(std::vector<Op>& batch);
  // Commits the batches waiting for a commit on the calling thread (see CommitScope).
  void commit_here();
  // Commits `batch` and runs its callbacks; call with commit_mutex_ held. A WAL grown too long is
  // checkpointed here on the writer thread, else the writer is asked to.
  void commit_and_complete(std::vector<Op>& batch, bool on_writer);
  void commit(std::vector<Op>& batch);
  static void drop_acknowledged_sent_marks(std::vector<Op>& batch);
  static void complete(std::vector<Op>& batch);
  void apply(Op& op);
  static int on_wal_commit(void* self, sqlite3* db, const char* name, int pages);
  void finish_checkpoint_if_wal_too_long();
  void open_checkpointer();
  void run_checkpointer();
  void stop_checkpointer();
  const char* synchronous_pragma() const;
  void add_principal_column();
  void add_mqtt5_columns();
  void exec(const char* sql);
  // Adds a column that an older hub.db lacks; true when it was missing.
  bool add_column_if_missing(const char* table, const char* column, const char* type);
  sqlite3_stmt* prepare(const char* sql);
  void step(sqlite3_stmt* stmt);

  std::string path_;
  StoreOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  sqlite3* db_ = nullptr;
  std::vector<sqlite3_stmt*> statements_;
  sqlite3_stmt* insert_message_ = nullptr;
  sqlite3_stmt* insert_queue_ = nullptr;
  sqlite3_stmt* delete_queue_ = nullptr;
  sqlite3_stmt* release_queue_ = nullptr;
  sqlite3_stmt* sent_queue_ = nullptr;
  sqlite3_stmt* insert_session_ = nullptr;
  sqlite3_stmt* session_expires_ = nullptr;
  sqlite3_stmt* delete_session_ = nullptr;
  sqlite3_stmt* delete_session_subs_ = nullptr;
  sqlite3_stmt* delete_session_queue_ = nullptr;
  sqlite3_stmt* insert_sub_ = nullptr;
  sqlite3_stmt* delete_sub_ = nullptr;
  sqlite3_stmt* insert_retained_ = nullptr;
  sqlite3_stmt* delete_retained_ = nullptr;
  sqlite3_stmt* insert_will_ = nullptr;
  sqlite3_stmt* delete_will_ = nullptr;
  sqlite3_stmt* cleanup_messages_ = nullptr;
  sqlite3_stmt* cleanup_queue_ = nullptr;
  sqlite3_stmt* insert_qos2_ = nullptr;
  sqlite3_stmt* delete_qos2_ = nullptr;
  sqlite3_stmt* delete_session_qos2_ = nullptr;

  std::atomic<std::int64_t> next_id_{1};
  std::atomic<std::uint64_t> commits_{0};
  LatencyHistogram commit_duration_;
  std::atomic<std::uint64_t> checkpoints_{0};
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Op> ops_;
  std::size_t urgent_ = 0;  // ops_ other than acknowledgements
  // Ops ever submitted and taken out of ops_ (taken_ counts the front's place), and the writer's
  // work: the ops before due_until_ (see wait_for_work).
  std::uint64_t submitted_ = 0;
  std::uint64_t taken_ = 0;
  std::uint64_t due_until_ = 0;
  // A scope ended while another thread held commit_mutex_: that thread takes its work.
  bool left_to_holder_ = false;
  bool stopping_ = false;
  bool writer_idle_ = false;  // the writer waits for any work (not for more acknowledgements)
  bool checkpoint_wanted_ = false;  // the WAL is too long: the writer finishes a checkpoint
  std::thread thread_;
  // Held while a batch is taken and committed, by the writer or a thread ending a CommitScope:
  // batches are committed in the order they were submitted.
  std::mutex commit_mutex_;

  // The connection of read_queue (WAL: it reads committed data while the writer writes).
  std::mutex reader_mutex_;
  sqlite3* reader_db_ = nullptr;
  sqlite3_stmt* read_queue_ = nullptr;

  sqlite3* checkpoint_db_ = nullptr;
  std::mutex checkpoint_mutex_;
  std::condition_variable checkpoint_cv_;
  bool checkpoint_due_ = false;
  std::atomic<int> wal_pages_{0};
  int checkpoint_asked_at_ = 0;  // WAL size at the last request (commits hold commit_mutex_)
  std::mutex checkpointing_;  // one checkpoint at a time: the writer's waits for the thread's
  bool checkpoint_stopping_ = false;
  std::thread checkpoint_thread_;
};

}  // namespace baetyl::hub
