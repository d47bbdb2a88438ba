// remote_mqtt_recovery_bench: how soon messages flow again through a bridge once its remote broker
// is back.
//
//   remote_mqtt_recovery_bench --hub-port H [--username test --password hahaha] --remote-port P
//                              [--rate 500] [--outage 3] [--trials 5]
//
// Expects a hub on 127.0.0.1:H and a bridge (baetyl-remote-mqtt, or any other) that forwards
// bench/# from it to 127.0.0.1:P at QoS 1. Starts mosquitto on P itself, publishes to the hub at
// --rate messages a second (QoS 1, on and on), and subscribes on P at QoS 1. Each trial kills
// mosquitto (SIGKILL), waits --outage seconds, starts it again, and reconnects the subscriber as
// soon as the port accepts (polled every millisecond). It prints, per trial, the time from the
// listener being up to the first message arriving, and until every message published during the
// outage has arrived.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "baetyl/mqtt/client.h"
#include "baetyl/mqtt/codec.h"
#include "baetyl/testing/mosquitto.h"

namespace mqtt = baetyl::mqtt;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

struct Options {
  std::uint16_t hub_port = 0, remote_port = 0;
  std::string username = "test", password = "hahaha";
  double rate = 500, outage = 3;
  int trials = 5;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--hub-port")
      o.hub_port = static_cast<std::uint16_t>(std::stoi(v));
    else if (k == "--remote-port")
      o.remote_port = static_cast<std::uint16_t>(std::stoi(v));
    else if (k == "--username")
      o.username = v;
    else if (k == "--password")
      o.password = v;
    else if (k == "--rate")
      o.rate = std::stod(v);
    else if (k == "--outage")
      o.outage = std::stod(v);
    else if (k == "--trials")
      o.trials = std::stoi(v);
    else
      throw std::invalid_argument("unknown option " + k);
  }
  if (!o.hub_port || !o.remote_port) throw std::invalid_argument("--hub-port and --remote-port");
  return o;
}

// The number a payload holds, or -1 (a probe or a leftover of another run).
long number(const std::string& payload) {
  char* end = nullptr;
  long value = std::strtol(payload.c_str(), &end, 10);
  return payload.empty() || *end != '\0' ? -1 : value;
}

// A connection to 127.0.0.1:port, or -1 when nothing accepts.
int dial(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// A subscriber on a plain socket: connects the moment the port accepts, no backoff.
class Subscriber {
 public:
  explicit Subscriber(int fd) : fd_(fd) {
    mqtt::Connect connect;
    connect.client_id = "recovery-sub";
    connect.keep_alive = 60;
    send(mqtt::encode(connect));
    if (!next_of<mqtt::Connack>()) throw std::runtime_error("no CONNACK");
    send(mqtt::encode(mqtt::Subscribe{1, {{"bench/#", 1}}}));
    if (!next_of<mqtt::Suback>()) throw std::runtime_error("no SUBACK");
  }
  ~Subscriber() { ::close(fd_); }

  // The next PUBLISH (acknowledged), or nullopt after `timeout` or when the broker is gone.
  std::optional<mqtt::Publish> next_publish(std::chrono::milliseconds timeout) {
    auto packet = next(timeout);
    while (packet && !std::holds_alternative<mqtt::Publish>(*packet)) packet = next(timeout);
    if (!packet) return std::nullopt;
    auto& publish = std::get<mqtt::Publish>(*packet);
    if (publish.qos == 1) send(mqtt::encode(mqtt::Puback{publish.packet_id}));
    return std::move(publish);
  }

 private:
  template <class T>
  bool next_of() {
    auto packet = next(5s);
    return packet && std::holds_alternative<T>(*packet);
  }
  void send(const std::string& bytes) {
    if (::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(bytes.size()))
      throw std::runtime_error("send failed");
  }
  std::optional<mqtt::Packet> next(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      auto r = mqtt::decode(buffer_);
      if (r.status == mqtt::DecodeStatus::Ok) {
        buffer_.erase(0, r.consumed);
        return std::move(r.packet);
      }
      if (r.status == mqtt::DecodeStatus::Error) throw std::runtime_error(r.error);
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return {};
      char chunk[16384];
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) return {};
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  int fd_;
  std::string buffer_;
};

std::unique_ptr<Subscriber> subscribe_when_up(std::uint16_t port, Clock::time_point& up) {
  for (;;) {
    int fd = dial(port);
    if (fd >= 0) {
      up = Clock::now();
      return std::make_unique<Subscriber>(fd);
    }
    std::this_thread::sleep_for(1ms);
  }
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

int main(int argc, char** argv) try {
  const Options o = parse(argc, argv);
  baetyl::testing::MosquittoBroker remote(
      baetyl::testing::MosquittoOptions{.port = o.remote_port, .persistence = false});

  mqtt::ClientConfig config;
  config.address = "tcp://127.0.0.1:" + std::to_string(o.hub_port);
  config.username = o.username;
  config.password = o.password;
  config.client_id = "recovery-pub";
  config.clean_session = true;
  config.buffer_size = 1000;
  mqtt::Client publisher(config);
  publisher.start();
  if (!publisher.wait_connected(10s)) throw std::runtime_error("cannot connect to the hub");
  std::atomic<long> published{0};
  std::atomic<bool> stop{false};
  // Stopped by `stop`, or by its destructor when an error ends the run early.
  std::jthread publishing([&](std::stop_token token) {
    const auto start = Clock::now();
    for (long i = 0; !stop && !token.stop_requested(); ++i) {
      std::this_thread::sleep_until(
          start + std::chrono::duration_cast<Clock::duration>(
                      std::chrono::duration<double>(static_cast<double>(i) / o.rate)));
      publisher.async_publish(mqtt::Publish{"bench/recovery", std::to_string(i), 1});
      published = i + 1;
    }
  });

  Clock::time_point up;
  auto subscriber = subscribe_when_up(o.remote_port, up);
  if (!subscriber->next_publish(30s)) throw std::runtime_error("nothing comes through the bridge");
  std::vector<double> first, drained;
  for (int trial = 1; trial <= o.trials; ++trial) {
    // Take in what is on its way, so that the outage starts with the bridge caught up.
    const long target = published.load() - 1;
    for (auto until = Clock::now() + 5s; Clock::now() < until;) {
      auto message = subscriber->next_publish(100ms);
      if (message && number(message->payload) >= target) break;
    }
    ::kill(remote.pid(), SIGKILL);
    remote.stop();
    subscriber.reset();
    const long last_before = published.load();
    std::this_thread::sleep_for(std::chrono::duration<double>(o.outage));
    const long last_during = published.load();
    std::thread restart([&] { remote.start(); });
    subscriber = subscribe_when_up(o.remote_port, up);
    restart.join();
    std::optional<Clock::time_point> first_at;
    long highest = -1;
    auto deadline = up + 60s;
    while (highest < last_during - 1 && Clock::now() < deadline) {
      auto message = subscriber->next_publish(
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
      if (!message) break;
      if (!first_at) first_at = Clock::now();
      highest = std::max(highest, number(message->payload));
    }
    if (!first_at || highest < last_during - 1) {
      std::printf("recovery trial %d: did not recover within 60 s (highest %ld of %ld)\n", trial,
                  highest, last_during - 1);
      stop = true;
      return 3;
    }
    const auto caught_up = Clock::now();
    first.push_back(ms(*first_at - up));
    drained.push_back(ms(caught_up - up));
    std::printf(
        "recovery trial %d: outage %.1f s, %ld messages published meanwhile; first message "
        "%.0f ms after the listener was up, all of them after %.0f ms\n",
        trial, o.outage, last_during - last_before, first.back(), drained.back());
  }
  std::sort(first.begin(), first.end());
  std::sort(drained.begin(), drained.end());
  std::printf(
      "recovery: first message after the listener was up: median %.0f ms, max %.0f ms; "
      "all caught up: median %.0f ms, max %.0f ms (%d trials, rate %.0f msg/s, outage "
      "%.1f s)\n",
      first[first.size() / 2], first.back(), drained[drained.size() / 2], drained.back(), o.trials,
      o.rate, o.outage);
  stop = true;
  publishing.join();
  publisher.stop();
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "remote_mqtt_recovery_bench: %s\n", e.what());
  return 1;
}
