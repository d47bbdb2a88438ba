#include "broker.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "baetyl/mqtt/topic.h"
#include "connection.h"
#include "memory.h"
#include "mqtt5.h"

namespace baetyl::hub {
namespace {
thread_local std::weak_ptr<Session> congested;
thread_local Broker::DeliveryBatch* delivery_batch = nullptr;
// Deliveries of shared subscriptions to a member that went away after it was picked (see
// queue_locked): they go to another member once the session's lock is released.
thread_local std::vector<Outgoing> stray_shared;
}  // namespace

Broker::DeliveryBatch::DeliveryBatch(Broker& broker) {
  if (delivery_batch == nullptr) {
    broker_ = &broker;
    delivery_batch = this;
  }
}

Broker::DeliveryBatch::~DeliveryBatch() {
  if (broker_ == nullptr) return;
  delivery_batch = nullptr;
  for (std::uint8_t qos = 0; qos < 3; ++qos) {
    if (messages_in_[qos] > 0) broker_->stats_.messages_in.add(qos, messages_in_[qos]);
  }
  for (auto& group : groups_) {
    std::shared_ptr<Connection> connection;
    bool encoded = false;  // some QoS 0 packets, which write_directly() may send
    {
      std::lock_guard lock(group.session->mutex);
      connection = group.session->connection.lock();
      const bool connected = connection != nullptr;
      for (auto& entry : group.entries) {
        if (entry.packets > 0) {
          encoded = true;
          broker_->queue_encoded_locked(*group.session, connected,
                                        std::string_view(encoded_).substr(entry.offset, entry.bytes),
                                        entry.packets);
        } else {
          broker_->queue_locked(*group.session, connected, std::move(entry.out));
        }
      }
    }
    // A subscriber served by another, idle worker gets the read's QoS 0 packets from this thread:
    // waking that worker would cost more than the write.
    if (connection && !(encoded && connection->write_directly())) connection->notify();
    if (!stray_shared.empty()) {
      broker_->redeliver_shared(group.session.get(), std::exchange(stray_shared, {}));
    }
  }
}

Broker::DeliveryBatch::Group& Broker::DeliveryBatch::group(Session& session) {
  // A read's deliveries mostly go to a few sessions: a look along them beats hashing.
  for (auto& g : groups_) {
    if (g.session.get() == &session) return g;
    if (groups_.size() > 8) break;
  }
  auto [it, added] = index_.try_emplace(&session, groups_.size());
  if (added) groups_.push_back(Group{session.shared_from_this(), {}});
  return groups_[it->second];
}

void Broker::DeliveryBatch::add(Session& session, Outgoing out) {
  group(session).entries.push_back(Entry{std::move(out)});
}

namespace {
// A QoS 0 PUBLISH as a subscription delivers it (retain 0), in the subscriber's protocol.
void encode_qos0(std::string& out, const MessageView& m, bool v5) {
  if (!v5) {
    mqtt::encode_publish(out, m.topic, m.payload, 0, false, false, 0);
    return;
  }
  if (m.properties.empty() && m.expiry == 0) {
    mqtt::encode_publish_v5(out, m.topic, m.payload, 0, false, false, 0, {});
    return;
  }
  thread_local std::string properties;
  properties.clear();
  // The clock only for a message that expires.
  const std::uint32_t left = m.expiry != 0 ? expiry_seconds_left(m.expiry, unix_millis()) : 0;
  append_delivery_properties(properties, m.properties, left, {});
  mqtt::encode_publish_v5(out, m.topic, m.payload, 0, false, false, 0, properties);
}
}  // namespace

std::pair<std::size_t, std::size_t> Broker::DeliveryBatch::encode(const MessageView& m, bool v5) {
  const std::size_t offset = encoded_.size();
  encode_qos0(encoded_, m, v5);
  return {offset, encoded_.size() - offset};
}

void Broker::DeliveryBatch::add_encoded(Session& session, std::size_t offset, std::size_t size) {
  Group& g = group(session);
  if (!g.entries.empty()) {
    Entry& last = g.entries.back();
    if (last.packets > 0 && last.offset + last.bytes == offset) {
      ++last.packets;
      last.bytes += size;
      return;
    }
  }
  g.entries.push_back(Entry{{}, 1, offset, size});
}

void Broker::count_message_in(std::uint8_t qos) {
  if (delivery_batch != nullptr) {
    ++delivery_batch->messages_in_[qos < 2 ? qos : 2];
  } else {
    stats_.messages_in.add(qos, 1);
  }
}

std::shared_ptr<Session> Broker::take_congestion() {
  auto session = congested.lock();
  congested.reset();
  return session;
}

Broker::Broker(const HubConfig& config, Store* store, std::shared_ptr<spdlog::logger> log)
    : config_(config), store_(store), log_(std::move(log)), auth_(config.principals) {
  static std::atomic<std::uint64_t> brokers{0};
  id_ = ++brokers;
  for (const auto& r : config_.subscriptions) {
    auto stats = std::make_unique<RouteStats>();
    stats->source = r.source.topic;
    stats->target = r.target.topic;
    route_stats_.push_back(std::move(stats));
  }
}

void Broker::restore(StoredState state) {
  const std::int64_t now = unix_millis();
  std::size_t expired_sessions = 0;
  for (auto& stored : state.sessions) {
    // MQTT 5 Session Expiry: a session whose client had disconnected counts from then; one whose
    // client was connected when the hub stopped counts from now.
    const std::int64_t expires_at =
        stored.expires_at != 0 ? stored.expires_at
                               : now + static_cast<std::int64_t>(stored.expiry_interval) * 1000;
    if (stored.expiry_interval != kNeverExpires && expires_at <= now) {
      ++expired_sessions;
      if (store_) store_->delete_session(stored.client_id);
      continue;
    }
    auto session = std::make_shared<Session>(stored.client_id, true);
    session->principal = stored.principal;
    session->unclaimed = stored.principal.empty();
    if (!session->unclaimed) session->authorizer = auth_.find(stored.principal);
    for (const auto& [filter, sub] : stored.subscriptions) {
      session->subscriptions[filter] = sub;
      session->identified = session->identified || sub.identifier != 0;
    }
    session->expiry_interval = stored.expiry_interval;
    if (stored.expiry_interval != kNeverExpires) {
      session->expires_at =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(expires_at - now);
      if (store_ && stored.expires_at == 0) store_->session_expires(stored.client_id, expires_at);
    }
    // Its queue stays in the store: read back when it connects (page_in drops what its principal
    // may not receive any more).
    session->stored_only = true;
    for (const std::uint16_t id : stored.incoming_qos2) session->add_incoming_qos2(id);
    // A session of unknown principal subscribes once a principal claims it (see attach).
    if (!session->unclaimed) resubscribe_restored(*session);
    std::lock_guard lock(sessions_mutex_);
    sessions_[stored.client_id] = std::move(session);
  }
  {
    std::lock_guard lock(retained_mutex_);
    for (auto& m : state.retained) retained_[m->topic] = std::move(m);
  }
  if (!state.sessions.empty() || !state.retained.empty()) {
    log_->info("restored {} persistent session(s) and {} retained message(s)",
               state.sessions.size() - expired_sessions, retained_.size());
  }
  if (expired_sessions > 0) {
    log_->info("{} session(s) expired while the hub was stopped: removed", expired_sessions);
  }
  restore_held(state.shared_queues);
  // Clients connected when the hub went away never disconnected: their wills are due.
  for (auto& will : state.wills) {
    log_->info("publishing the will of '{}' (connected when the hub stopped)", will.client_id);
    // A will's expiry is stored as an interval, counted from its publication.
    if (will.message.expiry != 0) will.message.expiry += unix_millis();
    publish(std::move(will.message));
    if (store_) store_->clear_will(will.client_id);
  }
}

void Broker::restore_held(const std::vector<std::string>& keys) {
  if (!store_) return;
  for (const auto& key : keys) {
    std::vector<MessagePtr> held;
    for (std::int64_t after = 0;;) {
      QueuePage page = store_->read_queue(key, after, 1000, kRestorePageBytes);
      for (auto& d : page.deliveries) {
        after = d.message->id;
        if (!d.released) held.push_back(std::move(d.message));
      }
      if (page.complete || page.deliveries.empty()) break;
    }
    std::lock_guard lock(shared_mutex_);
    auto it = shared_.find(key);
    if (it == shared_.end()) {
      log_->warn(
          "shared subscription '{}' has no member any more: its {} stored message(s) dropped", key,
          held.size());
      store_->delete_session(key);
      continue;
    }
    for (auto& m : held) {
      it->second.held_bytes += m->topic.size() + m->payload.size();
      it->second.held.push_back(std::move(m));
    }
    log_->info("shared subscription '{}': {} message(s) restored for its next connected member",
               key, it->second.held.size());
  }
}

Broker::Attached Broker::attach(const std::string& client_id, bool clean,
                                std::shared_ptr<Connection> connection,
                                std::shared_ptr<const Authorizer> authorizer,
                                std::optional<std::uint32_t> session_expiry) {
  Attached result;
  const bool persistent = session_expiry ? *session_expiry > 0 : !clean;
  // A connection to the session before its will's delay passed: no will [MQTT-3.1.3-9].
  take_delayed_will(client_id, false);
  const std::uint32_t expiry_interval = session_expiry.value_or(kNeverExpires);
  const std::string principal = authorizer ? authorizer->principal() : std::string();
  std::shared_ptr<Connection> previous;
  std::shared_ptr<Session> discarded;
  {
    std::lock_guard lock(sessions_mutex_);
    auto it = sessions_.find(client_id);
    if (it != sessions_.end()) {
      auto old = it->second;
      if (!old->unclaimed && old->principal != principal) {
        result.refused = true;
        return result;
      }
      {
        std::lock_guard session_lock(old->mutex);
        previous = old->connection.lock();
      }
      // MQTT 5 Clean Start 0 with a Session Expiry Interval of 0 resumes a persistent session,
      // which then ends when this connection does (expiry_interval 0, see detach).
      if (clean || !old->persistent()) {
        discarded = old;
        {
          std::lock_guard session_lock(old->mutex);
          old->connection.reset();
          memory::note_freed(old->pending.qos0_bytes() + old->pending.qos12_bytes());
          old->pending.clear();
          old->inflight.clear();
        }
        sessions_.erase(it);
        if (old->persistent() && store_) store_->delete_session(client_id);
      } else {
        result.session = old;
        result.present = true;
        if (old->unclaimed) {
          log_->info("client '{}': session stored without its principal is now bound to '{}'",
                     client_id, principal);
          old->principal = principal;
          old->authorizer = authorizer;
          old->unclaimed = false;
          resubscribe_restored(*old);
        }
        // Connected again: it no longer expires, and keeps the interval of this CONNECT.
        if (store_) store_->save_session(client_id, principal, expiry_interval);
      }
    }
    if (!result.session) {
      result.session = std::make_shared<Session>(client_id, persistent);
      result.session->principal = principal;
      result.session->authorizer = std::move(authorizer);
      sessions_[client_id] = result.session;
      if (persistent && store_) store_->save_session(client_id, principal, expiry_interval);
    }
    std::lock_guard session_lock(result.session->mutex);
    result.session->connection = connection;
    result.session->expiry_interval = expiry_interval;
    result.session->expires_at = std::chrono::steady_clock::time_point::max();
    result.session->online.store(connection != nullptr);
    if (result.present) result.session->resend = true;
  }
  if (discarded) remove_subscriptions(*discarded);
  if (previous && previous != connection) {
    log_->info("client '{}' connected again: closing its previous connection", client_id);
    result.took_over = true;
    if (result.present) previous->session_continued();
    previous->close(mqtt::ReasonCode::SessionTakenOver);
  }
  return result;
}

void Broker::detach(const std::shared_ptr<Session>& session, const Connection* connection) {
  bool ends_now = false;
  std::vector<Outgoing> orphans;  // shared subscriptions' deliveries not acknowledged
  {
    std::lock_guard lock(session->mutex);
    auto current = session->connection.lock();
    if (current && current.get() != connection) return;  // taken over by a newer connection
    session->connection.reset();
    session->online.store(false);
    for (auto it = session->inflight.begin(); it != session->inflight.end();) {
      if (it->second.out.share != 0 && it->second.out.qos > 0 && !it->second.released) {
        orphans.push_back(std::move(it->second.out));
        it = session->inflight.erase(it);
      } else {
        ++it;
      }
    }
    session->pending.erase_outgoing_if([&](const Outgoing& o) {
      if (o.share == 0 || o.qos == 0) return false;
      orphans.push_back(o);
      return true;
    });
    if (session->persistent() && session->expiry_interval != kNeverExpires) {
      // MQTT 5 Session Expiry: 0 (set by the client's DISCONNECT) ends it now.
      ends_now = session->expiry_interval == 0;
      const auto interval = std::chrono::seconds(session->expiry_interval);
      session->expires_at = std::chrono::steady_clock::now() + interval;
      if (store_ && !ends_now) {
        store_->session_expires(session->client_id(),
                                unix_millis() + static_cast<std::int64_t>(interval.count()) * 1000);
      }
    }
  }
  if (!orphans.empty()) redeliver_shared(session.get(), std::move(orphans));
  if (ends_now) {
    end_session(session);
    return;
  }
  {
    std::lock_guard lock(session->mutex);
    if (!session->connection.expired()) return;  // connected again meanwhile
    memory::note_freed(session->pending.qos0_bytes());
    if (session->persistent()) {
      // QoS 0 is not kept for offline sessions.
      session->pending.drop_qos0();
      // Nor, in memory, what the store holds: read back when it connects again.
      std::int64_t lowest = 0;
      session->pending.erase_outgoing_if([&](const Outgoing& o) {
        if (!o.stored) return false;
        if (lowest == 0 || o.message->id < lowest) lowest = o.message->id;
        memory::note_freed(EgressQueue::size_of(o));
        return true;
      });
      if (lowest != 0) {
        session->stored_only = true;
        session->paged_until = std::min(session->paged_until, lowest - 1);
      }
      return;
    }
    // Gone: its queue is freed now, though a thread's remembered match may hold it a while.
    memory::note_freed(session->pending.qos12_bytes());
    session->pending.clear();
    session->inflight.clear();
  }
  {
    std::lock_guard lock(sessions_mutex_);
    auto it = sessions_.find(session->client_id());
    if (it != sessions_.end() && it->second == session) sessions_.erase(it);
  }
  remove_subscriptions(*session);
}

void Broker::expire_sessions() {
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::shared_ptr<Session>> expired;
  {
    std::lock_guard lock(sessions_mutex_);
    for (auto& [id, s] : sessions_) {
      std::lock_guard session_lock(s->mutex);
      if (s->persistent() && s->connection.expired() && s->expires_at <= now) {
        expired.push_back(s);
      }
    }
  }
  for (auto& s : expired) {
    log_->info("client '{}': session expired ({} s after its disconnect)", s->client_id(),
               s->expiry_interval);
    end_session(s);
  }
}

void Broker::delay_will(const std::string& client_id, Message will, std::chrono::seconds delay) {
  log_->debug("client '{}': its will is due in {} s", client_id, delay.count());
  std::lock_guard lock(wills_mutex_);
  delayed_wills_[client_id] =
      DelayedWill{std::move(will), std::chrono::steady_clock::now() + delay};
}

void Broker::take_delayed_will(const std::string& client_id, bool publish_now) {
  std::optional<Message> will;
  {
    std::lock_guard lock(wills_mutex_);
    auto it = delayed_wills_.find(client_id);
    if (it == delayed_wills_.end()) return;
    will = std::move(it->second.will);
    delayed_wills_.erase(it);
  }
  if (store_) store_->clear_will(client_id);
  if (!publish_now) {
    log_->debug("client '{}' connected again within its will's delay: no will", client_id);
    return;
  }
  log_->debug("client '{}': publishing its delayed will to '{}'", client_id, will->topic);
  if (will->expiry != 0) will->expiry += unix_millis();  // an interval until now
  publish(*will);
}

void Broker::publish_due_wills() {
  std::vector<std::string> due;
  {
    std::lock_guard lock(wills_mutex_);
    const auto now = std::chrono::steady_clock::now();
    for (const auto& [client_id, delayed] : delayed_wills_) {
      if (delayed.due <= now) due.push_back(client_id);
    }
  }
  for (const auto& client_id : due) take_delayed_will(client_id, true);
}

void Broker::end_session(const std::shared_ptr<Session>& session) {
  // A will still delayed is due when its session ends.
  take_delayed_will(session->client_id(), true);
  {
    std::lock_guard lock(sessions_mutex_);
    auto it = sessions_.find(session->client_id());
    if (it == sessions_.end() || it->second != session) return;
    {
      std::lock_guard session_lock(session->mutex);
      if (!session->connection.expired()) return;  // connected again meanwhile
      memory::note_freed(session->pending.qos0_bytes() + session->pending.qos12_bytes());
      session->pending.clear();
      session->inflight.clear();
    }
    sessions_.erase(it);
  }
  remove_subscriptions(*session);
  if (store_) store_->delete_session(session->client_id());
}

void Broker::remove_subscriptions(Session& session) {
  std::vector<std::string> filters;
  {
    std::lock_guard lock(session.mutex);
    for (auto& [filter, qos] : session.subscriptions) filters.push_back(filter);
    session.subscriptions.clear();
  }
  for (const auto& f : filters) {
    if (f.starts_with("$share/")) leave_shared(f, session);
  }
  std::unique_lock lock(topics_mutex_);
  for (const auto& f : filters) topics_.erase(f, &session);
  topics_version_.store(topics_.version(), std::memory_order_release);
}

namespace {
// "$share/{group}/{filter}" → {filter}; empty when `full` is not a valid shared subscription.
std::string_view shared_filter(std::string_view full) {
  full.remove_prefix(7);  // "$share/"
  const auto slash = full.find('/');
  if (slash == 0 || slash == std::string_view::npos || slash + 1 == full.size()) return {};
  const auto group = full.substr(0, slash);
  if (group.find_first_of("+#") != std::string_view::npos) return {};
  return full.substr(slash + 1);
}
}  // namespace

void Broker::join_shared(const std::string& filter, Session& session, std::uint8_t entry) {
  std::lock_guard lock(shared_mutex_);
  auto [it, added] = shared_.try_emplace(filter);
  SharedGroup& group = it->second;
  if (added) {
    group.name = filter;
    group.filter = std::string(shared_filter(filter));
    while (group.id == 0 || shared_ids_.contains(group.id)) group.id = next_shared_id_++;
    shared_ids_[group.id] = filter;
  }
  for (auto& member : group.members) {
    if (member.first == &session) {
      member.second = entry;
      return;
    }
  }
  group.members.emplace_back(&session, entry);
  shared_count_.store(shared_.size(), std::memory_order_relaxed);
}

void Broker::leave_shared(const std::string& filter, Session& session) {
  std::size_t dropped = 0;
  bool ended = false;
  {
    std::lock_guard lock(shared_mutex_);
    auto it = shared_.find(filter);
    if (it == shared_.end()) return;
    auto& members = it->second.members;
    std::erase_if(members, [&](const auto& m) { return m.first == &session; });
    if (members.empty()) {
      ended = true;
      dropped = it->second.held.size();
      shared_ids_.erase(it->second.id);
      shared_.erase(it);
    }
    shared_count_.store(shared_.size(), std::memory_order_relaxed);
  }
  if (dropped > 0) {
    log_->warn("shared subscription '{}' has no member any more: its {} held message(s) dropped",
               filter, dropped);
  }
  // Its stored queue, if it had one (a new group of that name starts empty).
  if (ended && store_) store_->delete_session(filter);
}

bool Broker::pick_member_locked(SharedGroup& group, std::string_view topic, const Session* skip,
                                std::shared_ptr<Session>& member, std::uint8_t& entry) {
  const std::size_t n = group.members.size();
  for (std::size_t k = 0; k < n; ++k) {
    const auto& [session, e] = group.members[(group.next + k) % n];
    if (session == skip || !session->online.load()) continue;
    if ((e & kFiltered) != 0 && !(session->authorizer && session->authorizer->may_receive(topic))) {
      continue;
    }
    group.next = (group.next + k + 1) % n;
    member = session->shared_from_this();
    entry = e;
    return true;
  }
  return false;
}

bool Broker::has_persistent_member(const SharedGroup& group) {
  return std::any_of(group.members.begin(), group.members.end(),
                     [](const auto& member) { return member.first->persistent(); });
}

void Broker::pick_shared(const MessageView& m,
                         std::vector<std::pair<std::string, std::uint8_t>>* rows,
                         std::vector<SharedPick>& picks) {
  std::lock_guard lock(shared_mutex_);
  for (auto& [name, group] : shared_) {
    if (!mqtt::topic_matches(group.filter, m.topic)) continue;
    SharedPick pick;
    pick.group = group.id;
    if (pick_member_locked(group, m.topic, nullptr, pick.session, pick.entry)) {
      // Stored for the group while a member's session is persistent: a member that goes away
      // without acknowledging, or a restart, gives it to a member again.
      if (rows && (pick.entry & kQosMask) > 0 && has_persistent_member(group)) {
        rows->emplace_back(group.name, m.qos);
      }
      picks.push_back(std::move(pick));
    } else if (m.qos > 0 && has_persistent_member(group)) {
      if (rows) rows->emplace_back(group.name, m.qos);
      picks.push_back(std::move(pick));  // held
    }
  }
}

void Broker::deliver_picks(const std::vector<SharedPick>& picks, const MessagePtr& message) {
  for (const auto& pick : picks) {
    if (!pick.session) {
      hold_shared(pick.group, message);
      continue;
    }
    const auto qos = std::min<std::uint8_t>(pick.entry & kQosMask, message->qos);
    deliver(*pick.session, message, qos, false, false, pick.group);
  }
}

void Broker::hold_shared(std::uint16_t id, const MessagePtr& message) {
  std::vector<HeldDelivery> deliveries;
  bool gone = false;
  bool dropped = false;
  {
    std::lock_guard lock(shared_mutex_);
    auto name = shared_ids_.find(id);
    auto it = name == shared_ids_.end() ? shared_.end() : shared_.find(name->second);
    if (it == shared_.end()) {
      gone = true;
    } else {
      SharedGroup& group = it->second;
      const auto& egress = config_.message.egress;
      const std::size_t size = message->topic.size() + message->payload.size();
      if (!group.held.empty() && (group.held.size() >= egress.qos1_queue_size ||
                                  group.held_bytes + size > egress.qos1_queue_bytes.bytes)) {
        dropped = true;
        auto& counter =
            message->qos == 1 ? stats_.messages_dropped_qos1 : stats_.messages_dropped_qos2;
        counter.fetch_add(1, std::memory_order_relaxed);
        ++group.dropped_unlogged;
        if (warning_due(group.drop_warned_at)) {
          log_->warn(
              "shared subscription '{}' has no connected member and holds {} messages ({} "
              "bytes), its QoS 1/2 queue bounds: dropped {} new message(s) for it",
              group.name, group.held.size(), group.held_bytes, group.dropped_unlogged);
          group.dropped_unlogged = 0;
        }
      } else {
        group.held.push_back(message);
        group.held_bytes += size;
        // A member may have connected since the message was picked for the group.
        take_held_locked(group, deliveries);
      }
    }
  }
  if (gone) {
    log_->warn("a message on '{}' of a shared subscription group that ended: dropped",
               message->topic);
  }
  if ((gone || dropped) && store_ && message->id != 0) forget_shared(id, message->id);
  deliver_held(deliveries);
}

void Broker::take_held_locked(SharedGroup& group, std::vector<HeldDelivery>& out) {
  for (auto it = group.held.begin(); it != group.held.end();) {
    HeldDelivery d;
    std::uint8_t entry = 0;
    if (!pick_member_locked(group, (*it)->topic, nullptr, d.session, entry)) {
      ++it;
      continue;
    }
    d.message = std::move(*it);
    d.qos = std::min<std::uint8_t>(entry & kQosMask, d.message->qos);
    d.group = group.id;
    group.held_bytes -= d.message->topic.size() + d.message->payload.size();
    it = group.held.erase(it);
    out.push_back(std::move(d));
  }
}

void Broker::deliver_held(std::vector<HeldDelivery>& deliveries) {
  for (auto& d : deliveries) {
    deliver(*d.session, d.message, d.qos, false, false, d.group);
    // A QoS 0 subscription: nothing will acknowledge it.
    if (d.qos == 0 && store_ && d.message->id != 0) forget_shared(d.group, d.message->id);
  }
}

void Broker::deliver_held(const std::shared_ptr<Session>& session) {
  if (shared_count_.load(std::memory_order_relaxed) == 0) return;
  std::vector<HeldDelivery> deliveries;
  {
    std::lock_guard lock(shared_mutex_);
    for (auto& [name, group] : shared_) {
      if (group.held.empty()) continue;
      const bool member = std::any_of(group.members.begin(), group.members.end(),
                                      [&](const auto& m) { return m.first == session.get(); });
      if (member) take_held_locked(group, deliveries);
    }
  }
  deliver_held(deliveries);
}

void Broker::forget_shared(std::uint16_t share, std::int64_t id) {
  std::string key;
  {
    std::lock_guard lock(shared_mutex_);
    auto name = shared_ids_.find(share);
    if (name == shared_ids_.end()) return;  // ended: its stored queue was deleted with it
    key = name->second;
  }
  store_->ack(key, id);
}

void Broker::received_shared(const Outgoing& out) {
  if (out.share != 0 && store_ && out.message->id != 0) forget_shared(out.share, out.message->id);
}

void Broker::redeliver_shared(const Session* gone, std::vector<Outgoing> orphans) {
  for (auto& o : orphans) {
    std::shared_ptr<Session> next;
    std::uint8_t entry = 0;
    bool hold = false;
    {
      std::lock_guard lock(shared_mutex_);
      auto name = shared_ids_.find(o.share);
      auto it = name == shared_ids_.end() ? shared_.end() : shared_.find(name->second);
      if (it != shared_.end()) {
        auto& group = it->second;
        if (!pick_member_locked(group, o.message->topic, gone, next, entry)) {
          hold = has_persistent_member(group);
        }
      }
    }
    if (hold) {
      hold_shared(o.share, o.message);
      continue;
    }
    if (!next) {
      log_->warn(
          "a message on '{}' of a shared subscription was not acknowledged and no other "
          "member of its group is connected or has a persistent session: dropped",
          o.message->topic);
      if (store_ && o.message->id != 0) forget_shared(o.share, o.message->id);
      continue;
    }
    deliver(*next, o.message, std::min<std::uint8_t>(entry & kQosMask, o.qos), false, false,
            o.share);
  }
}

void Broker::resubscribe_restored(Session& session) {
  const Authorizer* authorizer = session.authorizer.get();
  std::vector<std::pair<std::string, std::uint8_t>> entries;
  std::vector<std::string> refused;
  std::vector<std::int64_t> dropped;
  std::size_t dropped_count = 0;
  {
    std::lock_guard lock(session.mutex);
    for (auto it = session.subscriptions.begin(); it != session.subscriptions.end();) {
      const std::string filter =
          it->first.starts_with("$share/") ? std::string(shared_filter(it->first)) : it->first;
      const auto grant = authorizer ? authorizer->check_subscribe(filter) : SubscribeGrant::Refused;
      if (grant == SubscribeGrant::Refused) {
        refused.push_back(it->first);
        it = session.subscriptions.erase(it);
        continue;
      }
      entries.emplace_back(
          it->first, entry_of(it->second) | (grant == SubscribeGrant::Filtered ? kFiltered : 0));
      ++it;
    }
    // Only PUBREL is left of a released QoS 2 delivery: the message was delivered already.
    session.pending.erase_outgoing_if([&](const Outgoing& o) {
      if (o.released || (authorizer && authorizer->may_receive(o.message->topic))) return false;
      ++dropped_count;
      if (o.stored) dropped.push_back(o.message->id);
      return true;
    });
  }
  {
    std::unique_lock lock(topics_mutex_);
    for (const auto& [filter, entry] : entries) {
      if (!filter.starts_with("$share/")) topics_.insert(filter, &session, entry);
    }
    topics_version_.store(topics_.version(), std::memory_order_release);
  }
  for (const auto& [filter, entry] : entries) {
    if (filter.starts_with("$share/")) join_shared(filter, session, entry);
  }
  for (const auto& filter : refused) {
    log_->warn("client '{}': subscription to '{}' is not permitted to '{}' any more: removed",
               session.client_id(), filter, session.principal);
    if (store_) store_->remove_subscription(session.client_id(), filter);
  }
  if (dropped_count > 0) {
    log_->warn("client '{}': {} queued message(s) '{}' may not receive any more: dropped",
               session.client_id(), dropped_count, session.principal);
  }
  if (store_) {
    for (auto id : dropped) store_->ack(session.client_id(), id);
  }
}

void Broker::deliver(Session& session, const MessagePtr& message, std::uint8_t qos, bool stored,
                     bool retain, std::uint16_t share) {
  Outgoing out{message, qos, retain, false, stored, false, share};
  if (delivery_batch != nullptr) {
    delivery_batch->add(session, std::move(out));
    return;
  }
  std::shared_ptr<Connection> connection;
  {
    std::lock_guard lock(session.mutex);
    connection = session.connection.lock();
    queue_locked(session, connection != nullptr, std::move(out));
  }
  if (connection) connection->notify();
  if (!stray_shared.empty()) redeliver_shared(&session, std::exchange(stray_shared, {}));
}

void Broker::deliver_encoded(Session& session, std::string_view packet) {
  std::shared_ptr<Connection> connection;
  {
    std::lock_guard lock(session.mutex);
    connection = session.connection.lock();
    queue_encoded_locked(session, connection != nullptr, packet, 1);
  }
  if (connection) connection->notify();
}

void Broker::queue_locked(Session& session, bool connected, Outgoing out) {
  const auto& egress = config_.message.egress;
  if (out.qos == 0) {
    if (!connected) return;
    if (session.pending.qos0() >= egress.qos0_buffer_size ||
        session.pending.qos0_bytes() + EgressQueue::size_of(out) > egress.qos0_buffer_bytes.bytes) {
      count_dropped(session, 1, 0);
      return;
    }
  } else if (out.stored) {
    // A persistent session's delivery, which the store holds: in memory while the queue has
    // room, else left in the store, in order (one numbered before something already in memory
    // goes to memory: paging reads only ids above paged_until).
    const std::int64_t id = out.message->id;
    if (id > session.paged_until) {
      if (session.stored_only || !connected || !has_room_locked(session, out)) {
        session.stored_only = true;
        ++session.skipped;
        if (session.lowest_skip == 0 || id < session.lowest_skip) session.lowest_skip = id;
        return;
      }
      session.paged_until = id;
    }
  } else {
    if (!connected && out.share != 0) {
      stray_shared.push_back(std::move(out));  // another member gets it (or the group holds it)
      return;
    }
    if (!connected && !session.persistent()) return;
    if (!has_room_locked(session, out)) {
      count_dropped(session, 1, out.qos);
      received_shared(out);  // dropped: the group's stored copy goes too
      return;
    }
  }
  session.pending.push(std::move(out));
  note_queue_level_locked(session);
}

bool Broker::has_room_locked(const Session& session, const Outgoing& out) const {
  const auto& egress = config_.message.egress;
  const auto& q = session.pending;
  if (q.qos12() == 0) return true;
  return q.qos12() < egress.qos1_queue_size &&
         q.qos12_bytes() + EgressQueue::size_of(out) <= egress.qos1_queue_bytes.bytes;
}

void Broker::queue_encoded_locked(Session& session, bool connected, std::string_view packets,
                                  std::size_t count) {
  if (!connected) return;  // QoS 0 is not kept for offline sessions
  const auto& egress = config_.message.egress;
  const auto& q = session.pending;
  const std::size_t room =
      egress.qos0_buffer_size > q.qos0() ? egress.qos0_buffer_size - q.qos0() : 0;
  const std::size_t bytes = egress.qos0_buffer_bytes.bytes;
  const std::size_t room_bytes = bytes > q.qos0_bytes() ? bytes - q.qos0_bytes() : 0;
  const std::size_t queued = session.pending.push_encoded(packets, count, room, room_bytes);
  if (queued < count) count_dropped(session, count - queued, 0);
  note_queue_level_locked(session);
}

namespace {
Broker::QueueLevel level_of(std::size_t count, std::size_t bound, std::size_t bytes,
                            std::size_t bytes_bound) {
  if (count > bound / 2 || bytes > bytes_bound / 2) return Broker::QueueLevel::High;
  if (count <= bound / 4 && bytes <= bytes_bound / 4) return Broker::QueueLevel::Low;
  return Broker::QueueLevel::Middle;
}
}  // namespace

// Both parts of the queue: QoS 0, and QoS 1/2 unless the store takes what does not fit.
Broker::QueueLevel Broker::queue_level_locked(const Session& session) const {
  const auto& egress = config_.message.egress;
  const auto& q = session.pending;
  const auto qos0 =
      level_of(q.qos0(), egress.qos0_buffer_size, q.qos0_bytes(), egress.qos0_buffer_bytes.bytes);
  if (session.persistent() && store_) return qos0;
  return std::max(qos0, level_of(q.qos12(), egress.qos1_queue_size, q.qos12_bytes(),
                                 egress.qos1_queue_bytes.bytes));
}

bool Broker::wants_page_in_locked(Session& session) const {
  if (!session.stored_only || session.paging || !store_) return false;
  const auto& egress = config_.message.egress;
  const auto& q = session.pending;
  return q.qos12() <= egress.qos1_queue_size / 2 &&
         q.qos12_bytes() <= egress.qos1_queue_bytes.bytes / 2;
}

void Broker::request_page_in(const std::shared_ptr<Session>& session) {
  {
    std::lock_guard lock(session->mutex);
    session->skipped_at_request = session->skipped;
    session->lowest_skip = 0;
  }
  store_->after_commit([weak = std::weak_ptr<Session>(session)] {
    auto s = weak.lock();
    if (!s) return;
    s->page_ready.store(true);
    std::shared_ptr<Connection> connection;
    {
      std::lock_guard lock(s->mutex);
      connection = s->connection.lock();
    }
    if (connection) connection->notify();
  });
}

// Reads at most this much per page-in: it runs on a worker, between its connections' reads.
constexpr std::size_t kPageBytes = 2 * 1024 * 1024;

void Broker::page_in(const std::shared_ptr<Session>& session) {
  const auto& egress = config_.message.egress;
  std::int64_t after = 0;
  std::size_t count = 0;
  std::size_t bytes = 0;
  std::vector<std::int64_t> in_flight;  // stored ids above `after` already in flight
  {
    std::lock_guard lock(session->mutex);
    after = session->paged_until;
    const auto& q = session->pending;
    count = q.qos12() < egress.qos1_queue_size ? egress.qos1_queue_size - q.qos12() : 1;
    bytes = q.qos12_bytes() < egress.qos1_queue_bytes.bytes
                ? egress.qos1_queue_bytes.bytes - q.qos12_bytes()
                : 1;
    for (const auto& [packet_id, f] : session->inflight) {
      if (f.out.stored && f.out.message->id > after) in_flight.push_back(f.out.message->id);
    }
  }
  QueuePage page =
      store_->read_queue(session->client_id(), after, count, std::min(bytes, kPageBytes));
  std::size_t queued = 0;
  std::vector<std::int64_t> refused;  // ids its principal may not receive any more
  std::shared_ptr<Connection> connection;
  {
    std::lock_guard lock(session->mutex);
    // A delivery left in the store since the request may not have been committed when the page
    // was read: nothing from its id on is taken now (the next page-in reads it).
    const bool skipped_since = session->skipped != session->skipped_at_request;
    bool cut = false;
    for (auto& d : page.deliveries) {
      const std::int64_t id = d.message->id;
      if (skipped_since && id >= session->lowest_skip) {
        cut = true;
        break;
      }
      session->paged_until = id;
      if (std::find(in_flight.begin(), in_flight.end(), id) != in_flight.end()) continue;
      // Permissions may have changed since it was queued (a restart with another configuration).
      // Only PUBREL is left of a released QoS 2 delivery: the message was delivered already.
      if (!d.released && session->authorizer &&
          !session->authorizer->may_receive(d.message->topic)) {
        refused.push_back(id);
        continue;
      }
      session->pending.push(Outgoing{std::move(d.message), d.qos, false, d.sent, true, d.released});
      ++queued;
    }
    if (page.complete && !cut && !skipped_since) session->stored_only = false;
    session->paging = false;
    connection = session->connection.lock();
  }
  if (queued) stats_.messages_paged.fetch_add(queued, std::memory_order_relaxed);
  if (!refused.empty()) {
    log_->warn("client '{}': {} queued message(s) '{}' may not receive any more: dropped",
               session->client_id(), refused.size(), session->principal);
    for (auto id : refused) store_->ack(session->client_id(), id);
  }
  if (connection) connection->notify();
}

void Broker::note_queue_level_locked(Session& session) {
  switch (queue_level_locked(session)) {
    case QueueLevel::Low:
      session.congestion_since = {};
      session.stalled = false;
      break;
    case QueueLevel::High:
      if (!session.stalled) congested = session.weak_from_this();
      break;
    case QueueLevel::Middle:
      break;
  }
}

bool Broker::keep_waiting_for(Session& s) {
  std::lock_guard lock(s.mutex);
  if (s.stalled || s.connection.expired()) return false;
  if (queue_level_locked(s) == QueueLevel::Low) {
    s.congestion_since = {};
    return false;
  }
  const auto now = std::chrono::steady_clock::now();
  if (s.congestion_since == std::chrono::steady_clock::time_point{}) s.congestion_since = now;
  if (now - s.congestion_since < kCongestionWait) return true;
  s.stalled = true;
  if (warning_due(s.stall_warned_at)) {
    log_->warn(
        "client '{}' did not drain its queue ({} QoS 0, {} QoS 1/2 messages) within {} ms: "
        "publishers no longer wait for it, and what does not fit its queue is dropped until "
        "it drains",
        s.client_id(), s.pending.qos0(), s.pending.qos12(), kCongestionWait.count());
  }
  return false;
}

bool Broker::warning_due(std::chrono::steady_clock::time_point& last) {
  const auto now = std::chrono::steady_clock::now();
  if (last != std::chrono::steady_clock::time_point{} && now - last < kWarnInterval) return false;
  last = now;
  return true;
}

// Counted at once; logged at most once per kWarnInterval per session, with the drops since.
void Broker::count_dropped(Session& session, std::size_t count, std::uint8_t qos) {
  auto& counter = qos == 0   ? stats_.messages_dropped
                  : qos == 1 ? stats_.messages_dropped_qos1
                             : stats_.messages_dropped_qos2;
  counter.fetch_add(count, std::memory_order_relaxed);
  const auto total = qos == 0 ? stats_.messages_dropped.load(std::memory_order_relaxed)
                              : stats_.messages_dropped_qos1.load(std::memory_order_relaxed) +
                                    stats_.messages_dropped_qos2.load(std::memory_order_relaxed);
  session.dropped_unlogged += count;
  if (!warning_due(session.drop_warned_at)) return;
  const auto& q = session.pending;
  if (qos == 0) {
    log_->warn(
        "QoS 0 queue of '{}' is full ({} messages, {} bytes): dropped {} new message(s) "
        "for it ({} QoS 0 for every subscriber since the start)",
        session.client_id(), q.qos0(), q.qos0_bytes(), session.dropped_unlogged, total);
  } else {
    log_->warn(
        "QoS 1/2 queue of '{}' (clean session) is full ({} messages, {} bytes): dropped {} "
        "new message(s) for it, acknowledged to their publishers ({} QoS 1/2 for every "
        "subscriber since the start)",
        session.client_id(), q.qos12(), q.qos12_bytes(), session.dropped_unlogged, total);
  }
  session.dropped_unlogged = 0;
}

void Broker::count_reserved(const std::string& client_id, std::string_view topic) {
  const auto before = stats_.publish_reserved.fetch_add(1);
  if (std::bit_floor(before + 1) > before) {
    log_->warn("client '{}': PUBLISH to '{}' dropped: $SYS topics are the hub's ({} so far)",
               client_id, topic, before + 1);
  }
}

void Broker::publish(const Message& m, std::function<void()> persisted) {
  publish(MessageView{m.topic, m.payload, m.qos, m.retain, m.time, m.properties, m.expiry},
          std::move(persisted));
}

void Broker::publish(const MessageView& m, std::function<void()> persisted, const Session* receipt,
                     std::uint16_t receipt_id) {
  const bool durable = m.qos > 0 && store_ != nullptr;
  MessagePtr message;  // made once something keeps the message
  auto shared = [&]() -> const MessagePtr& {
    if (!message) {
      Message copy;
      copy.topic = m.topic;
      copy.payload = m.payload;
      copy.qos = m.qos;
      copy.retain = m.retain;
      copy.time = m.time != 0 ? m.time : unix_millis();
      copy.properties = m.properties;
      copy.expiry = m.expiry;
      if (durable) copy.id = store_->next_message_id();
      message = std::make_shared<const Message>(std::move(copy));
    }
    return message;
  };
  // QoS 0 deliveries share one encoded PUBLISH (retain 0: sent for a subscription it matched),
  // within the thread's delivery batch when there is one.
  // The MQTT 5 form is encoded as well once an MQTT 5 subscriber gets the message.
  thread_local std::string packet[2];
  std::pair<std::size_t, std::size_t> batch_packet[2] = {{0, 0}, {0, 0}};
  packet[0].clear();
  packet[1].clear();
  auto deliver_qos0 = [&](Session& session, std::uint8_t entry) {
    const bool v5 = (entry & kV5) != 0;
    std::size_t size = 0;
    if (delivery_batch != nullptr) {
      auto& at = batch_packet[v5];
      if (at.second == 0) at = delivery_batch->encode(m, v5);
      size = at.second;
    } else {
      if (packet[v5].empty()) encode_qos0(packet[v5], m, v5);
      size = packet[v5].size();
    }
    if ((entry & kPacketLimit) != 0) {
      // Larger than the subscriber's Maximum Packet Size: dropped for it [MQTT-3.1.2-25].
      const std::uint32_t limit = session.maximum_packet_size.load(std::memory_order_relaxed);
      if (limit != 0 && size > limit) {
        std::lock_guard lock(session.mutex);
        count_dropped(session, 1, 0);
        return;
      }
    }
    if (delivery_batch != nullptr) {
      delivery_batch->add_encoded(session, batch_packet[v5].first, size);
    } else {
      deliver_encoded(session, packet[v5]);
    }
  };

  if (m.retain) {
    std::lock_guard lock(retained_mutex_);
    if (m.payload.empty()) {
      if (auto it = retained_.find(m.topic); it != retained_.end()) retained_.erase(it);
      if (store_) store_->clear_retained(std::string(m.topic));
    } else {
      retained_.insert_or_assign(std::string(m.topic), shared());
      if (store_) store_->set_retained(shared());
    }
  }

  thread_local std::vector<std::pair<std::string, std::uint8_t>> queue;
  thread_local std::vector<SharedPick> shared_picks;
  shared_picks.clear();
  const bool any_shared = shared_count_.load(std::memory_order_relaxed) > 0;
  {
    const auto& matches = match(m.topic);
    if (durable) {
      queue.clear();
      for (const auto& [session, entry] : matches) {
        if ((entry & kNoLocal) != 0 && session == m.origin) continue;
        const std::uint8_t qos = std::min<std::uint8_t>(entry & kQosMask, m.qos);
        if (qos > 0 && session->persistent()) queue.emplace_back(session->client_id(), qos);
      }
      if (any_shared) pick_shared(m, &queue, shared_picks);
      // Stored before anyone can acknowledge it, so the acknowledgement's delete follows the
      // insert in the writer's order.
      if (receipt && receipt->persistent()) {
        store_->add_message(shared(), queue, std::move(persisted), receipt->client_id(),
                            receipt_id);
      } else {
        store_->add_message(shared(), queue, std::move(persisted));
      }
      persisted = nullptr;
    } else if (any_shared) {
      pick_shared(m, nullptr, shared_picks);
    }
    for (const auto& [session, entry] : matches) {
      // MQTT 5 subscription options: No Local skips the publisher's own session, Retain As
      // Published keeps the retain flag; a Subscription Identifier is added when it is written.
      if ((entry & kNoLocal) != 0 && session == m.origin) continue;
      const std::uint8_t delivery = std::min<std::uint8_t>(entry & kQosMask, m.qos);
      const bool retain = m.retain && (entry & kRetainAsPublished) != 0;
      if (delivery == 0 && !retain && (entry & (kIdentified | kEncodeAtWrite)) == 0) {
        deliver_qos0(*session, entry);
      } else {
        deliver(*session, shared(), delivery, delivery > 0 && durable && session->persistent(),
                retain);
      }
    }
  }
  if (!shared_picks.empty()) deliver_picks(shared_picks, shared());
  if (persisted) persisted();
  if (!route_stats_.empty()) route(m, 0);
}

const std::vector<std::pair<Session*, std::uint8_t>>& Broker::match(std::string_view topic) {
  // The last topic matched on this thread, while the tree is unchanged: a publisher mostly sends
  // to the same topic many times in a row, and then neither the tree nor its lock is touched.
  thread_local struct {
    std::uint64_t broker = 0;
    std::uint64_t version = 0;
    std::uint64_t protocols = 0;  // protocols_version_
    std::string topic;
    std::vector<std::pair<Session*, std::uint8_t>> matches;
    std::vector<std::shared_ptr<Session>> alive;  // the matched sessions, kept while remembered
  } last;
  const std::uint64_t protocols = protocols_version_.load(std::memory_order_acquire);
  if (last.broker == id_ && last.version == topics_version_.load(std::memory_order_acquire) &&
      last.protocols == protocols && last.topic == topic) {
    return last.matches;
  }
  auto& matches = last.matches;
  matches.clear();
  last.alive.clear();
  std::shared_lock lock(topics_mutex_);
  topics_.match(topic, [&](Session* s, std::uint8_t qos) { matches.emplace_back(s, qos); });
  // Overlapping subscriptions of one session: one copy at the highest QoS.
  if (matches.size() > 1) {
    std::sort(matches.begin(), matches.end());
    std::size_t out = 0;
    for (std::size_t i = 0; i < matches.size(); ++i) {
      if (out > 0 && matches[out - 1].first == matches[i].first) {
        // A topic one of them matches without kFiltered is one the principal may receive.
        // No Local only when every one of them says so; Retain As Published and a Subscription
        // Identifier when one does.
        auto& merged = matches[out - 1].second;
        const std::uint8_t next = matches[i].second;
        merged = static_cast<std::uint8_t>(std::max(merged & kQosMask, next & kQosMask) |
                                           (merged & next & (kFiltered | kNoLocal)) |
                                           ((merged | next) & (kRetainAsPublished | kIdentified)));
      } else {
        matches[out++] = matches[i];
      }
    }
    matches.resize(out);
  }
  // Checked once per topic and session (and remembered with the matches), only for
  // subscriptions that can match topics their principal may not receive.
  std::size_t kept = 0;
  for (const auto& [session, entry] : matches) {
    if ((entry & kFiltered) != 0 &&
        !(session->authorizer && session->authorizer->may_receive(topic))) {
      continue;
    }
    // The session's protocol, read here rather than at each delivery: a publisher on one worker
    // would otherwise read a line of each subscriber's session that the subscriber's worker
    // keeps writing.
    std::uint8_t delivery = entry & ~kFiltered;
    if (session->v5.load(std::memory_order_relaxed)) delivery |= kV5;
    if (session->encode_at_write.load(std::memory_order_relaxed)) delivery |= kEncodeAtWrite;
    if (session->maximum_packet_size.load(std::memory_order_relaxed) != 0) delivery |= kPacketLimit;
    matches[kept++] = {session, delivery};
  }
  matches.resize(kept);
  for (const auto& [session, qos] : matches) last.alive.push_back(session->shared_from_this());
  last.broker = id_;
  last.version = topics_.version();
  last.protocols = protocols;
  last.topic.assign(topic);
  return matches;
}

void Broker::route(const MessageView& message, int depth) {
  if (depth > 16) return;
  for (std::size_t i = 0; i < config_.subscriptions.size(); ++i) {
    const auto& r = config_.subscriptions[i];
    if (!mqtt::topic_matches(r.source.topic, message.topic)) continue;
    route_stats_[i]->messages.fetch_add(1, std::memory_order_relaxed);
    MessageView copy;
    copy.topic = r.target.topic;
    copy.payload = message.payload;
    copy.qos = static_cast<std::uint8_t>(std::min<int>({message.qos, r.source.qos, r.target.qos}));
    copy.properties = message.properties;
    copy.expiry = message.expiry;
    publish(copy);
  }
}

std::vector<std::uint8_t> Broker::subscribe(const std::shared_ptr<Session>& session,
                                            const std::vector<mqtt::Subscription>& subscriptions,
                                            const Authorizer* authorizer, std::uint32_t identifier,
                                            std::vector<bool>* existed) {
  std::vector<std::uint8_t> codes;
  codes.reserve(subscriptions.size());
  if (existed) existed->assign(subscriptions.size(), false);
  bool joined_shared = false;
  for (const auto& sub : subscriptions) {
    const std::string problem =
        mqtt::check_topic_filter(sub.topic_filter, {kMaxTopicLength, kMaxTopicLevels});
    if (!problem.empty()) {
      log_->warn("client '{}': subscription refused: {}", session->client_id(), problem);
      codes.push_back(static_cast<std::uint8_t>(mqtt::ReasonCode::TopicFilterInvalid));
      continue;
    }
    // A shared subscription: permissions are those of its filter.
    const bool is_shared = sub.topic_filter.starts_with("$share/");
    const std::string_view filter =
        is_shared ? shared_filter(sub.topic_filter) : std::string_view(sub.topic_filter);
    if (is_shared &&
        (filter.empty() ||
         !mqtt::check_topic_filter(filter, {kMaxTopicLength, kMaxTopicLevels}).empty())) {
      log_->warn("client '{}': subscription refused: '{}' is not $share/{{group}}/{{filter}}",
                 session->client_id(), sub.topic_filter);
      codes.push_back(static_cast<std::uint8_t>(mqtt::ReasonCode::TopicFilterInvalid));
      continue;
    }
    const auto grant =
        authorizer ? authorizer->check_subscribe(std::string(filter)) : SubscribeGrant::Granted;
    if (grant == SubscribeGrant::Refused) {
      stats_.subscribe_denied.fetch_add(1);
      log_->warn("client '{}': not permitted to subscribe to '{}'", session->client_id(),
                 sub.topic_filter);
      codes.push_back(static_cast<std::uint8_t>(mqtt::ReasonCode::NotAuthorized));
      continue;
    }
    const std::uint8_t granted = std::min<std::uint8_t>(sub.qos, 2);
    const Subscribed subscribed{granted, sub.no_local, sub.retain_as_published, identifier};
    const std::uint8_t entry =
        entry_of(subscribed) | (grant == SubscribeGrant::Filtered ? kFiltered : 0);
    if (is_shared) {
      join_shared(sub.topic_filter, *session, entry);
      joined_shared = true;
    } else {
      std::unique_lock lock(topics_mutex_);
      topics_.insert(sub.topic_filter, session.get(), entry);
      topics_version_.store(topics_.version(), std::memory_order_release);
    }
    {
      std::lock_guard lock(session->mutex);
      auto [it, added] = session->subscriptions.insert_or_assign(sub.topic_filter, subscribed);
      if (existed) (*existed)[codes.size()] = !added;
      session->identified =
          std::any_of(session->subscriptions.begin(), session->subscriptions.end(),
                      [](const auto& s) { return s.second.identifier != 0; });
    }
    if (session->persistent() && store_) {
      store_->add_subscription(session->client_id(), sub.topic_filter, subscribed);
    }
    codes.push_back(granted);
  }
  // What a group held goes to a member that joins while connected.
  if (joined_shared && session->online.load()) deliver_held(session);
  return codes;
}

void Broker::queue_retained(const std::shared_ptr<Session>& session,
                            const std::vector<mqtt::Subscription>& subscriptions,
                            const std::vector<std::uint8_t>& granted,
                            const std::vector<bool>& existed) {
  std::vector<Outgoing> out;
  {
    std::lock_guard lock(retained_mutex_);
    if (retained_.empty()) return;
    // An expired retained message is never sent again (MQTT 5 Message Expiry).
    const std::int64_t now = unix_millis();
    for (auto it = retained_.begin(); it != retained_.end();) {
      if (!expired(it->second->expiry, now)) {
        ++it;
        continue;
      }
      if (store_) store_->clear_retained(it->first);
      it = retained_.erase(it);
    }
    for (std::size_t i = 0; i < subscriptions.size(); ++i) {
      if (granted[i] >= mqtt::kSubackFailure) continue;
      const auto handling = subscriptions[i].retain_handling;
      if (handling == 2 || (handling == 1 && i < existed.size() && existed[i])) continue;
      // Not for a shared subscription [MQTT-4.8.2-?]: retained messages go to no group.
      if (subscriptions[i].topic_filter.starts_with("$share/")) continue;
      for (const auto& [topic, message] : retained_) {
        if (mqtt::topic_matches(subscriptions[i].topic_filter, topic) &&
            (!session->authorizer || session->authorizer->may_receive(topic))) {
          out.push_back(Outgoing{message, std::min(message->qos, granted[i]), true, false, false});
        }
      }
    }
  }
  if (out.empty()) return;
  std::shared_ptr<Connection> connection;
  {
    std::lock_guard lock(session->mutex);
    connection = session->connection.lock();
    for (auto& o : out) session->pending.push(std::move(o));
  }
  if (connection) connection->notify();
}

std::vector<bool> Broker::unsubscribe(const std::shared_ptr<Session>& session,
                                      const std::vector<std::string>& filters) {
  std::vector<bool> existed;
  for (const auto& filter : filters) {
    bool had = false;
    {
      std::lock_guard lock(session->mutex);
      had = session->subscriptions.erase(filter) > 0;
      session->identified =
          std::any_of(session->subscriptions.begin(), session->subscriptions.end(),
                      [](const auto& s) { return s.second.identifier != 0; });
    }
    existed.push_back(had);
    if (!had) continue;
    if (filter.starts_with("$share/")) {
      leave_shared(filter, *session);
    } else {
      std::unique_lock lock(topics_mutex_);
      topics_.erase(filter, session.get());
      topics_version_.store(topics_.version(), std::memory_order_release);
    }
    if (session->persistent() && store_) store_->remove_subscription(session->client_id(), filter);
  }
  return existed;
}

void Broker::acknowledged(const Session& session, const Outgoing& out) {
  if (out.stored && store_ && session.persistent()) {
    store_->ack(session.client_id(), out.message->id);
  }
  received_shared(out);
}

void Broker::cleanup() {
  const std::int64_t cutoff =
      unix_millis() - config_.message.ingress.qos1_cleanup_retention.count();
  if (store_) store_->cleanup(cutoff);
  std::vector<std::shared_ptr<Session>> sessions;
  {
    std::lock_guard lock(sessions_mutex_);
    for (auto& [id, s] : sessions_) {
      if (s->persistent()) sessions.push_back(s);
    }
  }
  {
    std::lock_guard lock(shared_mutex_);
    for (auto& [name, group] : shared_) {
      std::erase_if(group.held, [&](const MessagePtr& m) {
        if (m->time >= cutoff) return false;
        group.held_bytes -= m->topic.size() + m->payload.size();
        return true;
      });
    }
  }
  for (auto& s : sessions) {
    std::lock_guard lock(s->mutex);
    s->pending.erase_outgoing_if(
        [&](const Outgoing& o) { return o.stored && o.message->time < cutoff; });
    // Sent before the session went away and never acknowledged: gone from the store too.
    std::erase_if(s->inflight, [&](const auto& entry) {
      return entry.second.out.stored && entry.second.out.message->time < cutoff;
    });
  }
}

std::size_t Broker::session_count() {
  std::lock_guard lock(sessions_mutex_);
  return sessions_.size();
}

std::size_t Broker::subscription_count() {
  std::shared_lock lock(topics_mutex_);
  return topics_.size();
}

std::size_t Broker::retained_count() {
  std::lock_guard lock(retained_mutex_);
  return retained_.size();
}

std::vector<std::shared_ptr<Connection>> Broker::connections() {
  std::vector<std::shared_ptr<Connection>> out;
  std::lock_guard lock(sessions_mutex_);
  for (auto& [id, s] : sessions_) {
    std::lock_guard session_lock(s->mutex);
    if (auto c = s->connection.lock()) out.push_back(std::move(c));
  }
  return out;
}

}  // namespace baetyl::hub
