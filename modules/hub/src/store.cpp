#include "store.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>
#include <utility>

namespace baetyl::hub {
namespace {

// The store whose CommitScope is open on this thread, if any.
thread_local Store* committing_here = nullptr;

void bind_text(sqlite3_stmt* s, int i, std::string_view v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
}
void bind_blob(sqlite3_stmt* s, int i, std::string_view v) {
  sqlite3_bind_blob(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
}
// MQTT 5 properties; NULL for none (a 3.1.1 message), which costs nothing per row.
void bind_properties(sqlite3_stmt* s, int i, std::string_view v) {
  if (v.empty()) {
    sqlite3_bind_null(s, i);
  } else {
    bind_blob(s, i, v);
  }
}
std::string column_string(sqlite3_stmt* s, int i) {
  const void* data = sqlite3_column_blob(s, i);
  int size = sqlite3_column_bytes(s, i);
  return data ? std::string(static_cast<const char*>(data), static_cast<std::size_t>(size))
              : std::string();
}

sqlite3* open_database(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw std::runtime_error("cannot open '" + path + "': " + message);
  }
  sqlite3_busy_timeout(db, 5000);
  return db;
}

}  // namespace

std::int64_t unix_millis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Store::Store(const std::string& dir, StoreOptions options, std::shared_ptr<spdlog::logger> log)
    : options_(options), log_(std::move(log)) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::runtime_error("storage.dir '" + dir + "': " + ec.message());
  path_ = (std::filesystem::path(dir) / "hub.db").string();
  db_ = open_database(path_);
  exec("PRAGMA journal_mode=WAL");
  exec(synchronous_pragma());
  if (options_.checkpoint_thread) {
    // Replaces the automatic checkpoint, which would run inside the writer's commits.
    sqlite3_wal_hook(db_, &Store::on_wal_commit, this);
  } else {
    sqlite3_wal_autocheckpoint(db_, options_.checkpoint_pages);
  }
  exec(
      "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, topic TEXT NOT NULL, "
      "payload BLOB, qos INTEGER NOT NULL, time INTEGER NOT NULL)");
  // Ids grow with arrival, so retention needs no index on time (one b-tree less per commit).
  exec("DROP INDEX IF EXISTS messages_time");
  exec(
      "CREATE TABLE IF NOT EXISTS queue (client_id TEXT NOT NULL, message_id INTEGER NOT NULL, "
      "qos INTEGER NOT NULL, released INTEGER NOT NULL DEFAULT 0, "
      "sent INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (client_id, message_id)) WITHOUT ROWID");
  add_column_if_missing("queue", "sent", "INTEGER NOT NULL DEFAULT 0");
  exec("CREATE TABLE IF NOT EXISTS sessions (client_id TEXT PRIMARY KEY, principal TEXT)");
  add_principal_column();
  exec(
      "CREATE TABLE IF NOT EXISTS subscriptions (client_id TEXT NOT NULL, filter TEXT NOT NULL, "
      "qos INTEGER NOT NULL, PRIMARY KEY (client_id, filter)) WITHOUT ROWID");
  exec(
      "CREATE TABLE IF NOT EXISTS retained (topic TEXT PRIMARY KEY, payload BLOB, "
      "qos INTEGER NOT NULL, time INTEGER NOT NULL)");
  exec(
      "CREATE TABLE IF NOT EXISTS wills (client_id TEXT PRIMARY KEY, topic TEXT NOT NULL, "
      "payload BLOB, qos INTEGER NOT NULL, retain INTEGER NOT NULL)");
  exec(
      "CREATE TABLE IF NOT EXISTS qos2_received (client_id TEXT NOT NULL, "
      "packet_id INTEGER NOT NULL, PRIMARY KEY (client_id, packet_id)) WITHOUT ROWID");
  add_mqtt5_columns();

  insert_message_ = prepare(
      "INSERT OR REPLACE INTO messages (id, topic, payload, qos, time, properties, expiry) "
      "VALUES (?,?,?,?,?,?,?)");
  insert_queue_ =
      prepare("INSERT OR REPLACE INTO queue (client_id, message_id, qos) VALUES (?,?,?)");
  delete_queue_ = prepare("DELETE FROM queue WHERE client_id = ? AND message_id = ?");
  release_queue_ = prepare("UPDATE queue SET released = 1 WHERE client_id = ? AND message_id = ?");
  sent_queue_ = prepare("UPDATE queue SET sent = 1 WHERE client_id = ? AND message_id = ?");
  insert_session_ = prepare(
      "INSERT OR REPLACE INTO sessions (client_id, principal, expiry_interval, expires_at) "
      "VALUES (?,?,?,NULL)");
  session_expires_ = prepare("UPDATE sessions SET expires_at = ? WHERE client_id = ?");
  delete_session_ = prepare("DELETE FROM sessions WHERE client_id = ?");
  delete_session_subs_ = prepare("DELETE FROM subscriptions WHERE client_id = ?");
  delete_session_queue_ = prepare("DELETE FROM queue WHERE client_id = ?");
  insert_sub_ = prepare(
      "INSERT OR REPLACE INTO subscriptions (client_id, filter, qos, options, identifier) "
      "VALUES (?,?,?,?,?)");
  delete_sub_ = prepare("DELETE FROM subscriptions WHERE client_id = ? AND filter = ?");
  insert_retained_ = prepare(
      "INSERT OR REPLACE INTO retained (topic, payload, qos, time, properties, expiry) "
      "VALUES (?,?,?,?,?,?)");
  delete_retained_ = prepare("DELETE FROM retained WHERE topic = ?");
  insert_will_ = prepare(
      "INSERT OR REPLACE INTO wills (client_id, topic, payload, qos, retain, properties, expiry) "
      "VALUES (?,?,?,?,?,?,?)");
  delete_will_ = prepare("DELETE FROM wills WHERE client_id = ?");
  insert_qos2_ = prepare("INSERT OR IGNORE INTO qos2_received (client_id, packet_id) VALUES (?,?)");
  delete_qos2_ = prepare("DELETE FROM qos2_received WHERE client_id = ? AND packet_id = ?");
  delete_session_qos2_ = prepare("DELETE FROM qos2_received WHERE client_id = ?");
  // Everything before the first message inside the retention (in arrival order); a message
  // whose time went back with the clock waits for a later cleanup, never goes early.
  cleanup_messages_ = prepare(
      "DELETE FROM messages WHERE time < ?1 AND id < COALESCE("
      "(SELECT id FROM messages WHERE time >= ?1 ORDER BY id LIMIT 1), "
      "(SELECT MAX(id) + 1 FROM messages))");
  cleanup_queue_ = prepare(
      "DELETE FROM queue WHERE NOT EXISTS (SELECT 1 FROM messages WHERE id = queue.message_id)");
}

Store::~Store() {
  stop();
  for (auto* s : statements_) sqlite3_finalize(s);
  sqlite3_finalize(read_queue_);
  if (reader_db_) sqlite3_close(reader_db_);
  if (db_) sqlite3_close(db_);  // the last connection: checkpoints and removes the WAL
}

bool Store::add_column_if_missing(const char* table, const char* column, const char* type) {
  bool found = false;
  sqlite3_stmt* stmt = nullptr;
  const std::string info = std::string("PRAGMA table_info(") + table + ")";
  if (sqlite3_prepare_v2(db_, info.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
    throw std::runtime_error("'" + path_ + "': " + sqlite3_errmsg(db_));
  }
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    found = found || column_string(stmt, 1) == column;
  }
  sqlite3_finalize(stmt);
  if (found) return false;
  exec((std::string("ALTER TABLE ") + table + " ADD COLUMN " + column + " " + type).c_str());
  return true;
}

// NORMAL: a commit is durable once written to the WAL, which survives a crash of the process
// (SIGKILL) but not of the machine; the WAL is synced at checkpoints. FULL syncs every commit.
const char* Store::synchronous_pragma() const {
  return options_.sync_every_commit ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL";
}

// A hub.db of an earlier version has sessions without their principal: they keep a NULL one,
// and the broker lets the first principal that resumes such a session claim it.
void Store::add_principal_column() {
  if (!add_column_if_missing("sessions", "principal", "TEXT")) return;
  log_->info(
      "'{}': sessions now record their principal; sessions stored before are bound to the "
      "first principal that resumes them",
      path_);
}

// MQTT 5: the properties a message passes on and its expiry, for messages, retained messages
// and wills. Rows stored before have none (NULL properties, expiry 0: never).
void Store::add_mqtt5_columns() {
  bool added = false;
  for (const char* table : {"messages", "retained", "wills"}) {
    added = add_column_if_missing(table, "properties", "BLOB") || added;
    added = add_column_if_missing(table, "expiry", "INTEGER NOT NULL DEFAULT 0") || added;
  }
  // Sessions: their Session Expiry Interval (NULL: never) and when a disconnected one ends;
  // subscriptions: No Local (1) and Retain As Published (2), and the Subscription Identifier.
  added = add_column_if_missing("sessions", "expiry_interval", "INTEGER") || added;
  added = add_column_if_missing("sessions", "expires_at", "INTEGER") || added;
  added = add_column_if_missing("subscriptions", "options", "INTEGER NOT NULL DEFAULT 0") || added;
  added =
      add_column_if_missing("subscriptions", "identifier", "INTEGER NOT NULL DEFAULT 0") || added;
  if (added) {
    log_->info("'{}': now keeps MQTT 5 properties, expiry, session expiry and subscription options",
               path_);
  }
}

void Store::exec(const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error ? error : "unknown error";
    sqlite3_free(error);
    throw std::runtime_error("'" + path_ + "': " + message + " (in: " + sql + ")");
  }
}

sqlite3_stmt* Store::prepare(const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK) {
    throw std::runtime_error("'" + path_ + "': " + sqlite3_errmsg(db_) + " (in: " + sql + ")");
  }
  statements_.push_back(stmt);
  return stmt;
}

void Store::step(sqlite3_stmt* stmt) {
  int rc = sqlite3_step(stmt);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
    log_->error("store: {} ({})", sqlite3_errmsg(db_), sqlite3_sql(stmt));
  }
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
}

StoredState Store::load() {
  StoredState state;
  std::map<std::string, std::size_t> index;
  auto query = [&](const char* sql, auto&& row) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK) {
      throw std::runtime_error("'" + path_ + "': " + sqlite3_errmsg(db_));
    }
    while (sqlite3_step(stmt) == SQLITE_ROW) row(stmt);
    sqlite3_finalize(stmt);
  };
  query(
      "SELECT client_id, principal, expiry_interval, expires_at FROM sessions "
      "ORDER BY client_id",
      [&](sqlite3_stmt* s) {
        index[column_string(s, 0)] = state.sessions.size();
        StoredSession session{column_string(s, 0), {}, {}, column_string(s, 1)};
        if (sqlite3_column_type(s, 2) != SQLITE_NULL) {
          session.expiry_interval = static_cast<std::uint32_t>(sqlite3_column_int64(s, 2));
        }
        session.expires_at = sqlite3_column_int64(s, 3);  // NULL reads as 0
        state.sessions.push_back(std::move(session));
      });
  query("SELECT client_id, filter, qos, options, identifier FROM subscriptions",
        [&](sqlite3_stmt* s) {
          auto it = index.find(column_string(s, 0));
          if (it == index.end()) return;
          Subscribed sub;
          sub.qos = static_cast<std::uint8_t>(sqlite3_column_int(s, 2));
          sub.no_local = (sqlite3_column_int(s, 3) & 1) != 0;
          sub.retain_as_published = (sqlite3_column_int(s, 3) & 2) != 0;
          sub.identifier = static_cast<std::uint32_t>(sqlite3_column_int64(s, 4));
          state.sessions[it->second].subscriptions.emplace_back(column_string(s, 1), sub);
        });
  query("SELECT client_id, packet_id FROM qos2_received", [&](sqlite3_stmt* s) {
    auto it = index.find(column_string(s, 0));
    if (it == index.end()) return;
    state.sessions[it->second].incoming_qos2.push_back(
        static_cast<std::uint16_t>(sqlite3_column_int(s, 1)));
  });
  query("SELECT topic, payload, qos, time, properties, expiry FROM retained", [&](sqlite3_stmt* s) {
    auto m = std::make_shared<Message>();
    m->topic = column_string(s, 0);
    m->payload = column_string(s, 1);
    m->qos = static_cast<std::uint8_t>(sqlite3_column_int(s, 2));
    m->time = sqlite3_column_int64(s, 3);
    m->properties = column_string(s, 4);
    m->expiry = sqlite3_column_int64(s, 5);
    m->retain = true;
    state.retained.push_back(std::move(m));
  });
  query("SELECT client_id, topic, payload, qos, retain, properties, expiry FROM wills",
        [&](sqlite3_stmt* s) {
          StoredWill w;
          w.client_id = column_string(s, 0);
          w.message.topic = column_string(s, 1);
          w.message.payload = column_string(s, 2);
          w.message.qos = static_cast<std::uint8_t>(sqlite3_column_int(s, 3));
          w.message.retain = sqlite3_column_int(s, 4) != 0;
          w.message.properties = column_string(s, 5);
          w.message.expiry = sqlite3_column_int64(s, 6);
          state.wills.push_back(std::move(w));
        });
  query("SELECT DISTINCT client_id FROM queue WHERE client_id LIKE '$share/%'",
        [&](sqlite3_stmt* s) { state.shared_queues.push_back(column_string(s, 0)); });
  query("SELECT COALESCE(MAX(id), 0) FROM messages",
        [&](sqlite3_stmt* s) { next_id_ = sqlite3_column_int64(s, 0) + 1; });
  return state;
}

void Store::start() {
  if (thread_.joinable()) return;
  open_checkpointer();
  thread_ = std::thread([this] { run(); });
}

void Store::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  stop_checkpointer();
}

void Store::submit(Op op) {
  const bool here = committing_here == this;
  bool wake = true;
  {
    std::lock_guard lock(mutex_);
    if (lazy(op)) {
      // Acknowledgements only delete queue entries: one lost in a crash means a redelivery
      // (QoS 1 is at least once), so they wait for other work or for a batch of them.
      // The writer is woken by the first one, to start the wait, and by a full batch; a
      // thread in a CommitScope wakes it only at the scope's end, if they are still there.
      wake = ops_.size() + 1 >= options_.ack_batch_max || (writer_idle_ && !here);
    } else {
      ++urgent_;
      wake = !here;
    }
    ops_.push_back(std::move(op));
    ++submitted_;
    // Submitted outside a CommitScope: the writer's from now on. Inside one, the scope's.
    if (!lazy(ops_.back()) && !here) due_until_ = submitted_;
  }
  if (wake) cv_.notify_one();
}

Store::CommitScope::CommitScope(Store* store) {
  if (store != nullptr && committing_here == nullptr) {
    store_ = store;
    committing_here = store;
  }
}

Store::CommitScope::~CommitScope() {
  if (store_ == nullptr) return;
  committing_here = nullptr;
  store_->commit_here();
}

// Whoever holds commit_mutex_ looks at ops_ again after its commit (this loop, or the writer's),
// so work left here when the lock is busy is committed by the holder. A worker commits a few
// batches at most and hands the rest to the writer thread: under steady load from other workers
// it would otherwise keep committing their work while its own connections wait.
void Store::commit_here() {
  constexpr int kMaxBatches = 4;
  std::vector<Op> batch;
  for (int round = 0;; ++round) {
    std::unique_lock committing(commit_mutex_, std::try_to_lock);
    if (!committing.owns_lock()) {
      // The holder decides whether it is done under mutex_, and lets commit_mutex_ go in the
      // same step: it has not decided yet, so it takes this scope's work along (a worker), or
      // hands it to itself (the writer, see run).
      std::lock_guard lock(mutex_);
      left_to_holder_ = true;
      return;
    }
    {
      std::lock_guard lock(mutex_);
      left_to_holder_ = false;  // whatever is in ops_ is this loop's to commit now
      if (urgent_ == 0) {
        // Acknowledgements left over: the writer commits them after its delay.
        if (!ops_.empty() && writer_idle_) cv_.notify_one();
        committing.unlock();
        return;
      }
      if (round == kMaxBatches) {
        due_until_ = submitted_;
        cv_.notify_one();  // urgent work: the writer takes it at once
        committing.unlock();
        return;
      }
      take_batch(batch);
    }
    commit_and_complete(batch, false);
  }
}

std::size_t Store::backlog() const {
  std::lock_guard lock(mutex_);
  return ops_.size();
}

bool Store::idle() const {
  std::lock_guard lock(mutex_);
  return ops_.empty() && writer_idle_;
}

void Store::add_message(MessagePtr message, std::vector<std::pair<std::string, std::uint8_t>> queue,
                        std::function<void()> done, std::string receipt_client,
                        std::uint16_t receipt_id) {
  submit(AddMessage{std::move(message), std::move(queue), std::move(done),
                    std::move(receipt_client), receipt_id});
}
void Store::release_qos2(const std::string& client_id, std::uint16_t packet_id) {
  submit(ReleaseQos2{client_id, packet_id});
}
void Store::ack(const std::string& client_id, std::int64_t id) { submit(Ack{client_id, id}); }
void Store::sent(const std::string& client_id, std::vector<std::int64_t> ids) {
  submit(Sent{client_id, std::move(ids)});
}
void Store::after_commit(std::function<void()> done) { submit(Barrier{std::move(done)}); }

QueuePage Store::read_queue(const std::string& client_id, std::int64_t after, std::size_t count,
                            std::size_t bytes) {
  QueuePage page;
  std::lock_guard lock(reader_mutex_);
  if (!reader_db_) {
    reader_db_ = open_database(path_);
    // Rows are read once, in order: a small page cache is enough.
    sqlite3_exec(reader_db_, "PRAGMA cache_size=-256", nullptr, nullptr, nullptr);
    if (sqlite3_prepare_v2(reader_db_,
                           "SELECT q.message_id, q.qos, q.released, q.sent, m.topic, m.payload, "
                           "m.qos, m.time, m.properties, m.expiry FROM queue q "
                           "JOIN messages m ON m.id = q.message_id "
                           "WHERE q.client_id = ?1 AND q.message_id > ?2 ORDER BY q.message_id "
                           "LIMIT ?3",
                           -1, &read_queue_, nullptr) != SQLITE_OK) {
      throw std::runtime_error("'" + path_ + "': " + sqlite3_errmsg(reader_db_));
    }
  }
  bind_text(read_queue_, 1, client_id);
  sqlite3_bind_int64(read_queue_, 2, after);
  // One more than asked for: whether there is more.
  sqlite3_bind_int64(read_queue_, 3, static_cast<sqlite3_int64>(count) + 1);
  std::size_t read = 0;
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(read_queue_)) == SQLITE_ROW) {
    if (page.deliveries.size() == count || read >= bytes) break;
    auto m = std::make_shared<Message>();
    m->id = sqlite3_column_int64(read_queue_, 0);
    m->topic = column_string(read_queue_, 4);
    m->payload = column_string(read_queue_, 5);
    m->qos = static_cast<std::uint8_t>(sqlite3_column_int(read_queue_, 6));
    m->time = sqlite3_column_int64(read_queue_, 7);
    m->properties = column_string(read_queue_, 8);
    m->expiry = sqlite3_column_int64(read_queue_, 9);
    read += m->topic.size() + m->payload.size();
    page.deliveries.push_back(StoredDelivery{
        std::move(m), static_cast<std::uint8_t>(sqlite3_column_int(read_queue_, 1)),
        sqlite3_column_int(read_queue_, 2) != 0, sqlite3_column_int(read_queue_, 3) != 0});
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    log_->error("store: reading the queue of '{}': {}", client_id, sqlite3_errmsg(reader_db_));
  }
  page.complete = rc == SQLITE_DONE;
  sqlite3_reset(read_queue_);
  sqlite3_clear_bindings(read_queue_);
  return page;
}
void Store::released(const std::string& client_id, std::int64_t id) {
  submit(Released{client_id, id});
}
void Store::save_session(const std::string& client_id, const std::string& principal,
                         std::uint32_t expiry_interval) {
  submit(SaveSession{client_id, principal, expiry_interval});
}
void Store::session_expires(const std::string& client_id, std::int64_t expires_at) {
  submit(SessionExpires{client_id, expires_at});
}
void Store::delete_session(const std::string& client_id) { submit(DeleteSession{client_id}); }
void Store::add_subscription(const std::string& client_id, const std::string& filter,
                             std::uint8_t qos) {
  submit(AddSubscription{client_id, filter, Subscribed{qos}});
}
void Store::add_subscription(const std::string& client_id, const std::string& filter,
                             const Subscribed& subscription) {
  submit(AddSubscription{client_id, filter, subscription});
}
void Store::remove_subscription(const std::string& client_id, const std::string& filter) {
  submit(RemoveSubscription{client_id, filter});
}
void Store::set_retained(MessagePtr message) { submit(SetRetained{std::move(message)}); }
void Store::clear_retained(const std::string& topic) { submit(ClearRetained{topic}); }
void Store::set_will(const std::string& client_id, MessagePtr will) {
  submit(SetWill{client_id, std::move(will)});
}
void Store::clear_will(const std::string& client_id) { submit(ClearWill{client_id}); }
void Store::cleanup(std::int64_t cutoff) { submit(Cleanup{cutoff}); }

void Store::flush() {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  {
    std::lock_guard lock(mutex_);
    if (!thread_.joinable()) return;
  }
  submit(Barrier{[&] {
    std::lock_guard lock(m);
    done = true;
    cv.notify_all();
  }});
  std::unique_lock lock(m);
  cv.wait(lock, [&] { return done; });
}

void Store::run() {
  std::vector<Op> batch;
  while (wait_for_work()) {
    std::unique_lock committing(commit_mutex_);
    bool checkpoint = false;
    {
      std::lock_guard lock(mutex_);
      checkpoint = std::exchange(checkpoint_wanted_, false);
      take_batch(batch);
    }
    if (!batch.empty()) commit_and_complete(batch, true);
    if (checkpoint) finish_checkpoint_if_wal_too_long();
    std::lock_guard lock(mutex_);
    // A scope that ended while this commit ran left its work to the writer.
    if (std::exchange(left_to_holder_, false)) due_until_ = submitted_;
    committing.unlock();
  }
}

void Store::commit_and_complete(std::vector<Op>& batch, bool on_writer) {
  commit(batch);
  // Under commit_mutex_: the callbacks of one connection's messages run in commit order.
  complete(batch);
  batch.clear();
  if (wal_pages_.load() < 4 * options_.checkpoint_pages || !checkpoint_db_) return;
  if (on_writer) {
    finish_checkpoint_if_wal_too_long();
    return;
  }
  // Not on a connection's worker: its fsyncs would hold up every connection of that worker.
  {
    std::lock_guard lock(mutex_);
    checkpoint_wanted_ = true;
  }
  cv_.notify_one();
}

// The checkpoint thread copies the WAL while the writer keeps appending to it, so under steady
// load it never copies the last frames and the WAL never starts over: it would grow without
// bound. Once it is four times the checkpoint size, the writer thread copies the frames left
// itself, holding commit_mutex_ (nothing is appended meanwhile; connections' workers leave their
// commits to it and go on serving), and the next commit starts the WAL from the beginning.
void Store::finish_checkpoint_if_wal_too_long() {
  if (!checkpoint_db_ || wal_pages_.load() < 4 * options_.checkpoint_pages) return;
  std::lock_guard lock(checkpointing_);
  sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  wal_pages_ = 0;
}

// The writer commits what was submitted outside a CommitScope or handed to it, and
// acknowledgements; not what a thread inside its CommitScope is still adding to, which that
// thread commits when its scope ends (under steady load from two workers, a writer that took any
// work it found committed about half of their messages, a hand-off and a wake-up each).
bool Store::wait_for_work() {
  std::unique_lock lock(mutex_);
  const auto due = [&] { return taken_ < due_until_; };
  const auto lazy_waiting = [&] { return ops_.size() > urgent_; };
  writer_idle_ = true;
  cv_.wait(lock, [&] { return stopping_ || due() || lazy_waiting() || checkpoint_wanted_; });
  writer_idle_ = false;
  if (ops_.empty() && !checkpoint_wanted_) return false;  // stopping with nothing left
  cv_.wait_for(lock, options_.ack_delay, [&] {
    return stopping_ || due() || ops_.size() - urgent_ >= options_.ack_batch_max ||
           checkpoint_wanted_;
  });
  return true;
}

void Store::take_batch(std::vector<Op>& batch) {
  std::size_t messages = 0;
  std::size_t acks = 0;
  while (!ops_.empty()) {
    const Op& next = ops_.front();
    const bool ack = lazy(next);
    if (std::holds_alternative<AddMessage>(next)) {
      if (messages == options_.message_batch_max) break;
      ++messages;
    } else if (ack) {
      if (acks == options_.ack_batch_max) break;
      ++acks;
    } else if (batch.size() >= options_.message_batch_max + options_.ack_batch_max + 64) {
      break;
    }
    if (!ack) --urgent_;
    batch.push_back(std::move(ops_.front()));
    ops_.pop_front();
    ++taken_;
  }
}

// A sent mark whose acknowledgement is in the same batch is not written: the entry goes anyway
// (a mark is always submitted before the acknowledgement of the same delivery).
void Store::drop_acknowledged_sent_marks(std::vector<Op>& batch) {
  if (std::none_of(batch.begin(), batch.end(),
                   [](const Op& op) { return std::holds_alternative<Sent>(op); })) {
    return;
  }
  std::set<std::pair<std::string_view, std::int64_t>> acknowledged;
  for (const auto& op : batch) {
    if (const auto* a = std::get_if<Ack>(&op)) acknowledged.emplace(a->client_id, a->id);
  }
  if (acknowledged.empty()) return;
  for (auto& op : batch) {
    if (auto* sent = std::get_if<Sent>(&op)) {
      std::erase_if(sent->ids, [&](std::int64_t id) {
        return acknowledged.contains({std::string_view(sent->client_id), id});
      });
    }
  }
}

void Store::commit(std::vector<Op>& batch) {
  drop_acknowledged_sent_marks(batch);
  const auto started = std::chrono::steady_clock::now();
  exec("BEGIN");
  for (auto& op : batch) apply(op);
  try {
    exec("COMMIT");
  } catch (const std::exception& e) {
    log_->error("store: commit failed: {}", e.what());
  }
  commit_duration_.observe(std::chrono::steady_clock::now() - started);
  commits_.fetch_add(1);
}

void Store::complete(std::vector<Op>& batch) {
  for (auto& op : batch) {
    if (auto* m = std::get_if<AddMessage>(&op); m && m->done) m->done();
    if (auto* b = std::get_if<Barrier>(&op)) b->done();
  }
}

int Store::on_wal_commit(void* self, sqlite3*, const char*, int pages) {
  auto* store = static_cast<Store*>(self);
  store->wal_pages_ = pages;
  // Asked every checkpoint_pages new pages, not at every commit once the WAL is that long: each
  // checkpoint syncs the WAL and the database, and copies the pages changed since the last one.
  if (pages < store->checkpoint_asked_at_) store->checkpoint_asked_at_ = 0;  // WAL started over
  if (pages - store->checkpoint_asked_at_ >= store->options_.checkpoint_pages &&
      store->checkpoint_db_) {
    store->checkpoint_asked_at_ = pages;
    {
      std::lock_guard lock(store->checkpoint_mutex_);
      store->checkpoint_due_ = true;
    }
    store->checkpoint_cv_.notify_one();
  }
  return SQLITE_OK;
}

void Store::open_checkpointer() {
  if (!options_.checkpoint_thread) return;
  checkpoint_db_ = open_database(path_);
  sqlite3_exec(checkpoint_db_, synchronous_pragma(), nullptr, nullptr, nullptr);
  checkpoint_thread_ = std::thread([this] { run_checkpointer(); });
}

// PASSIVE checkpoints never wait for the writer: they copy what is committed and leave the rest
// to the next one. Once everything is copied, the writer's next commit starts the WAL over.
void Store::run_checkpointer() {
  std::unique_lock lock(checkpoint_mutex_);
  while (true) {
    checkpoint_cv_.wait(lock, [&] { return checkpoint_stopping_ || checkpoint_due_; });
    if (checkpoint_stopping_) return;
    checkpoint_due_ = false;
    lock.unlock();
    int rc = SQLITE_OK;
    {
      std::lock_guard checkpointing(checkpointing_);
      rc = sqlite3_wal_checkpoint_v2(checkpoint_db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                     nullptr);
    }
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      log_->warn("store: checkpoint failed: {}", sqlite3_errmsg(checkpoint_db_));
    }
    checkpoints_.fetch_add(1);
    lock.lock();
  }
}

void Store::stop_checkpointer() {
  {
    std::lock_guard lock(checkpoint_mutex_);
    checkpoint_stopping_ = true;
  }
  checkpoint_cv_.notify_all();
  if (checkpoint_thread_.joinable()) checkpoint_thread_.join();
  if (checkpoint_db_) sqlite3_close(checkpoint_db_);
  checkpoint_db_ = nullptr;
}

void Store::apply(Op& op) {
  if (auto* m = std::get_if<AddMessage>(&op)) {
    const Message& msg = *m->message;
    sqlite3_bind_int64(insert_message_, 1, msg.id);
    bind_text(insert_message_, 2, msg.topic);
    bind_blob(insert_message_, 3, msg.payload);
    sqlite3_bind_int(insert_message_, 4, msg.qos);
    sqlite3_bind_int64(insert_message_, 5, msg.time);
    bind_properties(insert_message_, 6, msg.properties);
    sqlite3_bind_int64(insert_message_, 7, msg.expiry);
    step(insert_message_);
    for (const auto& [client_id, qos] : m->queue) {
      bind_text(insert_queue_, 1, client_id);
      sqlite3_bind_int64(insert_queue_, 2, msg.id);
      sqlite3_bind_int(insert_queue_, 3, qos);
      step(insert_queue_);
    }
    if (!m->receipt_client.empty()) {
      bind_text(insert_qos2_, 1, m->receipt_client);
      sqlite3_bind_int(insert_qos2_, 2, m->receipt_id);
      step(insert_qos2_);
    }
  } else if (auto* r = std::get_if<ReleaseQos2>(&op)) {
    bind_text(delete_qos2_, 1, r->client_id);
    sqlite3_bind_int(delete_qos2_, 2, r->id);
    step(delete_qos2_);
  } else if (auto* a = std::get_if<Ack>(&op)) {
    bind_text(delete_queue_, 1, a->client_id);
    sqlite3_bind_int64(delete_queue_, 2, a->id);
    step(delete_queue_);
  } else if (auto* sent = std::get_if<Sent>(&op)) {
    for (const auto id : sent->ids) {
      bind_text(sent_queue_, 1, sent->client_id);
      sqlite3_bind_int64(sent_queue_, 2, id);
      step(sent_queue_);
    }
  } else if (auto* rel = std::get_if<Released>(&op)) {
    bind_text(release_queue_, 1, rel->client_id);
    sqlite3_bind_int64(release_queue_, 2, rel->id);
    step(release_queue_);
  } else if (auto* s = std::get_if<SaveSession>(&op)) {
    bind_text(insert_session_, 1, s->client_id);
    if (s->principal.empty()) {
      sqlite3_bind_null(insert_session_, 2);
    } else {
      bind_text(insert_session_, 2, s->principal);
    }
    if (s->expiry_interval == kNeverExpires) {
      sqlite3_bind_null(insert_session_, 3);
    } else {
      sqlite3_bind_int64(insert_session_, 3, s->expiry_interval);
    }
    step(insert_session_);
  } else if (auto* e = std::get_if<SessionExpires>(&op)) {
    sqlite3_bind_int64(session_expires_, 1, e->expires_at);
    bind_text(session_expires_, 2, e->client_id);
    step(session_expires_);
  } else if (auto* d = std::get_if<DeleteSession>(&op)) {
    for (auto* stmt :
         {delete_session_, delete_session_subs_, delete_session_queue_, delete_session_qos2_}) {
      bind_text(stmt, 1, d->client_id);
      step(stmt);
    }
  } else if (auto* as = std::get_if<AddSubscription>(&op)) {
    bind_text(insert_sub_, 1, as->client_id);
    bind_text(insert_sub_, 2, as->filter);
    sqlite3_bind_int(insert_sub_, 3, as->subscription.qos);
    sqlite3_bind_int(
        insert_sub_, 4,
        (as->subscription.no_local ? 1 : 0) | (as->subscription.retain_as_published ? 2 : 0));
    sqlite3_bind_int64(insert_sub_, 5, as->subscription.identifier);
    step(insert_sub_);
  } else if (auto* rs = std::get_if<RemoveSubscription>(&op)) {
    bind_text(delete_sub_, 1, rs->client_id);
    bind_text(delete_sub_, 2, rs->filter);
    step(delete_sub_);
  } else if (auto* sr = std::get_if<SetRetained>(&op)) {
    const Message& msg = *sr->message;
    bind_text(insert_retained_, 1, msg.topic);
    bind_blob(insert_retained_, 2, msg.payload);
    sqlite3_bind_int(insert_retained_, 3, msg.qos);
    sqlite3_bind_int64(insert_retained_, 4, msg.time);
    bind_properties(insert_retained_, 5, msg.properties);
    sqlite3_bind_int64(insert_retained_, 6, msg.expiry);
    step(insert_retained_);
  } else if (auto* cr = std::get_if<ClearRetained>(&op)) {
    bind_text(delete_retained_, 1, cr->topic);
    step(delete_retained_);
  } else if (auto* sw = std::get_if<SetWill>(&op)) {
    const Message& w = *sw->will;
    bind_text(insert_will_, 1, sw->client_id);
    bind_text(insert_will_, 2, w.topic);
    bind_blob(insert_will_, 3, w.payload);
    sqlite3_bind_int(insert_will_, 4, w.qos);
    sqlite3_bind_int(insert_will_, 5, w.retain ? 1 : 0);
    bind_properties(insert_will_, 6, w.properties);
    sqlite3_bind_int64(insert_will_, 7, w.expiry);
    step(insert_will_);
  } else if (auto* cw = std::get_if<ClearWill>(&op)) {
    bind_text(delete_will_, 1, cw->client_id);
    step(delete_will_);
  } else if (auto* c = std::get_if<Cleanup>(&op)) {
    sqlite3_bind_int64(cleanup_messages_, 1, c->cutoff);
    step(cleanup_messages_);
    int removed = sqlite3_changes(db_);
    step(cleanup_queue_);
    if (removed > 0) log_->debug("store: removed {} message(s) past retention", removed);
  }
}

}  // namespace baetyl::hub
