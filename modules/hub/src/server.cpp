#include "server.h"

#include <sched.h>

#include <algorithm>

#include "baetyl/reporter.h"
#include "memory.h"
#include "sys_topics.h"

namespace baetyl::hub {
namespace {

using Tcp = asio::ip::tcp;
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
// How often the main thread looks whether enough memory was freed to give it back to the system.
constexpr auto kTrimInterval = std::chrono::seconds(1);
constexpr std::size_t kTrimAfter = 4 * 1024 * 1024;

auto token(error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

// The CPUs this process may run on (taskset, cgroup cpusets), not every online one.
std::size_t usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
    return static_cast<std::size_t>(CPU_COUNT(&set));
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

Hub::Hub(HubConfig config, std::shared_ptr<spdlog::logger> log, std::size_t threads,
         Workers::Policy offload)
    : config_(std::move(config)),
      log_(std::move(log)),
      threads_count_(threads ? threads : usable_cpus()) {
  std::vector<asio::io_context*> contexts;
  for (std::size_t i = 0; i < threads_count_; ++i) {
    contexts_.push_back(std::make_unique<asio::io_context>(1));
    contexts.push_back(contexts_.back().get());
  }
  workers_ = std::make_unique<Workers>(std::move(contexts), offload);
}

asio::io_context& Hub::next_context() {
  return *contexts_[next_context_.fetch_add(1, std::memory_order_relaxed) % contexts_.size()];
}

Hub::~Hub() { stop(std::chrono::seconds(5)); }

void Hub::start() {
  memory::keep_working_reserve();
  StoreOptions options;
  options.message_batch_max = config_.message.ingress.qos1_batch_max;
  options.ack_batch_max = config_.message.offset.batch_max;
  store_ = std::make_unique<Store>(config_.storage_dir, options, log_);
  broker_ = std::make_unique<Broker>(config_, store_.get(), log_);
  auto state = store_->load();
  store_->start();
  broker_->restore(std::move(state));

  const bool need_tls = std::any_of(config_.listeners.begin(), config_.listeners.end(),
                                    [](const ListenAddress& a) { return a.tls(); });
  if (need_tls) {
    tls_ = make_server_tls_context(config_.certificate.cert, config_.certificate.key,
                                   config_.certificate.ca);
  }
  for (const auto& address : config_.listeners) bind(address);

  for (std::size_t i = 0; i < contexts_.size(); ++i) {
    work_.push_back(asio::make_work_guard(*contexts_[i]));
    threads_.emplace_back([this, i] { workers_->run(i); });
  }
}

void Hub::bind(const ListenAddress& address) {
  // On a strand of its own: the accept loop and the close at shutdown never run concurrently.
  auto acceptor = std::make_unique<Tcp::acceptor>(asio::make_strand(*contexts_.front()));
  auto open = [&](const Tcp::endpoint& endpoint, bool dual_stack, error_code& ec) {
    acceptor->open(endpoint.protocol(), ec);
    if (ec) return;
    acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (dual_stack) acceptor->set_option(asio::ip::v6_only(false), ec);
    acceptor->bind(endpoint, ec);
    if (ec) {
      error_code ignored;
      acceptor->close(ignored);
      return;
    }
    acceptor->listen(asio::socket_base::max_listen_connections, ec);
  };
  error_code ec;
  if (address.host.empty()) {
    // Every interface: IPv6 and IPv4 on one dual-stack socket, IPv4 only where IPv6 is missing.
    open(Tcp::endpoint(asio::ip::address_v6::any(), address.port), true, ec);
    if (ec) open(Tcp::endpoint(asio::ip::address_v4::any(), address.port), false, ec);
  } else {
    Tcp::resolver resolver(*contexts_.front());
    auto results =
        resolver.resolve(address.host, std::to_string(address.port), Tcp::resolver::passive, ec);
    if (!ec) {
      ec = asio::error::host_not_found;
      for (const auto& entry : results) {
        open(entry.endpoint(), false, ec);
        if (!ec) break;
      }
    }
  }
  if (ec) throw std::runtime_error("listen '" + address.url + "': " + ec.message());
  log_->info("listening on {}", address.url);
  asio::co_spawn(acceptor->get_executor(), accept_loop(*acceptor, address), asio::detached);
  acceptors_.push_back(std::move(acceptor));
}

asio::awaitable<void> Hub::accept_loop(Tcp::acceptor& acceptor, const ListenAddress& address) {
  while (true) {
    // The worker's io_context serializes the connection's handlers (see Connection::Strand).
    auto& context = next_context();
    auto strand = context.get_executor();
    PlainSocket socket(strand);
    error_code ec;
    co_await acceptor.async_accept(socket, token(ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) break;
      log_->warn("accept on {}: {}", address.url, ec.message());
      // Out of descriptors and the like: do not spin.
      asio::steady_timer pause(co_await asio::this_coro::executor, std::chrono::milliseconds(100));
      co_await pause.async_wait(token(ec));
      continue;
    }
    socket.set_option(Tcp::no_delay(true), ec);
    asio::co_spawn(strand, serve(std::move(socket), address, strand), asio::detached);
  }
}

asio::awaitable<void> Hub::serve(PlainSocket socket, const ListenAddress& address,
                                 Connection::Strand strand) {
  auto stream = make_stream(std::move(socket), address.scheme, tls_.get(), address.path);
  if (address.tls() || address.websocket()) {
    asio::steady_timer timeout(strand, kHandshakeTimeout);
    Stream* raw = stream.get();
    timeout.async_wait([raw](error_code ec) {
      if (!ec) raw->close();
    });
    try {
      co_await stream->handshake();
    } catch (const std::exception& e) {
      log_->warn("{} on {}: handshake failed: {}", stream->remote, address.url, e.what());
      stream->close();
      co_return;
    }
    timeout.cancel();
  }
  auto connection = std::make_shared<Connection>(*broker_, std::move(stream), strand, workers_.get());
  {
    std::lock_guard lock(connections_mutex_);
    if (stopped_) co_return;
    connections_.insert(connection);
  }
  // Served by callbacks and short coroutines from now on: this coroutine ends.
  Connection::start(
      connection, [](void* hub, Connection* done) { static_cast<Hub*>(hub)->finished(done); },
      this);
}

void Hub::finished(Connection* connection) {
  {
    std::lock_guard lock(connections_mutex_);
    // A key of the same pointer that owns nothing.
    connections_.erase(std::shared_ptr<Connection>(std::shared_ptr<Connection>(), connection));
  }
  connections_changed_.notify_all();
}

void Hub::release_memory() {
  const std::size_t freed = memory::freed();
  if (memory::trim_if_freed(kTrimAfter)) {
    log_->debug("gave freed memory back to the system (about {} MB freed since the last time)",
                freed >> 20);
  }
}

std::size_t Hub::open_connections() {
  std::lock_guard lock(connections_mutex_);
  return connections_.size();
}

void Hub::stop(std::chrono::milliseconds timeout) {
  std::vector<std::shared_ptr<Connection>> open;
  {
    std::lock_guard lock(connections_mutex_);
    if (stopped_) return;
    stopped_ = true;
    open.assign(connections_.begin(), connections_.end());
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (!threads_.empty()) {
    // Acceptors belong to the worker threads: close them there.
    struct Closing {
      std::mutex m;
      std::condition_variable cv;
      std::size_t closed = 0;
    };
    auto closing = std::make_shared<Closing>();
    for (auto& a : acceptors_) {
      asio::post(a->get_executor(), [closing, acceptor = a.get()] {
        error_code ec;
        acceptor->close(ec);
        std::lock_guard lock(closing->m);
        ++closing->closed;
        closing->cv.notify_all();
      });
    }
    std::unique_lock lock(closing->m);
    closing->cv.wait_until(lock, deadline, [&] { return closing->closed == acceptors_.size(); });
  }
  for (auto& c : open) c->close();
  open.clear();
  {
    std::unique_lock lock(connections_mutex_);
    if (!connections_changed_.wait_until(lock, deadline, [&] { return connections_.empty(); })) {
      log_->warn("shutdown: {} connection(s) still open after {}ms", connections_.size(),
                 timeout.count());
    }
  }
  if (store_) {
    store_->flush();
    store_->stop();
  }
  work_.clear();
  for (auto& context : contexts_) context->stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
  {
    std::lock_guard lock(connections_mutex_);
    connections_.clear();
  }
  acceptors_.clear();
}

namespace {
// {"0": n, "1": n, "2": n}
nlohmann::json by_qos(const QosCounters& counters) {
  return {{"0", counters.load(0)}, {"1", counters.load(1)}, {"2", counters.load(2)}};
}
}  // namespace

nlohmann::json Hub::store_stats() const {
  if (!store_) return {{"backlog", 0}, {"commits", 0}};
  return {{"backlog", store_->backlog()},
          {"commits", store_->commits()},
          {"commit_duration_seconds", store_->commit_duration().to_json()}};
}

nlohmann::json Hub::stats() {
  auto& s = broker_->stats();
  nlohmann::json rules = nlohmann::json::array();
  for (const auto& r : broker_->route_stats()) {
    rules.push_back(
        {{"source", r->source}, {"target", r->target}, {"messages", r->messages.load()}});
  }
  return {
      {"connections", s.connections.load()},
      {"sessions", broker_->session_count()},
      {"subscriptions", broker_->subscription_count()},
      {"retained", broker_->retained_count()},
      {"messages",
       {{"in", s.messages_in.load()},
        {"out", s.messages_out.load()},
        {"in_qos", by_qos(s.messages_in)},
        {"out_qos", by_qos(s.messages_out)},
        {"dropped", s.messages_dropped.load()},
        {"dropped_qos1", s.messages_dropped_qos1.load()},
        {"dropped_qos2", s.messages_dropped_qos2.load()},
        {"paged", s.messages_paged.load()}}},
      {"denied",
       {{"connect", s.auth_failures.load()},
        {"publish", s.publish_denied.load()},
        {"reserved", s.publish_reserved.load()},
        {"subscribe", s.subscribe_denied.load()}}},
      {"workers",
       {{"count", workers_->size()},
        {"writes_offloaded", s.writes_offloaded.load()},
        {"writes_direct", s.writes_direct.load()},
        {"handovers", s.handovers.load()},
        {"handed_over", s.handed_over.load()}}},
      {"store", store_stats()},
      {"rules", rules},
  };
}

void run_hub(Context& ctx) {
  auto config = ctx.load_config<HubConfig>();
  Hub hub(std::move(config), ctx.logger());
  hub.start();
  const auto& cfg = hub.config();

  using Clock = std::chrono::steady_clock;
  // Stats go to the master right away and then every report.interval, from a thread of their
  // own so that a slow master never delays the cleanup or status logging.
  Reporter reporter(ctx, cfg.report.interval, [&] { return hub.stats(); });
  const bool report = reporter.active();
  const auto started = Clock::now();
  SysTopics sys(std::string("baetyl-hub ") + version());
  auto publish_sys = [&](Clock::time_point now, Clock::time_point previous) {
    const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(now - started);
    for (auto& [topic, payload] : sys.update(hub.stats(), uptime, now - previous)) {
      Message message;
      message.topic = std::move(topic);
      message.payload = std::move(payload);
      message.retain = true;
      message.time = unix_millis();
      hub.broker().publish(message);
    }
  };
  const bool sys_enabled = cfg.sys.interval.count() > 0;
  auto last_sys = started;
  if (sys_enabled) publish_sys(started, started);
  auto now = Clock::now();
  auto next_sys = sys_enabled ? now + cfg.sys.interval : Clock::time_point::max();
  auto next_cleanup = now + cfg.message.ingress.qos1_cleanup_interval;
  // MQTT 5 sessions end within this long after their Session Expiry Interval.
  constexpr auto kSessionExpiryCheck = std::chrono::seconds(1);
  auto next_expiry = now + kSessionExpiryCheck;
  auto next_trim = now + kTrimInterval;
  auto next_status =
      cfg.status.logging_enable ? now + cfg.status.logging_interval : Clock::time_point::max();
  ctx.log().info(
      "hub started ({} listener(s)){}{}", cfg.listeners.size(),
      report ? ", reporting to the master every " + config::format_duration(cfg.report.interval)
             : "",
      sys_enabled ? ", $SYS topics every " + config::format_duration(cfg.sys.interval) : "");
  // Two keys of the original size queues this design does not have; say so rather than ignore.
  const MessageConfig defaults;
  if (cfg.message.ingress.qos0_buffer_size != defaults.ingress.qos0_buffer_size) {
    ctx.log().warn("message.ingress.qos0.buffer.size has no effect: QoS 0 messages go straight "
                   "to the subscribers' egress queues (message.egress.qos0.buffer.size)");
  }
  if (cfg.message.offset.buffer_size != defaults.offset.buffer_size) {
    ctx.log().warn("message.offset.buffer.size has no effect: acknowledgements are committed "
                   "in batches of message.offset.batch.max");
  }
  while (!ctx.wait_until(std::min({next_cleanup, next_status, next_trim, next_sys, next_expiry}))) {
    now = Clock::now();
    if (now >= next_expiry) {
      hub.broker().publish_due_wills();
      hub.broker().expire_sessions();
      next_expiry = now + kSessionExpiryCheck;
    }
    if (now >= next_sys) {
      publish_sys(now, last_sys);
      last_sys = now;
      next_sys = now + cfg.sys.interval;
    }
    if (now >= next_trim) {
      hub.release_memory();
      next_trim = now + kTrimInterval;
    }
    if (now >= next_cleanup) {
      hub.cleanup();
      next_cleanup = now + cfg.message.ingress.qos1_cleanup_interval;
    }
    if (now >= next_status) {
      ctx.log().info("status: {}", hub.stats().dump());
      next_status = now + cfg.status.logging_interval;
    }
  }
  reporter.stop();
  ctx.log().info("stopping: closing connections (timeout {})",
                 config::format_duration(cfg.shutdown_timeout));
  hub.stop(cfg.shutdown_timeout);
  ctx.log().info("hub stopped");
}

}  // namespace baetyl::hub
