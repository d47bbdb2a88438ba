#include "bridge_test_support.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <charconv>
#include <future>

namespace baetyl::remote::testing {

// ---- BridgeProcess ----

BridgeProcess::BridgeProcess(std::string config, std::map<std::string, std::string> env)
    : env_(std::move(env)) {
  dir_.write("etc/baetyl/service.yml", config);
  start();
}

BridgeProcess::~BridgeProcess() {
  if (process_ && ::testing::Test::HasFailure()) {
    std::fprintf(stderr, "---- bridge output ----\n%s\n", output().c_str());
  }
  if (process_) process_->stop(SIGKILL);
}

void BridgeProcess::start() {
  baetyl::testing::ProcessOptions options;
  options.working_dir = dir_.path().string();
  options.output_file = (dir_.path() / "output.log").string();
  options.env = env_;
  process_ = std::make_unique<baetyl::testing::Process>(
      std::vector<std::string>{baetyl::testing::binary_path("baetyl-remote-mqtt")}, options);
}

int BridgeProcess::stop(int signal, std::chrono::milliseconds timeout) {
  return process_->stop(signal, timeout);
}

bool BridgeProcess::running() { return process_ && process_->running(); }

std::string BridgeProcess::output() const { return process_ ? process_->output() : ""; }

bool BridgeProcess::wait_for_output(const std::string& text, std::chrono::milliseconds timeout,
                                    std::size_t times) const {
  return eventually(
      [&] {
        std::string out = output();
        std::size_t found = 0;
        for (auto at = out.find(text); at != std::string::npos; at = out.find(text, at + 1)) {
          ++found;
        }
        return found >= times;
      },
      timeout);
}

// ---- Collector ----

mqtt::ClientConfig test_client_config(const std::string& address, const std::string& client_id,
                                      const std::string& username, const std::string& password) {
  mqtt::ClientConfig config;
  config.address = address;
  config.client_id = client_id;
  config.clean_session = client_id.empty();
  config.username = username;
  config.password = password;
  config.interval = 1s;
  config.timeout = 5s;
  config.keepalive = 10s;
  return config;
}

namespace {

std::optional<int> number(const std::string& payload) {
  int value = 0;
  auto [end, ec] = std::from_chars(payload.data(), payload.data() + payload.size(), value);
  if (ec != std::errc() || end != payload.data() + payload.size()) return std::nullopt;
  return value;
}

}  // namespace

Collector::Collector(mqtt::ClientConfig config, std::vector<mqtt::TopicInfo> topics) {
  config.subscriptions = topics;
  client_ = std::make_unique<mqtt::Client>(config);
  mqtt::ClientCallbacks callbacks;
  callbacks.on_message = [this](const mqtt::Message& m) {
    std::lock_guard lock(mutex_);
    received_.push_back({m.publish.topic, m.publish.payload, m.publish.qos, m.publish.retain});
    changed_.notify_all();
  };
  client_->start(callbacks);
  if (!client_->wait_connected(10s)) throw std::runtime_error("collector: cannot connect");
  // The configured subscriptions go out on connect; this one's SUBACK says they are in place.
  std::promise<void> subscribed;
  client_->subscribe(topics,
                     [&](error_code, std::vector<std::uint8_t>) { subscribed.set_value(); });
  if (subscribed.get_future().wait_for(10s) != std::future_status::ready) {
    throw std::runtime_error("collector: no SUBACK");
  }
}

Collector::~Collector() { client_->stop(); }

std::vector<Received> Collector::received() const {
  std::lock_guard lock(mutex_);
  return received_;
}

std::size_t Collector::count() const {
  std::lock_guard lock(mutex_);
  return received_.size();
}

std::set<int> Collector::ids() const {
  std::set<int> ids;
  std::lock_guard lock(mutex_);
  for (const auto& m : received_) {
    if (auto n = number(m.payload)) ids.insert(*n);
  }
  return ids;
}

std::map<std::string, int> Collector::payload_counts() const {
  std::map<std::string, int> counts;
  std::lock_guard lock(mutex_);
  for (const auto& m : received_) ++counts[m.payload];
  return counts;
}

bool Collector::has_payload(const std::string& payload) const {
  std::lock_guard lock(mutex_);
  for (const auto& m : received_) {
    if (m.payload == payload) return true;
  }
  return false;
}

bool Collector::wait_for_count(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return received_.size() >= n; });
}

bool Collector::wait_for_ids(std::size_t n, std::chrono::milliseconds timeout) const {
  return eventually([&] { return ids().size() >= n; }, timeout);
}

// ---- Streamer ----

Streamer::Streamer(const std::string& address, const std::string& client_id,
                   const std::string& username, const std::string& password) {
  auto config = test_client_config(address, client_id, username, password);
  config.clean_session = true;
  config.buffer_size = 50;
  client_ = std::make_unique<mqtt::Client>(config);
  client_->start();
  if (!client_->wait_connected(10s)) throw std::runtime_error("streamer: cannot connect");
}

Streamer::~Streamer() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  client_->stop();
}

void Streamer::start(const std::string& topic, int from, int to, int rate) {
  thread_ = std::thread([this, topic, from, to, rate] {
    const auto step = std::chrono::nanoseconds(1'000'000'000 / std::max(rate, 1));
    auto next = std::chrono::steady_clock::now();
    for (int i = from; i < to && !stop_; ++i) {
      while (!client_->try_publish(mqtt::Publish{topic, std::to_string(i), 1}, 100ms)) {
        if (stop_) return;
      }
      ++sent_;
      next += step;
      std::this_thread::sleep_until(next);
    }
  });
}

bool Streamer::finish(std::chrono::milliseconds timeout) {
  if (thread_.joinable()) thread_.join();
  return client_->wait_idle(timeout);
}

void publish_all(const mqtt::ClientConfig& config, const std::string& topic,
                 const std::vector<std::string>& payloads, int qos) {
  mqtt::Client client(config);
  client.start();
  if (!client.wait_connected(10s)) throw std::runtime_error("publisher: cannot connect");
  for (const auto& payload : payloads) client.publish(topic, payload, qos);
  if (!client.wait_idle(10s)) throw std::runtime_error("publisher: not acknowledged");
  client.stop();
}

bool path_open(const mqtt::ClientConfig& config, const std::string& topic,
               const Collector& collector, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    publish_all(config, topic, {"probe"});
    if (eventually([&] { return collector.has_payload("probe"); }, 500ms)) return true;
  }
  return false;
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return condition();
}

std::string missing(const std::set<int>& ids, int from, int to) {
  std::string text;
  int shown = 0, total = 0;
  for (int i = from; i < to; ++i) {
    if (ids.count(i)) continue;
    ++total;
    if (shown++ < 20) text += (text.empty() ? "" : " ") + std::to_string(i);
  }
  return std::to_string(total) + " missing" + (total ? ": " + text : "");
}

}  // namespace baetyl::remote::testing
