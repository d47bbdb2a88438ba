#include "broker.h"

#include <algorithm>

#include "baetyl/mqtt/topic.h"
#include "connection.h"

namespace baetyl::hub {
namespace {
thread_local std::weak_ptr<Session> congested;
thread_local Broker::DeliveryBatch* delivery_batch = nullptr;
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
  if (messages_in_ > 0) broker_->stats_.messages_in.fetch_add(messages_in_, std::memory_order_relaxed);
  for (auto& group : groups_) {
    std::shared_ptr<Connection> connection;
    {
      std::lock_guard lock(group.session->mutex);
      connection = group.session->connection.lock();
      for (auto& out : group.messages) {
        broker_->queue_locked(*group.session, connection != nullptr, std::move(out));
      }
    }
    if (connection) connection->notify();
  }
}

void Broker::DeliveryBatch::add(Session& session, Outgoing out) {
  auto [it, added] = index_.try_emplace(&session, groups_.size());
  if (added) groups_.push_back(Group{session.shared_from_this(), {}});
  groups_[it->second].messages.push_back(std::move(out));
}

void Broker::count_message_in() {
  if (delivery_batch != nullptr) {
    ++delivery_batch->messages_in_;
  } else {
    stats_.messages_in.fetch_add(1, std::memory_order_relaxed);
  }
}

std::shared_ptr<Session> Broker::take_congestion() {
  auto session = congested.lock();
  congested.reset();
  return session;
}

Broker::Broker(const HubConfig& config, Store* store, std::shared_ptr<spdlog::logger> log)
    : config_(config), store_(store), log_(std::move(log)), auth_(config.principals) {
  for (const auto& r : config_.subscriptions) {
    auto stats = std::make_unique<RouteStats>();
    stats->source = r.source.topic;
    stats->target = r.target.topic;
    route_stats_.push_back(std::move(stats));
  }
}

void Broker::restore(StoredState state) {
  for (auto& stored : state.sessions) {
    auto session = std::make_shared<Session>(stored.client_id, true);
    {
      std::unique_lock topics(topics_mutex_);
      for (const auto& [filter, qos] : stored.subscriptions) {
        topics_.insert(filter, session.get(), qos);
        session->subscriptions[filter] = qos;
      }
    }
    for (auto& d : stored.queue) {
      session->pending.push_back(Outgoing{d.message, d.qos, false, true, true, d.released});
    }
    session->incoming_qos2.insert(stored.incoming_qos2.begin(), stored.incoming_qos2.end());
    std::lock_guard lock(sessions_mutex_);
    sessions_[stored.client_id] = std::move(session);
  }
  {
    std::lock_guard lock(retained_mutex_);
    for (auto& m : state.retained) retained_[m->topic] = std::move(m);
  }
  if (!state.sessions.empty() || !state.retained.empty()) {
    log_->info("restored {} persistent session(s) and {} retained message(s)",
               state.sessions.size(), retained_.size());
  }
  // Clients connected when the hub went away never disconnected: their wills are due.
  for (auto& will : state.wills) {
    log_->info("publishing the will of '{}' (connected when the hub stopped)", will.client_id);
    publish(std::move(will.message));
    if (store_) store_->clear_will(will.client_id);
  }
}

Broker::Attached Broker::attach(const std::string& client_id, bool clean,
                                std::shared_ptr<Connection> connection) {
  Attached result;
  std::shared_ptr<Connection> previous;
  std::shared_ptr<Session> discarded;
  {
    std::lock_guard lock(sessions_mutex_);
    auto it = sessions_.find(client_id);
    if (it != sessions_.end()) {
      auto old = it->second;
      {
        std::lock_guard session_lock(old->mutex);
        previous = old->connection.lock();
      }
      if (clean || !old->persistent()) {
        discarded = old;
        {
          std::lock_guard session_lock(old->mutex);
          old->connection.reset();
        }
        sessions_.erase(it);
        if (old->persistent() && store_) store_->delete_session(client_id);
      } else {
        result.session = old;
        result.present = true;
      }
    }
    if (!result.session) {
      result.session = std::make_shared<Session>(client_id, !clean);
      sessions_[client_id] = result.session;
      if (!clean && store_) store_->save_session(client_id);
    }
    std::lock_guard session_lock(result.session->mutex);
    result.session->connection = connection;
    if (result.present) result.session->resend = true;
  }
  if (discarded) remove_subscriptions(*discarded);
  if (previous && previous != connection) {
    log_->info("client '{}' connected again: closing its previous connection", client_id);
    previous->close();
  }
  return result;
}

void Broker::detach(const std::shared_ptr<Session>& session, const Connection* connection) {
  {
    std::lock_guard lock(session->mutex);
    auto current = session->connection.lock();
    if (current && current.get() != connection) return;  // taken over by a newer connection
    session->connection.reset();
    if (session->persistent()) {
      // QoS 0 is not kept for offline sessions.
      std::erase_if(session->pending, [](const Outgoing& o) { return o.qos == 0; });
      session->pending_qos0 = 0;
      return;
    }
  }
  {
    std::lock_guard lock(sessions_mutex_);
    auto it = sessions_.find(session->client_id());
    if (it != sessions_.end() && it->second == session) sessions_.erase(it);
  }
  remove_subscriptions(*session);
}

void Broker::remove_subscriptions(Session& session) {
  std::vector<std::string> filters;
  {
    std::lock_guard lock(session.mutex);
    for (auto& [filter, qos] : session.subscriptions) filters.push_back(filter);
    session.subscriptions.clear();
  }
  std::unique_lock lock(topics_mutex_);
  for (const auto& f : filters) topics_.erase(f, &session);
}

void Broker::deliver(Session& session, const MessagePtr& message, std::uint8_t qos, bool stored) {
  Outgoing out{message, qos, false, false, stored};
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
}

void Broker::queue_locked(Session& session, bool connected, Outgoing out) {
  if (out.qos == 0) {
    if (!connected) return;
    if (session.pending_qos0 >= config_.message.egress.qos0_buffer_size) {
      auto dropped = stats_.messages_dropped.fetch_add(1);
      if ((dropped & (dropped + 1)) == 0) {  // 1st, 2nd, 4th, 8th ... drop
        log_->warn("QoS 0 buffer of '{}' is full ({} messages): dropping ({} dropped so far)",
                   session.client_id(), session.pending_qos0, dropped + 1);
      }
      return;
    }
    if (++session.pending_qos0 > config_.message.egress.qos0_buffer_size / 2) {
      congested = session.weak_from_this();
    }
  } else if (!connected && !session.persistent()) {
    return;
  }
  session.pending.push_back(std::move(out));
}

void Broker::publish(Message m, std::function<void()> persisted, const Session* receipt,
                     std::uint16_t receipt_id) {
  if (m.time == 0) m.time = unix_millis();
  const bool durable = m.qos > 0 && store_ != nullptr;
  if (durable) m.id = store_->next_message_id();
  auto message = std::make_shared<const Message>(std::move(m));

  if (message->retain) {
    std::lock_guard lock(retained_mutex_);
    if (message->payload.empty()) {
      retained_.erase(message->topic);
      if (store_) store_->clear_retained(message->topic);
    } else {
      retained_[message->topic] = message;
      if (store_) store_->set_retained(message);
    }
  }

  thread_local std::vector<std::pair<Session*, std::uint8_t>> matches;
  thread_local std::vector<std::pair<std::string, std::uint8_t>> queue;
  {
    std::shared_lock lock(topics_mutex_);
    matches.clear();
    topics_.match(message->topic,
                  [&](Session* s, std::uint8_t qos) { matches.emplace_back(s, qos); });
    // Overlapping subscriptions of one session: one copy at the highest QoS.
    if (matches.size() > 1) {
      std::sort(matches.begin(), matches.end());
      std::size_t out = 0;
      for (std::size_t i = 0; i < matches.size(); ++i) {
        if (out > 0 && matches[out - 1].first == matches[i].first) {
          matches[out - 1].second = std::max(matches[out - 1].second, matches[i].second);
        } else {
          matches[out++] = matches[i];
        }
      }
      matches.resize(out);
    }
    if (durable) {
      queue.clear();
      for (auto& [session, qos] : matches) {
        qos = std::min(qos, message->qos);
        if (qos > 0 && session->persistent()) queue.emplace_back(session->client_id(), qos);
      }
      // Stored before anyone can acknowledge it, so the acknowledgement's delete follows the
      // insert in the writer's order.
      if (receipt && receipt->persistent()) {
        store_->add_message(message, queue, std::move(persisted), receipt->client_id(), receipt_id);
      } else {
        store_->add_message(message, queue, std::move(persisted));
      }
      persisted = nullptr;
    }
    for (auto& [session, qos] : matches) {
      const std::uint8_t delivery = std::min(qos, message->qos);
      deliver(*session, message, delivery, durable && delivery > 0 && session->persistent());
    }
  }
  if (persisted) persisted();
  if (!route_stats_.empty()) route(*message, 0);
}

void Broker::route(const Message& message, int depth) {
  if (depth > 16) return;
  for (std::size_t i = 0; i < config_.subscriptions.size(); ++i) {
    const auto& r = config_.subscriptions[i];
    if (!mqtt::topic_matches(r.source.topic, message.topic)) continue;
    route_stats_[i]->messages.fetch_add(1, std::memory_order_relaxed);
    Message copy;
    copy.topic = r.target.topic;
    copy.payload = message.payload;
    copy.qos = static_cast<std::uint8_t>(std::min<int>({message.qos, r.source.qos, r.target.qos}));
    publish(std::move(copy));
  }
}

std::vector<std::uint8_t> Broker::subscribe(const std::shared_ptr<Session>& session,
                                            const std::vector<mqtt::Subscription>& subscriptions,
                                            const Authorizer* authorizer) {
  std::vector<std::uint8_t> codes;
  codes.reserve(subscriptions.size());
  for (const auto& sub : subscriptions) {
    const std::string problem =
        mqtt::check_topic_filter(sub.topic_filter, {kMaxTopicLength, kMaxTopicLevels});
    if (!problem.empty()) {
      log_->warn("client '{}': subscription refused: {}", session->client_id(), problem);
      codes.push_back(mqtt::kSubackFailure);
      continue;
    }
    if (authorizer && !authorizer->can_subscribe(sub.topic_filter)) {
      stats_.subscribe_denied.fetch_add(1);
      log_->warn("client '{}': not permitted to subscribe to '{}'", session->client_id(),
                 sub.topic_filter);
      codes.push_back(mqtt::kSubackFailure);
      continue;
    }
    const std::uint8_t granted = std::min<std::uint8_t>(sub.qos, 2);
    {
      std::unique_lock lock(topics_mutex_);
      topics_.insert(sub.topic_filter, session.get(), granted);
    }
    {
      std::lock_guard lock(session->mutex);
      session->subscriptions[sub.topic_filter] = granted;
    }
    if (session->persistent() && store_) {
      store_->add_subscription(session->client_id(), sub.topic_filter, granted);
    }
    codes.push_back(granted);
  }
  return codes;
}

void Broker::queue_retained(const std::shared_ptr<Session>& session,
                            const std::vector<mqtt::Subscription>& subscriptions,
                            const std::vector<std::uint8_t>& granted) {
  std::vector<Outgoing> out;
  {
    std::lock_guard lock(retained_mutex_);
    if (retained_.empty()) return;
    for (std::size_t i = 0; i < subscriptions.size(); ++i) {
      if (granted[i] == mqtt::kSubackFailure) continue;
      for (const auto& [topic, message] : retained_) {
        if (mqtt::topic_matches(subscriptions[i].topic_filter, topic)) {
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
    for (auto& o : out) {
      if (o.qos == 0) ++session->pending_qos0;
      session->pending.push_back(std::move(o));
    }
  }
  if (connection) connection->notify();
}

void Broker::unsubscribe(const std::shared_ptr<Session>& session,
                         const std::vector<std::string>& filters) {
  for (const auto& filter : filters) {
    bool had = false;
    {
      std::lock_guard lock(session->mutex);
      had = session->subscriptions.erase(filter) > 0;
    }
    if (!had) continue;
    {
      std::unique_lock lock(topics_mutex_);
      topics_.erase(filter, session.get());
    }
    if (session->persistent() && store_) store_->remove_subscription(session->client_id(), filter);
  }
}

void Broker::acknowledged(const Session& session, const Outgoing& out) {
  if (out.stored && store_ && session.persistent()) {
    store_->ack(session.client_id(), out.message->id);
  }
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
  for (auto& s : sessions) {
    std::lock_guard lock(s->mutex);
    std::erase_if(s->pending,
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
