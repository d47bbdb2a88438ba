// hub_bench: MQTT throughput of a broker with N publishers and M subscribers over loopback.
//
//   hub_bench --port 1883 [--username test --password hahaha] [--qos 0|1] [--publishers 1]
//             [--subscribers 1] [--messages 100000] [--payload 64] [--window 100]
//
// Every subscriber subscribes to bench/# at --qos; every publisher sends --messages messages of
// --payload bytes to bench/<n> (QoS 1: at most --window unacknowledged). Prints messages received
// per second over all subscribers and how many were lost (QoS 0 may drop under overload).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

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
};

class Client {
 public:
  Client(const Options& o, const std::string& id) {
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
    c.keep_alive = 60;
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
      buffer_.erase(0, pos_);
      pos_ = 0;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, timeout_ms) <= 0) return std::nullopt;
      char chunk[1 << 16];
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) throw std::runtime_error("connection closed");
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  std::string buffer_;
  std::size_t pos_ = 0;
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
    else
      throw std::invalid_argument("unknown option " + k);
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) try {
  const Options o = parse(argc, argv);
  const long expected = o.messages * o.publishers;
  std::vector<std::unique_ptr<Client>> subs;
  for (int s = 0; s < o.subscribers; ++s) {
    subs.push_back(std::make_unique<Client>(o, "bench-sub-" + std::to_string(s)));
    subs.back()->send(
        mqtt::encode(mqtt::Subscribe{1, {{"bench/#", static_cast<std::uint8_t>(o.qos)}}}));
    auto ack = subs.back()->next(10000);
    if (!ack || !std::holds_alternative<mqtt::Suback>(*ack)) throw std::runtime_error("no SUBACK");
  }
  std::atomic<long> received{0};
  std::atomic<int> publishing{o.publishers};
  const auto start = Clock::now();
  std::vector<Clock::time_point> finished(static_cast<std::size_t>(o.subscribers), start);
  std::vector<std::thread> threads;
  for (int s = 0; s < o.subscribers; ++s) {
    threads.emplace_back([&, s] {
      long count = 0;
      std::string acks;
      while (count < expected) {
        // After the publishers are done, a quiet second means the rest was dropped.
        // Acknowledgements go out in batches, and always before waiting for more.
        auto p = subs[s]->next(0);
        if (!p) {
          if (!acks.empty()) {
            subs[s]->send(acks);
            acks.clear();
          }
          p = subs[s]->next(publishing.load() > 0 ? 10000 : 1000);
        }
        if (!p) break;
        if (auto* m = std::get_if<mqtt::Publish>(&*p)) {
          ++count;
          finished[static_cast<std::size_t>(s)] = Clock::now();
          if (m->qos == 1) {
            mqtt::encode(mqtt::Puback{m->packet_id}, acks);
            if (acks.size() >= 400) {
              subs[s]->send(acks);
              acks.clear();
            }
          }
        }
      }
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
  std::printf("qos %d  %d->%d  payload %zu  received %ld/%ld  lost %.2f%%  %.0f msg/s  (%.2f s)\n",
              o.qos, o.publishers, o.subscribers, o.payload, received.load(), total,
              100.0 * static_cast<double>(total - received.load()) / static_cast<double>(total),
              static_cast<double>(received.load()) / seconds, seconds);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "hub_bench: %s\n", e.what());
  return 1;
}
