#include "connection.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <random>

#include <sys/socket.h>

#include "baetyl/mqtt/topic.h"
#include "memory.h"
#include "mqtt5.h"

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

// The Topic Alias Maximum the hub announces to MQTT 5 clients (aliases they may set).
constexpr std::uint16_t kTopicAliasMaximum = 64;
// How long a DISCONNECT the hub sends may take to go out before the socket closes anyway.
constexpr auto kDisconnectFlush = std::chrono::seconds(2);

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

// MQTT 5's Assigned Client Identifier: within the hub's client id rules, so that the client may
// connect with it again to resume its session.
std::string assigned_client_id() {
  static std::atomic<std::uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return "auto-" + std::to_string(rng()) + "-" + std::to_string(counter.fetch_add(1));
}

// Whether `packet` (whole, fixed header of `header_length` bytes) is a CONNECT of protocol level
// 5: a malformed one is answered with an MQTT 5 CONNACK.
bool mqtt5_connect(std::string_view packet, std::size_t header_length) {
  using namespace std::string_view_literals;
  return packet.size() >= header_length + 7 && packet.substr(header_length, 6) == "\0\4MQTT"sv &&
         packet[header_length + 6] == 5;
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
  window_ = broker_.config().message.egress.qos1_buffer_size;
}

Connection::~Connection() = default;

void Connection::use_mqtt5() {
  version_ = mqtt::ProtocolVersion::V5;
  if (!mqtt5_) mqtt5_ = std::make_unique<Mqtt5>();
}

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

namespace {
// The wake-ups a worker thread asked during its current pass for connections of other workers
// (see Connection::hand_over), by the io_context of those workers.
struct Handover {
  asio::io_context* context = nullptr;
  std::vector<std::shared_ptr<Connection>> connections;
};
thread_local std::vector<Handover> handovers;
thread_local bool handovers_posted = false;  // send_handovers() is posted to this worker
}  // namespace

void Connection::wake_soon() {
  if (notify_pending_.exchange(true)) return;
  if (workers_ != nullptr && std::this_thread::get_id() != home_thread_) {
    if (auto worker = workers_->current_executor()) {
      hand_over(*worker);
      return;
    }
  }
  asio::post(strand_, [self = shared_from_this()] {
    self->notify_pending_ = false;
    self->wake();
  });
}

// A worker's pass runs the handlers its io_context had ready (the reads of several connections,
// say); what they deliver to a connection of another worker wakes that connection once the pass
// is over, together with the other connections of that worker woken in the pass: one post and
// one wake-up of the other worker per pass, not one per read. send_handovers(), posted to this
// worker's own queue, runs after the handlers that were ready before it.
void Connection::hand_over(asio::io_context::executor_type worker) {
  auto* context = &strand_.context();
  auto it = std::find_if(handovers.begin(), handovers.end(),
                         [context](const Handover& h) { return h.context == context; });
  if (it == handovers.end()) it = handovers.insert(handovers.end(), Handover{context, {}});
  it->connections.push_back(shared_from_this());
  if (!handovers_posted) {
    handovers_posted = true;
    asio::post(worker, [] { send_handovers(); });
  }
}

void Connection::send_handovers() {
  handovers_posted = false;
  for (auto& h : handovers) {
    if (h.connections.empty()) continue;
    auto& stats = h.connections.front()->broker_.stats();
    stats.handovers.fetch_add(1, std::memory_order_relaxed);
    stats.handed_over.fetch_add(h.connections.size(), std::memory_order_relaxed);
    asio::post(*h.context, [connections = std::exchange(h.connections, {})] {
      for (const auto& c : connections) {
        c->notify_pending_ = false;
        c->wake();
      }
    });
  }
}

void Connection::close(mqtt::ReasonCode reason) {
  asio::post(strand_, [self = shared_from_this(), reason] {
    self->disconnect(reason, mqtt::to_string(reason));
  });
}

void Connection::disconnect(mqtt::ReasonCode reason, std::string_view why) {
  if (closed_) return;
  if (!v5() || !connected_ || disconnecting_) {
    do_close();
    return;
  }
  broker_.log().debug("client '{}': DISCONNECT 0x{:02x} ({})", client_id_,
                      static_cast<unsigned>(reason), why);
  mqtt::encode(disconnect_packet(reason, why), control_, version_);
  disconnecting_ = true;
  flush_then_close_ = true;
  wake();
  // A client that does not read would keep the socket open: closed after kDisconnectFlush.
  auto timer = std::make_shared<Timer>(strand_);
  timer->expires_after(kDisconnectFlush);
  timer->async_wait([self = shared_from_this(), timer](error_code) { self->do_close(); });
}

mqtt::Disconnect Connection::disconnect_packet(mqtt::ReasonCode reason, std::string_view why) {
  mqtt::Disconnect packet{reason, {}};
  // With a Reason String, unless the client's Maximum Packet Size is too small for one.
  const std::uint32_t limit = session_ ? session_->maximum_packet_size.load() : 0;
  if (limit == 0 || limit >= 256) {
    packet.properties.add(mqtt::PropertyId::ReasonString, reason_string(why));
  }
  return packet;
}

void Connection::violation(mqtt::ReasonCode reason, std::string_view why) {
  broker_.log().warn("client '{}' ({}): {}; closing", client_id_, remote(), why);
  if (!v5()) return;
  if (!connected_) {
    mqtt::encode(mqtt::Connack{false, mqtt::ConnectReturnCode::Accepted, reason, {}}, control_,
                 version_);
  } else if (!disconnecting_) {
    mqtt::encode(disconnect_packet(reason, why), control_, version_);
  }
  disconnecting_ = true;
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
    deadline_ = Clock::time_point::max();  // once
    disconnect(mqtt::ReasonCode::KeepAliveTimeout, "keep alive timeout");
  } else {
    broker_.log().info("{}: no CONNECT in time, closing", remote());
    do_close();
  }
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
      auto head = mqtt::decode_fixed_header(view, limits_, version_);
      if (head.status == mqtt::DecodeStatus::Incomplete) break;
      if (head.status == mqtt::DecodeStatus::Error) {
        violation(head.reason, head.error);
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
        // Routed straight from the read buffer: copied only if something keeps it. The topic of
        // the last PUBLISH that passed the checks is not checked again (see on_publish).
        mqtt::PublishView publish;
        const std::string_view packet = view.substr(0, length);
        if (!mqtt::decode_known_publish(packet, head.header, publish, version_, checked_topic_)) {
          mqtt::DecodeError error;
          if (v5()) {
            error = mqtt::decode_publish(packet, head.header, publish, version_,
                                         &mqtt5_->publish_properties);
          } else {
            error = {mqtt::ReasonCode::MalformedPacket,
                     mqtt::decode_publish(packet, head.header, publish)};
          }
          if (!error.message.empty()) {
            violation(error.reason, error.message);
            result.stop = true;
            break;
          }
        }
        if (on_publish(publish) == Next::Close) result.stop = true;
        continue;
      }
      auto decoded = mqtt::decode(view.substr(0, length), limits_, version_);
      if (decoded.status != mqtt::DecodeStatus::Ok) {
        if (!connected_ && mqtt5_connect(view.substr(0, length), head.header.header_length)) {
          use_mqtt5();
        }
        violation(decoded.reason, decoded.error);
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
  const std::uint32_t will_delay = mqtt5_ ? mqtt5_->will_delay : 0;
  if (will_ && !disconnected_ && will_delay > 0 && current && session_->persistent()) {
    // Published later unless the client comes back; the store keeps it until then.
    broker_.delay_will(client_id_, std::move(*will_), std::chrono::seconds(will_delay));
    will_.reset();
  } else if (will_ && !disconnected_ && will_delay > 0 && session_continued_.load()) {
    // Taken over by a connection that continues the session, within the delay: no will. (With
    // Clean Start 1 the session ended: the will is due at once, below.)
    broker_.log().debug("client '{}': session taken over within its will's delay: no will",
                        client_id_);
    will_.reset();
  } else if (will_ && !disconnected_) {
    broker_.log().debug("client '{}': publishing its will to '{}'", client_id_, will_->topic);
    if (will_->expiry != 0) will_->expiry += unix_millis();  // an interval until now
    broker_.publish(std::move(*will_));
  }
  if (will_ && current && broker_.store()) broker_.store()->clear_will(client_id_);
  broker_.detach(session_, this);
  broker_.log().debug("client '{}' ({}) disconnected", client_id_, remote());
}

void Connection::send(const mqtt::Packet& packet) {
  if (disconnecting_) return;
  mqtt::encode(packet, control_, version_);
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
        violation(mqtt::ReasonCode::ProtocolError, "second CONNECT");
        return Next::Close;
      }
      return on_connect(std::get<mqtt::Connect>(packet));
    case mqtt::PacketType::Publish: {
      const auto& p = std::get<mqtt::Publish>(packet);
      const std::string properties = properties_body(p.properties);
      if (mqtt5_) mqtt5_->publish_properties = p.properties;
      return on_publish(
          mqtt::PublishView{p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id, properties});
    }
    case mqtt::PacketType::Puback:
      on_ack(std::get<mqtt::Puback>(packet).packet_id, 1);
      return Next::Continue;
    case mqtt::PacketType::Pubrec: {
      const auto& rec = std::get<mqtt::Pubrec>(packet);
      // MQTT 5: a PUBREC with an error code ends the exchange [MQTT-4.3.3-4].
      if (static_cast<std::uint8_t>(rec.reason_code) >= 0x80) {
        on_ack(rec.packet_id, 2);
      } else {
        on_pubrec(rec.packet_id);
      }
      return Next::Continue;
    }
    case mqtt::PacketType::Pubcomp:
      on_ack(std::get<mqtt::Pubcomp>(packet).packet_id, 2);
      return Next::Continue;
    case mqtt::PacketType::Pubrel: {
      const auto id = std::get<mqtt::Pubrel>(packet).packet_id;
      bool known = false;
      {
        std::lock_guard lock(session_->mutex);
        known = session_->remove_incoming_qos2(id);
      }
      if (known && session_->persistent() && broker_.store()) {
        broker_.store()->release_qos2(client_id_, id);
      }
      if (known && mqtt5_ && mqtt5_->incoming_inflight > 0) --mqtt5_->incoming_inflight;
      mqtt::Pubcomp comp{id};
      if (v5() && !known) comp.reason_code = mqtt::ReasonCode::PacketIdentifierNotFound;
      send(comp);
      return Next::Continue;
    }
    case mqtt::PacketType::Subscribe: {
      auto& s = std::get<mqtt::Subscribe>(packet);
      const std::uint32_t identifier =
          s.properties.integer(mqtt::PropertyId::SubscriptionIdentifier).value_or(0);
      std::vector<bool> existed;
      auto codes =
          broker_.subscribe(session_, s.subscriptions, authorizer_.get(), identifier, &existed);
      mqtt::Suback ack{s.packet_id, codes};
      if (!v5()) {
        for (auto& code : ack.return_codes) code = suback_v311(code);
      }
      send(ack);
      broker_.queue_retained(session_, s.subscriptions, codes, existed);
      return Next::Continue;
    }
    case mqtt::PacketType::Unsubscribe: {
      auto& u = std::get<mqtt::Unsubscribe>(packet);
      const auto existed = broker_.unsubscribe(session_, u.topic_filters);
      mqtt::Unsuback ack{u.packet_id};
      if (v5()) {
        for (bool had : existed) {
          ack.reason_codes.push_back(had ? mqtt::ReasonCode::Success
                                         : mqtt::ReasonCode::NoSubscriptionExisted);
        }
      }
      send(ack);
      return Next::Continue;
    }
    case mqtt::PacketType::Pingreq:
      send(mqtt::Pingresp{});
      return Next::Continue;
    case mqtt::PacketType::Disconnect: {
      const auto& d = std::get<mqtt::Disconnect>(packet);
      if (auto expiry = d.properties.integer(mqtt::PropertyId::SessionExpiryInterval);
          expiry && mqtt5_) {
        // A session that was to end at disconnect cannot be made to last [MQTT-3.14.2-2].
        if (mqtt5_->connect_session_expiry == 0 && *expiry != 0) {
          violation(mqtt::ReasonCode::ProtocolError,
                    "DISCONNECT sets a Session Expiry Interval after CONNECT said 0");
          return Next::Close;
        }
        std::lock_guard lock(session_->mutex);
        session_->expiry_interval = *expiry;
      }
      // MQTT 5: "Disconnect with Will Message" (0x04) asks for the will.
      disconnected_ = d.reason_code != mqtt::ReasonCode::DisconnectWithWillMessage;
      if (v5() && static_cast<std::uint8_t>(d.reason_code) >= 0x80) {
        broker_.log().info("client '{}' disconnected with reason 0x{:02x} ({})", client_id_,
                           static_cast<unsigned>(d.reason_code), mqtt::to_string(d.reason_code));
      }
      return Next::Close;
    }
    default:
      violation(
          mqtt::ReasonCode::ProtocolError,
          "unexpected " + std::string(mqtt::to_string(mqtt::type_of(packet))) + " from a client");
      return Next::Close;
  }
}

Connection::Next Connection::on_connect(mqtt::Connect& c) {
  const bool v311 = c.protocol_name == "MQTT" && c.protocol_level == 4;
  const bool v31 = c.protocol_name == "MQIsdp" && c.protocol_level == 3;
  const bool mqtt5 = c.protocol_name == "MQTT" && c.protocol_level == 5;
  if (mqtt5) use_mqtt5();
  auto refuse = [&](mqtt::ConnectReturnCode code, std::string_view why,
                    std::optional<mqtt::ReasonCode> reason = std::nullopt) {
    broker_.log().warn("{}: connection of '{}' refused: {}", remote(), c.client_id, why);
    mqtt::Connack ack{false, code};
    if (v5()) {
      ack.return_code = mqtt::ConnectReturnCode::Accepted;
      ack.reason_code = reason.value_or(connack_reason(code));
      ack.properties.add(mqtt::PropertyId::ReasonString, reason_string(why));
    }
    send(ack);
    return Next::Close;
  };
  if (!v311 && !v31 && !mqtt5) {
    return refuse(mqtt::ConnectReturnCode::UnacceptableProtocolVersion,
                  "unsupported protocol level " + std::to_string(c.protocol_level));
  }
  if (!valid_client_id(c.client_id)) {
    return refuse(mqtt::ConnectReturnCode::IdentifierRejected,
                  "client id must match ^[0-9A-Za-z_-]{0,128}$");
  }
  // MQTT 5 lets the server assign an identifier to any client that sends none.
  if (c.client_id.empty() && !c.clean_session && !mqtt5) {
    return refuse(mqtt::ConnectReturnCode::IdentifierRejected,
                  "an empty client id requires a clean session");
  }
  if (mqtt5 && c.properties.find(mqtt::PropertyId::AuthenticationMethod)) {
    return refuse(mqtt::ConnectReturnCode::NotAuthorized,
                  "extended authentication (Authentication Method) is not supported",
                  mqtt::ReasonCode::BadAuthenticationMethod);
  }

  const std::string username = c.username.value_or("");
  const std::string password = c.password.value_or("");
  const std::string& cn = stream_->peer_common_name();
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
      return refuse(mqtt::ConnectReturnCode::NotAuthorized, "will " + problem,
                    mqtt::ReasonCode::TopicNameInvalid);
    }
    if (is_reserved_topic(c.will->topic)) {
      return refuse(mqtt::ConnectReturnCode::NotAuthorized,
                    "will topic '" + c.will->topic + "': $SYS topics are the hub's");
    }
    if (c.will->payload.size() > broker_.config().message.length_max.bytes) {
      return refuse(mqtt::ConnectReturnCode::NotAuthorized, "will message too long",
                    mqtt::ReasonCode::PacketTooLarge);
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
    will.properties = forwarded_properties(c.will->properties);
    if (mqtt5_) {
      mqtt5_->will_delay =
          c.will->properties.integer(mqtt::PropertyId::WillDelayInterval).value_or(0);
    }
    if (auto expiry = c.will->properties.integer(mqtt::PropertyId::MessageExpiryInterval)) {
      // Counted from the time the will is published (see finish).
      will.expiry = static_cast<std::int64_t>(*expiry) * 1000;
    }
    will_ = std::make_unique<Message>(std::move(will));
  }

  mqtt::Properties connack_properties;
  std::optional<std::uint32_t> session_expiry;  // 3.1.1: clean session says
  if (mqtt5) {
    if (c.client_id.empty()) {
      c.client_id = assigned_client_id();
      connack_properties.add(mqtt::PropertyId::AssignedClientIdentifier, c.client_id);
    }
    session_expiry = c.properties.integer(mqtt::PropertyId::SessionExpiryInterval).value_or(0);
    mqtt5_->connect_session_expiry = *session_expiry;
    if (auto receive_maximum = c.properties.integer(mqtt::PropertyId::ReceiveMaximum)) {
      window_ = std::min<std::size_t>(window_, *receive_maximum);
    }
    connack_properties.add(mqtt::PropertyId::TopicAliasMaximum, kTopicAliasMaximum);
    mqtt5_->client_alias_maximum = static_cast<std::uint16_t>(
        c.properties.integer(mqtt::PropertyId::TopicAliasMaximum).value_or(0));
    // The QoS 1/2 messages a client may send before their acknowledgement: beyond, the hub
    // would stop reading it anyway (message.ingress.qos1.buffer.size).
    mqtt5_->receive_maximum =
        std::min<std::size_t>(broker_.config().message.ingress.qos1_buffer_size, 65535);
    if (mqtt5_->receive_maximum < 65535) {
      connack_properties.add(mqtt::PropertyId::ReceiveMaximum,
                             static_cast<std::uint32_t>(mqtt5_->receive_maximum));
    }
    const std::size_t maximum_packet = limits_.max_remaining_length + 5;
    if (maximum_packet < mqtt::kMaxRemainingLength) {
      connack_properties.add(mqtt::PropertyId::MaximumPacketSize,
                             static_cast<std::uint32_t>(maximum_packet));
      limits_.maximum_packet_size = maximum_packet;
    }
  }

  client_id_ = c.client_id.empty() ? generated_client_id() : c.client_id;
  // The server closes after 1.5 times the keepalive without a packet [MQTT-3.1.2-24].
  keepalive_ = std::chrono::milliseconds(c.keep_alive * 1500);
  deadline_ = c.keep_alive > 0 ? Clock::now() + keepalive_ : Clock::time_point::max();
  arm_watchdog();  // watched from now on if it has a keepalive

  const bool persistent = session_expiry ? *session_expiry > 0 : !c.clean_session;
  auto attached =
      broker_.attach(client_id_, c.clean_session, shared_from_this(), authorizer_, session_expiry);
  if (attached.refused) {
    broker_.stats().auth_failures.fetch_add(1);
    will_.reset();
    return refuse(mqtt::ConnectReturnCode::IdentifierRejected,
                  "client id '" + client_id_ + "' belongs to a session of another principal");
  }
  session_ = attached.session;
  bool protocol_changed = false;
  {
    std::lock_guard lock(session_->mutex);
    if (session_->v5.load() != mqtt5) {
      // QoS 0 packets encoded for the other protocol are not sent.
      memory::note_freed(session_->pending.qos0_bytes());
      session_->pending.drop_qos0();
      session_->v5.store(mqtt5);
      protocol_changed = true;
    }
    std::uint32_t maximum_packet_size = 0;
    if (mqtt5) {
      maximum_packet_size = c.properties.integer(mqtt::PropertyId::MaximumPacketSize).value_or(0);
    }
    if ((session_->maximum_packet_size.exchange(maximum_packet_size) != 0) !=
        (maximum_packet_size != 0)) {
      protocol_changed = true;
    }
    const bool encode_at_write = mqtt5_ && mqtt5_->client_alias_maximum > 0;
    if (session_->encode_at_write.exchange(encode_at_write) != encode_at_write) {
      protocol_changed = true;
    }
  }
  if (protocol_changed) broker_.protocol_changed();
  connected_ = true;
  broker_.stats().connections.fetch_add(1);
  broker_.stats().connects.fetch_add(1);
  if (will_ && broker_.store()) {
    broker_.store()->set_will(client_id_, std::make_shared<const Message>(*will_));
  } else if (attached.took_over && broker_.store()) {
    // The stored will was the previous connection's, which does not clear it (see finish).
    broker_.store()->clear_will(client_id_);
  }
  mqtt::Connack ack{attached.present, mqtt::ConnectReturnCode::Accepted};
  ack.properties = std::move(connack_properties);
  send(ack);
  broker_.deliver_held(session_);
  broker_.log().debug("client '{}' ({}) connected, MQTT {}, {} session, keepalive {}s{}",
                      client_id_, remote(), mqtt5 ? "5" : (v31 ? "3.1" : "3.1.1"),
                      persistent ? "persistent" : "clean", c.keep_alive,
                      attached.present ? ", session resumed" : "");
  return Next::Continue;
}

Connection::Next Connection::on_publish(const mqtt::PublishView& view) {
  mqtt::PublishView p = view;
  std::string_view forwarded;  // MQTT 5 properties passed on
  std::int64_t expiry = 0;
  bool utf8 = false;
  if (v5() && !p.properties.empty()) {
    if (on_publish_v5(p, mqtt5_->forwarded, expiry, utf8) == Next::Close) return Next::Close;
    forwarded = mqtt5_->forwarded;
  }
  // Most clients publish to a few topics over and over: the last one that passed the checks and
  // the ACL is not checked again.
  const bool checked = !checked_topic_.empty() && p.topic == checked_topic_;
  if (!checked) {
    if (auto problem = check_publish_topic(p.topic); !problem.empty()) {
      violation(mqtt::ReasonCode::TopicNameInvalid, "PUBLISH refused: " + problem);
      return Next::Close;
    }
  }
  if (p.payload.size() > broker_.config().message.length_max.bytes) {
    violation(mqtt::ReasonCode::PacketTooLarge,
              "message of " + std::to_string(p.payload.size()) +
                  " bytes exceeds message.length.max (" +
                  std::to_string(broker_.config().message.length_max.bytes) + ")");
    return Next::Close;
  }
  broker_.count_message_in(p.qos);
  const std::uint16_t id = p.packet_id;
  if (p.qos == 2) {
    std::lock_guard lock(session_->mutex);
    if (!session_->add_incoming_qos2(id)) {
      // A duplicate of a message already received: acknowledge again, do not deliver again.
      mqtt::encode(mqtt::Pubrec{id}, control_, version_);
      wake();
      return Next::Continue;
    }
  }
  if (mqtt5_ && p.qos > 0 && mqtt5_->incoming_inflight >= mqtt5_->receive_maximum) {
    if (p.qos == 2) {
      std::lock_guard lock(session_->mutex);
      session_->remove_incoming_qos2(id);
    }
    violation(mqtt::ReasonCode::ReceiveMaximumExceeded,
              "more than Receive Maximum (" + std::to_string(mqtt5_->receive_maximum) +
                  ") QoS 1/2 messages unacknowledged");
    return Next::Close;
  }
  // A payload announced as UTF-8 that is not: refused, not routed (3.3.2.3.2).
  if (utf8 && !mqtt::is_valid_utf8(p.payload)) {
    if (p.qos == 0) {
      violation(mqtt::ReasonCode::PayloadFormatInvalid,
                "PUBLISH to '" + std::string(p.topic) +
                    "': the payload is not UTF-8 (Payload Format Indicator 1)");
      return Next::Close;
    }
    broker_.log().warn(
        "client '{}': PUBLISH to '{}' with Payload Format Indicator 1 and a payload that is not "
        "UTF-8: refused",
        client_id_, p.topic);
    refuse_publish(p, mqtt::ReasonCode::PayloadFormatInvalid);
    return Next::Continue;
  }
  if (!checked) {
    if (is_reserved_topic(p.topic)) {
      broker_.count_reserved(client_id_, p.topic);
      refuse_publish(p, mqtt::ReasonCode::NotAuthorized);
      return Next::Continue;
    }
    if (!authorizer_->can_publish(p.topic)) {
      broker_.stats().publish_denied.fetch_add(1);
      broker_.log().warn("client '{}': not permitted to publish to '{}'; message dropped",
                         client_id_, p.topic);
      refuse_publish(p, mqtt::ReasonCode::NotAuthorized);
      return Next::Continue;
    }
    checked_topic_.assign(p.topic);
  }
  const MessageView m{p.topic, p.payload, p.qos, p.retain, 0, forwarded, expiry, session_.get()};
  if (m.qos == 0) {
    broker_.publish(m);
    return Next::Continue;
  }
  ++pending_commits_;
  if (mqtt5_) ++mqtt5_->incoming_inflight;
  if (!committed_) committed_ = std::make_unique<Committed>();
  const std::uint8_t qos = m.qos;
  broker_.publish(
      m, [self = shared_from_this(), id, qos] { self->on_committed(id, qos); },
      qos == 2 ? session_.get() : nullptr, id);
  return Next::Continue;
}

Connection::Next Connection::on_publish_v5(mqtt::PublishView& p, std::string& forwarded,
                                           std::int64_t& expiry, bool& utf8) {
  const mqtt::Properties& properties = mqtt5_->publish_properties;
  if (properties.find(mqtt::PropertyId::SubscriptionIdentifier)) {
    violation(mqtt::ReasonCode::ProtocolError,
              "PUBLISH from a client must not carry a Subscription Identifier");
    return Next::Close;
  }
  if (auto alias = properties.integer(mqtt::PropertyId::TopicAlias)) {
    if (*alias == 0 || *alias > kTopicAliasMaximum) {
      violation(mqtt::ReasonCode::TopicAliasInvalid, "Topic Alias " + std::to_string(*alias) +
                                                         " is not within 1.." +
                                                         std::to_string(kTopicAliasMaximum));
      return Next::Close;
    }
    auto& aliases = mqtt5_->topic_aliases;
    if (aliases.size() < *alias) aliases.resize(*alias);
    std::string& topic = aliases[*alias - 1];
    if (!p.topic.empty()) {
      topic.assign(p.topic);
    } else if (topic.empty()) {
      violation(mqtt::ReasonCode::ProtocolError,
                "Topic Alias " + std::to_string(*alias) + " was never set");
      return Next::Close;
    }
    p.topic = topic;
  }
  utf8 = properties.integer(mqtt::PropertyId::PayloadFormatIndicator).value_or(0) == 1;
  const auto interval = properties.integer(mqtt::PropertyId::MessageExpiryInterval);
  if (!interval && !properties.find(mqtt::PropertyId::TopicAlias)) {
    // Nothing stays behind: the bytes as they came are what forwarded_properties() would write.
    forwarded.assign(p.properties);
  } else {
    forwarded = forwarded_properties(properties);
  }
  if (interval) {
    expiry = unix_millis() + static_cast<std::int64_t>(*interval) * 1000;
  }
  return Next::Continue;
}

void Connection::refuse_publish(const mqtt::PublishView& p, mqtt::ReasonCode reason) {
  if (!v5()) reason = mqtt::ReasonCode::Success;
  if (p.qos == 1) send(mqtt::Puback{p.packet_id, reason, {}});
  if (p.qos == 2) {
    send(mqtt::Pubrec{p.packet_id, reason, {}});
    // A PUBREC with an error code ends the exchange: no PUBREL comes.
    if (reason != mqtt::ReasonCode::Success) {
      std::lock_guard lock(session_->mutex);
      session_->remove_incoming_qos2(p.packet_id);
    }
  }
}

// The store runs the callbacks of a connection's messages in commit order, under its commit lock,
// on whichever thread committed them: they wait in committed_, and one post per batch sends their
// acknowledgements from the connection's thread, in that order (a post per message, from another
// worker or the writer thread, woke this worker up as often). The acknowledgements go after the
// handlers already due on that thread, such as a subscriber's writer: a publisher acknowledged
// at once, before that writer ran, overran clean sessions' queues.
void Connection::on_committed(std::uint16_t packet_id, std::uint8_t qos) {
  bool first = false;
  {
    std::lock_guard lock(committed_->mutex);
    first = committed_->ids.empty();
    committed_->ids.emplace_back(packet_id, qos);
  }
  const bool handed_over = std::this_thread::get_id() != home_thread_;
  if (handed_over) broker_.stats().handed_over.fetch_add(1, std::memory_order_relaxed);
  if (!first) return;
  if (handed_over) broker_.stats().handovers.fetch_add(1, std::memory_order_relaxed);
  asio::post(strand_, [self = shared_from_this()] { self->acknowledge_committed(); });
}

void Connection::acknowledge_committed() {
  thread_local std::vector<std::pair<std::uint16_t, std::uint8_t>> ids;
  {
    std::lock_guard lock(committed_->mutex);
    if (committed_->ids.empty()) return;
    ids.swap(committed_->ids);
  }
  for (const auto& [packet_id, qos] : ids) committed(packet_id, qos);
  ids.clear();
}

void Connection::committed(std::uint16_t packet_id, std::uint8_t qos) {
  --pending_commits_;
  resume_.cancel();
  if (closed_) return;
  if (qos == 1) {
    if (mqtt5_ && mqtt5_->incoming_inflight > 0) --mqtt5_->incoming_inflight;
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
  const std::size_t window = window_;
  if (window_full_ && (session_->inflight.size() <= window / 2 ||
                       (refill_due_ != Clock::time_point{} && Clock::now() >= refill_due_))) {
    window_full_ = false;
    refill_due_ = {};
  }
  return !window_full_ && session_->inflight.size() < window;
}

void Connection::on_pubrec(std::uint16_t packet_id) {
  std::int64_t stored = 0;
  std::optional<Outgoing> shared;  // a shared subscription's delivery, received by this member
  {
    std::lock_guard lock(session_->mutex);
    auto it = session_->inflight.find(packet_id);
    if (it != session_->inflight.end() && it->second.out.qos == 2 && !it->second.released) {
      it->second.released = true;
      if (it->second.out.stored) stored = it->second.out.message->id;
      if (it->second.out.share != 0) shared = it->second.out;
    }
  }
  if (shared) broker_.received_shared(*shared);
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
  if (!session_ || disconnecting_) return;
  const auto& egress = broker_.config().message.egress;
  std::array<std::uint64_t, 3> sent{};                // by QoS
  thread_local std::vector<std::int64_t> first_sent;  // stored deliveries sent the first time
  first_sent.clear();
  std::unique_lock lock(session_->mutex);
  if (session_->connection.lock().get() != this) return;
  const auto now = Clock::now();
  // The clock for Message Expiry, read once and only for a message that expires: a write of
  // QoS 0 packets encoded by their publisher, or of messages without expiry, reads none.
  std::int64_t wall_clock = 0;
  auto wall = [&wall_clock](const Message& m) {
    if (m.expiry != 0 && wall_clock == 0) wall_clock = unix_millis();
    return wall_clock;
  };
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
        encode_delivery(out, *f.out.message, f.out.qos, f.out.retain, true, id,
                        wall(*f.out.message));
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
    if (!o.released && expired(o.message->expiry, wall(*o.message))) {
      // Never delivered once expired; a stored delivery leaves the store as if acknowledged.
      broker_.acknowledged(*session_, o);
      pending.pop_front();
      continue;
    }
    if (!o.released && too_large_for_client(*o.message, o.qos, o.retain, wall(*o.message))) {
      // Dropped for this client, as if it had acknowledged it [MQTT-3.1.2-25].
      broker_.log().debug("client '{}': message on '{}' exceeds its Maximum Packet Size; dropped",
                          client_id_, o.message->topic);
      broker_.acknowledged(*session_, o);
      pending.pop_front();
      continue;
    }
    const std::uint8_t qos = o.qos;
    if (o.qos == 0) {
      encode_delivery(out, *o.message, 0, o.retain, false, 0, wall(*o.message));
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
        encode_delivery(out, *o.message, o.qos, o.retain, o.dup, id, wall(*o.message));
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

void Connection::encode_delivery(std::string& out, const Message& m, std::uint8_t qos, bool retain,
                                 bool dup, std::uint16_t packet_id, std::int64_t now, bool alias) {
  if (!v5()) {
    mqtt::encode_publish(out, m.topic, m.payload, qos, retain, dup, packet_id);
    return;
  }
  // The identifiers of the session's subscriptions that match (its mutex is held).
  thread_local std::vector<std::uint32_t> identifiers;
  identifiers.clear();
  if (session_->identified) {
    for (const auto& [filter, sub] : session_->subscriptions) {
      if (sub.identifier != 0 && mqtt::topic_matches(filter, m.topic)) {
        identifiers.push_back(sub.identifier);
      }
    }
  }
  // A topic sent before goes as its alias and an empty topic; the first ones get an alias.
  std::uint16_t topic_alias = 0;
  std::string_view topic = m.topic;
  if (alias && mqtt5_ && mqtt5_->client_alias_maximum > 0) {
    auto& sent = mqtt5_->sent_aliases;
    if (auto it = sent.find(m.topic); it != sent.end()) {
      topic_alias = it->second;
      topic = {};
    } else if (sent.size() < mqtt5_->client_alias_maximum) {
      topic_alias = static_cast<std::uint16_t>(sent.size() + 1);
      sent.emplace(m.topic, topic_alias);
    }
  }
  const std::uint32_t expiry = expiry_seconds_left(m.expiry, now);
  if (m.properties.empty() && expiry == 0 && identifiers.empty() && topic_alias == 0) {
    mqtt::encode_publish_v5(out, topic, m.payload, qos, retain, dup, packet_id, {});
    return;
  }
  thread_local std::string properties;
  properties.clear();
  append_delivery_properties(properties, m.properties, expiry, identifiers, topic_alias);
  mqtt::encode_publish_v5(out, topic, m.payload, qos, retain, dup, packet_id, properties);
}

bool Connection::too_large_for_client(const Message& m, std::uint8_t qos, bool retain,
                                      std::int64_t now) {
  if (!v5()) return false;
  const std::uint32_t limit = session_->maximum_packet_size.load(std::memory_order_relaxed);
  if (limit == 0) return false;
  thread_local std::string packet;
  packet.clear();
  encode_delivery(packet, m, qos, retain, false, 1, now, false);
  // The topic with an alias at worst (3 bytes).
  return packet.size() + (mqtt5_->client_alias_maximum > 0 ? 3 : 0) > limit;
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
