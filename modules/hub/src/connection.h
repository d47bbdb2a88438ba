#pragma once
// One client connection: reads and handles packets, writes batches of outgoing packets, and
// enforces the keepalive. Its handlers and coroutines all run on its worker's thread.
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "baetyl/asio.h"
#include "baetyl/mqtt/codec.h"
#include "broker.h"
#include "stream.h"
#include "workers.h"

namespace baetyl::hub {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // The executor of the worker's io_context. One thread runs each worker's io_context, so the
  // connection's handlers never run concurrently: it serializes them as a strand would, without
  // the strand's 100-odd bytes per connection and lock per handler. (The names strand and
  // "on the strand" stand for it.)
  using Strand = asio::io_context::executor_type;

  // `workers`: the hub's workers, for sending a large write from a less busy one (may be null).
  Connection(Broker& broker, std::unique_ptr<Stream> stream, Strand strand,
             Workers* workers = nullptr);
  ~Connection();

  // Serves the connection until it closes, then calls `finished(context, connection)`; call on
  // the strand given to the constructor. An idle plain TCP connection holds no coroutine and no
  // buffer: its reader waits for the socket with a callback, its writer runs only while there is
  // something to write or to wait for, its keepalive is watched by one timer of its worker.
  static void start(std::shared_ptr<Connection> self, void (*finished)(void*, Connection*),
                    void* context);

  // New messages were queued on the session (thread-safe).
  void notify();
  // Sends the QoS 0 packets at the front of the session's queue from the calling thread, when
  // that is cheaper than waking the connection's own worker: a plain TCP connection served by
  // another worker, whose writer is idle, while the caller's worker is not busy. False when the
  // connection still needs notify() (it could not, or something is left for its writer).
  bool write_directly();
  // Closes the connection (thread-safe); the will is published unless the client disconnected.
  // An MQTT 5 client is sent DISCONNECT with `reason` first.
  void close(mqtt::ReasonCode reason = mqtt::ReasonCode::ServerShuttingDown);
  // A new connection took this one's session over and continues it (thread-safe, before
  // close()): a will with a Will Delay Interval is not published [MQTT-3.1.3-9].
  void session_continued() { session_continued_.store(true); }

  const std::string& client_id() const { return client_id_; }
  const std::string& remote() const { return stream_->remote; }

 private:
  enum class Next { Continue, Close };
  class WakeupBatch;

  // Posts one wake-up of the writer to the connection's strand (coalesced while one is pending).
  // Asked on another worker's thread, the wake-up waits there for the end of that worker's pass
  // over its ready handlers, and goes with the others of that pass for this connection's worker
  // in one post (hand_over).
  void wake_soon();
  void hand_over(asio::io_context::executor_type worker);  // `worker`: the calling thread's
  // Posts the wake-ups the calling worker collected to the workers of their connections.
  static void send_handovers();

  static asio::awaitable<void> write_loop(std::shared_ptr<Connection> self);
  // Writes `data`, from another worker when Workers::offload_target says so.
  asio::awaitable<void> write_out(std::string_view data, error_code& ec);
  // The keepalive (and, before CONNECT, the connect timeout): the connection joins its worker's
  // list of deadlines, which one timer looks at (sweep_deadlines).
  void arm_watchdog();
  static void sweep_deadlines();
  void on_watchdog();  // past the deadline: closes

  // Reading a plain TCP socket: what it has is read without waiting, into a buffer of the worker
  // thread, and handled; an incomplete packet is kept in input_. Then wait_readable() waits
  // for more, or the reader pauses (pause_reading) and resume_reading() goes on.
  void read_ready();
  void wait_readable();
  bool pause_reading();
  void resume_reading();
  // Reading TLS and WebSocket streams (they keep state between reads): a coroutine with
  // input_ as its buffer.
  static asio::awaitable<void> read_loop(std::shared_ptr<Connection> self);
  struct Handled {
    std::size_t consumed = 0;  // bytes of whole packets handled
    std::size_t needed = 0;    // size of the incomplete packet after them, when known
    bool stop = false;         // close the connection
  };
  // Handles the whole packets at the front of `data`.
  Handled handle_input(std::string_view data);
  // Reading ended (end of stream, error, close): flush what is queued, then finish().
  void end_reading();
  void finish();
  void do_close();
  // Closes the socket unless a write from another thread is using it (which closes it after).
  void close_socket_when_free();
  // The role of writing to the socket: the strand's writer or a direct writer (write_directly).
  bool acquire_writer(std::uint8_t role);
  void release_writer(std::uint8_t role);
  void wake();

  // A server-initiated DISCONNECT of an MQTT 5 client: sent before anything else still queued,
  // then the connection closes (at once for 3.1.1).
  void disconnect(mqtt::ReasonCode reason, std::string_view why);
  // A protocol violation found while reading: logged; an MQTT 5 client gets DISCONNECT with
  // `reason` (a CONNACK when not connected yet). The caller stops reading.
  void violation(mqtt::ReasonCode reason, std::string_view why);
  // DISCONNECT with `reason` and `why` as its Reason String.
  mqtt::Disconnect disconnect_packet(mqtt::ReasonCode reason, std::string_view why);
  // Appends a PUBLISH of `m` in the client's protocol (MQTT 5: with its properties, the expiry
  // left at `now` and the subscription identifiers of the session's matching subscriptions).
  // With `alias`, a topic alias the client allows replaces the topic (see Mqtt5::sent_aliases).
  void encode_delivery(std::string& out, const Message& m, std::uint8_t qos, bool retain, bool dup,
                       std::uint16_t packet_id, std::int64_t now, bool alias = true);
  // Whether that PUBLISH exceeds the MQTT 5 client's Maximum Packet Size.
  bool too_large_for_client(const Message& m, std::uint8_t qos, bool retain, std::int64_t now);
  Next handle(mqtt::Packet& packet);
  Next on_connect(mqtt::Connect& connect);
  Next on_publish(const mqtt::PublishView& publish);
  // MQTT 5 parts of a PUBLISH: resolves a Topic Alias into `publish.topic`, and fills in what
  // is passed on. Its properties are in Mqtt5::publish_properties. Close when the packet breaks a
  // rule. `utf8`: the PUBLISH says its payload is UTF-8 (Payload Format Indicator 1).
  Next on_publish_v5(mqtt::PublishView& publish, std::string& forwarded, std::int64_t& expiry,
                     bool& utf8);
  // The acknowledgement of a publish that is not delivered (not permitted, reserved topic).
  void refuse_publish(const mqtt::PublishView& publish, mqtt::ReasonCode reason);
  bool v5() const { return version_ == mqtt::ProtocolVersion::V5; }
  // The connection speaks MQTT 5 (its CONNECT said so): makes what only MQTT 5 needs.
  void use_mqtt5();
  void on_ack(std::uint16_t packet_id, std::uint8_t qos);
  void on_pubrec(std::uint16_t packet_id);
  void send(const mqtt::Packet& packet);
  bool window_has_room();
  // A QoS 1/2 message of this connection was committed (the store's callback, on whichever thread
  // committed it): queued in committed_, acknowledged by one post per batch, in commit order.
  void on_committed(std::uint16_t packet_id, std::uint8_t qos);
  void acknowledge_committed();  // what committed_ holds; on the connection's thread
  void committed(std::uint16_t packet_id, std::uint8_t qos);
  // Moves control packets and due messages into `out`.
  void collect(std::string& out);

  // Timers of the worker's io_context (an asio::steady_timer's executor would be allocated).
  using Timer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                           asio::wait_traits<std::chrono::steady_clock>,
                                           asio::io_context::executor_type>;

  Broker& broker_;
  Workers* workers_;
  std::unique_ptr<Stream> stream_;
  Strand strand_;
  // A timer made when first set, and given back by reset(): an idle connection has none.
  class LazyTimer {
   public:
    Timer& get(Strand executor) {
      if (!timer_) timer_ = std::make_unique<Timer>(executor);
      return *timer_;
    }
    void cancel() {
      if (timer_) timer_->cancel();
    }
    void reset() { timer_.reset(); }

   private:
    std::unique_ptr<Timer> timer_;
  };
  LazyTimer signal_;  // wakes the writer
  LazyTimer resume_;  // wakes the reader when commits caught up, or a subscriber drained
  void (*finished_)(void* context, Connection* connection) = nullptr;
  void* finished_context_ = nullptr;
  std::string input_;                   // an incomplete packet (plain TCP), or the read buffer
  std::size_t needed_ = 0;              // the size of that packet, when known
  std::shared_ptr<Session> congested_;  // the subscriber the reader waits for
  // The members are ordered so that the small ones fill the gaps the alignment of the others
  // leaves: an idle connection's size is most of the hub's memory per connection.
  bool writer_running_ = false;
  bool reading_ended_ = false;
  bool watched_ = false;  // in its worker's list of deadlines
  mqtt::ProtocolVersion version_ = mqtt::ProtocolVersion::V311;
  bool disconnecting_ = false;  // a DISCONNECT was queued: nothing is sent after it
  bool window_full_ = false;    // guarded by the session's mutex

  std::string client_id_;
  std::shared_ptr<Session> session_;
  std::shared_ptr<const Authorizer> authorizer_;
  std::unique_ptr<Message> will_;
  std::string checked_topic_;  // the last topic published that passed the checks and the ACL
  bool connected_ = false;
  bool closed_ = false;
  bool disconnected_ = false;  // DISCONNECT received: no will
  bool flush_then_close_ = false;
  bool offloading_ = false;  // another worker is sending on the socket: close it afterwards
  enum : std::uint8_t { kWriterIdle, kWriterStrand, kWriterDirect, kWriterClosed };
  std::atomic<std::uint8_t> writer_{kWriterIdle};
  std::atomic<bool> strand_waiting_{false};  // the strand's writer waits for a direct writer
  std::atomic<bool> close_requested_{false};
  std::atomic<bool> session_continued_{false};  // see session_continued()
  std::atomic<bool> direct_allowed_{false};     // CONNACK was sent and the stream is plain TCP
  std::atomic<bool> notify_pending_{false};
  std::atomic<bool> wakeup_deferred_{false};  // queued in some thread's WakeupBatch
  std::uint32_t pending_commits_ = 0;         // its QoS 1/2 messages not committed yet
  std::thread::id home_thread_;               // the worker thread of the strand
  std::string tail_;  // what a direct write left unsent: the next writer sends it first
  std::chrono::steady_clock::duration keepalive_{};
  std::chrono::steady_clock::time_point deadline_;
  std::chrono::steady_clock::time_point next_retry_check_;
  // Guarded by the session's mutex: set by the first acknowledgement into a full window; then the
  // window is refilled even short of half (a subscriber that keeps many messages unacknowledged
  // until more arrive would otherwise wait forever).
  std::chrono::steady_clock::time_point refill_due_{};
  std::string control_;  // encoded control packets waiting for the writer
  // Made by the first QoS 1/2 PUBLISH: its messages committed, in commit order, waiting for their
  // PUBACK/PUBREC (see on_committed).
  struct Committed {
    std::mutex mutex;
    std::vector<std::pair<std::uint16_t, std::uint8_t>> ids;  // packet id, QoS
  };
  std::unique_ptr<Committed> committed_;
  mqtt::DecodeLimits limits_;
  std::size_t window_ = 0;  // QoS 1/2 in flight: egress buffer, and the client's maximum

  // What only an MQTT 5 connection keeps, made when its CONNECT is read: a 3.1.1 connection
  // holds the pointer alone.
  struct Mqtt5 {
    std::vector<std::string> topic_aliases;  // the client's aliases, alias - 1 → topic
    // The properties of the PUBLISH being handled, parsed once when it is decoded; and what of
    // them goes on to subscribers (both reused from one PUBLISH to the next).
    mqtt::Properties publish_properties;
    std::string forwarded;
    // Topic aliases towards the client: the topics given one (the first ones sent, for the
    // whole connection), and its Topic Alias Maximum.
    std::unordered_map<std::string, std::uint16_t> sent_aliases;
    std::uint16_t client_alias_maximum = 0;
    std::uint32_t connect_session_expiry = 0;  // the CONNECT's Session Expiry Interval
    std::uint32_t will_delay = 0;              // the will's Will Delay Interval
    // Flow control from the client: the Receive Maximum the hub announced, and the QoS 1/2
    // PUBLISH of this connection not yet acknowledged (PUBACK, or PUBCOMP).
    std::size_t receive_maximum = 0;
    std::size_t incoming_inflight = 0;
  };
  std::unique_ptr<Mqtt5> mqtt5_;
};

}  // namespace baetyl::hub
