// hub_bench: MQTT throughput, latency and idle-connection memory of a broker over loopback.
//
//   hub_bench --port 1883 [--username test --password hahaha] [--qos 0|1] [--payload 64]
//             [--mode throughput|latency|idle] ...
//
// --mode throughput (default) [--publishers 1] [--subscribers 1] [--messages 100000]
//   [--window 100]: every subscriber subscribes to bench/# at --qos; every publisher sends
//   --messages messages of --payload bytes to bench/<n> (QoS 1: at most --window unacknowledged).
//   Prints messages received per second over all subscribers and how many were lost (QoS 0 may
//   drop under overload). [--persistent 1]: subscribers connect with clean session 0 (the hub
//   stores their queue entries). [--ack-lag N]: a QoS 1 subscriber acknowledges each message only
//   after N later ones arrived, so N stay unacknowledged, and sends each acknowledgement on its
//   own (a slow consumer with manual ack). [--consume-rate R]: each subscriber takes at most R
//   messages a second (a consumer slower than the publishers: the broker queues the rest).
//   [--broker-pid P]: also prints the broker's CPU time (/proc/P/stat) per message received.
// --mode latency --rate R [--seconds 5]: one publisher sends R messages a second on a fixed
//   schedule (each payload starts with its send time), one subscriber on bench/# at --qos notes
//   the time each arrives (and acknowledges QoS 1 at once). Prints p50/p90/p99/max of send to
//   delivery and, for QoS 1, of send to PUBACK.
// --mode idle --connections N [--broker-pid P] [--hold 3] [--keep-alive 0]: opens N connections
//   (CONNECT, keep alive 0 unless given), holds them --hold seconds and prints the broker's VmRSS
//   (/proc/P/status) before the first and with all of them open.
// --mode flood --broker-pid P [--qos 1] [--messages 30000] [--payload 32768] [--persistent 0]
//   [--hold 3]: one subscriber on bench/# that never reads, one publisher sending --messages at
//   --qos (QoS 1: --window in flight); then the subscriber leaves. Prints the broker's peak
//   VmHWM, its VmRSS before, once everything was published and --hold seconds after the
//   subscriber left.
// Throughput [--dead N]: N more subscribers on bench/# that never read (not counted).
// [--sub-port P [--sub-username U --sub-password W]]: the subscribers connect to another broker
//   (throughput and latency), which gets the publishers' messages through a bridge.
// [--protocol 4|5]: every client of every mode connects with MQTT 3.1.1 (4, the default) or MQTT 5
//   (5): Clean Start, and a Session Expiry Interval of 0xFFFFFFFF for --persistent 1 (clean session
//   0 in 3.1.1); Receive Maximum --receive-maximum (at least --window and above --ack-lag; by
//   default the larger of --window and --ack-lag + 1); v5 PUBLISH, PUBACK (reason codes), SUBACK
//   and DISCONNECT read, v5 PUBACKs sent. A v5 publisher keeps at most the broker's Receive
//   Maximum (from its CONNACK) unacknowledged: a --window above it is lowered, and the line says
//   so. v5 lines end with "mqtt 5".
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <utility>
#include <deque>
#include <ctime>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "baetyl/mqtt/codec.h"

namespace mqtt = baetyl::mqtt;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::uint16_t port = 1883;
  std::string username, password;
  int qos = 0, publishers = 1, subscribers = 1;
  long messages = 100000;
  std::size_t payload = 64;
  int window = 100;
  std::string mode = "throughput";
  double rate = 1000, seconds = 5, hold = 3;
  long connections = 1000;
  long broker_pid = 0;
  int keep_alive = 60;
  bool persistent = false;
  long ack_lag = 0;
  double consume_rate = 0;
  int dead = 0;
  bool keep_alive_given = false;
  std::uint16_t sub_port = 0;  // 0: the subscribers use --port
  std::string sub_username, sub_password;
  mqtt::ProtocolVersion protocol = mqtt::ProtocolVersion::V311;
  long receive_maximum = 0;  // MQTT 5: announced in CONNECT; 0: --window (or --ack-lag + 1)
};

bool v5(const Options& o) { return o.protocol == mqtt::ProtocolVersion::V5; }

// "0x87 Not authorized".
std::string describe(mqtt::ReasonCode code) {
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02x ", static_cast<unsigned>(code));
  return hex + std::string(mqtt::to_string(code));
}

// The options the subscribers connect with: --port, or the bridged broker of --sub-port.
Options subscriber_options(const Options& o) {
  if (o.sub_port == 0) return o;
  Options s = o;
  s.port = o.sub_port;
  s.username = o.sub_username;
  s.password = o.sub_password;
  return s;
}

// Whether a PUBACK's reason code (MQTT 5; 3.1.1 has none) says the message was accepted.
bool accepted(const mqtt::Puback& ack) { return static_cast<std::uint8_t>(ack.reason_code) < 0x80; }

class Client {
 public:
  Client(const Options& o, const std::string& id, bool clean_session = true)
      : version_(o.protocol) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(o.port);
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      throw std::runtime_error("cannot connect to port " + std::to_string(o.port));
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    mqtt::Connect c;
    c.client_id = id;
    c.clean_session = clean_session;  // Clean Start in MQTT 5
    c.keep_alive = static_cast<std::uint16_t>(o.keep_alive);
    if (!o.username.empty()) c.username = o.username;
    if (!o.password.empty()) c.password = o.password;
    if (v5(o)) {
      c.protocol_level = 5;
      // A session that outlives its connection never expires, as 3.1.1's clean session 0.
      if (!clean_session) c.properties.add(mqtt::PropertyId::SessionExpiryInterval, 0xFFFFFFFFu);
      c.properties.add(mqtt::PropertyId::ReceiveMaximum,
                       static_cast<std::uint32_t>(o.receive_maximum));
    }
    send(mqtt::encode(c, version_));
    auto ack = next(10000);
    const auto* connack = ack ? std::get_if<mqtt::Connack>(&*ack) : nullptr;
    if (!connack) throw std::runtime_error("no CONNACK within 10 s");
    if (version_ == mqtt::ProtocolVersion::V5) {
      if (static_cast<std::uint8_t>(connack->reason_code) >= 0x80) {
        throw std::runtime_error("connection refused: " + describe(connack->reason_code) +
                                 reason_string(connack->properties));
      }
      receive_maximum_ = static_cast<long>(
          connack->properties.integer(mqtt::PropertyId::ReceiveMaximum).value_or(65535));
    } else if (connack->return_code != mqtt::ConnectReturnCode::Accepted) {
      throw std::runtime_error("connection refused: " +
                               std::string(mqtt::to_string(connack->return_code)));
    }
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // MQTT 5: the broker's Receive Maximum (65535 when it announced none, and with 3.1.1).
  long receive_maximum() const { return receive_maximum_; }
  // Messages of an earlier run that a resumed session was sent before the SUBACK.
  long resumed_messages() const { return resumed_messages_; }

  void send(std::string_view bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error("send failed");
      done += static_cast<std::size_t>(n);
    }
  }

  // Subscribes to bench/# at `qos` and waits for the SUBACK, which must grant it. A resumed
  // session may be sent messages of an earlier run first (QoS 1 redelivers what the broker had
  // not recorded as acknowledged when that run's connection ended): they are acknowledged and
  // not counted (resumed_messages()).
  void subscribe(int qos) {
    send(mqtt::encode(mqtt::Subscribe{1, {{"bench/#", static_cast<std::uint8_t>(qos)}}}, version_));
    auto ack = next(10000);
    while (ack && std::holds_alternative<mqtt::Publish>(*ack)) {
      const auto& stale = std::get<mqtt::Publish>(*ack);
      if (stale.qos == 1) {
        std::string puback;
        encode_puback(stale.packet_id, puback);
        send(puback);
      }
      ++resumed_messages_;
      ack = next(10000);
    }
    const auto* suback = ack ? std::get_if<mqtt::Suback>(&*ack) : nullptr;
    if (!suback) {
      throw std::runtime_error(ack ? "expected SUBACK, got " +
                                         std::string(mqtt::to_string(mqtt::type_of(*ack)))
                                   : "no SUBACK within 10 s");
    }
    if (suback->return_codes.empty() || suback->return_codes.front() >= 0x80) {
      const auto code = suback->return_codes.empty() ? 0x80 : suback->return_codes.front();
      throw std::runtime_error(
          "subscription to bench/# refused: " +
          (version_ == mqtt::ProtocolVersion::V5
               ? describe(static_cast<mqtt::ReasonCode>(code)) + reason_string(suback->properties)
               : std::to_string(code)));
    }
  }

  // Sends PINGREQ and waits for the PINGRESP, skipping what comes before it: the broker has then
  // read everything sent before.
  void settle() {
    send(mqtt::encode(mqtt::Pingreq{}));
    while (auto packet = next(30000)) {
      if (std::holds_alternative<mqtt::Pingresp>(*packet)) return;
    }
    throw std::runtime_error("no PINGRESP within 30 s");
  }

  // DISCONNECT (normal disconnection): a persistent session stays.
  void disconnect() { send(mqtt::encode(mqtt::Disconnect{}, version_)); }

  // Appends a PUBLISH in the connection's protocol (MQTT 5: no properties).
  void encode_publish(std::string& out, std::string_view topic, std::string_view payload,
                      std::uint8_t qos, std::uint16_t packet_id) const {
    if (version_ == mqtt::ProtocolVersion::V5) {
      mqtt::encode_publish_v5(out, topic, payload, qos, false, false, packet_id, {});
    } else {
      mqtt::encode_publish(out, topic, payload, qos, false, false, packet_id);
    }
  }

  // Appends a PUBACK (MQTT 5: reason Success, in the short form that has the 3.1.1 bytes).
  void encode_puback(std::uint16_t packet_id, std::string& out) const {
    mqtt::encode(mqtt::Puback{packet_id}, out, version_);
  }

  // The next packet, or nullopt after `timeout_ms` without one. A DISCONNECT from the broker
  // throws with its reason.
  std::optional<mqtt::Packet> next(int timeout_ms) {
    while (true) {
      if (begin_ < end_) {
        auto r = mqtt::decode(buffered(), {}, version_);
        if (r.status == mqtt::DecodeStatus::Ok) {
          begin_ += r.consumed;
          if (const auto* d = std::get_if<mqtt::Disconnect>(&r.packet)) disconnected(*d);
          return std::move(r.packet);
        }
        if (r.status == mqtt::DecodeStatus::Error) throw std::runtime_error(r.error);
      }
      if (!read_more(timeout_ms)) return std::nullopt;
    }
  }

  // What the bench needs of a received packet: its type; of a PUBLISH its QoS and packet id, of a
  // PUBACK its packet id and (MQTT 5) reason code.
  struct Received {
    mqtt::PacketType type{};
    std::uint8_t qos = 0;
    std::uint16_t packet_id = 0;
    std::uint8_t reason = 0;
    bool publish() const { return type == mqtt::PacketType::Publish; }
    bool puback() const { return type == mqtt::PacketType::Puback; }
  };

  // The next packet as Received, read in place without decoding it into a Packet (no copy of
  // topic and payload: the client must not be what limits a throughput run); nullopt after
  // `timeout_ms` without one. A PUBACK with a failure reason code and a DISCONNECT throw.
  std::optional<Received> next_received(int timeout_ms) {
    while (true) {
      if (auto received = take_received()) return received;
      if (!read_more(timeout_ms)) return std::nullopt;
    }
  }

  // The next packet already read, without reading more.
  std::optional<Received> next_buffered() { return take_received(); }

  // When the last bytes arrived.
  Clock::time_point last_read() const { return last_read_; }

 private:
  static constexpr std::size_t kReadSize = 1 << 16;

  std::string_view buffered() const { return {buffer_.get() + begin_, end_ - begin_}; }

  [[noreturn]] static void malformed(const char* what) {
    throw std::runtime_error(std::string("malformed packet from the broker: ") + what);
  }

  // ", <Reason String>" when `properties` hold one.
  static std::string reason_string(const mqtt::Properties& properties) {
    auto text = properties.string(mqtt::PropertyId::ReasonString);
    return text ? ", " + std::string(*text) : std::string();
  }

  [[noreturn]] void disconnected(const mqtt::Disconnect& d) const {
    throw std::runtime_error("the broker sent DISCONNECT " + describe(d.reason_code) +
                             reason_string(d.properties));
  }

  // Decodes the whole packet at the front of the buffer (`length` bytes) for its error text.
  [[noreturn]] void refused_or_disconnected(std::size_t length) const {
    auto r = mqtt::decode(buffered().substr(0, length), {}, version_);
    if (const auto* d = std::get_if<mqtt::Disconnect>(&r.packet)) disconnected(*d);
    if (const auto* a = std::get_if<mqtt::Puback>(&r.packet)) {
      throw std::runtime_error("PUBACK " + describe(a->reason_code) + " for packet id " +
                               std::to_string(a->packet_id) + reason_string(a->properties));
    }
    throw std::runtime_error(r.status == mqtt::DecodeStatus::Error ? r.error : "unexpected packet");
  }

  std::optional<Received> take_received() {
    const std::size_t available = end_ - begin_;
    if (available < 2) return std::nullopt;
    const auto* bytes = reinterpret_cast<const unsigned char*>(buffer_.get() + begin_);
    std::size_t length = 0, header = 1;
    for (int shift = 0;; shift += 7) {
      if (header >= available) return std::nullopt;
      if (shift > 21) malformed("remaining length");
      const unsigned char byte = bytes[header++];
      length |= static_cast<std::size_t>(byte & 0x7f) << shift;
      if (byte < 0x80) break;
    }
    if (available < header + length) return std::nullopt;
    const unsigned char* body = bytes + header;
    Received received;
    received.type = static_cast<mqtt::PacketType>(bytes[0] >> 4);
    if (received.publish()) {
      received.qos = static_cast<std::uint8_t>((bytes[0] >> 1) & 3);
      if (length < 2) malformed("PUBLISH");
      std::size_t at = 2 + ((std::size_t{body[0]} << 8) | body[1]);  // after the topic
      if (received.qos > 0) {
        if (at + 2 > length) malformed("PUBLISH");
        received.packet_id = static_cast<std::uint16_t>((body[at] << 8) | body[at + 1]);
        at += 2;
      }
      if (version_ == mqtt::ProtocolVersion::V5) at = skip_properties(body, at, length);
      if (at > length) malformed("PUBLISH");
    } else if (received.puback()) {
      if (length < 2) malformed("PUBACK");
      received.packet_id = static_cast<std::uint16_t>((body[0] << 8) | body[1]);
      if (length > 2) received.reason = body[2];  // MQTT 5; the short form means Success
      if (received.reason >= 0x80) refused_or_disconnected(header + length);
    } else if (received.type == mqtt::PacketType::Disconnect) {
      refused_or_disconnected(header + length);
    }
    begin_ += header + length;
    return received;
  }

  // MQTT 5: the offset after the properties of a PUBLISH whose Property Length starts at `at`.
  static std::size_t skip_properties(const unsigned char* body, std::size_t at,
                                     std::size_t length) {
    std::size_t size = 0;
    for (int shift = 0;; shift += 7) {
      if (at >= length || shift > 21) malformed("PUBLISH property length");
      const unsigned char byte = body[at++];
      size |= static_cast<std::size_t>(byte & 0x7f) << shift;
      if (byte < 0x80) break;
    }
    return at + size;
  }

  // Reads what has arrived (waiting up to `timeout_ms` for it); false when nothing came. Reads
  // straight into the buffer; without a timeout, with one non-blocking read and no poll.
  bool read_more(int timeout_ms) {
    if (capacity_ - end_ < kReadSize) {
      const std::size_t kept = end_ - begin_;
      if (kept + kReadSize > capacity_) {
        capacity_ = std::max(2 * capacity_, kept + kReadSize);
        auto larger = std::make_unique<char[]>(capacity_);
        std::memcpy(larger.get(), buffer_.get() + begin_, kept);
        buffer_ = std::move(larger);
      } else {
        std::memmove(buffer_.get(), buffer_.get() + begin_, kept);
      }
      begin_ = 0;
      end_ = kept;
    }
    ssize_t n = 0;
    const std::size_t space = capacity_ - end_;
    if (timeout_ms == 0) {
      // A read that did not fill the space took all there was: another one now would only
      // return EAGAIN.
      if (std::exchange(drained_, false)) return false;
      n = ::recv(fd_, buffer_.get() + end_, space, MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
    } else {
      // A caller that waits has usually just found nothing: poll first.
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, timeout_ms) <= 0) return false;
      n = ::recv(fd_, buffer_.get() + end_, capacity_ - end_, 0);
    }
    if (n <= 0) throw std::runtime_error("connection closed");
    last_read_ = Clock::now();
    end_ += static_cast<std::size_t>(n);
    drained_ = static_cast<std::size_t>(n) < space;
    return true;
  }

  int fd_ = -1;
  mqtt::ProtocolVersion version_;
  long receive_maximum_ = 65535;
  long resumed_messages_ = 0;
  // Bytes read and not yet taken: [begin_, end_) of a buffer of capacity_ bytes.
  std::unique_ptr<char[]> buffer_ = std::make_unique<char[]>(2 * kReadSize);
  std::size_t capacity_ = 2 * kReadSize, begin_ = 0, end_ = 0;
  bool drained_ = false;  // the last read returned less than it had room for
  Clock::time_point last_read_{};
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--port")
      o.port = static_cast<std::uint16_t>(std::stoi(v));
    else if (k == "--username")
      o.username = v;
    else if (k == "--password")
      o.password = v;
    else if (k == "--qos")
      o.qos = std::stoi(v);
    else if (k == "--publishers")
      o.publishers = std::stoi(v);
    else if (k == "--subscribers")
      o.subscribers = std::stoi(v);
    else if (k == "--messages")
      o.messages = std::stol(v);
    else if (k == "--payload")
      o.payload = std::stoul(v);
    else if (k == "--window")
      o.window = std::stoi(v);
    else if (k == "--mode")
      o.mode = v;
    else if (k == "--rate")
      o.rate = std::stod(v);
    else if (k == "--seconds")
      o.seconds = std::stod(v);
    else if (k == "--hold")
      o.hold = std::stod(v);
    else if (k == "--connections")
      o.connections = std::stol(v);
    else if (k == "--broker-pid")
      o.broker_pid = std::stol(v);
    else if (k == "--persistent")
      o.persistent = v != "0";
    else if (k == "--ack-lag")
      o.ack_lag = std::stol(v);
    else if (k == "--consume-rate")
      o.consume_rate = std::stod(v);
    else if (k == "--dead")
      o.dead = std::stoi(v);
    else if (k == "--keep-alive") {
      o.keep_alive = std::stoi(v);
      o.keep_alive_given = true;
    } else if (k == "--sub-port")
      o.sub_port = static_cast<std::uint16_t>(std::stoi(v));
    else if (k == "--sub-username")
      o.sub_username = v;
    else if (k == "--sub-password")
      o.sub_password = v;
    else if (k == "--protocol") {
      if (v != "4" && v != "5") {
        throw std::invalid_argument("--protocol must be 4 (MQTT 3.1.1) or 5 (MQTT 5), not " + v);
      }
      o.protocol = v == "5" ? mqtt::ProtocolVersion::V5 : mqtt::ProtocolVersion::V311;
    } else if (k == "--receive-maximum")
      o.receive_maximum = std::stol(v);
    else
      throw std::invalid_argument("unknown option " + k);
  }
  if (o.mode != "throughput" && o.mode != "latency" && o.mode != "idle" && o.mode != "flood") {
    throw std::invalid_argument("--mode must be throughput, latency, idle or flood");
  }
  if (o.qos != 0 && o.qos != 1) throw std::invalid_argument("--qos must be 0 or 1");
  if (o.rate <= 0 || o.seconds <= 0)
    throw std::invalid_argument("--rate and --seconds must be > 0");
  if (o.window < 1) throw std::invalid_argument("--window must be at least 1");
  // A subscriber acknowledges only beyond --ack-lag unacknowledged messages, and a publisher
  // keeps --window in flight: a Receive Maximum below either would stall the run. Not more than
  // the window by default: mosquitto keeps a v5 subscriber's Receive Maximum in flight to it
  // (instead of its max_inflight_messages) with its queue limit only behind them.
  if (o.receive_maximum == 0) o.receive_maximum = std::max<long>(o.window, o.ack_lag + 1);
  if (o.receive_maximum < 1 || o.receive_maximum > 65535 || o.receive_maximum < o.window ||
      o.receive_maximum <= o.ack_lag) {
    throw std::invalid_argument(
        "--receive-maximum must be 1..65535, at least --window and above --ack-lag");
  }
  return o;
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// A thread running `body`; an exception in it ends the process with its message, as one in main
// does (a PUBACK or DISCONNECT with a failure reason code, a lost connection).
template <class Body>
std::thread guarded_thread(Body body) {
  return std::thread([body = std::move(body)]() mutable {
    try {
      body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "hub_bench: %s\n", e.what());
      std::fflush(nullptr);
      std::_Exit(1);
    }
  });
}

// "p50 0.052  p90 0.071  p99 0.180  max 1.234 ms" from latencies in nanoseconds.
std::string percentiles(std::vector<std::int64_t> v) {
  if (v.empty()) return "no samples";
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    std::size_t i = static_cast<std::size_t>(q * static_cast<double>(v.size()));
    if (i > 0 && static_cast<double>(i) == q * static_cast<double>(v.size())) --i;
    return static_cast<double>(v[std::min(i, v.size() - 1)]) / 1e6;
  };
  char out[128];
  std::snprintf(out, sizeof out, "p50 %.3f  p90 %.3f  p99 %.3f  max %.3f ms", at(0.50), at(0.90),
                at(0.99), static_cast<double>(v.back()) / 1e6);
  return out;
}

// "  mqtt 5" at the end of a line of an MQTT 5 run (nothing for 3.1.1), and the window a v5
// publisher kept when the broker's Receive Maximum was below --window.
std::string protocol_note(const Options& o, long window = 0) {
  if (!v5(o)) return "";
  std::string note = "  mqtt 5";
  if (window > 0 && window < o.window) {
    note += "  window " + std::to_string(window) + " (the broker's Receive Maximum)";
  }
  return note;
}

int run_latency(const Options& o) {
  const long total = static_cast<long>(o.rate * o.seconds);
  Client sub(subscriber_options(o), "bench-lat-sub");
  sub.subscribe(o.qos);
  Client pub(o, "bench-lat-pub");
  std::atomic<bool> published{false};
  std::vector<std::int64_t> delivery, puback;
  delivery.reserve(static_cast<std::size_t>(total));
  puback.reserve(static_cast<std::size_t>(total));
  std::atomic<long> acknowledged{0};
  // Send time by packet id, for the PUBACK latency (ids are not reused within 65535 messages).
  auto sent_at = std::make_unique<std::atomic<std::int64_t>[]>(65536);
  std::thread receiver = guarded_thread([&] {
    std::string ack;
    while (static_cast<long>(delivery.size()) < total) {
      auto p = sub.next(published.load() ? 2000 : 10000);
      if (!p) break;
      if (auto* m = std::get_if<mqtt::Publish>(&*p)) {
        const std::int64_t now = now_ns();
        std::int64_t t = 0;
        if (m->payload.size() >= sizeof t) std::memcpy(&t, m->payload.data(), sizeof t);
        delivery.push_back(now - t);
        if (m->qos == 1) {
          ack.clear();
          sub.encode_puback(m->packet_id, ack);
          sub.send(ack);
        }
      }
    }
  });
  std::thread acker;
  if (o.qos == 1) {
    acker = guarded_thread([&] {
      while (static_cast<long>(puback.size()) < total) {
        auto p = pub.next(published.load() ? 2000 : 10000);
        if (!p) break;
        if (auto* a = std::get_if<mqtt::Puback>(&*p)) {
          if (!accepted(*a)) {
            throw std::runtime_error("PUBACK " + describe(a->reason_code) + " for packet id " +
                                     std::to_string(a->packet_id));
          }
          puback.push_back(now_ns() - sent_at[a->packet_id].load());
          ++acknowledged;
        }
      }
    });
  }
  // MQTT 5: no more QoS 1 messages unacknowledged than the broker's Receive Maximum (a stall
  // beyond it delays the next messages, which their latency shows).
  const long in_flight_max = v5(o) && o.qos == 1 ? pub.receive_maximum() : total;
  const std::string topic = "bench/lat";
  std::string payload(std::max<std::size_t>(o.payload, 8), 'x');
  const auto start = Clock::now();
  const auto period = std::chrono::duration<double>(1.0 / o.rate);
  std::uint16_t id = 0;
  std::string packet;
  for (long i = 0; i < total; ++i) {
    std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(period * i));
    for (const auto stalled = Clock::now(); i - acknowledged.load() >= in_flight_max;) {
      if (Clock::now() - stalled > std::chrono::seconds(30)) {
        throw std::runtime_error("no PUBACK within 30s");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    if (o.qos == 1 && ++id == 0) id = 1;
    const std::int64_t t = now_ns();
    std::memcpy(payload.data(), &t, sizeof t);
    if (o.qos == 1) sent_at[id].store(t);
    packet.clear();
    pub.encode_publish(packet, topic, payload, static_cast<std::uint8_t>(o.qos), id);
    pub.send(packet);
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  published = true;
  receiver.join();
  if (acker.joinable()) acker.join();
  const std::string note = protocol_note(o);
  std::printf(
      "latency qos %d  rate %.0f msg/s (sent at %.0f)  payload %zu  received %zu/%ld  "
      "delivery %s%s\n",
      o.qos, o.rate, static_cast<double>(total) / elapsed, payload.size(), delivery.size(), total,
      percentiles(delivery).c_str(), note.c_str());
  if (o.qos == 1) {
    std::printf("latency qos 1  puback %zu/%ld  puback %s%s\n", puback.size(), total,
                percentiles(puback).c_str(), note.c_str());
  }
  return static_cast<long>(delivery.size()) == total ? 0 : 3;
}

// VmRSS (or another field of /proc/PID/status) of `pid` in KB, or -1.
long rss_kb(long pid, const std::string& field = "VmRSS:") {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(field.size()));
  }
  return -1;
}

// CPU time of every thread of `pid` so far in seconds, or -1: to the nanosecond from the
// process's CPU-time clock, else user plus system time from /proc/PID/stat (in ticks of 10 ms:
// 0.5 µs per message of a 20,000-message run).
double cpu_seconds(long pid) {
  clockid_t clock{};
  timespec now{};
  if (::clock_getcpuclockid(static_cast<pid_t>(pid), &clock) == 0 &&
      ::clock_gettime(clock, &now) == 0) {
    return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
  }
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto end_of_name = stat.rfind(')');
  if (end_of_name == std::string::npos) return -1;
  std::istringstream fields(stat.substr(end_of_name + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {  // fields 14 and 15: utime, stime
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

int run_idle(const Options& o) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
  Options idle = o;
  if (!o.keep_alive_given) idle.keep_alive = 0;
  const long before = o.broker_pid ? rss_kb(o.broker_pid) : -1;
  std::vector<std::unique_ptr<Client>> clients;
  clients.reserve(static_cast<std::size_t>(o.connections));
  const auto start = Clock::now();
  for (long i = 0; i < o.connections; ++i) {
    clients.push_back(std::make_unique<Client>(idle, "bench-idle-" + std::to_string(i)));
  }
  const double connecting = std::chrono::duration<double>(Clock::now() - start).count();
  std::this_thread::sleep_for(std::chrono::duration<double>(o.hold));
  const long after = o.broker_pid ? rss_kb(o.broker_pid) : -1;
  std::printf(
      "idle connections %zu/%ld  keep alive %d  connected in %.2f s  broker VmRSS before %.1f MB  "
      "with them %.1f MB  per connection %.2f KB%s\n",
      clients.size(), o.connections, idle.keep_alive, connecting, before / 1024.0, after / 1024.0,
      o.connections ? static_cast<double>(after - before) / static_cast<double>(o.connections)
                    : 0.0,
      protocol_note(o).c_str());
  return 0;
}

// A subscriber that never reads while one publisher floods it; the broker's memory meanwhile and
// after the subscriber left.
int run_flood(const Options& o) {
  if (o.broker_pid == 0) throw std::invalid_argument("--mode flood needs --broker-pid");
  const long before = rss_kb(o.broker_pid);
  auto sub = std::make_unique<Client>(o, "bench-flood-sub", !o.persistent);
  sub->subscribe(o.qos);
  // From now on the subscriber reads nothing.
  long peak_rss = before;
  std::atomic<bool> publishing{true};
  std::thread sampler([&] {
    while (publishing) {
      peak_rss = std::max(peak_rss, rss_kb(o.broker_pid));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  Client pub(o, "bench-flood-pub");
  const long window = std::min<long>(o.window, pub.receive_maximum());
  const std::string payload(o.payload, 'x');
  std::string batch;
  const auto start = Clock::now();
  long sent = 0, acked = 0;
  std::uint16_t id = 0;
  while (o.qos == 1 ? acked < o.messages : sent < o.messages) {
    while (sent < o.messages && (o.qos == 0 || sent - acked < window)) {
      if (o.qos == 1 && ++id == 0) id = 1;
      pub.encode_publish(batch, "bench/flood", payload, static_cast<std::uint8_t>(o.qos),
                         o.qos == 1 ? id : 0);
      ++sent;
      if (o.qos == 0 && batch.size() >= 65536) break;
    }
    if (!batch.empty()) {
      pub.send(batch);
      batch.clear();
    }
    if (o.qos == 1) {
      auto packet = pub.next_received(30000);
      if (!packet) throw std::runtime_error("no PUBACK within 30s");
      if (packet->puback()) ++acked;
    }
  }
  pub.settle();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  publishing = false;
  sampler.join();
  const long published = rss_kb(o.broker_pid);
  sub.reset();  // it leaves
  std::this_thread::sleep_for(std::chrono::duration<double>(o.hold));
  const long after = rss_kb(o.broker_pid);
  const long hwm = rss_kb(o.broker_pid, "VmHWM:");
  std::printf(
      "flood qos %d  payload %zu  persistent %d  published %ld in %.2f s  broker VmRSS before %.1f "
      "MB  peak %.1f MB (VmHWM %.1f MB)  when published %.1f MB  %.0f s after the subscriber left "
      "%.1f MB%s\n",
      o.qos, o.payload, o.persistent ? 1 : 0, sent, seconds, before / 1024.0, peak_rss / 1024.0,
      hwm / 1024.0, published / 1024.0, o.hold, after / 1024.0,
      protocol_note(o, o.qos == 1 ? window : 0).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) try {
  const Options o = parse(argc, argv);
  if (o.mode == "latency") return run_latency(o);
  if (o.mode == "idle") return run_idle(o);
  if (o.mode == "flood") return run_flood(o);
  const long expected = o.messages * o.publishers;
  std::vector<std::unique_ptr<Client>> subs;
  for (int s = 0; s < o.subscribers; ++s) {
    subs.push_back(std::make_unique<Client>(subscriber_options(o), "bench-sub-" + std::to_string(s),
                                            !o.persistent));
    subs.back()->subscribe(o.qos);
  }
  // Subscribers that never read: the broker must not let them slow anyone.
  std::vector<std::unique_ptr<Client>> dead;
  for (int d = 0; d < o.dead; ++d) {
    dead.push_back(std::make_unique<Client>(o, "bench-dead-" + std::to_string(d), true));
    dead.back()->subscribe(o.qos);
  }
  std::atomic<long> received{0};
  std::atomic<int> publishing{o.publishers};
  std::atomic<long> window_kept{o.window};  // QoS 1: the least window of the publishers
  const double cpu_before = o.broker_pid ? cpu_seconds(o.broker_pid) : -1;
  const double client_cpu_before = cpu_seconds(::getpid());
  const auto start = Clock::now();
  std::vector<Clock::time_point> finished(static_cast<std::size_t>(o.subscribers), start);
  std::vector<std::thread> threads;
  for (int s = 0; s < o.subscribers; ++s) {
    threads.push_back(guarded_thread([&, s] {
      long count = 0;
      std::string acks;
      std::deque<std::uint16_t> unacked;  // --ack-lag: the newest packet ids not yet acknowledged
      while (count < expected) {
        // After the publishers are done, a quiet second means the rest was dropped.
        // Acknowledgements go out in batches, and always before waiting for more.
        auto p = subs[s]->next_received(0);
        if (!p) {
          if (!acks.empty()) {
            subs[s]->send(acks);
            acks.clear();
          }
          p = subs[s]->next_received(publishing.load() > 0 ? 10000 : 1000);
        }
        if (!p) break;
        if (auto* m = p->publish() ? &*p : nullptr) {
          ++count;
          if (o.consume_rate > 0) {
            std::this_thread::sleep_until(
                start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                            static_cast<double>(count) / o.consume_rate)));
          }
          finished[static_cast<std::size_t>(s)] =
              o.consume_rate > 0 ? Clock::now() : subs[s]->last_read();
          if (m->qos == 1) {
            unacked.push_back(m->packet_id);
            while (static_cast<long>(unacked.size()) > o.ack_lag ||
                   (count == expected && !unacked.empty())) {
              subs[s]->encode_puback(unacked.front(), acks);
              unacked.pop_front();
            }
            if (acks.size() >= 400 || o.ack_lag > 0) {
              subs[s]->send(acks);
              acks.clear();
            }
          }
        }
      }
      for (auto id : unacked) subs[s]->encode_puback(id, acks);
      if (!acks.empty()) subs[s]->send(acks);
      if (o.persistent) {
        // The session stays: its broker must have read the last PUBACKs before the next run's
        // connection with this client id takes it over (or it sends those messages again).
        subs[s]->settle();
        subs[s]->disconnect();
      }
      received += count;
    }));
  }
  for (int p = 0; p < o.publishers; ++p) {
    threads.push_back(guarded_thread([&, p] {
      Client pub(o, "bench-pub-" + std::to_string(p));
      const std::string topic = "bench/" + std::to_string(p);
      const std::string payload(o.payload, 'x');
      std::string batch;
      if (o.qos == 0) {
        for (long i = 0; i < o.messages; ++i) {
          pub.encode_publish(batch, topic, payload, 0, 0);
          if (batch.size() >= 16384) {
            pub.send(batch);
            batch.clear();
          }
        }
        if (!batch.empty()) pub.send(batch);
        pub.settle();
      } else {
        long sent = 0, acked = 0;
        std::uint16_t id = 0;
        const long window = std::min<long>(o.window, pub.receive_maximum());
        if (window < window_kept.load()) window_kept = window;
        while (acked < o.messages) {
          while (sent < o.messages && sent - acked < window) {
            if (++id == 0) id = 1;
            pub.encode_publish(batch, topic, payload, 1, id);
            ++sent;
          }
          if (!batch.empty()) {
            pub.send(batch);
            batch.clear();
          }
          auto packet = pub.next_received(30000);
          if (!packet) throw std::runtime_error("no PUBACK within 30s");
          if (packet->puback()) ++acked;
          // Every PUBACK of that read, so that one send refills the window for all of them.
          while (auto more = pub.next_buffered()) {
            if (more->puback()) ++acked;
          }
        }
      }
      --publishing;
    }));
  }
  for (auto& t : threads) t.join();
  auto last = start;
  for (auto f : finished) last = std::max(last, f);
  const double seconds = std::chrono::duration<double>(last - start).count();
  const long total = expected * o.subscribers;
  std::printf("qos %d  %d->%d%s  payload %zu  received %ld/%ld  lost %.2f%%  %.0f msg/s  (%.2f s)",
              o.qos, o.publishers, o.subscribers,
              o.dead ? (" (+" + std::to_string(o.dead) + " dead)").c_str() : "", o.payload,
              received.load(), total,
              100.0 * static_cast<double>(total - received.load()) / static_cast<double>(total),
              static_cast<double>(received.load()) / seconds, seconds);
  if (o.broker_pid && received.load() > 0) {
    const double cpu = cpu_seconds(o.broker_pid) - cpu_before;
    std::printf("  broker cpu %.2f s  %.2f us/msg", cpu,
                1e6 * cpu / static_cast<double>(received.load()));
    // This process's own share: where it needs as much CPU per message as a broker with one
    // thread, no broker could go faster with a second thread on the same two cores.
    const double client = cpu_seconds(::getpid()) - client_cpu_before;
    std::printf("  client cpu %.2f s (%.2f us per msg)", client,
                1e6 * client / static_cast<double>(received.load()));
  }
  long resumed = 0;
  for (const auto& sub : subs) resumed += sub->resumed_messages();
  if (resumed > 0) std::printf("  %ld of an earlier run first", resumed);
  std::printf("%s\n", protocol_note(o, o.qos == 1 ? window_kept.load() : 0).c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "hub_bench: %s\n", e.what());
  return 1;
}
