#include "bridge.h"

#include <future>
#include <optional>
#include <stdexcept>
#include <thread>
#include <tuple>

#include "baetyl/api/inspect.h"
#include "baetyl/config/units.h"
#include "baetyl/mqtt/topic.h"
#include "baetyl/reporter.h"

namespace baetyl::remote {

// ---- LinkStats ----

void LinkStats::connected() {
  std::lock_guard lock(mutex_);
  connected_ = true;
  ++connections_;
}

void LinkStats::disconnected(const std::string& reason) {
  std::lock_guard lock(mutex_);
  connected_ = false;
  if (!stopping_) record_error(reason);
}

void LinkStats::connect_failed(const std::string& error) {
  std::lock_guard lock(mutex_);
  ++failures_;
  record_error(error);
}

void LinkStats::record_error(const std::string& error) {
  last_error_ = error;
  last_error_time_ = std::chrono::system_clock::now();
}

nlohmann::json LinkStats::to_json() const {
  std::lock_guard lock(mutex_);
  nlohmann::json stats = {{"connected", connected_},
                          {"reconnects", connections_ > 0 ? connections_ - 1 : 0},
                          {"connect_failures", failures_},
                          {"last_error", last_error_}};
  if (!last_error_.empty()) stats["last_error_time"] = api::to_rfc3339(last_error_time_);
  return stats;
}

bool Link::subscribed_to(const std::string& topic) const {
  for (const auto& s : config.subscriptions) {
    if (mqtt::topic_matches(s.topic, topic)) return true;
  }
  return false;
}

// ---- Direction ----

Direction::Direction(std::string name, Link& source, Link& target, std::size_t window,
                     std::shared_ptr<spdlog::logger> log)
    : name_(std::move(name)),
      source_(source),
      target_(target),
      window_(window),
      batch_(std::max<std::size_t>(window / 2, 1)),
      log_(std::move(log)) {}

void Direction::watch_echoes(Link& link) {
  if (!link.config.subscriptions.empty()) watchers_.push_back(&link);
}

void Direction::on_message(const mqtt::Message& message) {
  if (stopping_) return;  // stays unacknowledged at the source, which sends it again later
  const mqtt::Publish& in = message.publish;
  std::optional<std::uint64_t> key;
  auto key_of = [&] {
    if (!key) key = echo_key(in.topic, in.payload);
    return *key;
  };
  if (!source_.echoes.empty() && source_.echoes.consume(key_of())) {
    ++echoes_;
    log_->debug("{}: '{}' is the echo of a message forwarded to the {}; not forwarded back", name_,
                in.topic, source_.side);
    source_.client->ack(message);
    return;
  }
  for (Link* watcher : watchers_) {
    if (watcher->subscribed_to(in.topic)) watcher->echoes.expect(key_of());
  }

  mqtt::Publish out;
  out.topic = in.topic;
  out.payload = in.payload;
  out.qos = in.qos;
  out.retain = in.retain;
  if (waiting_.empty() && inflight_.load() < static_cast<std::int64_t>(window_)) {
    forward(std::move(out), message.receipt());
  } else {
    waiting_.push_back({std::move(out), message.receipt()});
  }
}

void Direction::forward(mqtt::Publish publish, const mqtt::Receipt& receipt) {
  ++inflight_;
  std::string topic = publish.topic;
  try {
    target_.client->async_publish(std::move(publish),
                                  [this, receipt](error_code ec) { forwarded(receipt, ec); });
  } catch (const std::exception& e) {
    // Cannot happen for a message a broker delivered; never hold the window for it.
    --inflight_;
    log_->error("{}: cannot forward '{}': {}; dropped", name_, topic, e.what());
    source_.client->ack(receipt);
  }
}

void Direction::forwarded(const mqtt::Receipt& receipt, error_code ec) {
  --inflight_;
  bool acknowledge = false;
  if (!ec) {
    ++forwarded_;
    acknowledge = true;
  } else if (ec.category() == mqtt::reason_category()) {
    // MQTT 5: the target refused the message with a reason code (its client logged which); it
    // would refuse it again, so the source is acknowledged and the message dropped.
    acknowledge = true;
  } else if (receipt.qos == 0) {
    // Otherwise QoS 1 fails only when the target client stops: the source keeps the message. A
    // QoS 0 message gives its place in the window back whatever became of it.
    if (ec != asio::error::operation_aborted) ++qos0_lost_;
    acknowledge = true;
  }
  if (acknowledge) acknowledged_.push_back(receipt);
  forward_waiting();
  const bool idle = inflight_.load() <= 0 && waiting_.empty();
  if (stopping_ || idle || acknowledged_.size() >= batch_) acknowledge_at_source();
}

void Direction::forward_waiting() {
  while (!stopping_ && !waiting_.empty() && inflight_.load() < static_cast<std::int64_t>(window_)) {
    Waiting next = std::move(waiting_.front());
    waiting_.pop_front();
    forward(std::move(next.publish), next.receipt);
  }
}

void Direction::acknowledge_at_source() {
  // The source client writes the acknowledgements given in one turn together.
  for (const auto& receipt : acknowledged_) source_.client->ack(receipt);
  acknowledged_.clear();
}

bool Direction::settled() const {
  return inflight_.load() <= 0 || !target_.client || !target_.client->connected();
}

nlohmann::json Direction::stats() const {
  return {{"forwarded", forwarded_.load()},
          {"inflight", std::max<std::int64_t>(inflight_.load(), 0)},
          {"window", window_},
          {"echoes_dropped", echoes_.load()},
          {"qos0_lost", qos0_lost_.load()}};
}

// ---- RuleBridge ----

namespace {

std::size_t window_of(const mqtt::ClientConfig& target) {
  return static_cast<std::size_t>(std::max(target.buffer_size, 1));
}

std::string describe_subscriptions(const std::vector<mqtt::TopicInfo>& topics) {
  if (topics.empty()) return "nothing";
  std::string text;
  for (const auto& t : topics) {
    text += (text.empty() ? "" : ", ") + t.topic + " (QoS " + std::to_string(t.qos) + ")";
  }
  return text;
}

}  // namespace

RuleBridge::RuleBridge(ResolvedRule rule, std::shared_ptr<spdlog::logger> log)
    : rule_(std::move(rule)),
      log_(std::move(log)),
      thread_(std::make_shared<mqtt::IoThread>()),
      hub_("hub", rule_.hub),
      remote_("remote '" + rule_.remote_name + "'", rule_.remote),
      up_("hub_to_remote", hub_, remote_, window_of(rule_.remote), log_),
      down_("remote_to_hub", remote_, hub_, window_of(rule_.hub), log_) {
  hub_.client = std::make_unique<mqtt::Client>(rule_.hub, log_, thread_);
  remote_.client = std::make_unique<mqtt::Client>(rule_.remote, log_, thread_);
}

RuleBridge::~RuleBridge() {
  up_.stop();
  down_.stop();
  stop_clients();
}

void RuleBridge::run_on_thread(const std::function<void()>& fn) {
  if (thread_->running_here()) {
    fn();
    return;
  }
  std::promise<void> done;
  asio::post(thread_->context(), [&] {
    fn();
    done.set_value();
  });
  done.get_future().wait();
}

mqtt::ClientCallbacks RuleBridge::callbacks_for(
    Link& link, Direction& from_here, Direction& to_here,
    const std::function<void(const std::string&)>& on_fatal) {
  mqtt::ClientCallbacks callbacks;
  callbacks.manual_ack = true;
  callbacks.receive_window = from_here.receive_window();
  callbacks.on_message = [&from_here](const mqtt::Message& m) { from_here.on_message(m); };
  callbacks.on_connected = [&link](bool) { link.stats.connected(); };
  callbacks.on_disconnected = [&link, &to_here](const std::string& reason) {
    link.stats.disconnected(reason);
    to_here.target_disconnected();
  };
  callbacks.on_connect_error = [&link](const std::string& error) {
    link.stats.connect_failed(error);
  };
  const std::string where = "rules[" + std::to_string(rule_.index) + "] " + link.side;
  callbacks.on_error = [&link, on_fatal, where](const std::string& error) {
    link.stats.connect_failed(error);
    if (on_fatal) on_fatal(where + ": " + error);
  };
  return callbacks;
}

void RuleBridge::start(const std::function<void(const std::string&)>& on_fatal) {
  log_->info(
      "rule {}: forwards {} from the hub ({}, client ID '{}') to remote '{}' ({}, client ID "
      "'{}') and {} back; {} in flight up, {} down at most",
      rule_.index, describe_subscriptions(rule_.hub.subscriptions), rule_.hub.address,
      rule_.hub.client_id, rule_.remote_name, rule_.remote.address, rule_.remote.client_id,
      describe_subscriptions(rule_.remote.subscriptions), up_.window(), down_.window());
  for (auto [link, from_here, to_here] :
       {std::tuple{&hub_, &up_, &down_}, std::tuple{&remote_, &down_, &up_}}) {
    try {
      link->client->start(callbacks_for(*link, *from_here, *to_here, on_fatal));
    } catch (const std::exception& e) {
      throw std::runtime_error("rules[" + std::to_string(rule_.index) + "]: " + link->side + " (" +
                               link->config.address + "): " + e.what());
    }
  }
}

void RuleBridge::stop_forwarding() {
  up_.stop();
  down_.stop();
  hub_.stats.stopping();
  remote_.stats.stopping();
  run_on_thread([this] {
    up_.acknowledge_at_source();
    down_.acknowledge_at_source();
  });
}

void RuleBridge::stop_clients() {
  hub_.stats.stopping();
  remote_.stats.stopping();
  // In parallel: a client whose connection no longer takes writes needs a moment to give up.
  std::thread remote_stop([this] {
    if (remote_.client) remote_.client->stop();
  });
  if (hub_.client) hub_.client->stop();
  remote_stop.join();
}

nlohmann::json RuleBridge::stats() const {
  auto client_stats = [](const Link& link) {
    auto stats = link.stats.to_json();
    stats["clientid"] = link.config.client_id;
    stats["address"] = link.config.address;
    return stats;
  };
  return {{"remote", rule_.remote_name},
          {"hub_client", client_stats(hub_)},
          {"remote_client", client_stats(remote_)},
          {up_.name(), up_.stats()},
          {down_.name(), down_.stats()}};
}

// ---- Bridge ----

Bridge::Bridge(const BridgeConfig& config, std::shared_ptr<spdlog::logger> log)
    : log_(std::move(log)) {
  for (std::size_t i = 0; i < config.rules.size(); ++i) {
    rules_.push_back(std::make_unique<RuleBridge>(resolve_rule(config, i), log_));
  }
  // A message forwarded to a remote comes back to every client of the bridge on that remote
  // subscribed to its topic, and each would forward it to the hub; one forwarded to the hub
  // comes back to the hub clients, and those of rules of the same remote would send it back
  // there. (Hub clients of rules for other remotes forward it on, which is no loop.)
  for (auto& rule : rules_) {
    for (auto& other : rules_) {
      if (other->remote_name() != rule->remote_name()) continue;
      rule->up().watch_echoes(other->remote());
      rule->down().watch_echoes(other->hub());
    }
  }
}

Bridge::~Bridge() {
  if (!stopped_) stop(std::chrono::milliseconds(0));
}

void Bridge::start(const std::function<void(const std::string&)>& on_fatal) {
  for (auto& rule : rules_) rule->start(on_fatal);
}

void Bridge::stop(std::chrono::milliseconds grace) {
  stopped_ = true;
  for (auto& rule : rules_) rule->stop_forwarding();
  const auto deadline = std::chrono::steady_clock::now() + grace;
  auto settled = [&] {
    for (auto& rule : rules_) {
      if (!rule->settled()) return false;
    }
    return true;
  };
  while (!settled() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::int64_t left = 0;
  for (auto& rule : rules_) left += rule->up().inflight() + rule->down().inflight();
  if (left > 0) {
    log_->warn(
        "stopping with {} message(s) in flight; their sources keep them unacknowledged "
        "and send them again",
        left);
  }
  std::vector<std::thread> stopping;
  for (auto& rule : rules_) stopping.emplace_back([&rule] { rule->stop_clients(); });
  for (auto& t : stopping) t.join();
}

nlohmann::json Bridge::stats() const {
  nlohmann::json rules = nlohmann::json::array();
  for (const auto& rule : rules_) rules.push_back(rule->stats());
  return {{"rules", rules}};
}

// ---- the module ----

void run_bridge(Context& ctx) {
  auto config = ctx.load_config<BridgeConfig>();
  if (config.rules.empty()) ctx.log().warn("no rules configured: nothing to bridge");
  for (const auto& remote : config.remotes) {
    bool used = false;
    for (const auto& rule : config.rules) used = used || rule.remote_name == remote.name;
    if (!used) ctx.log().warn("remote '{}' is used by no rule; not connecting to it", remote.name);
  }
  for (std::size_t i = 0; i < config.rules.size(); ++i) {
    const auto& rule = config.rules[i];
    if (rule.hub.subscriptions.empty() && rule.remote.subscriptions.empty()) {
      ctx.log().warn("rules[{}] has no subscriptions on either side: it forwards nothing", i);
    }
  }

  Bridge bridge(config, ctx.logger());
  std::mutex fatal_mutex;
  std::string fatal;
  bridge.start([&](const std::string& error) {
    {
      std::lock_guard lock(fatal_mutex);
      if (fatal.empty()) fatal = error;
    }
    ctx.request_stop();
  });

  Reporter reporter(ctx, config.report_interval, [&] { return bridge.stats(); });
  ctx.log().info("bridging {} rule(s){}", bridge.rules().size(),
                 reporter.active() ? ", reporting to the master every " +
                                         config::format_duration(config.report_interval)
                                   : "");
  ctx.wait();
  reporter.stop();
  ctx.log().info("stopping: messages in flight have up to {} to finish",
                 config::format_duration(kStopGrace));
  bridge.stop(kStopGrace);
  std::lock_guard lock(fatal_mutex);
  if (!fatal.empty()) throw std::runtime_error(fatal);
}

}  // namespace baetyl::remote
