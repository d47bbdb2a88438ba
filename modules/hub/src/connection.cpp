#include "connection.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <random>

#include <sys/socket.h>

#include "baetyl/mqtt/topic.h"
#include "memory.h"

namespace baetyl::hub {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kConnectTimeout = std::chrono::seconds(10);
constexpr std::size_t kWriteBatchBytes = 256 * 1024;
// A full in-flight window short of half acknowledged is refilled this long after the first
// acknowledgement (see window_has_room).
constexpr auto kLazyRefill = std::chrono::milliseconds(2);
// A publisher whose messages filled a subscriber's QoS 0 queue past half waits for it to drain.
constexpr auto kCongestionPoll = std::chrono::microseconds(100);

auto token(error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

// PUBLISH straight from the shared message into the write buffer: no intermediate packet copy.
void encode_publish(std::string& out, const Message& m, std::uint8_t qos, bool retain, bool dup,
                    std::uint16_t packet_id) {
  mqtt::encode_publish(out, m.topic, m.payload, qos, retain, dup, packet_id);
}

bool valid_client_id(std::string_view id) {
  if (id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '-';
  });
}

std::string generated_client_id() {
  static std::atomic<std::uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return "$auto-" + std::to_string(rng()) + "-" + std::to_string(counter.fetch_add(1));
}

// "" when `topic` is a valid topic name within the hub's limits.
std::string check_publish_topic(std::string_view topic) {
  return mqtt::check_topic_name(topic, {kMaxTopicLength, kMaxTopicLevels});
}

}  // namespace

Connection::Connection(Broker& broker, std::unique_ptr<Stream> stream, Strand strand,
                       Workers* workers)
    : broker_(broker), workers_(workers), stream_(std::move(stream)), strand_(strand) {
  deadline_ = Clock::now() + kConnectTimeout;
  // Room for the topic and the other fields around a payload of the maximum length.
  limits_.max_remaining_length = std::min<std::size_t>(
      broker_.config().message.length_max.bytes + 1024, mqtt::kMaxRemainingLength);
}

Connection::~Connection() = default;

void Connection::start(std::shared_ptr<Connection> self, void (*finished)(void*, Connection*),
                       void* context) {
  self->finished_ = finished;
  self->finished_context_ = context;
  self->home_thread_ = std::this_thread::get_id();
  self->arm_watchdog();
  if (self->stream_->tcp_socket()) {
    self->read_ready();
  } else {
    asio::co_spawn(self->strand_, read_loop(self), asio::detached);
  }
}

namespace {
// Set while a connection handles the packets of one read on this thread.
thread_local std::vector<std::shared_ptr<Connection>>* deferred_wakeups = nullptr;
}  // namespace

// The subscribers a read's publishes are queued for are woken once, when the read is handled, not
// once per publish: one served by another worker then writes the read's messages in one go
// instead of waking (and writing) for each of them.
class Connection::WakeupBatch {
 public:
  WakeupBatch() {
    if (deferred_wakeups == nullptr) deferred_wakeups = &connections_;
  }
  ~WakeupBatch() {
    if (deferred_wakeups != &connections_) return;
    deferred_wakeups = nullptr;
    for (auto& connection : connections_) {
      connection->wakeup_deferred_.store(false);
      connection->wake_soon();
    }
  }
  WakeupBatch(const WakeupBatch&) = delete;
  WakeupBatch& operator=(const WakeupBatch&) = delete;

 private:
  std::vector<std::shared_ptr<Connection>> connections_;
};

void Connection::notify() {
  if (deferred_wakeups != nullptr) {
    // Once per batch (of any thread): a fan-out alternates between subscribers, so checking the
    // last one queued would queue (and reference-count) each of them once per message.
    if (!deferred_wakeups->empty() && deferred_wakeups->back().get() == this) return;
    if (!wakeup_deferred_.load(std::memory_order_relaxed) && !wakeup_deferred_.exchange(true)) {
      deferred_wakeups->push_back(shared_from_this());
    }
    return;
  }
  wake_soon();
}

void Connection::wake_soon() {
  if (notify_pending_.exchange(true)) return;
  asio::post(strand_, [self = shared_from_this()] {
    self->notify_pending_ = false;
    self->wake();
  });
}

void Connection::close() {
  asio::post(strand_, [self = shared_from_this()] { self->do_close(); });
}

// The writer runs while it has something to write or to wait for (see write_loop).
void Connection::wake() {
  if (writer_running_) {
    signal_.cancel();
  } else if (!closed_) {
    writer_running_ = true;
    asio::co_spawn(strand_, write_loop(shared_from_this()), asio::detached);
  }
}

void Connection::do_close() {
  if (closed_) return;
  closed_ = true;
  close_requested_ = true;
  close_socket_when_free();
  signal_.cancel();
  resume_.cancel();
}

namespace {
// The connections of this worker thread that have a deadline (the connect timeout, then the
// keepalive), looked at by one timer every kSweepInterval: a timer per connection and its pending
// wait would cost about 200 bytes each. A connection is closed within kSweepInterval after its
// deadline.
constexpr auto kSweepInterval = std::chrono::milliseconds(250);
using SweepTimer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                              asio::wait_traits<std::chrono::steady_clock>,
                                              asio::io_context::executor_type>;
struct Deadlines {
  std::vector<std::weak_ptr<Connection>> connections;
  std::unique_ptr<SweepTimer> timer;
};
thread_local Deadlines deadlines;
}  // namespace

void Connection::arm_watchdog() {
  if (watched_ || closed_ || deadline_ == Clock::time_point::max()) return;
  watched_ = true;
  deadlines.connections.push_back(weak_from_this());
  if (!deadlines.timer) {
    deadlines.timer = std::make_unique<SweepTimer>(strand_);
  }
  if (deadlines.connections.size() == 1) {
    deadlines.timer->expires_after(kSweepInterval);
    deadlines.timer->async_wait([](error_code ec) {
      if (!ec) sweep_deadlines();
    });
  }
}

// Deadlines move with every read; they are compared with the time here.
void Connection::sweep_deadlines() {
  const auto now = Clock::now();
  auto& list = deadlines.connections;
  for (std::size_t i = 0; i < list.size();) {
    auto connection = list[i].lock();
    if (!connection || connection->closed_ || connection->deadline_ == Clock::time_point::max()) {
      if (connection) connection->watched_ = false;
      list[i] = std::move(list.back());
      list.pop_back();
      continue;
    }
    if (now >= connection->deadline_) connection->on_watchdog();
    ++i;
  }
  if (list.empty()) {
    std::vector<std::weak_ptr<Connection>>().swap(list);
    return;
  }
  deadlines.timer->expires_after(kSweepInterval);
  deadlines.timer->async_wait([](error_code ec) {
    if (!ec) sweep_deadlines();
  });
}

void Connection::on_watchdog() {
  if (connected_) {
    broker_.log().info("client '{}' ({}): no packet within 1.5 x keepalive, closing", client_id_,
                       remote());
  } else {
    broker_.log().info("{}: no CONNECT in time, closing", remote());
  }
  do_close();
}

namespace {
// The read buffer of a worker thread, for all its plain TCP connections (a read is handled
// before the next one starts). Packets larger than it are completed in the connection's input_.
constexpr std::size_t kReadBytes = 64 * 1024;
thread_local std::string read_buffer;
}  // namespace

void Connection::read_ready() {
  PlainSocket& socket = *stream_->tcp_socket();
  while (!closed_) {
    // What was kept of the last read, then what the socket has.
    const std::size_t kept = input_.size();
    const bool large = needed_ > kReadBytes;
    char* data = nullptr;
    std::size_t room = 0;
    if (large) {
      input_.resize(needed_);
      data = input_.data();
      room = needed_ - kept;
    } else {
      if (read_buffer.size() < kReadBytes) read_buffer.resize(kReadBytes);
      std::memcpy(read_buffer.data(), input_.data(), kept);
      data = read_buffer.data();
      room = kReadBytes - kept;
    }
    error_code ec;
    const std::size_t n = socket.read_some(asio::buffer(data + kept, room), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      if (large) input_.resize(kept);
      wait_readable();
      return;
    }
    if (ec) break;
    if (workers_) workers_->sample();
    if (connected_ && keepalive_.count() > 0) deadline_ = Clock::now() + keepalive_;
    const std::string_view received(data, kept + n);
    const Handled handled = handle_input(received);
    if (handled.stop) break;
    if (large) {
      input_.resize(kept + n);
      input_.erase(0, handled.consumed);
    } else {
      input_.assign(received.substr(handled.consumed));
    }
    needed_ = handled.needed;
    if (input_.empty() && input_.capacity() > kReadBytes) input_.shrink_to_fit();
    if (pause_reading()) return;
  }
  end_reading();
}

void Connection::wait_readable() {
  stream_->tcp_socket()->async_wait(
      PlainSocket::wait_read,
      asio::bind_executor(strand_, [self = shared_from_this()](error_code ec) {
        if (ec || self->closed_) {
          self->end_reading();
        } else {
          self->read_ready();
        }
      }));
}

// After a read: a subscriber's queue is filling up, so wait for it to drain, looking every
// kCongestionPoll (a subscriber that keeps up drains its queue within a fraction of a
// millisecond), for at most Broker::kCongestionWait per subscriber until it drains (a subscriber
// that stopped reading holds publishers up once, not at every read); or QoS 1/2 messages wait
// for their commit beyond the ingress buffer (committed() cancels resume_). True when resume_
// calls resume_reading() later.
bool Connection::pause_reading() {
  if (closed_) return false;
  if (congested_) {
    if (broker_.keep_waiting_for(*congested_)) {
      resume_.get(strand_).expires_after(kCongestionPoll);
      resume_.get(strand_).async_wait(asio::bind_executor(
          strand_, [self = shared_from_this()](error_code) { self->resume_reading(); }));
      return true;
    }
    congested_.reset();
  }
  if (pending_commits_ >= broker_.config().message.ingress.qos1_buffer_size) {
    resume_.get(strand_).expires_at(Clock::time_point::max());
    resume_.get(strand_).async_wait(asio::bind_executor(
        strand_, [self = shared_from_this()](error_code) { self->resume_reading(); }));
    return true;
  }
  return false;
}

void Connection::resume_reading() {
  if (closed_) {
    end_reading();
  } else if (!pause_reading()) {
    read_ready();
  }
}

asio::awaitable<void> Connection::read_loop(std::shared_ptr<Connection> self) {
  // Small while idle (many connections), doubled while reads keep filling it (throughput).
  constexpr std::size_t kInitialBuffer = 1024;
  constexpr std::size_t kBusyBuffer = 64 * 1024;
  std::string& in = self->input_;
  in.resize(kInitialBuffer);
  std::size_t used = 0;
  const auto& ingress = self->broker_.config().message.ingress;
  while (!self->closed_) {
    error_code ec;
    std::size_t n =
        co_await self->stream_->read_some(asio::buffer(in.data() + used, in.size() - used), ec);
    if (ec || self->closed_) break;
    if (self->workers_) self->workers_->sample();
    const bool filled = used + n == in.size();
    used += n;
    if (self->connected_ && self->keepalive_.count() > 0) {
      self->deadline_ = Clock::now() + self->keepalive_;
    }
    const Handled handled = self->handle_input(std::string_view(in.data(), used));
    if (handled.stop) break;
    if (handled.consumed > 0) {
      std::memmove(in.data(), in.data() + handled.consumed, used - handled.consumed);
      used -= handled.consumed;
    }
    if (handled.needed > in.size()) {
      in.resize(handled.needed);
    } else if (filled && in.size() < kBusyBuffer) {
      in.resize(in.size() * 2);
    } else if (used == 0 && in.size() > kBusyBuffer) {
      in.resize(kInitialBuffer);
      in.shrink_to_fit();
    }
    // As pause_reading(), waiting here.
    if (auto subscriber = std::exchange(self->congested_, nullptr)) {
      while (!self->closed_ && self->broker_.keep_waiting_for(*subscriber)) {
        self->resume_.get(self->strand_).expires_after(kCongestionPoll);
        co_await self->resume_.get(self->strand_).async_wait(token(ec));
      }
    }
    while (!self->closed_ && self->pending_commits_ >= ingress.qos1_buffer_size) {
      self->resume_.get(self->strand_).expires_at(Clock::time_point::max());
      co_await self->resume_.get(self->strand_).async_wait(token(ec));
    }
  }
  self->end_reading();
}

Connection::Handled Connection::handle_input(std::string_view data) {
  Handled result;
  Broker::take_congestion();
  {
    // All three end before the reader waits (other connections share the thread): the read's
    // deliveries are queued on their sessions, the subscribers woken, then the read's messages
    // committed on this thread.
    Store::CommitScope commits(broker_.store());
    WakeupBatch wakeups;
    Broker::DeliveryBatch deliveries(broker_);
    while (!result.stop) {
      std::string_view view = data.substr(result.consumed);
      auto head = mqtt::decode_fixed_header(view, limits_);
      if (head.status == mqtt::DecodeStatus::Incomplete) break;
      if (head.status == mqtt::DecodeStatus::Error) {
        broker_.log().warn("client '{}' ({}): {}; closing", client_id_, remote(), head.error);
        result.stop = true;
        break;
      }
      const std::size_t length = head.header.packet_length();
      if (length > view.size()) {
        result.needed = length;
        break;
      }
      result.consumed += length;
      if (head.header.type == mqtt::PacketType::Publish && connected_) {
        // Routed straight from the read buffer: copied only if something keeps it.
        mqtt::PublishView publish;
        if (auto error = mqtt::decode_publish(view.substr(0, length), head.header, publish);
            !error.empty()) {
          broker_.log().warn("client '{}' ({}): {}; closing", client_id_, remote(), error);
          result.stop = true;
          break;
        }
        if (on_publish(publish) == Next::Close) result.stop = true;
        continue;
      }
      auto decoded = mqtt::decode(view.substr(0, length), limits_);
      if (decoded.status != mqtt::DecodeStatus::Ok) {
        broker_.log().warn("client '{}' ({}): {}; closing", client_id_, remote(), decoded.error);
        result.stop = true;
        break;
      }
      if (handle(decoded.packet) == Next::Close) result.stop = true;
    }
  }
  congested_ = Broker::take_congestion();
  return result;
}

void Connection::end_reading() {
  if (reading_ended_) return;
  reading_ended_ = true;
  input_.clear();
  input_.shrink_to_fit();
  if (closed_) {
    finish();
    return;
  }
  // Let the writer send what is queued (a refusing CONNACK, say) before the socket closes.
  flush_then_close_ = true;
  wake();
  resume_.get(strand_).expires_after(std::chrono::seconds(2));
  resume_.get(strand_).async_wait(
      asio::bind_executor(strand_, [self = shared_from_this()](error_code) { self->finish(); }));
}

void Connection::finish() {
  // Whatever happens below, the hub forgets the connection afterwards.
  struct Finished {
    Connection& connection;
    ~Finished() {
      if (auto finished = std::exchange(connection.finished_, nullptr)) {
        finished(connection.finished_context_, &connection);
      }
    }
  } finished{*this};
  do_close();
  if (!connected_) return;
  broker_.stats().connections.fetch_sub(1);
  bool current = false;
  {
    std::lock_guard lock(session_->mutex);
    current = session_->connection.lock().get() == this;
  }
  if (will_ && !disconnected_) {
    broker_.log().debug("client '{}': publishing its will to '{}'", client_id_, will_->topic);
    broker_.publish(std::move(*will_));
  }
  if (will_ && current && broker_.store()) broker_.store()->clear_will(client_id_);
  broker_.detach(session_, this);
  broker_.log().debug("client '{}' ({}) disconnected", client_id_, remote());
}

void Connection::send(const mqtt::Packet& packet) {
  mqtt::encode(packet, control_);
  wake();
}

Connection::Next Connection::handle(mqtt::Packet& packet) {
  if (!connected_ && !std::holds_alternative<mqtt::Connect>(packet)) {
    broker_.log().warn("{}: {} before CONNECT; closing", remote(),
                       mqtt::to_string(mqtt::type_of(packet)));
    return Next::Close;
  }
  switch (mqtt::type_of(packet)) {
    case mqtt::PacketType::Connect:
      if (connected_) {
        broker_.log().warn("client '{}': second CONNECT; closing", client_id_);
        return Next::Close;
      }
      return on_connect(std::get<mqtt::Connect>(packet));
    case mqtt::PacketType::Publish: {
      const auto& p = std::get<mqtt::Publish>(packet);
      return on_publish(mqtt::PublishView{p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id});
    }
    case mqtt::PacketType::Puback:
      on_ack(std::get<mqtt::Puback>(packet).packet_id, 1);
      return Next::Continue;
    case mqtt::PacketType::Pubrec:
      on_pubrec(std::get<mqtt::Pubrec>(packet).packet_id);
      return Next::Continue;
    case mqtt::PacketType::Pubcomp:
      on_ack(std::get<mqtt::Pubcomp>(packet).packet_id, 2);
      return Next::Continue;
    case mqtt::PacketType::Pubrel: {
      const auto id = std::get<mqtt::Pubrel>(packet).packet_id;
      bool known = false;
      {
        std::lock_guard lock(session_->mutex);
        known = session_->incoming_qos2.erase(id) > 0;
      }
      if (known && session_->persistent() && broker_.store()) {
        broker_.store()->release_qos2(client_id_, id);
      }
      send(mqtt::Pubcomp{id});
      return Next::Continue;
    }
    case mqtt::PacketType::Subscribe: {
      auto& s = std::get<mqtt::Subscribe>(packet);
      auto codes = broker_.subscribe(session_, s.subscriptions, authorizer_.get());
      send(mqtt::Suback{s.packet_id, codes});
      broker_.queue_retained(session_, s.subscriptions, codes);
      return Next::Continue;
    }
    case mqtt::PacketType::Unsubscribe: {
      auto& u = std::get<mqtt::Unsubscribe>(packet);
      broker_.unsubscribe(session_, u.topic_filters);
      send(mqtt::Unsuback{u.packet_id});
      return Next::Continue;
    }
    case mqtt::PacketType::Pingreq:
      send(mqtt::Pingresp{});
      return Next::Continue;
    case mqtt::PacketType::Disconnect:
      disconnected_ = true;
      return Next::Close;
    default:
      broker_.log().warn("client '{}': unexpected {} from a client; closing", client_id_,
                         mqtt::to_string(mqtt::type_of(packet)));
      return Next::Close;
  }
}

Connection::Next Connection::on_connect(mqtt::Connect& c) {
  auto refuse = [&](mqtt::ConnectReturnCode code, std::string_view why) {
    broker_.log().warn("{}: connection of '{}' refused: {}", remote(), c.client_id, why);
    send(mqtt::Connack{false, code});
    return Next::Close;
  };
  const bool v311 = c.protocol_name == "MQTT" && c.protocol_level == 4;
  const bool v31 = c.protocol_name == "MQIsdp" && c.protocol_level == 3;
  if (!v311 && !v31) {
    return refuse(mqtt::ConnectReturnCode::UnacceptableProtocolVersion,
                  "unsupported protocol level " + std::to_string(c.protocol_level));
  }
  if (!valid_client_id(c.client_id)) {
    return refuse(mqtt::ConnectReturnCode::IdentifierRejected,
                  "client id must match ^[0-9A-Za-z_-]{0,128}$");
  }
  if (c.client_id.empty() && !c.clean_session) {
    return refuse(mqtt::ConnectReturnCode::IdentifierRejected,
                  "an empty client id requires a clean session");
  }

  const std::string username = c.username.value_or("");
  const std::string password = c.password.value_or("");
  const std::string& cn = stream_->peer_common_name;
  if (!password.empty()) {
    authorizer_ = broker_.auth().authenticate(username, password);
  } else if (!cn.empty()) {
    // Two-way TLS: the certificate's CN names a principal without password; a username, when
    // given, must be the CN unless certificate.useUsernameAsIdentity lets it name another.
    if (!username.empty() && username != cn &&
        !broker_.config().certificate.use_username_as_identity) {
      broker_.stats().auth_failures.fetch_add(1);
      return refuse(mqtt::ConnectReturnCode::BadUsernameOrPassword,
                    "username '" + username + "' is not the certificate's CN '" + cn +
                        "' (see certificate.useUsernameAsIdentity)");
    }
    authorizer_ = broker_.auth().authenticate_certificate(username.empty() ? cn : username);
  } else if (username.empty()) {
    broker_.stats().auth_failures.fetch_add(1);
    return refuse(mqtt::ConnectReturnCode::NotAuthorized, "no username");
  }
  if (!authorizer_) {
    broker_.stats().auth_failures.fetch_add(1);
    return refuse(mqtt::ConnectReturnCode::BadUsernameOrPassword,
                  "bad username or password for '" + username + "'");
  }

  if (c.will) {
    if (auto problem = check_publish_topic(c.will->topic); !problem.empty()) {
      return refuse(mqtt::ConnectReturnCode::NotAuthorized, "will " + problem);
    }
    if (is_reserved_topic(c.will->topic)) {
      return refuse(mqtt::ConnectReturnCode::NotAuthorized,
                    "will topic '" + c.will->topic + "': $SYS topics are the hub's");
    }
    if (c.will->payload.size() > broker_.config().message.length_max.bytes) {
      return refuse(mqtt::ConnectReturnCode::NotAuthorized, "will message too long");
    }
    if (!authorizer_->can_publish(c.will->topic)) {
      return refuse(mqtt::ConnectReturnCode::NotAuthorized,
                    "not permitted to publish the will to '" + c.will->topic + "'");
    }
    Message will;
    will.topic = std::move(c.will->topic);
    will.payload = std::move(c.will->payload);
    will.qos = c.will->qos;
    will.retain = c.will->retain;
    will_ = std::make_unique<Message>(std::move(will));
  }

  client_id_ = c.client_id.empty() ? generated_client_id() : c.client_id;
  // The server closes after 1.5 times the keepalive without a packet [MQTT-3.1.2-24].
  keepalive_ = std::chrono::milliseconds(c.keep_alive * 1500);
  deadline_ = c.keep_alive > 0 ? Clock::now() + keepalive_ : Clock::time_point::max();
  arm_watchdog();  // watched from now on if it has a keepalive

  auto attached = broker_.attach(client_id_, c.clean_session, shared_from_this(), authorizer_);
  if (attached.refused) {
    broker_.stats().auth_failures.fetch_add(1);
    will_.reset();
    return refuse(mqtt::ConnectReturnCode::IdentifierRejected,
                  "client id '" + client_id_ + "' belongs to a session of another principal");
  }
  session_ = attached.session;
  connected_ = true;
  broker_.stats().connections.fetch_add(1);
  broker_.stats().connects.fetch_add(1);
  if (will_ && broker_.store()) {
    broker_.store()->set_will(client_id_, std::make_shared<const Message>(*will_));
  }
  send(mqtt::Connack{attached.present, mqtt::ConnectReturnCode::Accepted});
  broker_.log().debug("client '{}' ({}) connected, clean session {}, keepalive {}s{}", client_id_,
                      remote(), c.clean_session, c.keep_alive,
                      attached.present ? ", session resumed" : "");
  return Next::Continue;
}

Connection::Next Connection::on_publish(const mqtt::PublishView& p) {
  // Most clients publish to a few topics over and over: the last one that passed the checks and
  // the ACL is not checked again.
  const bool checked = !checked_topic_.empty() && p.topic == checked_topic_;
  if (!checked) {
    if (auto problem = check_publish_topic(p.topic); !problem.empty()) {
      broker_.log().warn("client '{}': PUBLISH refused: {}; closing", client_id_, problem);
      return Next::Close;
    }
  }
  if (p.payload.size() > broker_.config().message.length_max.bytes) {
    broker_.log().warn("client '{}': message of {} bytes exceeds message.length.max ({}); closing",
                       client_id_, p.payload.size(), broker_.config().message.length_max.bytes);
    return Next::Close;
  }
  broker_.count_message_in(p.qos);
  const std::uint16_t id = p.packet_id;
  if (p.qos == 2) {
    std::lock_guard lock(session_->mutex);
    if (!session_->incoming_qos2.insert(id).second) {
      // A duplicate of a message already received: acknowledge again, do not deliver again.
      mqtt::encode(mqtt::Pubrec{id}, control_);
      wake();
      return Next::Continue;
    }
  }
  if (!checked) {
    if (is_reserved_topic(p.topic)) {
      broker_.count_reserved(client_id_, p.topic);
      if (p.qos == 1) send(mqtt::Puback{id});
      if (p.qos == 2) send(mqtt::Pubrec{id});
      return Next::Continue;
    }
    if (!authorizer_->can_publish(p.topic)) {
      broker_.stats().publish_denied.fetch_add(1);
      broker_.log().warn("client '{}': not permitted to publish to '{}'; message dropped",
                         client_id_, p.topic);
      if (p.qos == 1) send(mqtt::Puback{id});
      if (p.qos == 2) send(mqtt::Pubrec{id});
      return Next::Continue;
    }
    checked_topic_.assign(p.topic);
  }
  const MessageView m{p.topic, p.payload, p.qos, p.retain};
  if (m.qos == 0) {
    broker_.publish(m);
    return Next::Continue;
  }
  ++pending_commits_;
  const std::uint8_t qos = m.qos;
  broker_.publish(
      m,
      [self = shared_from_this(), id, qos] {
        asio::post(self->strand_, [self, id, qos] { self->committed(id, qos); });
      },
      qos == 2 ? session_.get() : nullptr, id);
  return Next::Continue;
}

void Connection::committed(std::uint16_t packet_id, std::uint8_t qos) {
  --pending_commits_;
  resume_.cancel();
  if (closed_) return;
  if (qos == 1) {
    send(mqtt::Puback{packet_id});
  } else {
    send(mqtt::Pubrec{packet_id});
  }
}

void Connection::on_ack(std::uint16_t packet_id, std::uint8_t qos) {
  std::optional<Outgoing> done;
  bool refill = false;
  {
    std::lock_guard lock(session_->mutex);
    auto it = session_->inflight.find(packet_id);
    if (it == session_->inflight.end() || it->second.out.qos != qos) return;
    done = std::move(it->second.out);
    session_->inflight.erase(it);
    refill = window_has_room();
    if (!refill && window_full_ && refill_due_ == Clock::time_point{}) {
      refill_due_ = Clock::now() + kLazyRefill;
      refill = true;  // the writer sleeps until then
    }
  }
  broker_.acknowledged(*session_, *done);
  if (refill) wake();
}

// Once the in-flight window is full it is refilled when half of it has been acknowledged, not at
// every acknowledgement: a busy subscriber gets its messages in batches (one write and one read
// for many) instead of one write per PUBACK. A subscriber that keeps more than half of the
// window unacknowledged gets what it acknowledged kLazyRefill after its first acknowledgement.
// Call with the session's mutex held.
bool Connection::window_has_room() {
  const std::size_t window = broker_.config().message.egress.qos1_buffer_size;
  if (window_full_ && (session_->inflight.size() <= window / 2 ||
                       (refill_due_ != Clock::time_point{} && Clock::now() >= refill_due_))) {
    window_full_ = false;
    refill_due_ = {};
  }
  return !window_full_ && session_->inflight.size() < window;
}

void Connection::on_pubrec(std::uint16_t packet_id) {
  std::int64_t stored = 0;
  {
    std::lock_guard lock(session_->mutex);
    auto it = session_->inflight.find(packet_id);
    if (it != session_->inflight.end() && it->second.out.qos == 2 && !it->second.released) {
      it->second.released = true;
      if (it->second.out.stored) stored = it->second.out.message->id;
    }
  }
  // Remembered so that after a restart the hub sends PUBREL, not the message a second time.
  if (stored && session_->persistent() && broker_.store()) {
    broker_.store()->released(client_id_, stored);
  }
  send(mqtt::Pubrel{packet_id});
}

void Connection::collect(std::string& out) {
  out.append(tail_);
  tail_.clear();
  out.append(control_);
  control_.clear();
  if (!session_) return;
  const auto& egress = broker_.config().message.egress;
  std::array<std::uint64_t, 3> sent{};                // by QoS
  thread_local std::vector<std::int64_t> first_sent;  // stored deliveries sent the first time
  first_sent.clear();
  std::unique_lock lock(session_->mutex);
  if (session_->connection.lock().get() != this) return;
  const auto now = Clock::now();
  const bool resend_all = session_->resend;
  if (resend_all || (!session_->inflight.empty() && now >= next_retry_check_)) {
    // Unacknowledged deliveries go again with DUP, oldest first: all of them for a resumed
    // session, otherwise those unacknowledged for the retry interval.
    std::vector<std::pair<std::uint64_t, std::uint16_t>> due;
    for (auto& [id, f] : session_->inflight) {
      if (resend_all || now - f.sent >= egress.qos1_retry_interval) due.emplace_back(f.order, id);
    }
    std::sort(due.begin(), due.end());
    for (auto& [order, id] : due) {
      auto& f = session_->inflight[id];
      if (f.released) {
        mqtt::encode(mqtt::Pubrel{id}, out);
      } else {
        encode_publish(out, *f.out.message, f.out.qos, f.out.retain, true, id);
        ++sent[f.out.qos];
      }
      f.sent = now;
    }
    session_->resend = false;
    next_retry_check_ = now + std::max<Clock::duration>(egress.qos1_retry_interval / 4,
                                                        std::chrono::milliseconds(10));
  }
  auto& pending = session_->pending;
  std::size_t batch = 0;  // QoS 1/2 messages taken in this round: message.egress.qos1.batch.max
  while (!pending.empty() && out.size() < kWriteBatchBytes) {
    if (pending.front().encoded()) {
      sent[0] += pending.take_encoded(out, kWriteBatchBytes);  // encoded ones are QoS 0
      continue;
    }
    Outgoing& o = pending.front().out;
    const std::uint8_t qos = o.qos;
    if (o.qos == 0) {
      encode_publish(out, *o.message, 0, o.retain, false, 0);
    } else {
      if (!window_has_room()) {
        window_full_ = true;
        break;
      }
      if (batch++ == egress.qos1_batch_max) break;
      const std::uint16_t id = session_->allocate_packet_id();
      const bool released = o.released;
      if (released) {
        mqtt::encode(mqtt::Pubrel{id}, out);  // PUBCOMP comes back even for an unknown id
      } else {
        encode_publish(out, *o.message, o.qos, o.retain, o.dup, id);
        if (o.stored && !o.dup) first_sent.push_back(o.message->id);
      }
      if (session_->inflight.empty()) next_retry_check_ = now + egress.qos1_retry_interval;
      session_->inflight.emplace(id, Inflight{std::move(o), released, session_->next_order++, now});
    }
    ++sent[qos];
    pending.pop_front();
  }
  const bool page_in = broker_.wants_page_in_locked(*session_);
  if (page_in) session_->paging = true;
  lock.unlock();
  for (std::uint8_t q = 0; q < 3; ++q) {
    if (sent[q]) broker_.stats().messages_out.add(q, sent[q]);
  }
  // Sent again after a restart, these carry DUP.
  if (!first_sent.empty() && broker_.store()) broker_.store()->sent(client_id_, first_sent);
  if (page_in) broker_.request_page_in(session_);
}

// Runs while there is something to write, or to wait for (acknowledgements to retry, a refill
// due, a direct writer to finish); wake() starts it again.
asio::awaitable<void> Connection::write_loop(std::shared_ptr<Connection> self) {
  struct Stopped {
    bool& running;
    ~Stopped() { running = false; }
  } stopped{self->writer_running_};
  std::string buffer;
  const auto retry = self->broker_.config().message.egress.qos1_retry_interval;
  while (!self->closed_) {
    if (!self->acquire_writer(kWriterStrand)) {
      // A direct writer has the socket: it wakes this writer when it is done.
      self->strand_waiting_ = true;
      if (!self->acquire_writer(kWriterStrand)) {
        if (self->writer_ == kWriterClosed) break;
        self->signal_.get(self->strand_).expires_at(Clock::time_point::max());
        error_code ec;
        co_await self->signal_.get(self->strand_).async_wait(token(ec));
        continue;
      }
      self->strand_waiting_ = false;
    }
    buffer.clear();
    // The store committed what the session's next page-in needs (Broker::request_page_in).
    if (self->session_ && self->session_->page_ready.load(std::memory_order_relaxed) &&
        self->session_->page_ready.exchange(false)) {
      self->broker_.page_in(self->session_);
    }
    self->collect(buffer);
    if (buffer.empty()) self->release_writer(kWriterStrand);
    if (buffer.empty() && self->flush_then_close_) {
      self->do_close();
      break;
    }
    if (buffer.empty()) {
      bool inflight = false;
      Clock::time_point refill_due{};
      if (self->session_) {
        std::lock_guard lock(self->session_->mutex);
        inflight = !self->session_->inflight.empty();
        refill_due = self->refill_due_;
      }
      auto wake_at = Clock::time_point::max();
      if (inflight) wake_at = std::max(self->next_retry_check_, Clock::now() + retry / 4);
      if (refill_due != Clock::time_point{}) wake_at = std::min(wake_at, refill_due);
      if (wake_at == Clock::time_point::max()) break;  // idle: nothing to wait for
      self->signal_.get(self->strand_).expires_at(wake_at);
      error_code ec;
      co_await self->signal_.get(self->strand_).async_wait(token(ec));
      continue;
    }
    error_code ec;
    co_await self->write_out(buffer, ec);
    self->release_writer(kWriterStrand);
    if (ec) {
      self->do_close();
      break;
    }
    // The first write carried CONNACK: from now on another worker may write QoS 0 packets.
    if (self->connected_ && self->stream_->tcp_handle() >= 0 && self->workers_ != nullptr &&
        self->workers_->size() > 1) {
      self->direct_allowed_.store(true, std::memory_order_release);
    }
    if (self->flush_then_close_ && self->control_.empty()) {
      self->do_close();
      break;
    }
    if (buffer.capacity() > 4 * kWriteBatchBytes) {
      buffer.clear();
      buffer.shrink_to_fit();
    }
  }
}

namespace {
// Sends what the socket takes without waiting; the bytes sent.
std::size_t send_without_waiting(int fd, std::string_view data) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n =
        ::send(fd, data.data() + sent, data.size() - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n <= 0) break;  // full (or failing: the strand's write finds out)
    sent += static_cast<std::size_t>(n);
  }
  return sent;
}
}  // namespace

asio::awaitable<void> Connection::write_out(std::string_view data, error_code& ec) {
  if (workers_ != nullptr) {
    workers_->sample();
    const int fd = stream_->tcp_handle();
    if (fd >= 0) {
      if (auto target = workers_->offload_target(data.size())) {
        // The other worker sends while this strand neither writes nor closes the socket; reads
        // go on here (the kernel allows one reader and one writer at once).
        offloading_ = true;
        Workers* workers = workers_;
        const std::size_t sent = co_await asio::co_spawn(
            *target,
            [workers, fd, data]() -> asio::awaitable<std::size_t> {
              workers->sample();
              co_return send_without_waiting(fd, data);
            },
            asio::use_awaitable);
        offloading_ = false;
        if (closed_) {
          close_socket_when_free();
          ec = asio::error::operation_aborted;
          co_return;
        }
        broker_.stats().writes_offloaded.fetch_add(1, std::memory_order_relaxed);
        data.remove_prefix(sent);
        if (data.empty()) co_return;
      }
    }
  }
  co_await stream_->write(asio::buffer(data), ec);
}

bool Connection::acquire_writer(std::uint8_t role) {
  std::uint8_t idle = kWriterIdle;
  return writer_.compare_exchange_strong(idle, role);
}

void Connection::release_writer(std::uint8_t role) {
  std::uint8_t held = role;
  writer_.compare_exchange_strong(held, kWriterIdle);  // not when closed meanwhile
}

void Connection::close_socket_when_free() {
  std::uint8_t state = writer_.load();
  while (true) {
    if (state == kWriterClosed || state == kWriterDirect) return;  // a direct writer closes after
    if (state == kWriterStrand && offloading_) return;  // write_out closes after the hand-over
    if (writer_.compare_exchange_weak(state, kWriterClosed)) break;
  }
  stream_->close();
}

bool Connection::write_directly() {
  if (!direct_allowed_.load(std::memory_order_acquire) || close_requested_ ||
      std::this_thread::get_id() == home_thread_) {
    return false;
  }
  // A busy worker keeps its time for its own connections (and large writes go the other way).
  if (!workers_->may_write_directly()) return false;
  if (!acquire_writer(kWriterDirect)) return false;
  constexpr std::size_t kDirectBytes = 64 * 1024;
  thread_local std::string out;
  out.clear();
  out.swap(tail_);
  bool more = false;
  std::uint64_t sent = 0;
  {
    std::lock_guard lock(session_->mutex);
    auto& pending = session_->pending;
    if (session_->connection.lock().get() == this) {
      while (!pending.empty() && pending.front().encoded() && out.size() < kDirectBytes) {
        sent += pending.take_encoded(out, kDirectBytes);
      }
    }
    more = !pending.empty();
  }
  if (sent) broker_.stats().messages_out.add(0, sent);  // only encoded QoS 0 ones go directly
  if (!out.empty()) broker_.stats().writes_direct.fetch_add(1, std::memory_order_relaxed);
  const std::size_t written = out.empty() ? 0 : send_without_waiting(stream_->tcp_handle(), out);
  if (written < out.size()) {
    tail_.assign(out, written);
    more = true;
  }
  // A queue's whole buffer may have been traded for this one (EgressQueue::take_encoded): this
  // thread keeps no large one.
  if (out.capacity() > 4 * kDirectBytes) {
    memory::note_freed(out.capacity());
    std::string().swap(out);
  }
  release_writer(kWriterDirect);
  if (close_requested_) {
    asio::post(strand_, [self = shared_from_this()] { self->close_socket_when_free(); });
    return true;
  }
  return !more && !strand_waiting_.exchange(false);
}

}  // namespace baetyl::hub
