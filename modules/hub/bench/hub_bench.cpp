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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <fstream>
#include <memory>
#include <iterator>
#include <optional>
#include <sstream>

#include <atomic>
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
};

// The options the subscribers connect with: --port, or the bridged broker of --sub-port.
Options subscriber_options(const Options& o) {
  if (o.sub_port == 0) return o;
  Options s = o;
  s.port = o.sub_port;
  s.username = o.sub_username;
  s.password = o.sub_password;
  return s;
}

class Client {
 public:
  Client(const Options& o, const std::string& id, bool clean_session = true) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(o.port);
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      throw std::runtime_error("cannot connect to port " + std::to_string(o.port));
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    mqtt::Connect c;
    c.client_id = id;
    c.clean_session = clean_session;
    c.keep_alive = static_cast<std::uint16_t>(o.keep_alive);
    if (!o.username.empty()) c.username = o.username;
    if (!o.password.empty()) c.password = o.password;
    send(mqtt::encode(c));
    auto ack = next(10000);
    if (!ack || !std::holds_alternative<mqtt::Connack>(*ack) ||
        std::get<mqtt::Connack>(*ack).return_code != mqtt::ConnectReturnCode::Accepted) {
      throw std::runtime_error("connection refused");
    }
  }
  ~Client() { ::close(fd_); }

  void send(const std::string& bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error("send failed");
      done += static_cast<std::size_t>(n);
    }
  }

  // The next packet, or nullopt after `timeout_ms` without one.
  std::optional<mqtt::Packet> next(int timeout_ms) {
    while (true) {
      if (pos_ < buffer_.size()) {
        auto r = mqtt::decode(std::string_view(buffer_).substr(pos_));
        if (r.status == mqtt::DecodeStatus::Ok) {
          pos_ += r.consumed;
          return std::move(r.packet);
        }
        if (r.status == mqtt::DecodeStatus::Error) throw std::runtime_error(r.error);
      }
      if (!read_more(timeout_ms)) return std::nullopt;
    }
  }

  // What a subscriber needs of a received packet: whether it is a PUBLISH, its QoS and packet id.
  struct Received {
    bool publish = false;
    std::uint8_t qos = 0;
    std::uint16_t packet_id = 0;
  };

  // The next packet as Received, read without decoding it into a Packet (no copy of topic and
  // payload: the client must not be what limits a throughput run); nullopt after `timeout_ms`
  // without one.
  std::optional<Received> next_received(int timeout_ms) {
    while (true) {
      if (auto received = take_received()) return received;
      if (!read_more(timeout_ms)) return std::nullopt;
    }
  }

  // When the last bytes arrived.
  Clock::time_point last_read() const { return last_read_; }

 private:
  std::optional<Received> take_received() {
    const std::size_t available = buffer_.size() - pos_;
    if (available < 2) return std::nullopt;
    const auto* bytes = reinterpret_cast<const unsigned char*>(buffer_.data() + pos_);
    std::size_t length = 0, header = 1;
    for (int shift = 0;; shift += 7) {
      if (header >= available) return std::nullopt;
      if (shift > 21) throw std::runtime_error("malformed remaining length");
      const unsigned char byte = bytes[header++];
      length |= static_cast<std::size_t>(byte & 0x7f) << shift;
      if (byte < 0x80) break;
    }
    if (available < header + length) return std::nullopt;
    Received received;
    if ((bytes[0] >> 4) == 3) {
      received.publish = true;
      received.qos = static_cast<std::uint8_t>((bytes[0] >> 1) & 3);
      if (received.qos > 0) {
        const std::size_t topic = (std::size_t{bytes[header]} << 8) | bytes[header + 1];
        const std::size_t id = header + 2 + topic;
        received.packet_id = static_cast<std::uint16_t>((bytes[id] << 8) | bytes[id + 1]);
      }
    }
    pos_ += header + length;
    return received;
  }

  // Reads what has arrived (waiting up to `timeout_ms`); false when nothing came.
  bool read_more(int timeout_ms) {
    buffer_.erase(0, pos_);
    pos_ = 0;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return false;
    char chunk[1 << 16];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) throw std::runtime_error("connection closed");
    last_read_ = Clock::now();
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

 public:

 private:
  int fd_ = -1;
  std::string buffer_;
  std::size_t pos_ = 0;
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
    else
      throw std::invalid_argument("unknown option " + k);
  }
  if (o.mode != "throughput" && o.mode != "latency" && o.mode != "idle" && o.mode != "flood") {
    throw std::invalid_argument("--mode must be throughput, latency, idle or flood");
  }
  if (o.qos != 0 && o.qos != 1) throw std::invalid_argument("--qos must be 0 or 1");
  if (o.rate <= 0 || o.seconds <= 0)
    throw std::invalid_argument("--rate and --seconds must be > 0");
  return o;
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
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

int run_latency(const Options& o) {
  const long total = static_cast<long>(o.rate * o.seconds);
  Client sub(subscriber_options(o), "bench-lat-sub");
  sub.send(mqtt::encode(mqtt::Subscribe{1, {{"bench/#", static_cast<std::uint8_t>(o.qos)}}}));
  auto ack = sub.next(10000);
  if (!ack || !std::holds_alternative<mqtt::Suback>(*ack)) throw std::runtime_error("no SUBACK");
  Client pub(o, "bench-lat-pub");
  std::atomic<bool> published{false};
  std::vector<std::int64_t> delivery, puback;
  delivery.reserve(static_cast<std::size_t>(total));
  puback.reserve(static_cast<std::size_t>(total));
  // Send time by packet id, for the PUBACK latency (ids are not reused within 65535 messages).
  auto sent_at = std::make_unique<std::atomic<std::int64_t>[]>(65536);
  std::thread receiver([&] {
    while (static_cast<long>(delivery.size()) < total) {
      auto p = sub.next(published.load() ? 2000 : 10000);
      if (!p) break;
      if (auto* m = std::get_if<mqtt::Publish>(&*p)) {
        const std::int64_t now = now_ns();
        std::int64_t t = 0;
        if (m->payload.size() >= sizeof t) std::memcpy(&t, m->payload.data(), sizeof t);
        delivery.push_back(now - t);
        if (m->qos == 1) sub.send(mqtt::encode(mqtt::Puback{m->packet_id}));
      }
    }
  });
  std::thread acker;
  if (o.qos == 1) {
    acker = std::thread([&] {
      while (static_cast<long>(puback.size()) < total) {
        auto p = pub.next(published.load() ? 2000 : 10000);
        if (!p) break;
        if (auto* a = std::get_if<mqtt::Puback>(&*p)) {
          puback.push_back(now_ns() - sent_at[a->packet_id].load());
        }
      }
    });
  }
  const std::string topic = "bench/lat";
  std::string payload(std::max<std::size_t>(o.payload, 8), 'x');
  const auto start = Clock::now();
  const auto period = std::chrono::duration<double>(1.0 / o.rate);
  std::uint16_t id = 0;
  std::string packet;
  for (long i = 0; i < total; ++i) {
    std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(period * i));
    if (o.qos == 1 && ++id == 0) id = 1;
    const std::int64_t t = now_ns();
    std::memcpy(payload.data(), &t, sizeof t);
    if (o.qos == 1) sent_at[id].store(t);
    packet.clear();
    mqtt::encode_publish(packet, topic, payload, static_cast<std::uint8_t>(o.qos), false, false,
                         id);
    pub.send(packet);
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  published = true;
  receiver.join();
  if (acker.joinable()) acker.join();
  std::printf(
      "latency qos %d  rate %.0f msg/s (sent at %.0f)  payload %zu  received %zu/%ld  "
      "delivery %s\n",
      o.qos, o.rate, static_cast<double>(total) / elapsed, payload.size(), delivery.size(), total,
      percentiles(delivery).c_str());
  if (o.qos == 1) {
    std::printf("latency qos 1  puback %zu/%ld  puback %s\n", puback.size(), total,
                percentiles(puback).c_str());
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

// User plus system CPU time of `pid` in seconds (/proc/PID/stat), or -1.
double cpu_seconds(long pid) {
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
      "with them %.1f MB  per connection %.2f KB\n",
      clients.size(), o.connections, idle.keep_alive, connecting, before / 1024.0, after / 1024.0,
      o.connections ? static_cast<double>(after - before) / static_cast<double>(o.connections)
                    : 0.0);
  return 0;
}

// A subscriber that never reads while one publisher floods it; the broker's memory meanwhile and
// after the subscriber left.
int run_flood(const Options& o) {
  if (o.broker_pid == 0) throw std::invalid_argument("--mode flood needs --broker-pid");
  const long before = rss_kb(o.broker_pid);
  auto sub = std::make_unique<Client>(o, "bench-flood-sub", !o.persistent);
  sub->send(mqtt::encode(mqtt::Subscribe{1, {{"bench/#", static_cast<std::uint8_t>(o.qos)}}}));
  auto ack = sub->next(10000);
  if (!ack || !std::holds_alternative<mqtt::Suback>(*ack)) throw std::runtime_error("no SUBACK");
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
  const std::string payload(o.payload, 'x');
  std::string batch;
  const auto start = Clock::now();
  long sent = 0, acked = 0;
  std::uint16_t id = 0;
  while (o.qos == 1 ? acked < o.messages : sent < o.messages) {
    while (sent < o.messages && (o.qos == 0 || sent - acked < o.window)) {
      if (o.qos == 1 && ++id == 0) id = 1;
      mqtt::encode_publish(batch, "bench/flood", payload, static_cast<std::uint8_t>(o.qos), false,
                           false, o.qos == 1 ? id : 0);
      ++sent;
      if (o.qos == 0 && batch.size() >= 65536) break;
    }
    if (!batch.empty()) {
      pub.send(batch);
      batch.clear();
    }
    if (o.qos == 1) {
      auto packet = pub.next(30000);
      if (!packet) throw std::runtime_error("no PUBACK within 30s");
      if (std::holds_alternative<mqtt::Puback>(*packet)) ++acked;
    }
  }
  pub.send(mqtt::encode(mqtt::Pingreq{}));  // PINGRESP: the broker has read everything
  while (auto packet = pub.next(30000)) {
    if (std::holds_alternative<mqtt::Pingresp>(*packet)) break;
  }
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
      "%.1f MB\n",
      o.qos, o.payload, o.persistent ? 1 : 0, sent, seconds, before / 1024.0, peak_rss / 1024.0,
      hwm / 1024.0, published / 1024.0, o.hold, after / 1024.0);
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
    subs.back()->send(
        mqtt::encode(mqtt::Subscribe{1, {{"bench/#", static_cast<std::uint8_t>(o.qos)}}}));
    auto ack = subs.back()->next(10000);
    if (!ack || !std::holds_alternative<mqtt::Suback>(*ack)) throw std::runtime_error("no SUBACK");
  }
  // Subscribers that never read: the broker must not let them slow anyone.
  std::vector<std::unique_ptr<Client>> dead;
  for (int d = 0; d < o.dead; ++d) {
    dead.push_back(std::make_unique<Client>(o, "bench-dead-" + std::to_string(d), true));
    dead.back()->send(
        mqtt::encode(mqtt::Subscribe{1, {{"bench/#", static_cast<std::uint8_t>(o.qos)}}}));
    auto ack = dead.back()->next(10000);
    if (!ack || !std::holds_alternative<mqtt::Suback>(*ack)) throw std::runtime_error("no SUBACK");
  }
  std::atomic<long> received{0};
  std::atomic<int> publishing{o.publishers};
  const double cpu_before = o.broker_pid ? cpu_seconds(o.broker_pid) : -1;
  const double client_cpu_before = cpu_seconds(::getpid());
  const auto start = Clock::now();
  std::vector<Clock::time_point> finished(static_cast<std::size_t>(o.subscribers), start);
  std::vector<std::thread> threads;
  for (int s = 0; s < o.subscribers; ++s) {
    threads.emplace_back([&, s] {
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
        if (auto* m = p->publish ? &*p : nullptr) {
          ++count;
          if (o.consume_rate > 0) {
            std::this_thread::sleep_until(
                start + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(static_cast<double>(count) /
                                                          o.consume_rate)));
          }
          finished[static_cast<std::size_t>(s)] =
              o.consume_rate > 0 ? Clock::now() : subs[s]->last_read();
          if (m->qos == 1) {
            unacked.push_back(m->packet_id);
            while (static_cast<long>(unacked.size()) > o.ack_lag ||
                   (count == expected && !unacked.empty())) {
              mqtt::encode(mqtt::Puback{unacked.front()}, acks);
              unacked.pop_front();
            }
            if (acks.size() >= 400 || o.ack_lag > 0) {
              subs[s]->send(acks);
              acks.clear();
            }
          }
        }
      }
      for (auto id : unacked) mqtt::encode(mqtt::Puback{id}, acks);
      if (!acks.empty()) subs[s]->send(acks);
      received += count;
    });
  }
  for (int p = 0; p < o.publishers; ++p) {
    threads.emplace_back([&, p] {
      Client pub(o, "bench-pub-" + std::to_string(p));
      const std::string topic = "bench/" + std::to_string(p);
      const std::string payload(o.payload, 'x');
      std::string batch;
      if (o.qos == 0) {
        for (long i = 0; i < o.messages; ++i) {
          mqtt::encode_publish(batch, topic, payload, 0, false, false, 0);
          if (batch.size() >= 16384) {
            pub.send(batch);
            batch.clear();
          }
        }
        if (!batch.empty()) pub.send(batch);
        pub.send(mqtt::encode(mqtt::Pingreq{}));  // PINGRESP: the hub has read everything
        while (auto packet = pub.next(30000)) {
          if (std::holds_alternative<mqtt::Pingresp>(*packet)) break;
        }
      } else {
        long sent = 0, acked = 0;
        std::uint16_t id = 0;
        while (acked < o.messages) {
          while (sent < o.messages && sent - acked < o.window) {
            if (++id == 0) id = 1;
            mqtt::encode_publish(batch, topic, payload, 1, false, false, id);
            ++sent;
          }
          if (!batch.empty()) {
            pub.send(batch);
            batch.clear();
          }
          auto packet = pub.next(30000);
          if (!packet) throw std::runtime_error("no PUBACK within 30s");
          if (std::holds_alternative<mqtt::Puback>(*packet)) ++acked;
        }
      }
      --publishing;
    });
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
  std::printf("\n");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "hub_bench: %s\n", e.what());
  return 1;
}
