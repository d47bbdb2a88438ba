// End-to-end benchmark of the SDK MQTT client (baetyl::mqtt::Client) against Debian's mosquitto
// on loopback, next to mosquitto's own client tools. Prints markdown tables on stdout.
//
//   baetyl-mqtt-client-bench [--messages N] [--latency-samples N] [--no-tools]
//
// Every scenario gets a fresh broker (baetyl::testing::MosquittoBroker on a free 127.0.0.1 port),
// so one scenario's backlog or broker log cannot slow the next one down.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <iostream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "baetyl/mqtt/client.h"
#include "baetyl/testing/mosquitto.h"
#include "baetyl/testing/process.h"
#include "baetyl/testing/temp_dir.h"

namespace {

using namespace std::chrono_literals;
using baetyl::error_code;
using baetyl::mqtt::Client;
using baetyl::mqtt::ClientCallbacks;
using baetyl::mqtt::ClientConfig;
using baetyl::mqtt::Message;
using baetyl::mqtt::TopicInfo;
using baetyl::testing::MosquittoBroker;
using baetyl::testing::MosquittoOptions;
using baetyl::testing::Process;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kPayloadSize = 64;
constexpr const char* kTopic = "bench/throughput";
constexpr const char* kToolClientId = "bench-mosquitto-pub";
constexpr auto kScenarioTimeout = 60s;  // one scenario never waits longer than this
constexpr auto kQuietPeriod = 1500ms;   // QoS 0: no message for this long means the rest is lost
constexpr unsigned kWholeRunTimeoutSeconds = 300;  // the watchdog ends a stuck run
constexpr double kLatencyRate = 500;               // messages per second of the latency run
constexpr std::size_t kLatencyWarmup = 50;         // messages before the latency samples

struct Options {
  std::size_t messages = 100'000;
  std::size_t latency_samples = 0;  // 0: derived from messages
  bool tools = true;
};

struct Row {
  std::string scenario;
  std::string client;
  std::size_t messages = 0;
  double seconds = 0;
  double rate = 0;             // messages per second
  double cpu_seconds = -1;     // CPU time of the clients (see note); < 0: not measured
  double broker_seconds = -1;  // CPU time of mosquitto during the scenario
  std::string note;
};

// ---- process-wide helpers ----------------------------------------------------------------------

// The pids of children to kill should the watchdog fire (they run in process groups of their own).
std::atomic<pid_t> g_broker_pid{-1};
std::atomic<pid_t> g_tool_pid{-1};

extern "C" void on_watchdog(int) {
  static const char kMessage[] = "mqtt_client_bench: watchdog expired, aborting\n";
  (void)!::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
  if (pid_t pid = g_tool_pid.load(); pid > 0) ::kill(-pid, SIGKILL);
  if (pid_t pid = g_broker_pid.load(); pid > 0) ::kill(-pid, SIGKILL);
  ::_exit(3);
}

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

double cpu_seconds(int who) {
  rusage usage{};
  ::getrusage(who, &usage);
  auto to_seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return to_seconds(usage.ru_utime) + to_seconds(usage.ru_stime);
}

std::string proc_status_field(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) {
      auto value = line.substr(field.size() + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      return value;
    }
  }
  return "?";
}

std::string with_commas(double value) {
  auto n = static_cast<long long>(std::llround(value));
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string fixed(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

// A 64-byte payload that starts with the sequence number (or a timestamp) in decimal.
std::string make_payload(std::uint64_t value) {
  std::string payload = std::to_string(value);
  payload.push_back(':');
  payload.resize(kPayloadSize, 'x');
  return payload;
}

std::shared_ptr<spdlog::logger> quiet_logger() {
  static auto logger = [] {
    auto l = spdlog::stderr_color_mt("bench");
    l->set_level(spdlog::level::warn);
    return l;
  }();
  return logger;
}

ClientConfig client_config(const MosquittoBroker& broker, const std::string& client_id,
                           int buffer_size) {
  ClientConfig config;
  config.address = broker.address();
  config.client_id = client_id;
  config.clean_session = true;
  config.timeout = 5s;
  config.interval = 1s;
  config.keepalive = 60s;
  config.buffer_size = buffer_size;
  return config;
}

// A broker for one scenario; its pid is known to the watchdog while it runs.
class ScopedBroker {
 public:
  ScopedBroker() : broker_(make_options()) { g_broker_pid = broker_.pid(); }
  ~ScopedBroker() { stop(); }
  const MosquittoBroker& get() const { return broker_; }

  // Stops the broker and returns the CPU time it used (counted when the child is reaped).
  double stop() {
    const double before = cpu_seconds(RUSAGE_CHILDREN);
    broker_.stop();
    g_broker_pid = -1;
    return cpu_seconds(RUSAGE_CHILDREN) - before;
  }

 private:
  static MosquittoOptions make_options() {
    MosquittoOptions options;
    options.persistence = false;
    return options;
  }
  MosquittoBroker broker_;
};

void start_and_wait(Client& client, ClientCallbacks callbacks = {}) {
  client.start(std::move(callbacks));
  if (!client.wait_connected(10s)) {
    throw std::runtime_error("client " + client.config().client_id + " did not connect");
  }
}

void subscribe_and_wait(Client& client, const std::string& topic, int qos) {
  auto done = std::make_shared<std::promise<error_code>>();
  auto result = done->get_future();
  client.subscribe({TopicInfo{topic, qos}},
                   [done](error_code ec, std::vector<std::uint8_t>) { done->set_value(ec); });
  if (result.wait_for(10s) != std::future_status::ready || result.get()) {
    throw std::runtime_error("subscription to " + topic + " failed");
  }
}

// Counts what a subscribing baetyl client receives and when the last message arrived. The
// callback wakes the waiting thread only once, at the end, so the count itself costs almost
// nothing.
class Counter {
 public:
  explicit Counter(std::size_t expected) : expected_(expected) {}

  ClientCallbacks callbacks() {
    ClientCallbacks callbacks;
    callbacks.on_message = [this](const Message&) {
      last_ns_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
      if (count_.fetch_add(1, std::memory_order_relaxed) + 1 == expected_) {
        std::lock_guard lock(mutex_);
        done_.notify_all();
      }
    };
    return callbacks;
  }

  // Waits until every expected message arrived, or none arrived for kQuietPeriod, or the
  // deadline; returns the count.
  std::size_t wait(Clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    auto progress_at = Clock::now();
    std::size_t seen = count_.load();
    while (count_.load() < expected_ && Clock::now() < deadline) {
      done_.wait_for(lock, 50ms, [&] { return count_.load() >= expected_; });
      if (std::size_t now = count_.load(); now != seen) {
        seen = now;
        progress_at = Clock::now();
      } else if (Clock::now() - progress_at > kQuietPeriod) {
        break;  // nothing for a while: the rest is not coming
      }
    }
    return count_.load();
  }

  Clock::time_point last() const {
    return Clock::time_point(Clock::duration(last_ns_.load(std::memory_order_relaxed)));
  }

 private:
  const std::size_t expected_;
  std::atomic<std::size_t> count_{0};
  std::atomic<Clock::rep> last_ns_{0};
  std::mutex mutex_;
  std::condition_variable done_;
};

std::string fraction(std::size_t part, std::size_t whole) {
  return with_commas(static_cast<double>(part)) + " of " + with_commas(static_cast<double>(whole)) +
         " (" + fixed(100.0 * static_cast<double>(part) / static_cast<double>(whole), 1) + " %)";
}

std::string ratio_note(std::size_t received, std::size_t sent) {
  if (received == sent) return "all received";
  return "received " + fraction(received, sent);
}

// ---- scenarios with the baetyl client --------------------------------------------------------

// How the application hands messages to the client: publish() waits while `buffersize` messages
// are queued or in flight; async_publish() never waits (the whole run is queued at once).
enum class Api { Blocking, Async };

const char* api_name(Api api) { return api == Api::Blocking ? "publish()" : "async_publish()"; }

void publish_all(Client& publisher, const Options& options, int qos, Api api) {
  baetyl::mqtt::Publish message;
  message.topic = kTopic;
  message.payload = make_payload(0);
  message.qos = static_cast<std::uint8_t>(qos);
  for (std::size_t i = 0; i < options.messages; ++i) {
    if (api == Api::Blocking) {
      publisher.publish(message);
    } else {
      publisher.async_publish(message);
    }
  }
}

// QoS 0: one client publishes, another receives; timed until the last message arrives.
Row qos0_throughput(const Options& options, int buffer_size, Api api) {
  ScopedBroker broker;
  Counter counter(options.messages);
  Client subscriber(client_config(broker.get(), "bench-sub", 10), quiet_logger());
  start_and_wait(subscriber, counter.callbacks());
  subscribe_and_wait(subscriber, kTopic, 0);

  Client publisher(client_config(broker.get(), "bench-pub", buffer_size), quiet_logger());
  start_and_wait(publisher);
  const double cpu_before = cpu_seconds(RUSAGE_SELF);
  const auto start = Clock::now();
  publish_all(publisher, options, 0, api);
  publisher.wait_idle(kScenarioTimeout);
  const auto written = Clock::now();
  const std::size_t received = counter.wait(start + kScenarioTimeout);
  const double cpu = cpu_seconds(RUSAGE_SELF) - cpu_before;
  const double elapsed = seconds_between(start, std::max(counter.last(), written));

  Row row;
  row.scenario = std::string("QoS 0, ") + api_name(api) + " → subscriber";
  if (api == Api::Blocking) row.scenario += ", buffersize " + std::to_string(buffer_size);
  row.client = "baetyl::mqtt::Client";
  row.messages = options.messages;
  row.seconds = elapsed;
  row.rate = static_cast<double>(received) / elapsed;
  row.cpu_seconds = cpu;
  row.note = ratio_note(received, options.messages) + "; all written after " +
             fixed(seconds_between(start, written), 2) + " s";
  publisher.stop();
  subscriber.stop();
  row.broker_seconds = broker.stop();
  return row;
}

// QoS 1 with an in-flight window of `buffer_size`, timed until every PUBACK arrived. No
// subscriber: this is the publishing side alone (the broker stores nothing for anybody).
Row qos1_throughput(const Options& options, int buffer_size, Api api) {
  ScopedBroker broker;
  Client publisher(client_config(broker.get(), "bench-pub", buffer_size), quiet_logger());
  start_and_wait(publisher);
  const double cpu_before = cpu_seconds(RUSAGE_SELF);
  const auto start = Clock::now();
  publish_all(publisher, options, 1, api);
  const bool idle = publisher.wait_idle(kScenarioTimeout);
  const double elapsed = seconds_between(start, Clock::now());
  const double cpu = cpu_seconds(RUSAGE_SELF) - cpu_before;

  Row row;
  row.scenario = std::string("QoS 1, ") + api_name(api) + " until all PUBACKs, buffersize " +
                 std::to_string(buffer_size);
  row.client = "baetyl::mqtt::Client";
  row.messages = options.messages;
  row.seconds = elapsed;
  row.rate = static_cast<double>(options.messages) / elapsed;
  row.cpu_seconds = cpu;
  row.note =
      idle ? "" : "TIMED OUT with " + std::to_string(publisher.outstanding()) + " unacknowledged";
  publisher.stop();
  row.broker_seconds = broker.stop();
  return row;
}

struct Latency {
  std::size_t samples = 0;
  std::size_t received = 0;
  double rate = 0;
  double first_us = 0;  // the first message after SUBSCRIBE (warm-up, not in the percentiles)
  double p50_us = 0;
  double p90_us = 0;
  double p99_us = 0;
  double max_us = 0;
};

// QoS 1 end to end: publish() at a steady low rate, latency = on_message time - publish time
// (carried in the payload; both clients are in this process, so one steady clock serves both).
//
// The first messages after a SUBSCRIBE are a warm-up, measured but kept out of the percentiles:
// mosquitto leaves Nagle's algorithm on (set_tcp_nodelay false), so its first PUBLISH to a new
// subscriber waits until the subscriber's delayed ACK of the SUBACK (up to ~40 ms on Linux), and
// every message published meanwhile queues behind it.
Latency qos1_latency(std::size_t samples, double rate) {
  ScopedBroker broker;
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<double> latencies_us;
  std::size_t wanted = kLatencyWarmup;
  latencies_us.reserve(std::max(samples, kLatencyWarmup));

  ClientCallbacks callbacks;
  callbacks.on_message = [&](const Message& message) {
    const auto now = Clock::now().time_since_epoch().count();
    const auto sent = std::strtoll(message.publish.payload.c_str(), nullptr, 10);
    std::lock_guard lock(mutex);
    latencies_us.push_back(static_cast<double>(now - sent) / 1e3);
    if (latencies_us.size() == wanted) changed.notify_all();
  };
  Client subscriber(client_config(broker.get(), "bench-latency-sub", 10), quiet_logger());
  start_and_wait(subscriber, std::move(callbacks));
  subscribe_and_wait(subscriber, kTopic, 1);
  Client publisher(client_config(broker.get(), "bench-latency-pub", 10), quiet_logger());
  start_and_wait(publisher);

  const auto interval =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / rate));
  // Publishes `count` messages at `rate` and waits until `count` arrived; returns the latencies.
  auto measure = [&](std::size_t count) {
    {
      std::lock_guard lock(mutex);
      latencies_us.clear();
      wanted = count;
    }
    const auto start = Clock::now();
    for (std::size_t i = 0; i < count; ++i) {
      std::this_thread::sleep_until(start + interval * static_cast<long>(i));
      const auto now = Clock::now().time_since_epoch().count();
      publisher.publish(kTopic, make_payload(static_cast<std::uint64_t>(now)), 1);
    }
    publisher.wait_idle(10s);
    std::unique_lock lock(mutex);
    changed.wait_for(lock, 10s, [&] { return latencies_us.size() >= count; });
    return latencies_us;
  };

  Latency result;
  const std::vector<double> warmup = measure(kLatencyWarmup);
  if (!warmup.empty()) result.first_us = warmup.front();
  std::vector<double> measured = measure(samples);
  result.samples = samples;
  result.received = measured.size();
  result.rate = rate;
  if (measured.empty()) return result;
  std::sort(measured.begin(), measured.end());
  auto percentile = [&](double p) {
    auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(measured.size())));
    return measured[std::clamp<std::size_t>(rank, 1, measured.size()) - 1];
  };
  result.p50_us = percentile(0.50);
  result.p90_us = percentile(0.90);
  result.p99_us = percentile(0.99);
  result.max_us = measured.back();
  return result;
}

// ---- scenarios with mosquitto's client tools --------------------------------------------------

struct ToolRun {
  double seconds = 0;
  double cpu_seconds = 0;  // of the tool (and the sh that starts it)
  int exit_code = 0;       // the first non-zero exit code of the runs
};

// Files of at most kToolChunk lines. mosquitto_pub 2.0 -l ends its run early when it is given
// more than 65,535 lines: it disconnects once the message id of the last line is acknowledged,
// and after the 16-bit id wrapped that happens long before the end (70,000 lines at QoS 1: 4,469
// delivered, exit code 0). Each file therefore stays below the wrap.
constexpr std::size_t kToolChunk = 50'000;

std::vector<std::string> write_line_files(const baetyl::testing::TempDir& dir, std::size_t count) {
  std::vector<std::string> files;
  const std::string line = make_payload(0) + "\n";
  for (std::size_t done = 0; done < count; done += kToolChunk) {
    const std::size_t lines = std::min(kToolChunk, count - done);
    std::string text;
    text.reserve(lines * line.size());
    for (std::size_t i = 0; i < lines; ++i) text += line;
    files.push_back(dir.write("lines-" + std::to_string(files.size()) + ".txt", text).string());
  }
  return files;
}

// Runs `mosquitto_pub -l` once per file, one after the other, with the file on stdin; the time
// covers every run (10 ms resolution), process starts and CONNECTs included.
ToolRun run_mosquitto_pub(const MosquittoBroker& broker, const std::vector<std::string>& files,
                          int qos, int max_inflight) {
  const double cpu_before = cpu_seconds(RUSAGE_CHILDREN);
  const auto start = Clock::now();
  ToolRun run;
  for (std::size_t i = 0; i < files.size(); ++i) {
    const std::string& file = files[i];
    // A client id per run: a run that reuses the id of the previous one makes mosquitto close
    // the previous connection, together with whatever it has not read from it yet.
    std::ostringstream command;
    command << "exec mosquitto_pub -h 127.0.0.1 -p " << broker.port() << " -i " << kToolClientId
            << "-" << i << " -t " << kTopic << " -q " << qos << " -M " << max_inflight << " -l < "
            << file;
    Process tool({"sh", "-c", command.str()});
    g_tool_pid = tool.pid();
    int code = tool.wait(kScenarioTimeout).value_or(-1);
    if (code < 0) tool.stop(SIGKILL);
    g_tool_pid = -1;
    if (run.exit_code == 0) run.exit_code = code;
  }
  run.seconds = seconds_between(start, Clock::now());
  run.cpu_seconds = cpu_seconds(RUSAGE_CHILDREN) - cpu_before;
  return run;
}

// How many QoS 1 messages the broker acknowledged to clients whose id starts with `prefix`, from
// its log (the fixture's broker logs every packet).
std::size_t pubacks_in_log(const MosquittoBroker& broker, const std::string& prefix) {
  const std::string log = broker.log();
  const std::string needle = "Sending PUBACK to " + prefix;
  std::size_t count = 0;
  for (auto at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

std::string tool_note(const ToolRun& run, std::size_t files) {
  std::string note = std::to_string(files) + (files == 1 ? " run" : " runs") + " of mosquitto_pub";
  if (run.exit_code != 0) note += "; exit code " + std::to_string(run.exit_code);
  return note;
}

Row tool_qos0_throughput(const Options& options, const std::vector<std::string>& files) {
  ScopedBroker broker;
  Counter counter(options.messages);
  Client subscriber(client_config(broker.get(), "bench-sub", 10), quiet_logger());
  start_and_wait(subscriber, counter.callbacks());
  subscribe_and_wait(subscriber, kTopic, 0);

  const double self_before = cpu_seconds(RUSAGE_SELF);
  const auto start = Clock::now();
  ToolRun run = run_mosquitto_pub(broker.get(), files, 0, 20);
  const auto written = Clock::now();
  const std::size_t received = counter.wait(start + kScenarioTimeout);
  const double elapsed = seconds_between(start, std::max(counter.last(), written));

  Row row;
  row.scenario = "QoS 0, mosquitto_pub -l → baetyl subscriber";
  row.client = "mosquitto_pub";
  row.messages = options.messages;
  row.seconds = elapsed;
  row.rate = static_cast<double>(received) / elapsed;
  row.cpu_seconds = run.cpu_seconds + (cpu_seconds(RUSAGE_SELF) - self_before);
  row.note = ratio_note(received, options.messages) + "; all written after " +
             fixed(run.seconds, 2) + " s; " + tool_note(run, files.size());
  if (received < options.messages &&
      broker.get().log().find("messages are being dropped") != std::string::npos) {
    row.note += "; the broker logged that it dropped outgoing messages";
  }
  subscriber.stop();
  row.broker_seconds = broker.stop();
  return row;
}

Row tool_qos1_throughput(const Options& options, const std::vector<std::string>& files,
                         int max_inflight) {
  ScopedBroker broker;
  ToolRun run = run_mosquitto_pub(broker.get(), files, 1, max_inflight);
  const std::size_t acked = pubacks_in_log(broker.get(), kToolClientId);
  Row row;
  row.scenario = "QoS 1, mosquitto_pub -l until it exits, -M " + std::to_string(max_inflight);
  row.client = "mosquitto_pub";
  row.messages = options.messages;
  row.seconds = run.seconds;
  row.rate = static_cast<double>(acked) / run.seconds;
  row.cpu_seconds = run.cpu_seconds;
  row.broker_seconds = broker.stop();
  row.note =
      (acked == options.messages ? std::string("broker acknowledged all")
                                 : "broker acknowledged " + fraction(acked, options.messages)) +
      "; " + tool_note(run, files.size());
  return row;
}

// ---- main -------------------------------------------------------------------------------------

void print_usage() {
  std::cout << "usage: baetyl-mqtt-client-bench [--messages N] [--latency-samples N] [--no-tools]\n"
               "  --messages N         messages per throughput scenario (default 100000)\n"
               "  --latency-samples N  QoS 1 latency samples at 500 msg/s (default messages/50,\n"
               "                       between 100 and 2000)\n"
               "  --no-tools           skip the mosquitto_pub comparison runs\n";
}

Options parse_options(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto number = [&]() -> std::size_t {
      if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a number");
      const std::string text = argv[++i];
      std::size_t used = 0;
      const unsigned long long value = std::stoull(text, &used);
      if (used != text.size() || value == 0) {
        throw std::invalid_argument(arg + ": not a positive number: " + text);
      }
      return static_cast<std::size_t>(value);
    };
    if (arg == "--messages") {
      options.messages = number();
    } else if (arg == "--latency-samples") {
      options.latency_samples = number();
    } else if (arg == "--no-tools") {
      options.tools = false;
    } else if (arg == "--help" || arg == "-h") {
      print_usage();
      std::exit(0);
    } else {
      throw std::invalid_argument("unknown argument: " + arg);
    }
  }
  if (options.latency_samples == 0) {
    options.latency_samples = std::clamp<std::size_t>(options.messages / 50, 100, 2000);
  }
  return options;
}

void print_rows(const std::vector<Row>& rows) {
  std::cout << "| Scenario | Client | Messages | Time (s) | Throughput (msg/s) | Client CPU (s) "
               "| Broker CPU (s) | Notes |\n"
               "|---|---|---:|---:|---:|---:|---:|---|\n";
  auto cpu = [](double seconds) { return seconds < 0 ? std::string("–") : fixed(seconds, 2); };
  for (const auto& r : rows) {
    std::cout << "| " << r.scenario << " | " << r.client << " | "
              << with_commas(static_cast<double>(r.messages)) << " | " << fixed(r.seconds, 2)
              << " | " << with_commas(r.rate) << " | " << cpu(r.cpu_seconds) << " | "
              << cpu(r.broker_seconds) << " | " << r.note << " |\n";
  }
}

int run(const Options& options) {
  const auto run_start = Clock::now();
  std::cerr << "mqtt_client_bench: " << options.messages << " messages of " << kPayloadSize
            << " B per throughput scenario\n";
  std::vector<Row> qos0_rows;
  std::vector<Row> qos1_rows;
  auto step = [&](std::vector<Row>& rows, const std::string& what, auto fn) {
    std::cerr << "  " << what << " ..." << std::flush;
    auto t = Clock::now();
    rows.push_back(fn());
    std::cerr << " " << fixed(seconds_between(t, Clock::now()), 1) << " s\n";
  };

  for (int window : {10, 1000}) {
    step(qos0_rows, "QoS 0, publish(), buffersize " + std::to_string(window),
         [&] { return qos0_throughput(options, window, Api::Blocking); });
  }
  for (int window : {10, 100, 1000}) {
    step(qos1_rows, "QoS 1, publish(), buffersize " + std::to_string(window),
         [&] { return qos1_throughput(options, window, Api::Blocking); });
  }

  std::cerr << "  QoS 1 latency, " << options.latency_samples << " samples ..." << std::flush;
  auto t = Clock::now();
  const Latency latency = qos1_latency(options.latency_samples, kLatencyRate);
  std::cerr << " " << fixed(seconds_between(t, Clock::now()), 1) << " s\n";
  const std::string hwm_blocking = proc_status_field("VmHWM");

  // After the RSS checkpoint: queueing the whole run at once raises the peak RSS for good.
  step(qos0_rows, "QoS 0, async_publish()",
       [&] { return qos0_throughput(options, 10, Api::Async); });
  step(qos1_rows, "QoS 1, async_publish(), buffersize 1000",
       [&] { return qos1_throughput(options, 1000, Api::Async); });
  const std::string hwm_async = proc_status_field("VmHWM");

  // mosquitto's own client, for comparison (child processes: not in the RSS above).
  if (options.tools) {
    baetyl::testing::TempDir dir;
    const auto lines = write_line_files(dir, options.messages);
    step(qos0_rows, "mosquitto_pub QoS 0", [&] { return tool_qos0_throughput(options, lines); });
    for (int window : {10, 100, 1000}) {
      step(qos1_rows, "mosquitto_pub QoS 1, -M " + std::to_string(window),
           [&] { return tool_qos1_throughput(options, lines, window); });
    }
  }

  std::cout << "### QoS 0 throughput (" << kPayloadSize << " B payloads, one publisher, one "
            << "subscriber)\n\n";
  print_rows(qos0_rows);
  std::cout << "\n### QoS 1 publish throughput (" << kPayloadSize << " B payloads, no "
            << "subscriber)\n\n";
  print_rows(qos1_rows);
  std::cout << "\n### QoS 1 end-to-end latency (publish() → subscriber on_message, "
            << fixed(latency.rate, 0) << " msg/s)\n\n"
            << "| Samples | Received | p50 (µs) | p90 (µs) | p99 (µs) | max (µs) | First message "
               "after SUBSCRIBE (µs) |\n"
            << "|---:|---:|---:|---:|---:|---:|---:|\n"
            << "| " << latency.samples << " | " << latency.received << " | "
            << fixed(latency.p50_us, 0) << " | " << fixed(latency.p90_us, 0) << " | "
            << fixed(latency.p99_us, 0) << " | " << fixed(latency.max_us, 0) << " | "
            << fixed(latency.first_us, 0) << " |\n";
  std::cout << "\n### Peak RSS of the benchmark process (VmHWM; both clients, one process)\n\n"
            << "| After the publish() scenarios and the latency run | After the async_publish() "
               "scenarios (whole run queued at once) |\n|---:|---:|\n"
            << "| " << hwm_blocking << " | " << hwm_async << " |\n";
  std::cout << "\nWhole client benchmark: " << fixed(seconds_between(run_start, Clock::now()), 1)
            << " s\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGALRM, on_watchdog);
  ::alarm(kWholeRunTimeoutSeconds);
  try {
    return run(parse_options(argc, argv));
  } catch (const std::exception& e) {
    std::cerr << "mqtt_client_bench: " << e.what() << "\n";
    return 1;
  }
}
