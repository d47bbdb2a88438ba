#include "baetyl/mqtt/client.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <deque>
#include <map>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "baetyl/config/units.h"
#include "baetyl/mqtt/codec.h"
#include "baetyl/mqtt/transport.h"

namespace baetyl::mqtt {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kFirstBackoff = 500ms;
constexpr std::size_t kMaxWriteBatch = 64 * 1024;
constexpr std::size_t kMaxWindow = 60000;  // leaves packet ids for subscriptions
constexpr std::size_t kReadChunk = 16 * 1024;
// Silence, while PUBACKs are awaited, after which the TCP acknowledgement goes out at once.
constexpr auto kAckStallDelay = 10ms;

std::string show(std::chrono::nanoseconds d) { return config::format_duration(d); }

bool is_failure(ReasonCode code) { return static_cast<std::uint8_t>(code) >= 0x80; }

std::string hex(std::uint8_t code) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  return {'0', 'x', kDigits[code >> 4], kDigits[code & 15]};
}

// "Not authorized (0x87)", with the packet's Reason String when it has one.
std::string describe_reason(ReasonCode code, const Properties& properties) {
  std::string text =
      std::string(to_string(code)) + " (" + hex(static_cast<std::uint8_t>(code)) + ")";
  if (auto reason = properties.string(PropertyId::ReasonString))
    text += ": " + std::string(*reason);
  return text;
}

class ReasonCategory : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "mqtt5"; }
  std::string message(int value) const override {
    return describe_reason(static_cast<ReasonCode>(value), {});
  }
};

template <class Fn, class... Args>
void invoke_safely(spdlog::logger& log, const char* what, const Fn& fn, Args&&... args) {
  if (!fn) return;
  try {
    fn(std::forward<Args>(args)...);
  } catch (const std::exception& e) {
    log.error("MQTT client: {} callback threw: {}", what, e.what());
  } catch (...) {
    log.error("MQTT client: {} callback threw an unknown exception", what);
  }
}

// Closes a transport when a deadline passes, unless cancelled first.
class Watchdog {
 public:
  Watchdog(asio::any_io_executor executor, std::chrono::nanoseconds timeout,
           std::shared_ptr<Transport> transport)
      : timer_(executor), fired_(std::make_shared<bool>(false)) {
    timer_.expires_after(timeout);
    timer_.async_wait([transport, fired = fired_](error_code ec) {
      if (ec) return;
      *fired = true;
      transport->close();
    });
  }
  ~Watchdog() { timer_.cancel(); }
  bool fired() const { return *fired_; }

 private:
  asio::steady_timer timer_;
  std::shared_ptr<bool> fired_;
};

}  // namespace

const boost::system::error_category& reason_category() {
  static const ReasonCategory category;
  return category;
}

error_code make_error_code(ReasonCode code) { return {static_cast<int>(code), reason_category()}; }

struct Client::Impl : std::enable_shared_from_this<Client::Impl> {
  struct Outgoing {
    Publish packet;
    PublishHandler done;
  };

  Impl(Client& owner, ClientConfig config, std::shared_ptr<spdlog::logger> log,
       asio::io_context* shared_io)
      : owner(owner),
        io(shared_io ? *shared_io : own_io),
        config(std::move(config)),
        log(std::move(log)),
        window(std::clamp<std::size_t>(static_cast<std::size_t>(this->config.buffer_size), 1,
                                       kMaxWindow)),
        version(this->config.protocol),
        client_id(this->config.client_id),
        subscriptions(this->config.subscriptions) {
    if (v5() && this->config.max_packet_size) {
      limits.maximum_packet_size = static_cast<std::size_t>(this->config.max_packet_size->bytes);
    }
  }

  Client& owner;
  asio::io_context own_io;  // used without a shared IoThread
  asio::io_context& io;

  // Publishes and acknowledgements handed over by other threads: one post wakes the io thread
  // for all those handed over before it runs, not one post (and wake-up) each.
  struct Handover {
    std::optional<Outgoing> publish;  // else an acknowledgement
    Receipt receipt;
  };
  std::mutex handover_mutex;
  std::vector<Handover> handed_over;  // guarded by handover_mutex
  bool handover_posted = false;       // guarded by handover_mutex
  // Guarded by handover_mutex: stop() has finished with the loop; nothing is posted any more
  // (on a shared thread it would run after the Client is gone).
  bool closed = false;
  std::vector<Handover> taking_over;  // io thread: the batch being applied

  void hand_over(Handover item) {
    std::optional<Outgoing> refused;
    bool post = false;
    {
      std::lock_guard lock(handover_mutex);
      if (closed) {
        refused = std::move(item.publish);
      } else {
        handed_over.push_back(std::move(item));
        post = !std::exchange(handover_posted, true);
      }
    }
    if (refused) complete(*refused, asio::error::operation_aborted);
    if (post) asio::post(io, [impl = shared_from_this()] { impl->take_over(); });
  }

  // After the loop has ended: what was handed over before is applied (publishes complete with
  // operation_aborted), later hand-overs complete at once.
  void close_handover() {
    std::lock_guard lock(handover_mutex);
    closed = true;
  }

  // Whether a call on the io thread may apply its publish or acknowledgement at once: nothing
  // handed over before it waits (it would go out later than this one), and stop() has not
  // closed the hand-over.
  bool may_apply_here() {
    std::lock_guard lock(handover_mutex);
    return handed_over.empty() && !closed;
  }

  // async_publish() on the io thread: what take_over() does for a publish, without the post.
  void publish_here(Outgoing item) {
    if (stopping) {
      complete(item, asio::error::operation_aborted);
      return;
    }
    pending.push_back(std::move(item));
    wake_writer();
  }

  // ack() on the io thread: the PUBACK is queued at once. Messages held back by the receive
  // window are delivered from a handler of their own, never from inside the caller (which may be
  // this client's on_message).
  void ack_here(const Receipt& receipt) {
    release(receipt);
    if (!held.empty() && !std::exchange(held_delivery_posted, true)) {
      asio::post(io, [impl = shared_from_this()] {
        impl->held_delivery_posted = false;
        impl->deliver_held();
      });
    }
    wake_writer();
  }

  void take_over() {
    {
      std::lock_guard lock(handover_mutex);
      taking_over.swap(handed_over);
      handover_posted = false;
    }
    for (auto& item : taking_over) {
      if (!item.publish) {
        release(item.receipt);
      } else if (stopping) {
        complete(*item.publish, asio::error::operation_aborted);
      } else {
        pending.push_back(std::move(*item.publish));
      }
    }
    taking_over.clear();
    deliver_held();
    wake_writer();
  }

  ClientConfig config;
  std::shared_ptr<spdlog::logger> log;
  Endpoint endpoint;
  std::shared_ptr<asio::ssl::context> tls;
  ClientCallbacks callbacks;
  const std::size_t window;
  const ProtocolVersion version;
  DecodeLimits limits;  // MQTT 5: our Maximum Packet Size

  bool v5() const { return version == ProtocolVersion::V5; }

  // All below is touched only on the io thread.
  bool stopping = false;
  bool disconnect_requested = false;
  // MQTT 5: the reason code of a DISCONNECT the client sends because the broker broke the
  // protocol, and what it logs; unset for a normal disconnection.
  std::optional<ReasonCode> disconnect_code;
  std::string protocol_failure;
  asio::steady_timer failure_deadline{io};
  bool session_open = false;
  std::uint64_t session_id = 0;
  std::string disconnect_reason;
  std::string client_id;  // the configured one, or the one the broker assigned (MQTT 5)
  std::shared_ptr<Transport> transport;
  int live_session_tasks = 0;

  std::deque<Outgoing> pending;                     // not yet written in this session
  std::map<std::uint64_t, Outgoing> inflight;       // QoS 1 written, awaiting PUBACK, by order
  std::unordered_map<std::uint16_t, std::uint64_t> inflight_ids;
  std::deque<std::uint64_t> resend;                 // inflight entries to write again (DUP)
  std::size_t sent_inflight = 0;                    // inflight entries written on this connection
  std::uint64_t next_sequence = 0;
  std::uint16_t last_packet_id = 0;
  std::string control;                              // encoded acks, pings, (un)subscribes
  std::vector<TopicInfo> subscriptions;
  std::map<std::uint16_t, std::pair<std::vector<TopicInfo>, SubscribeHandler>> awaiting_suback;
  std::map<std::uint16_t, bool> awaiting_unsuback;

  // The receive window (manual_ack with receive_window > 0), for the open session.
  std::unordered_set<std::uint16_t> delivered_qos1;  // handed to on_message, not yet acked
  std::size_t delivered_qos0 = 0;                    // the same for QoS 0
  std::deque<Message> held;                          // arrived while the window was full
  std::unordered_set<std::uint16_t> held_qos1;       // packet ids in `held`
  bool read_stopped = false;                         // the read loop waits for room
  bool held_delivery_posted = false;                 // ack_here() posted deliver_held()

  // What the broker's CONNACK allows (MQTT 5; with 3.1.1 our own settings and no limits).
  std::size_t send_window = 0;  // QoS 1 messages in flight: ours, bounded by its Receive Maximum
  std::chrono::seconds keepalive_interval{0};  // ours, or its Server Keep Alive
  std::uint32_t broker_max_packet = 0;         // 0: no limit
  std::uint8_t broker_max_qos = 1;
  bool broker_retain = true;

  Clock::time_point last_write{};
  Clock::time_point last_read{};
  bool ack_stall_watched = false;
  asio::steady_timer ack_stall_timer{io};
  bool ping_outstanding = false;
  Clock::time_point ping_sent{};

  asio::steady_timer write_signal{io, Clock::time_point::max()};
  asio::steady_timer read_signal{io, Clock::time_point::max()};
  asio::steady_timer keepalive_timer{io};
  asio::steady_timer backoff_timer{io};
  asio::steady_timer stop_deadline{io};
  asio::steady_timer tasks_done{io, Clock::time_point::max()};

  // The keepalive the broker is told (whole seconds), which is also the ping interval.
  std::chrono::seconds keepalive() const {
    return std::chrono::duration_cast<std::chrono::seconds>(config.keepalive);
  }

  // ---- queueing (io thread) ----

  void wake_writer() { write_signal.cancel(); }
  void wake_reader() {
    if (read_stopped) read_signal.cancel();
  }

  // ---- receiving (io thread) ----

  bool windowed() const { return callbacks.manual_ack && callbacks.receive_window > 0; }
  bool window_full() const {
    return delivered_qos1.size() + delivered_qos0 >= callbacks.receive_window;
  }

  // Reading stops while a message waits for room in the window, unless an acknowledgement of
  // our own is due on this connection (it would wait behind the unread messages).
  bool reading_held_back() const {
    return !held.empty() && inflight.empty() && awaiting_suback.empty() &&
           awaiting_unsuback.empty();
  }

  void deliver(Message& message) {
    const std::uint8_t qos = message.publish.qos;
    if (windowed()) {
      if (qos == 1) delivered_qos1.insert(message.publish.packet_id);
      if (qos == 0) ++delivered_qos0;
    }
    invoke_safely(*log, "message", callbacks.on_message, message);
    if (qos == 1 && !callbacks.manual_ack) queue_control(Puback{message.publish.packet_id});
  }

  void receive(Message message) {
    if (windowed() && message.publish.qos < 2) {
      const std::uint16_t id = message.publish.packet_id;
      // A broker may send a QoS 1 message it has no PUBACK for again on the same connection
      // (the hub does after message.egress.qos1.retry.interval). Until our PUBACK, that is the
      // same message [MQTT-4.3.2-2]: the module has it, or will get it, once.
      if (message.publish.qos == 1 && (delivered_qos1.count(id) || held_qos1.count(id))) return;
      if (!held.empty() || window_full()) {
        if (message.publish.qos == 1) held_qos1.insert(id);
        held.push_back(std::move(message));
        return;
      }
    }
    deliver(message);
  }

  void deliver_held() {
    while (session_open && !held.empty() && !window_full()) {
      Message message = std::move(held.front());
      held.pop_front();
      if (message.publish.qos == 1) held_qos1.erase(message.publish.packet_id);
      deliver(message);
    }
    if (held.empty()) wake_reader();
  }

  void release(const Receipt& receipt) {
    if (!session_open || session_id != receipt.session) return;
    if (receipt.qos == 0) {
      if (delivered_qos0 > 0) --delivered_qos0;
      return;
    }
    // Acknowledged twice: the second PUBACK could acknowledge a later message with the same id.
    if (windowed() && delivered_qos1.erase(receipt.packet_id) == 0) return;
    encode(Puback{receipt.packet_id}, control, version);
  }

  void forget_received() {
    held.clear();
    held_qos1.clear();
    delivered_qos1.clear();
    delivered_qos0 = 0;
  }

  bool packet_id_in_use(std::uint16_t id) const {
    return inflight_ids.count(id) || awaiting_suback.count(id) || awaiting_unsuback.count(id);
  }

  std::uint16_t allocate_packet_id() {
    do {
      last_packet_id = static_cast<std::uint16_t>(last_packet_id + 1);
    } while (last_packet_id == 0 || packet_id_in_use(last_packet_id));
    return last_packet_id;
  }

  void queue_control(const Packet& packet) {
    encode(packet, control, version);
    wake_writer();
  }

  void queue_subscribe(std::vector<TopicInfo> topics, SubscribeHandler done) {
    if (topics.empty()) return;
    Subscribe subscribe;
    subscribe.packet_id = allocate_packet_id();
    for (const auto& t : topics) subscribe.subscriptions.push_back(to_subscription(t));
    awaiting_suback[subscribe.packet_id] = {std::move(topics), std::move(done)};
    queue_control(subscribe);
    wake_reader();
  }

  void complete(Outgoing& item, error_code ec) {
    invoke_safely(*log, "publish", item.done, ec);
    owner.release_outstanding();
  }

  bool may_send_qos1() const { return sent_inflight < send_window; }

  bool has_work() const {
    if (!control.empty() || disconnect_requested) return true;
    if (!resend.empty() && may_send_qos1()) return true;
    if (pending.empty()) return false;
    return pending.front().packet.qos == 0 || (inflight.size() < window && may_send_qos1());
  }

  // MQTT 5: why the broker's CONNACK does not let `packet` be sent, if it does not.
  std::optional<ReasonCode> refusal(const Publish& packet) const {
    if (packet.qos > broker_max_qos) return ReasonCode::QosNotSupported;
    if (packet.retain && !broker_retain) return ReasonCode::RetainNotSupported;
    if (broker_max_packet != 0 && encoded_size(packet, version) > broker_max_packet) {
      return ReasonCode::PacketTooLarge;
    }
    return std::nullopt;
  }

  void refuse(Outgoing& item, ReasonCode why) {
    std::string detail;
    if (why == ReasonCode::PacketTooLarge) {
      detail = ": the message is " + std::to_string(encoded_size(item.packet, version)) +
               " bytes, the broker's maximum packet size " + std::to_string(broker_max_packet);
    }
    log->warn("MQTT client {}: not sending the message on topic {}: {}{}", client_id,
              item.packet.topic, describe_reason(why, {}), detail);
    complete(item, make_error_code(why));
  }

  // Moves what may be written now into one buffer. QoS 0 messages written are returned so they
  // can complete once the write succeeds.
  std::vector<Outgoing> build_batch(std::string& out) {
    std::vector<Outgoing> written_qos0;
    out.swap(control);
    control.clear();
    while (!resend.empty() && out.size() < kMaxWriteBatch && may_send_qos1()) {
      auto it = inflight.find(resend.front());
      resend.pop_front();
      if (it == inflight.end()) continue;
      if (auto why = v5() ? refusal(it->second.packet) : std::nullopt) {
        Outgoing item = std::move(it->second);
        inflight_ids.erase(item.packet.packet_id);
        inflight.erase(it);
        refuse(item, *why);
        continue;
      }
      Publish again = it->second.packet;
      again.dup = true;
      encode(again, out, version);
      ++sent_inflight;
    }
    while (!pending.empty() && out.size() < kMaxWriteBatch) {
      Outgoing& front = pending.front();
      if (auto why = v5() ? refusal(front.packet) : std::nullopt) {
        refuse(front, *why);
        pending.pop_front();
        continue;
      }
      if (front.packet.qos > 0) {
        if (inflight.size() >= window || !may_send_qos1()) break;
        front.packet.packet_id = allocate_packet_id();
        front.packet.dup = false;
        encode(front.packet, out, version);
        ++sent_inflight;
        std::uint64_t sequence = next_sequence++;
        inflight_ids[front.packet.packet_id] = sequence;
        inflight.emplace(sequence, std::move(front));
        wake_reader();
      } else {
        encode(front.packet, out, version);
        written_qos0.push_back(std::move(front));
      }
      pending.pop_front();
    }
    return written_qos0;
  }

  // ---- connection lifecycle ----

  asio::awaitable<void> run() {
    auto self = shared_from_this();
    auto delay = std::chrono::duration_cast<std::chrono::nanoseconds>(kFirstBackoff);
    const auto max_delay = std::max<std::chrono::nanoseconds>(config.interval, kFirstBackoff);
    while (!stopping) {
      transport = Transport::make_client(io.get_executor(), tls);
      std::string residual;
      bool session_present = false;
      std::string failure = co_await establish(transport, residual, session_present);
      if (failure.empty()) {
        delay = kFirstBackoff;
        co_await run_session(transport, std::move(residual), session_present);
      } else if (!stopping) {
        log->warn("MQTT client {}: cannot connect to {}: {}; retrying in {}", config.client_id,
                  endpoint.str(), failure, show(delay));
        invoke_safely(*log, "connect error", callbacks.on_connect_error, failure);
      }
      transport->close();
      transport.reset();
      if (stopping) break;
      backoff_timer.expires_after(delay);
      error_code ec;
      co_await backoff_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      delay = std::min(delay * 2, max_delay);
    }
    stop_deadline.cancel();
    fail_everything(asio::error::operation_aborted);
  }

  // TCP/TLS connect, CONNECT and CONNACK within `timeout`. Returns "" on success.
  asio::awaitable<std::string> establish(std::shared_ptr<Transport> t, std::string& residual,
                                         bool& session_present) {
    Watchdog watchdog(io.get_executor(), config.timeout, t);
    auto timed_out = [&] { return "timed out after " + show(config.timeout); };
    error_code ec;
    co_await t->connect(endpoint, ec);
    if (watchdog.fired()) co_return timed_out();
    if (ec) co_return ec.message();

    std::string bytes = encode(make_connect(), version);
    co_await t->write(asio::buffer(bytes), ec);
    if (watchdog.fired()) co_return timed_out();
    if (ec) co_return "sending CONNECT: " + ec.message();

    std::string buffer;
    for (;;) {
      if (v5() && answered_as_311(buffer)) {
        co_return "connection refused: the broker answered with an MQTT 3.1.1 CONNACK (" +
            std::string(
                to_string(static_cast<ConnectReturnCode>(static_cast<std::uint8_t>(buffer[3])))) +
            "): it does not speak MQTT 5; set protocol: 3.1.1";
      }
      auto result = decode(buffer, limits, version);
      if (result.status == DecodeStatus::Error) co_return "bad reply to CONNECT: " + result.error;
      if (result.status == DecodeStatus::Ok) {
        auto* connack = std::get_if<Connack>(&result.packet);
        if (!connack) {
          co_return "expected CONNACK, got " + std::string(to_string(type_of(result.packet)));
        }
        if (connack->return_code != ConnectReturnCode::Accepted) {
          co_return "connection refused: " + std::string(to_string(connack->return_code));
        }
        if (is_failure(connack->reason_code)) {
          co_return "connection refused: " +
              describe_reason(connack->reason_code, connack->properties);
        }
        apply_connack(*connack);
        session_present = connack->session_present;
        residual = buffer.substr(result.consumed);
        co_return "";
      }
      std::size_t old = buffer.size();
      buffer.resize(old + 256);
      std::size_t n = co_await t->read_some(asio::buffer(buffer.data() + old, 256), ec);
      buffer.resize(old + n);
      if (watchdog.fired()) co_return timed_out();
      if (ec) co_return "waiting for CONNACK: " + ec.message();
    }
  }

  Connect make_connect() const {
    Connect connect;
    connect.client_id = client_id;
    connect.clean_session = config.clean_session;
    connect.keep_alive = static_cast<std::uint16_t>(keepalive().count());
    if (!config.username.empty() || !config.password.empty()) connect.username = config.username;
    if (!config.password.empty()) connect.password = config.password;
    if (v5()) {
      connect.protocol_level = 5;
      auto& p = connect.properties;
      if (auto expiry = session_expiry_interval(config)) {
        p.add(PropertyId::SessionExpiryInterval, expiry);
      }
      // Absent means 65,535, the most the property can say.
      if (window < 65535) p.add(PropertyId::ReceiveMaximum, static_cast<std::uint32_t>(window));
      if (limits.maximum_packet_size != 0) {
        p.add(PropertyId::MaximumPacketSize,
              static_cast<std::uint32_t>(limits.maximum_packet_size));
      }
    }
    return connect;
  }

  // A 3.1.1 broker answers an MQTT 5 CONNECT with its own CONNACK (code 1), which has no
  // properties: Remaining Length 2, where an MQTT 5 CONNACK has at least 3.
  static bool answered_as_311(const std::string& buffer) {
    return buffer.size() >= 4 && static_cast<std::uint8_t>(buffer[0]) == 0x20 && buffer[1] == 2;
  }

  // The limits of this connection: with 3.1.1 our own settings, with MQTT 5 also what the
  // broker's CONNACK says.
  void apply_connack(const Connack& connack) {
    send_window = window;
    keepalive_interval = keepalive();
    broker_max_packet = 0;
    broker_max_qos = 1;
    broker_retain = true;
    if (!v5()) return;
    const auto& p = connack.properties;
    if (auto assigned = p.string(PropertyId::AssignedClientIdentifier)) {
      client_id = std::string(*assigned);
      log->info("MQTT client: the broker assigned the client identifier {}", client_id);
    }
    if (auto keep_alive = p.integer(PropertyId::ServerKeepAlive)) {
      keepalive_interval = std::chrono::seconds(*keep_alive);
    }
    if (auto receive_maximum = p.integer(PropertyId::ReceiveMaximum)) {
      send_window = std::min<std::size_t>(window, *receive_maximum);
    }
    broker_max_packet = p.integer(PropertyId::MaximumPacketSize).value_or(0);
    broker_max_qos = static_cast<std::uint8_t>(p.integer(PropertyId::MaximumQos).value_or(1));
    broker_retain = p.integer(PropertyId::RetainAvailable).value_or(1) != 0;
    owner.broker_max_packet_ = broker_max_packet;
  }

  asio::awaitable<void> run_session(std::shared_ptr<Transport> t, std::string residual,
                                    bool session_present) {
    auto self = shared_from_this();
    ++session_id;
    session_open = true;
    disconnect_reason.clear();
    ping_outstanding = false;
    last_write = Clock::now();
    forget_received();
    read_stopped = false;
    disconnect_requested = stopping;
    disconnect_code.reset();
    resend.clear();
    sent_inflight = 0;
    for (const auto& entry : inflight) resend.push_back(entry.first);
    if (!subscriptions.empty()) queue_subscribe(subscriptions, {});

    log->info("MQTT client {}: connected to {}{}{}", client_id, endpoint.str(),
              v5() ? " with MQTT 5" : "",
              inflight.empty() ? ""
                               : ", resending " + std::to_string(inflight.size()) +
                                     " unacknowledged message(s)");
    owner.set_connected(true);
    invoke_safely(*log, "connected", callbacks.on_connected, session_present);

    live_session_tasks = 2;
    auto on_task_done = [this, self](std::exception_ptr error) {
      if (error) {
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          close_session(std::string("internal error: ") + e.what());
        }
      }
      --live_session_tasks;
      tasks_done.cancel();
    };
    asio::co_spawn(io, read_loop(t, std::move(residual)), on_task_done);
    asio::co_spawn(io, keepalive_loop(), on_task_done);
    co_await write_loop(t);
    close_session("connection closed");
    while (live_session_tasks > 0) {
      error_code ec;
      co_await tasks_done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }

    owner.set_connected(false);
    forget_received();
    for (auto& [id, request] : awaiting_suback) {
      invoke_safely(*log, "subscribe", request.second, asio::error::not_connected,
                    std::vector<std::uint8_t>{});
    }
    awaiting_suback.clear();
    awaiting_unsuback.clear();
    if (!stopping) {
      log->warn("MQTT client {}: disconnected from {}: {}", config.client_id, endpoint.str(),
                disconnect_reason);
    }
    invoke_safely(*log, "disconnected", callbacks.on_disconnected, disconnect_reason);
  }

  // Ends the session because the broker broke the protocol: with MQTT 5 after a DISCONNECT with
  // `code` (what is queued goes first; the connection closes within a second regardless).
  void fail_session(ReasonCode code, const std::string& reason) {
    if (!v5() || !session_open || disconnect_requested) {
      close_session(reason);
      return;
    }
    disconnect_requested = true;
    disconnect_code = code;
    protocol_failure = reason + " (sent DISCONNECT " + describe_reason(code, {}) + ")";
    wake_writer();
    failure_deadline.expires_after(1s);
    failure_deadline.async_wait([self = shared_from_this(), session = session_id](error_code ec) {
      if (!ec && self->session_id == session) self->close_session(self->protocol_failure);
    });
  }

  void close_session(const std::string& reason) {
    if (!session_open) return;
    session_open = false;
    disconnect_reason = reason;
    failure_deadline.cancel();
    if (transport) transport->close();
    wake_writer();
    read_signal.cancel();
    keepalive_timer.cancel();
    ack_stall_timer.cancel();
  }

  asio::awaitable<void> write_loop(std::shared_ptr<Transport> t) {
    std::string buffer;
    while (session_open) {
      if (!has_work()) {
        write_signal.expires_at(Clock::time_point::max());
        error_code ignored;
        co_await write_signal.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
        continue;
      }
      buffer.clear();
      auto written_qos0 = build_batch(buffer);
      bool disconnect = disconnect_requested;
      if (disconnect) {
        encode(mqtt::Disconnect{disconnect_code.value_or(ReasonCode::NormalDisconnection), {}},
               buffer, version);
      }
      error_code ec;
      if (!buffer.empty()) co_await t->write(asio::buffer(buffer), ec);
      last_write = Clock::now();
      for (auto& item : written_qos0) complete(item, ec ? asio::error::connection_reset : ec);
      if (ec) {
        close_session("write failed: " + ec.message());
      } else if (disconnect) {
        close_session(disconnect_code ? protocol_failure : "client stopped");
      }
    }
  }

  asio::awaitable<void> read_loop(std::shared_ptr<Transport> t, std::string buffer) {
    std::size_t start = 0;
    std::array<char, kReadChunk> chunk;
    while (session_open) {
      // Handle every complete packet already buffered.
      for (;;) {
        auto result = decode(std::string_view(buffer).substr(start), limits, version);
        if (result.status == DecodeStatus::Incomplete) break;
        if (result.status == DecodeStatus::Error) {
          fail_session(result.reason, "protocol error from broker: " + result.error);
          co_return;
        }
        start += result.consumed;
        if (!handle(std::move(result.packet))) co_return;
      }
      if (start > 0) {
        buffer.erase(0, start);
        start = 0;
      }
      if (!inflight.empty() && !has_work()) watch_for_ack_stall();
      if (reading_held_back()) {
        read_stopped = true;
        while (session_open && reading_held_back()) {
          read_signal.expires_at(Clock::time_point::max());
          error_code ignored;
          co_await read_signal.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
        }
        read_stopped = false;
        // The PINGRESP deadline starts again: the answer may have waited unread.
        if (ping_outstanding) ping_sent = Clock::now();
        keepalive_timer.cancel();
        if (!session_open) co_return;
      }
      error_code ec;
      std::size_t n = co_await t->read_some(asio::buffer(chunk), ec);
      last_read = Clock::now();
      buffer.append(chunk.data(), n);
      if (ec) {
        close_session(ec == asio::error::eof ? "broker closed the connection"
                                             : "read failed: " + ec.message());
        co_return;
      }
    }
  }

  // We await PUBACKs and have nothing to write that would carry the TCP acknowledgement of what
  // we read. A broker writing with Nagle's algorithm (mosquitto) then holds its next PUBACKs back
  // until our delayed ACK, about 40 ms; when nothing arrives for kAckStallDelay, the ACK goes out
  // at once. Not at every read: while PUBACKs flow, Nagle gathers them into fewer, larger writes.
  void watch_for_ack_stall() {
    if (ack_stall_watched) return;
    ack_stall_watched = true;
    ack_stall_timer.expires_at(last_read + kAckStallDelay);
    ack_stall_timer.async_wait([self = shared_from_this(), session = session_id](error_code ec) {
      self->ack_stall_watched = false;
      if (ec || !self->session_open || self->session_id != session) return;
      if (self->inflight.empty() || self->has_work()) return;
      if (Clock::now() - self->last_read < kAckStallDelay) {
        self->watch_for_ack_stall();  // something arrived meanwhile: wait from there
      } else if (self->transport) {
        self->transport->acknowledge_now();
      }
    });
  }

  // While the read loop is held back by the receive window, a PINGRESP cannot be read: the
  // deadline waits, and pings go on so that the broker still hears from us.
  asio::awaitable<void> keepalive_loop() {
    if (keepalive_interval.count() <= 0) co_return;
    while (session_open) {
      auto now = Clock::now();
      Clock::time_point wake;
      if (ping_outstanding && !read_stopped) {
        wake = ping_sent + config.timeout;
        if (now >= wake) {
          close_session("no PINGRESP within " + show(config.timeout));
          co_return;
        }
      } else {
        wake = last_write + keepalive_interval;
        if (now >= wake) {
          if (!ping_outstanding) ping_sent = now;
          ping_outstanding = true;
          last_write = now;
          queue_control(Pingreq{});
          continue;
        }
      }
      keepalive_timer.expires_at(wake);
      error_code ignored;
      co_await keepalive_timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
  }

  // Returns false when the session must end.
  bool handle(Packet packet) {
    switch (type_of(packet)) {
      case PacketType::Publish: {
        auto& publish = std::get<Publish>(packet);
        // We announce no Topic Alias Maximum, so the broker may send no alias (3.2.2.3.8).
        if (v5() && publish.properties.find(PropertyId::TopicAlias)) {
          fail_session(ReasonCode::TopicAliasInvalid,
                       "the broker sent a Topic Alias, although the client allows none");
          return false;
        }
        std::uint8_t qos = publish.qos;
        std::uint16_t id = publish.packet_id;
        receive(Message{std::move(publish), session_id});
        if (qos == 2) queue_control(Pubrec{id});
        return true;
      }
      case PacketType::Puback: {
        const auto& puback = std::get<Puback>(packet);
        auto id = puback.packet_id;
        auto found = inflight_ids.find(id);
        if (found == inflight_ids.end()) {
          log->debug("MQTT client {}: PUBACK for unknown packet id {}", config.client_id, id);
          return true;
        }
        auto entry = inflight.find(found->second);
        inflight_ids.erase(found);
        if (sent_inflight > 0) --sent_inflight;
        if (entry != inflight.end()) {
          Outgoing item = std::move(entry->second);
          inflight.erase(entry);
          if (is_failure(puback.reason_code)) {
            log->warn("MQTT client {}: the broker refused the message on topic {}: {}", client_id,
                      item.packet.topic, describe_reason(puback.reason_code, puback.properties));
            complete(item, make_error_code(puback.reason_code));
          } else {
            complete(item, {});
          }
        }
        wake_writer();
        return true;
      }
      case PacketType::Pubrel:
        queue_control(Pubcomp{std::get<Pubrel>(packet).packet_id});
        return true;
      case PacketType::Suback:
        return handle_suback(std::get<Suback>(packet));
      case PacketType::Unsuback:
        awaiting_unsuback.erase(std::get<Unsuback>(packet).packet_id);
        return true;
      case PacketType::Pingresp:
        ping_outstanding = false;
        return true;
      case PacketType::Disconnect: {
        if (!v5()) break;
        const auto& disconnect = std::get<Disconnect>(packet);
        close_session("the broker disconnected: " +
                      describe_reason(disconnect.reason_code, disconnect.properties));
        return false;
      }
      default:
        break;
    }
    fail_session(ReasonCode::ProtocolError,
                 "unexpected " + std::string(to_string(type_of(packet))) + " from broker");
    return false;
  }

  bool handle_suback(const Suback& suback) {
    auto found = awaiting_suback.find(suback.packet_id);
    if (found == awaiting_suback.end()) return true;
    auto [topics, done] = std::move(found->second);
    awaiting_suback.erase(found);
    std::string refused;
    for (std::size_t i = 0; i < suback.return_codes.size() && i < topics.size(); ++i) {
      const std::uint8_t code = suback.return_codes[i];
      if (code < kSubackFailure) continue;
      refused += (refused.empty() ? "" : ", ") + topics[i].topic;
      if (v5()) refused += " (" + describe_reason(static_cast<ReasonCode>(code), {}) + ")";
    }
    invoke_safely(*log, "subscribe", done, error_code{}, suback.return_codes);
    if (refused.empty()) return true;
    if (!config.validate_subs) {
      log->warn("MQTT client {}: broker refused subscription to {}", config.client_id, refused);
      return true;
    }
    std::string error = "broker refused subscription to " + refused + " (validatesubs is on)";
    log->error("MQTT client {}: {}", config.client_id, error);
    invoke_safely(*log, "error", callbacks.on_error, error);
    begin_stop();
    return true;
  }

  Subscription to_subscription(const TopicInfo& t) const {
    Subscription s{t.topic, static_cast<std::uint8_t>(t.qos)};
    if (v5()) {
      s.no_local = t.no_local;
      s.retain_as_published = t.retain_as_published;
      s.retain_handling = static_cast<std::uint8_t>(t.retain_handling);
    }
    return s;
  }

  void begin_stop() {
    if (stopping) return;
    stopping = true;
    owner.mark_stopped();
    backoff_timer.cancel();
    if (session_open) {
      disconnect_requested = true;
      wake_writer();
      // A writer stuck on a dead connection must not hold the stop up.
      stop_deadline.expires_after(2s);
      stop_deadline.async_wait([self = shared_from_this()](error_code ec) {
        if (!ec) self->close_session("client stopped");
      });
    } else if (transport) {
      transport->close();
    }
  }

  void fail_everything(error_code ec) {
    for (auto& [sequence, item] : inflight) complete(item, ec);
    inflight.clear();
    inflight_ids.clear();
    for (auto& item : pending) complete(item, ec);
    pending.clear();
  }
};

IoThread::IoThread() : work_(asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}

IoThread::~IoThread() {
  work_.reset();
  if (thread_.joinable()) thread_.join();
}

Client::Client(ClientConfig config, std::shared_ptr<spdlog::logger> logger,
               std::shared_ptr<IoThread> thread)
    : config_(std::move(config)),
      log_(logger ? std::move(logger) : spdlog::default_logger()),
      shared_thread_(std::move(thread)) {
  impl_ = std::make_shared<Impl>(*this, config_, log_,
                                 shared_thread_ ? &shared_thread_->context() : nullptr);
}

bool Client::on_own_thread() const {
  if (shared_thread_) return shared_thread_->running_here();
  return thread_.get_id() == std::this_thread::get_id();
}

Client::~Client() { stop(); }

void Client::start(ClientCallbacks callbacks) {
  if (started_) throw std::logic_error("MQTT client already started");
  if (config_.address.empty()) throw std::invalid_argument("MQTT client: address is not set");
  if (config_.client_id.empty() && !config_.clean_session &&
      config_.protocol != ProtocolVersion::V5) {
    throw std::invalid_argument(
        "MQTT client: clientid is required when cleansession is false (a broker refuses an "
        "empty client id for a persistent session)");
  }
  impl_->endpoint = parse_endpoint(config_.address);
  if (impl_->endpoint.tls()) {
    impl_->tls = make_client_tls_context(
        TlsFiles{config_.ca, config_.cert, config_.key, config_.insecure_skip_verify});
  }
  impl_->callbacks = std::move(callbacks);
  auto ended = std::make_shared<std::promise<void>>();
  ended_ = ended->get_future().share();
  asio::co_spawn(impl_->io, impl_->run(), [log = log_, ended](std::exception_ptr error) {
    ended->set_value();
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      log->critical("MQTT client stopped by an internal error: {}", e.what());
    }
  });
  started_ = true;
  if (!shared_thread_) thread_ = std::thread([impl = impl_] { impl->io.run(); });
}

void Client::mark_stopped() {
  stopped_ = true;
  std::lock_guard lock(flow_mutex_);
  flow_changed_.notify_all();
}

void Client::stop() {
  bool was_stopped = stopped_.exchange(true);
  mark_stopped();
  if (shared_thread_ && started_) {
    asio::post(impl_->io, [impl = impl_] { impl->begin_stop(); });
    // Called from a callback: stop asynchronously; the destructor waits.
    if (on_own_thread()) return;
    ended_.wait();
    impl_->close_handover();
    // What was handed over before is applied on the shared thread (publishes complete with
    // operation_aborted) before stop() returns.
    std::promise<void> applied;
    asio::post(impl_->io, [impl = impl_, &applied] {
      impl->take_over();
      applied.set_value();
    });
    applied.get_future().wait();
  } else if (thread_.joinable()) {
    if (on_own_thread()) {
      // Called from a callback: stop asynchronously; the destructor joins.
      asio::post(impl_->io, [impl = impl_] { impl->begin_stop(); });
      return;
    }
    asio::post(impl_->io, [impl = impl_] { impl->begin_stop(); });
    thread_.join();
    // Publishes posted after the client's loop ended complete now, with operation_aborted.
    impl_->close_handover();
    impl_->io.restart();
    impl_->io.poll();
  } else if (!was_stopped) {
    std::lock_guard lock(flow_mutex_);
    outstanding_ = 0;
  }
}

void Client::check_subscribable(const std::vector<TopicInfo>& topics) const {
  if (config_.protocol != ProtocolVersion::V5) {
    for (const auto& t : topics) {
      if (t.no_local || t.retain_as_published || t.retain_handling != 0) {
        throw std::invalid_argument("cannot subscribe to " + t.topic +
                                    ": subscription options need protocol: 5");
      }
    }
    return;
  }
  if (topics.empty()) return;
  Subscribe subscribe;
  subscribe.packet_id = 1;
  for (const auto& t : topics) {
    if (t.qos < 0 || t.qos > 2 || t.retain_handling < 0 || t.retain_handling > 2) {
      throw std::invalid_argument("cannot subscribe to " + t.topic +
                                  ": qos and retain_handling must be 0, 1 or 2");
    }
    subscribe.subscriptions.push_back({t.topic, static_cast<std::uint8_t>(t.qos), t.no_local,
                                       t.retain_as_published,
                                       static_cast<std::uint8_t>(t.retain_handling)});
  }
  if (std::string problem = validate(subscribe, ProtocolVersion::V5); !problem.empty()) {
    throw std::invalid_argument("cannot subscribe: " + problem);
  }
}

// The packet identifier is assigned when the message is written; check the rest now.
void Client::check_publishable(Publish& message) const {
  if (message.qos > 1) throw std::invalid_argument("cannot publish: QoS 2 is not supported");
  message.packet_id = message.qos > 0 ? 1 : 0;
  message.dup = false;
  const ProtocolVersion version = config_.protocol;
  if (std::string problem = validate(message, version); !problem.empty()) {
    throw std::invalid_argument("cannot publish: " + problem);
  }
  if (version != ProtocolVersion::V5) return;
  for (auto id : {PropertyId::TopicAlias, PropertyId::SubscriptionIdentifier}) {
    if (message.properties.find(id)) {
      throw std::invalid_argument("cannot publish: the client does not send a " +
                                  std::string(to_string(id)) + " property");
    }
  }
  const std::uint32_t limit = broker_max_packet_.load();
  if (limit != 0 && connected_ && encoded_size(message, version) > limit) {
    throw std::invalid_argument(
        "cannot publish: the message is " + std::to_string(encoded_size(message, version)) +
        " bytes, more than the broker's maximum packet size of " + std::to_string(limit));
  }
}

void Client::async_publish(Publish message, PublishHandler done) {
  check_publishable(message);
  if (stopped_) {
    if (done) done(asio::error::operation_aborted);
    return;
  }
  {
    std::lock_guard lock(flow_mutex_);
    ++outstanding_;
  }
  enqueue(std::move(message), std::move(done));
}

void Client::enqueue(Publish message, PublishHandler done) {
  message.packet_id = 0;
  Impl::Outgoing item{std::move(message), std::move(done)};
  // On the client's own thread (its callbacks, or another client's on a shared IoThread) the
  // message is queued directly: no post, and the writer takes it in the same turn.
  if (on_own_thread() && impl_->may_apply_here()) {
    impl_->publish_here(std::move(item));
  } else {
    impl_->hand_over({std::move(item)});
  }
}

bool Client::reserve_slot(std::unique_lock<std::mutex>& lock, std::chrono::milliseconds timeout) {
  auto limit = static_cast<std::size_t>(std::max(config_.buffer_size, 1));
  if (outstanding_ >= limit && on_own_thread()) {
    throw std::logic_error("publish() would block the MQTT client's own thread; use async_publish()");
  }
  bool ready = flow_changed_.wait_for(lock, timeout, [&] { return stopped_ || outstanding_ < limit; });
  if (stopped_) throw std::runtime_error("cannot publish: the MQTT client is stopped");
  return ready;
}

void Client::publish(Publish message) {
  check_publishable(message);
  {
    std::unique_lock lock(flow_mutex_);
    while (!reserve_slot(lock, std::chrono::hours(1))) {
    }
    ++outstanding_;
  }
  enqueue(std::move(message), {});
}

bool Client::try_publish(Publish message, std::chrono::milliseconds timeout, PublishHandler done) {
  check_publishable(message);
  {
    std::unique_lock lock(flow_mutex_);
    if (!reserve_slot(lock, timeout)) return false;
    ++outstanding_;
  }
  enqueue(std::move(message), std::move(done));
  return true;
}

void Client::publish(const std::string& topic, std::string payload, int qos, bool retain) {
  Publish message;
  message.topic = topic;
  message.payload = std::move(payload);
  message.qos = static_cast<std::uint8_t>(qos);
  message.retain = retain;
  publish(std::move(message));
}

void Client::ack(const Receipt& receipt) {
  if (receipt.qos != 1 && !(receipt.qos == 0 && impl_->windowed())) return;
  if (on_own_thread() && impl_->may_apply_here()) {
    impl_->ack_here(receipt);
  } else {
    impl_->hand_over({std::nullopt, receipt});
  }
}

void Client::subscribe(std::vector<TopicInfo> topics, SubscribeHandler done) {
  check_subscribable(topics);
  asio::post(impl_->io, [impl = impl_, topics = std::move(topics), done = std::move(done)]() mutable {
    for (const auto& t : topics) {
      auto same = [&](const TopicInfo& s) { return s.topic == t.topic; };
      auto existing = std::find_if(impl->subscriptions.begin(), impl->subscriptions.end(), same);
      if (existing != impl->subscriptions.end()) {
        *existing = t;
      } else {
        impl->subscriptions.push_back(t);
      }
    }
    if (impl->session_open) {
      impl->queue_subscribe(std::move(topics), std::move(done));
    } else {
      // Applied when the connection is back.
      invoke_safely(*impl->log, "subscribe", done, asio::error::not_connected,
                    std::vector<std::uint8_t>{});
    }
  });
}

void Client::unsubscribe(std::vector<std::string> topics) {
  asio::post(impl_->io, [impl = impl_, topics = std::move(topics)]() mutable {
    std::erase_if(impl->subscriptions, [&](const TopicInfo& s) {
      return std::find(topics.begin(), topics.end(), s.topic) != topics.end();
    });
    if (!impl->session_open || topics.empty()) return;
    Unsubscribe unsubscribe;
    unsubscribe.packet_id = impl->allocate_packet_id();
    unsubscribe.topic_filters = std::move(topics);
    impl->awaiting_unsuback[unsubscribe.packet_id] = true;
    impl->queue_control(unsubscribe);
    impl->wake_reader();
  });
}

bool Client::wait_connected(std::chrono::milliseconds timeout) {
  std::unique_lock lock(flow_mutex_);
  return flow_changed_.wait_for(lock, timeout, [&] { return connected_.load(); });
}

bool Client::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock lock(flow_mutex_);
  return flow_changed_.wait_for(lock, timeout, [&] { return outstanding_ == 0; });
}

std::size_t Client::outstanding() const {
  std::lock_guard lock(flow_mutex_);
  return outstanding_;
}

void Client::release_outstanding() {
  std::lock_guard lock(flow_mutex_);
  if (outstanding_ > 0) --outstanding_;
  flow_changed_.notify_all();
}

void Client::set_connected(bool connected) {
  std::lock_guard lock(flow_mutex_);
  connected_ = connected;
  flow_changed_.notify_all();
}

}  // namespace baetyl::mqtt
