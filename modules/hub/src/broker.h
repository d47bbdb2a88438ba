#pragma once
// The routing core: sessions by client id, the subscription trie, retained messages, static
// routes and persistence. Thread-safe; connections call it from any worker thread.
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <spdlog/logger.h>

#include "acl.h"
#include "baetyl/mqtt/packet.h"
#include "config.h"
#include "message.h"
#include "session.h"
#include "sharded_shared_mutex.h"
#include "store.h"
#include "topic_tree.h"

namespace baetyl::hub {

struct RouteStats {
  std::string source;
  std::string target;
  std::atomic<std::uint64_t> messages{0};
};

// A counter per QoS (0, 1, 2); load() is their sum.
class QosCounters {
 public:
  void add(std::uint8_t qos, std::uint64_t n) {
    counts_[qos < 2 ? qos : 2].fetch_add(n, std::memory_order_relaxed);
  }
  std::uint64_t load(std::uint8_t qos) const {
    return counts_[qos].load(std::memory_order_relaxed);
  }
  std::uint64_t load() const { return load(0) + load(1) + load(2); }

 private:
  std::array<std::atomic<std::uint64_t>, 3> counts_{};
};

struct BrokerStats {
  std::atomic<std::uint64_t> connections{0};       // currently connected clients
  std::atomic<std::uint64_t> connects{0};          // accepted CONNECTs since start
  QosCounters messages_in;                         // PUBLISH received from clients
  QosCounters messages_out;                        // PUBLISH sent to clients
  std::atomic<std::uint64_t> messages_dropped{0};  // QoS 0 dropped on a full buffer
  // QoS 1 and QoS 2 dropped for a clean session whose queue was full (acknowledged to their
  // publishers).
  std::atomic<std::uint64_t> messages_dropped_qos1{0};
  std::atomic<std::uint64_t> messages_dropped_qos2{0};
  // Deliveries of persistent sessions read back from the store (see Broker::page_in).
  std::atomic<std::uint64_t> messages_paged{0};
  std::atomic<std::uint64_t> publish_denied{0};
  std::atomic<std::uint64_t> publish_reserved{0};  // client publishes to $SYS, dropped
  std::atomic<std::uint64_t> subscribe_denied{0};
  std::atomic<std::uint64_t> auth_failures{0};
  std::atomic<std::uint64_t> writes_offloaded{0};  // sent by a less busy worker (see Workers)
  std::atomic<std::uint64_t> writes_direct{0};     // sent by a publisher's worker (write_directly)
  // Posts that handed a connection's wake-ups or committed messages from another thread to the
  // connection's worker, and how many wake-ups and messages they carried.
  std::atomic<std::uint64_t> handovers{0};
  std::atomic<std::uint64_t> handed_over{0};
};

class Broker {
 public:
  // `store` may be null (nothing persisted).
  Broker(const HubConfig& config, Store* store, std::shared_ptr<spdlog::logger> log);

  const HubConfig& config() const { return config_; }
  const Auth& auth() const { return auth_; }
  Store* store() const { return store_; }
  spdlog::logger& log() { return *log_; }
  BrokerStats& stats() { return stats_; }
  // Counts a PUBLISH received from a client: within a DeliveryBatch, added once at its end.
  void count_message_in(std::uint8_t qos);
  const std::vector<std::unique_ptr<RouteStats>>& route_stats() const { return route_stats_; }

  // Loads the persistent sessions, their queues and subscriptions, the retained messages and the
  // messages held by shared subscription groups; then publishes the wills of clients that were
  // connected when the hub stopped.
  void restore(StoredState state);

  struct Attached {
    std::shared_ptr<Session> session;
    bool present = false;    // an existing session was resumed
    bool refused = false;    // the client id is taken by a session of another principal
    bool took_over = false;  // another connection had the session (it is closed)
  };
  // Binds `connection` to the session of `client_id`, taking it over from another connection
  // (which is closed) and discarding it when `clean`. A session belongs to the principal of
  // `authorizer` (none when null): a connection of another principal neither resumes, discards
  // nor takes it over (`refused`, nothing changed).
  // `session_expiry`: an MQTT 5 client's Session Expiry Interval (seconds; above 0: persistent,
  // kNeverExpires: never ends); for 3.1.1 (nullopt) the session is persistent unless `clean`.
  Attached attach(const std::string& client_id, bool clean, std::shared_ptr<Connection> connection,
                  std::shared_ptr<const Authorizer> authorizer = nullptr,
                  std::optional<std::uint32_t> session_expiry = std::nullopt);
  // MQTT 5 Will Delay Interval: `will` is published `delay` from now, unless a connection
  // attaches to the session of `client_id` first (attach) or the session ends before (then at
  // once). The store keeps it meanwhile: after a crash it is published at the next start.
  void delay_will(const std::string& client_id, Message will, std::chrono::seconds delay);
  // Publishes the delayed wills that are due.
  void publish_due_wills();
  // Ends the persistent sessions whose Session Expiry Interval passed since their client
  // disconnected (with their subscriptions and stored queue).
  void expire_sessions();
  // The connection ended: clean sessions disappear, persistent ones keep collecting messages.
  void detach(const std::shared_ptr<Session>& session, const Connection* connection);
  // A session's Session::v5 or Session::encode_at_write changed, or its
  // Session::maximum_packet_size from 0 or to 0 (at a CONNECT): match() keeps them with the
  // matches it remembers, which are then matched again.
  void protocol_changed() { protocols_version_.fetch_add(1, std::memory_order_release); }

  // Routes a message to every matching subscription and static route, stores it when its QoS is
  // above 0, and handles retain. `persisted` runs (on the store's thread, or at once when nothing
  // needs storing) when the message is durable.
  // `receipt`: the persistent session that sent this QoS 2 message with `receipt_id`, recorded
  // with the message so that a resent PUBLISH after a restart is not delivered twice.
  void publish(const MessageView& message, std::function<void()> persisted = {},
               const Session* receipt = nullptr, std::uint16_t receipt_id = 0);
  void publish(const Message& message, std::function<void()> persisted = {});

  // While one lives on a thread (a connection handling one read), the messages delivered to a
  // session are collected and queued on it when the batch ends: one lock of the session (and one
  // look at its connection) per read instead of one per message, which is what a publisher on one
  // worker and its subscriber on another contend for.
  class DeliveryBatch {
   public:
    explicit DeliveryBatch(Broker& broker);
    ~DeliveryBatch();
    DeliveryBatch(const DeliveryBatch&) = delete;
    DeliveryBatch& operator=(const DeliveryBatch&) = delete;

    void add(Session& session, Outgoing out);
    // Encodes a QoS 0 PUBLISH once for the batch (in the MQTT 5 form with `v5`); returns where
    // it is, for add_encoded.
    std::pair<std::size_t, std::size_t> encode(const MessageView& message, bool v5 = false);
    // A QoS 0 delivery of the packet encode() put at `offset`.
    void add_encoded(Session& session, std::size_t offset, std::size_t size);

   private:
    friend class Broker;
    // A delivery, or a run of consecutive encoded packets in `encoded_`.
    struct Entry {
      Outgoing out;
      std::size_t packets = 0;
      std::size_t offset = 0;
      std::size_t bytes = 0;
    };
    struct Group {
      std::shared_ptr<Session> session;
      std::vector<Entry> entries;
    };
    Group& group(Session& session);
    Broker* broker_ = nullptr;  // null when nested in another batch
    std::vector<Group> groups_;
    std::unordered_map<Session*, std::size_t> index_;
    // Every QoS 0 PUBLISH of the batch, encoded once: a subscriber that gets all of them (the
    // usual case) gets one copy of one range at the end.
    std::string encoded_;
    // By QoS, added to the stats at the end (one write, not one each).
    std::array<std::uint64_t, 3> messages_in_{};
  };

  // The subscriber whose QoS 0 queue went past half full during this thread's last publishes, if
  // any (and forgets it): the publishing connection reads more slowly until it drains, so that
  // fast publishers do not overflow subscribers that keep up.
  static std::shared_ptr<Session> take_congestion();
  // Whether the publisher told about `subscriber` by take_congestion() should wait a little
  // longer before it reads again: not once the queue drained to a quarter or the subscriber left,
  // and not beyond kCongestionWait in all for one subscriber until it drains (not per read):
  // one that stopped reading holds publishers up once, then it is stalled and what does not fit
  // its queue is dropped at once.
  bool keep_waiting_for(Session& subscriber);
  // How full a session's queue is: up to a quarter, up to half, beyond (of either bound).
  enum class QueueLevel { Low, Middle, High };
  static constexpr auto kCongestionWait = std::chrono::milliseconds(50);
  // Warnings about one session's queue are logged at most this often.
  static constexpr auto kWarnInterval = std::chrono::seconds(10);

  // A publish by a client to a topic reserved for the hub ($SYS): counted and logged at the 1st,
  // 2nd, 4th, 8th ... time.
  void count_reserved(const std::string& client_id, std::string_view topic);

  // Reason codes for SUBACK in the MQTT 5 form: granted QoS, 0x87 (not permitted), 0x8F
  // (invalid filter) or 0x9E (shared subscription); a 3.1.1 SUBACK says 0x80 for each failure
  // (suback_v311). Retained messages matching the accepted filters are queued on the session
  // after the caller's SUBACK (see queue_retained).
  // `identifier`: the MQTT 5 Subscription Identifier of the SUBSCRIBE (0: none). `existed`, when
  // given, says per filter whether the session was subscribed to it already (Retain Handling 1).
  std::vector<std::uint8_t> subscribe(const std::shared_ptr<Session>& session,
                                      const std::vector<mqtt::Subscription>& subscriptions,
                                      const Authorizer* authorizer, std::uint32_t identifier = 0,
                                      std::vector<bool>* existed = nullptr);
  // Retain Handling: 0 sends them, 1 only for a subscription that did not exist (`existed`), 2
  // never.
  void queue_retained(const std::shared_ptr<Session>& session,
                      const std::vector<mqtt::Subscription>& subscriptions,
                      const std::vector<std::uint8_t>& granted,
                      const std::vector<bool>& existed = {});
  // Per filter: whether the session had that subscription.
  std::vector<bool> unsubscribe(const std::shared_ptr<Session>& session,
                                const std::vector<std::string>& filters);

  // The client acknowledged a stored delivery.
  void acknowledged(const Session& session, const Outgoing& out);
  // A member sent PUBREC for a QoS 2 delivery of a shared subscription: the group's stored copy
  // is done with (only PUBREL/PUBCOMP is left, between the member and the hub).
  void received_shared(const Outgoing& out);
  // `session` is connected (its CONNACK was sent): the messages its shared subscription groups
  // held while no member was connected go to it and the group's other connected members.
  void deliver_held(const std::shared_ptr<Session>& session);

  // Paging of persistent sessions' queues (Session::stored_only). Whether `session`'s queue
  // drained far enough to read more back from the store; call with its mutex held, and if so,
  // mark it paging and call request_page_in() once the mutex is released.
  bool wants_page_in_locked(Session& session) const;
  // Asks the store to say when what it was given is committed; then the session's page_ready is
  // set and its connection woken, whose writer calls page_in().
  void request_page_in(const std::shared_ptr<Session>& session);
  // Reads the session's next stored deliveries back into its queue, as many as its bounds take.
  // Call without the session's mutex, on the thread of a connection of the session.
  void page_in(const std::shared_ptr<Session>& session);

  // Drops QoS 1/2 messages older than the retention from memory and the store.
  void cleanup();

  std::size_t session_count();
  std::size_t subscription_count();
  std::size_t retained_count();
  std::vector<std::shared_ptr<Connection>> connections();

 private:
  void deliver(Session& session, const MessagePtr& message, std::uint8_t qos, bool stored,
               bool retain = false, std::uint16_t share = 0);
  // Shared subscriptions ($share/{group}/{filter}): one delivery of `m` per matching group, to
  // its next online member that may receive the topic (round robin), or held by the group
  // (SharedGroup::held) when no member is online and one has a persistent session. Picked under
  // the groups' lock, delivered by deliver_picks once the message is stored: `rows` gets the
  // store's queue entries of the groups with a persistent member (key, QoS).
  struct SharedPick {
    std::shared_ptr<Session> session;  // null: held by the group
    std::uint8_t entry = 0;
    std::uint16_t group = 0;
  };
  void pick_shared(const MessageView& m, std::vector<std::pair<std::string, std::uint8_t>>* rows,
                   std::vector<SharedPick>& picks);
  void deliver_picks(const std::vector<SharedPick>& picks, const MessagePtr& message);
  // Deliveries of shared subscriptions that `gone` did not acknowledge go to another online
  // member of their group, else are held by it while a member has a persistent session (dropped,
  // and logged, when none has).
  void redeliver_shared(const Session* gone, std::vector<Outgoing> orphans);
  struct SharedGroup;
  // The next online member of `group` (round robin, not `skip`) that may receive `topic`.
  static bool pick_member_locked(SharedGroup& group, std::string_view topic, const Session* skip,
                                 std::shared_ptr<Session>& member, std::uint8_t& entry);
  static bool has_persistent_member(const SharedGroup& group);
  // Keeps `message` for the group `id` (within the QoS 1/2 queue bounds; beyond, dropped and
  // counted) and hands what it holds to its online members.
  void hold_shared(std::uint16_t id, const MessagePtr& message);
  // Takes out of `group` what its online members can be given now.
  struct HeldDelivery {
    std::shared_ptr<Session> session;
    MessagePtr message;
    std::uint8_t qos = 0;
    std::uint16_t group = 0;
  };
  void take_held_locked(SharedGroup& group, std::vector<HeldDelivery>& out);
  void deliver_held(std::vector<HeldDelivery>& deliveries);
  // Deletes the stored queue entry of the group `share` for message `id` (done with).
  void forget_shared(std::uint16_t share, std::int64_t id);
  // Adds or removes `session`'s membership of a shared subscription; `filter` is the whole
  // "$share/{group}/{filter}".
  void join_shared(const std::string& filter, Session& session, std::uint8_t entry);
  void leave_shared(const std::string& filter, Session& session);
  // Reads the stored queues of shared subscription groups (StoredState::shared_queues) back into
  // the groups restored with their members' sessions; a group without members drops its queue.
  void restore_held(const std::vector<std::string>& keys);
  static constexpr std::size_t kRestorePageBytes = 4 * 1024 * 1024;
  // Removes a session that ended (expired) with its subscriptions and stored state.
  void end_session(const std::shared_ptr<Session>& session);
  void deliver_encoded(Session& session, std::string_view packet);
  // Queues `out` on `session` (its QoS 0 bound, offline rules); call with session.mutex held.
  void queue_locked(Session& session, bool connected, Outgoing out);
  // Queues `count` encoded QoS 0 PUBLISH packets on `session`, as many as its QoS 0 bound takes;
  // call with session.mutex held.
  void queue_encoded_locked(Session& session, bool connected, std::string_view packets,
                            std::size_t count);
  void count_dropped(Session& session, std::size_t count, std::uint8_t qos);
  // Whether `out` fits `session`'s QoS 1/2 queue (an empty one takes any message).
  bool has_room_locked(const Session& session, const Outgoing& out) const;
  // After queueing on `session` (call with its mutex held): flags it for take_congestion() past
  // half full, and forgets a stall once it drained.
  void note_queue_level_locked(Session& session);
  QueueLevel queue_level_locked(const Session& session) const;
  // Whether a warning last logged at `last` is due again (at most one per kWarnInterval); if so,
  // `last` becomes now.
  static bool warning_due(std::chrono::steady_clock::time_point& last);
  void route(const MessageView& message, int depth);
  // The sessions subscribed to `topic`, one entry each at its highest granted QoS; valid (and the
  // sessions alive) until the next call on this thread.
  const std::vector<std::pair<Session*, std::uint8_t>>& match(std::string_view topic);
  void remove_subscriptions(Session& session);
  // Subscribes `session` again to the subscriptions it was restored with that its principal's
  // current permissions grant, forgets the others, and drops its queued messages the principal
  // may no longer receive (for the store as well).
  void resubscribe_restored(Session& session);

  // A subscription's entry in the trie: its granted QoS, its MQTT 5 options, and kFiltered when
  // its filter can match topics its principal may not receive (each topic is then checked, see
  // match()).
  static constexpr std::uint8_t kQosMask = 0x03;
  static constexpr std::uint8_t kNoLocal = 0x04;
  static constexpr std::uint8_t kRetainAsPublished = 0x08;
  static constexpr std::uint8_t kIdentified = 0x10;  // has a Subscription Identifier
  // In match()'s results only: the session's Session::v5 and Session::encode_at_write, and
  // kPacketLimit when its Session::maximum_packet_size is not 0 (in the bit of kFiltered, which
  // is in the trie only).
  static constexpr std::uint8_t kV5 = 0x20;
  static constexpr std::uint8_t kEncodeAtWrite = 0x40;
  static constexpr std::uint8_t kFiltered = 0x80;
  static constexpr std::uint8_t kPacketLimit = 0x80;
  static std::uint8_t entry_of(const Subscribed& s) {
    return static_cast<std::uint8_t>(s.qos | (s.no_local ? kNoLocal : 0) |
                                     (s.retain_as_published ? kRetainAsPublished : 0) |
                                     (s.identifier != 0 ? kIdentified : 0));
  }

  std::uint64_t id_ = 0;  // unique in the process (a thread's match cache names its broker)
  const HubConfig& config_;
  Store* store_;
  std::shared_ptr<spdlog::logger> log_;
  Auth auth_;
  BrokerStats stats_;
  std::vector<std::unique_ptr<RouteStats>> route_stats_;

  std::mutex sessions_mutex_;
  std::unordered_map<std::string, std::shared_ptr<Session>> sessions_;

  ShardedSharedMutex topics_mutex_;
  TopicTree<Session*> topics_;
  std::atomic<std::uint64_t> topics_version_{0};  // topics_.version(), readable without the lock
  // Counts the changes of a session's protocol flags (see protocol_changed()).
  std::atomic<std::uint64_t> protocols_version_{0};

  struct SharedGroup {
    std::string name;    // "$share/{group}/{filter}": also the key of its queue in the store
    std::string filter;  // after $share/{group}/
    std::uint16_t id = 0;
    std::vector<std::pair<Session*, std::uint8_t>> members;  // with their trie entry bytes
    std::size_t next = 0;                                    // round robin
    // QoS 1/2 messages kept while no member is online (some member's session is persistent),
    // oldest first, and the bytes of their topics and payloads.
    std::deque<MessagePtr> held;
    std::size_t held_bytes = 0;
    std::chrono::steady_clock::time_point drop_warned_at{};
    std::uint64_t dropped_unlogged = 0;
  };
  std::mutex shared_mutex_;
  std::map<std::string, SharedGroup, std::less<>> shared_;  // by "$share/{group}/{filter}"
  std::unordered_map<std::uint16_t, std::string> shared_ids_;
  std::uint16_t next_shared_id_ = 1;
  std::atomic<std::size_t> shared_count_{0};  // groups, readable without the lock

  struct DelayedWill {
    Message will;
    std::chrono::steady_clock::time_point due;
  };
  std::mutex wills_mutex_;
  std::map<std::string, DelayedWill, std::less<>> delayed_wills_;  // by client id
  // Takes the delayed will of `client_id` out (publishes it with `publish_now`).
  void take_delayed_will(const std::string& client_id, bool publish_now);

  std::mutex retained_mutex_;
  std::map<std::string, MessagePtr, std::less<>> retained_;
};

}  // namespace baetyl::hub
