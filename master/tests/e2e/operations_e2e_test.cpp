// The operator's interface on a real node: the built baetyl master in native mode running the
// real baetyl-hub and baetyl-timer, driven by `baetyl list/logs/restart/stop`, scraped by Debian's
// Prometheus, and its hub's $SYS topics read with mosquitto_sub.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "baetyl/testing/mosquitto.h"
#include "baetyl/testing/ports.h"
#include "master_run.h"

namespace baetyl::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

// Principals: `test` may publish and subscribe anywhere; `monitor` may subscribe to $SYS/# only.
std::string hub_config(std::uint16_t port) {
  return "listen:\n  - tcp://127.0.0.1:" + std::to_string(port) +
         "\n"
         "principals:\n"
         "  - username: test\n    password: hahaha\n"
         "    permissions:\n"
         "      - {action: pub, permit: ['#']}\n"
         "      - {action: sub, permit: ['#']}\n"
         "  - username: monitor\n    password: watch\n"
         "    permissions:\n"
         "      - {action: sub, permit: ['$SYS/#']}\n"
         "sys:\n  interval: 300ms\n"
         "report:\n  interval: 200ms\n";
}

std::string timer_config(std::uint16_t port, const std::string& interval) {
  return "hub:\n  address: tcp://127.0.0.1:" + std::to_string(port) +
         "\n  username: test\n  password: hahaha\n  clientid: timer\n"
         "timer:\n  interval: " +
         interval +
         "\n"
         "publish:\n  topic: timer\n"
         "report:\n  interval: 200ms\n";
}

constexpr const char* kServices =
    "  - name: hub\n"
    "    image: hub.baidubce.com/baetyl/baetyl-hub:latest\n"
    "    replica: 1\n"
    "    mounts:\n"
    "      - {name: hub-conf, path: etc/baetyl, readonly: true}\n"
    "      - {name: hub-data, path: var/db/baetyl/data}\n"
    "  - name: timer\n"
    "    image: hub.baidubce.com/baetyl/baetyl-timer:latest\n"
    "    replica: 1\n"
    "    mounts:\n"
    "      - {name: timer-conf, path: etc/baetyl, readonly: true}\n";

constexpr const char* kVolumes =
    "  - {name: hub-conf, path: var/db/baetyl/hub-conf}\n"
    "  - {name: hub-data, path: var/db/baetyl/hub-data}\n"
    "  - {name: timer-conf, path: var/db/baetyl/timer-conf}\n";

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

// A node: the master with a hub on a free port and a timer publishing to it.
class Node {
 public:
  // `timer_interval`: the timer's; the default makes no tick while a test runs.
  explicit Node(const std::string& conf_extra = "", const std::string& timer_interval = "1h")
      : hub_port_(free_port()) {
    // The installed modules, as <workdir>/bin holds them after `make install`.
    fs::create_directories(run_.workdir() / "bin");
    for (const char* module : {"baetyl-hub", "baetyl-timer"}) {
      fs::create_symlink(binary_path(module), run_.workdir() / "bin" / module);
    }
    write_text(run_.workdir() / "var/db/baetyl/hub-conf/service.yml", hub_config(hub_port_));
    write_text(run_.workdir() / "var/db/baetyl/timer-conf/service.yml",
               timer_config(hub_port_, timer_interval));
    run_.write_conf("5s", conf_extra);
    run_.write_app("v1", kServices, "var/db/baetyl/application.yml", kVolumes);
  }

  bool start() { return run_.start() && wait_for_port(hub_port_, 20s); }
  MasterRun& run() { return run_; }
  std::uint16_t hub_port() const { return hub_port_; }
  std::string workdir() const { return run_.workdir().string(); }

  // `baetyl <args> -w <workdir>`: its output, and its exit code in `code`.
  std::string baetyl(std::vector<std::string> args, int* code) const {
    args.push_back("-w");
    args.push_back(run_.workdir().string());
    return run_baetyl(args, code);
  }
  nlohmann::json list() const {
    int code = -1;
    const std::string out = baetyl({"list", "--json"}, &code);
    if (code != 0) return nullptr;
    return nlohmann::json::parse(out, nullptr, false);
  }
  nlohmann::json row(const std::string& instance) const {
    const auto rows = list();
    if (!rows.is_array()) return nullptr;
    for (const auto& row : rows) {
      if (row.value("instance", "") == instance) return row;
    }
    return nullptr;
  }
  // The hub's reported stats in inspect (its own counters).
  nlohmann::json hub_stats() const { return run_.instance("hub", "hub"); }

 private:
  MasterRun run_;
  std::uint16_t hub_port_;
};

// ---- CLI ----

TEST(OperationsE2E, ListLogsRestartAndStopARealNode) {
  Node node;
  ASSERT_TRUE(node.start()) << node.run().output();
  ASSERT_TRUE(MasterRun::wait_until([&] {
    const auto row = node.row("timer");
    return row.is_object() && row["pid"].is_number();
  }));

  int code = -1;
  std::string table = node.baetyl({"list"}, &code);
  EXPECT_EQ(code, 0) << table;
  EXPECT_THAT(table, HasSubstr("SERVICE"));
  EXPECT_THAT(table, HasSubstr("PID/CONTAINER"));
  EXPECT_THAT(table, HasSubstr("hub.baidubce.com/baetyl/baetyl-hub:latest"));
  EXPECT_THAT(table, HasSubstr("running"));

  // A killed instance is restarted by its policy: list shows its count going up.
  const nlohmann::json before = node.row("timer");
  ASSERT_TRUE(before.is_object());
  EXPECT_EQ(before["restarts"], 0);
  const pid_t first = before["pid"].get<pid_t>();
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  ASSERT_TRUE(MasterRun::wait_until(
      [&] {
        auto row = node.row("timer");
        return row.is_object() && row["restarts"] == 1 && row["status"] == "running" &&
               row["pid"].is_number() && row["pid"].get<pid_t>() != first;
      },
      20s))
      << node.row("timer").dump();

  // Each service's output is in its own file: the hub's lines, none of the timer's.
  ASSERT_TRUE(MasterRun::wait_until([&] {
    int c = -1;
    return node.baetyl({"logs", "timer"}, &c).find("publishing to 'timer'") != std::string::npos;
  }));
  std::string hub_logs = node.baetyl({"logs", "hub"}, &code);
  EXPECT_EQ(code, 0) << hub_logs;
  EXPECT_THAT(hub_logs, HasSubstr("hub started"));
  EXPECT_THAT(hub_logs, Not(HasSubstr("publishing to 'timer'")));
  std::string timer_logs = node.baetyl({"logs", "timer"}, &code);
  EXPECT_THAT(timer_logs, Not(HasSubstr("hub started")));
  EXPECT_TRUE(fs::exists(node.run().workdir() / "var/log/baetyl/services/hub.log"));
  std::string last = node.baetyl({"logs", "timer", "--tail", "1"}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(std::count(last.begin(), last.end(), '\n'), 1) << last;
  EXPECT_THAT(node.baetyl({"logs", "timer", "--since", "1h"}, &code), HasSubstr("publishing to"));
  EXPECT_THAT(node.baetyl({"logs", "nosuch"}, &code), HasSubstr("service 'nosuch' not found"));
  EXPECT_EQ(code, 1);

  // -f follows: the restart's new lines appear in the running `logs -f`.
  TempDir out;
  ProcessOptions options;
  options.output_file = (out.path() / "follow").string();
  Process follow(
      {binary_path("baetyl"), "logs", "timer", "-f", "--tail", "0", "-w", node.workdir()}, options);
  std::this_thread::sleep_for(500ms);
  EXPECT_THAT(follow.output(), Not(HasSubstr("publishing to")));

  // restart replaces the pid, and says so.
  const pid_t second = node.row("timer")["pid"].get<pid_t>();
  std::string restarted = node.baetyl({"restart", "timer"}, &code);
  EXPECT_EQ(code, 0) << restarted;
  EXPECT_THAT(restarted, HasSubstr("restarted timer: " + std::to_string(second) + " -> "));
  const nlohmann::json after = node.row("timer");
  ASSERT_TRUE(after.is_object());
  EXPECT_EQ(after["status"], "running");
  EXPECT_NE(after["pid"].get<pid_t>(), second);
  EXPECT_FALSE(process_alive(second));
  EXPECT_TRUE(MasterRun::wait_until([&] {
    return follow.output().find("publishing to 'timer'") != std::string::npos;
  })) << follow.output();
  follow.stop(SIGTERM);
  EXPECT_THAT(node.baetyl({"restart", "nosuch"}, &code), HasSubstr("service 'nosuch' not found"));
  EXPECT_EQ(code, 1);

  // stop ends the master and its services.
  const pid_t hub = node.row("hub")["pid"].get<pid_t>();
  const pid_t timer = after["pid"].get<pid_t>();
  std::string stopped = node.baetyl({"stop"}, &code);
  EXPECT_EQ(code, 0) << stopped;
  EXPECT_THAT(stopped, HasSubstr("stopped"));
  EXPECT_TRUE(node.run().process().wait(5s).has_value());
  EXPECT_FALSE(process_alive(hub));
  EXPECT_FALSE(process_alive(timer));
  EXPECT_THAT(node.run().log(), HasSubstr("stop requested through the API"));

  // No master: a clear message; the files of native mode still read.
  std::string none = node.baetyl({"list"}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(none, HasSubstr("is the master running"));
  EXPECT_THAT(node.baetyl({"logs", "hub"}, &code), HasSubstr("hub started"));
  EXPECT_EQ(code, 0);
}

TEST(OperationsE2E, UsageErrorsNameTheProblem) {
  int code = -1;
  EXPECT_THAT(run_baetyl({"logs"}, &code), HasSubstr("logs needs the name of a service"));
  EXPECT_EQ(code, 2);
  EXPECT_THAT(run_baetyl({"logs", "hub", "--tail", "x"}, &code),
              HasSubstr("--tail needs a number of lines, not 'x'"));
  EXPECT_EQ(code, 2);
  EXPECT_THAT(run_baetyl({"logs", "hub", "--since", "5"}, &code), HasSubstr("--since"));
  EXPECT_EQ(code, 2);
  EXPECT_THAT(run_baetyl({"list", "-f"}, &code), HasSubstr("options of logs"));
  EXPECT_EQ(code, 2);
  EXPECT_THAT(run_baetyl({"restart", "a", "b"}, &code), HasSubstr("unexpected argument b"));
  EXPECT_EQ(code, 2);
  EXPECT_THAT(run_baetyl({"logs", "--help"}, &code), HasSubstr("Usage: baetyl logs SERVICE"));
  EXPECT_EQ(code, 0);
}

// ---- Prometheus ----

// Debian's Prometheus on a free port, scraping `target` (host:port) every second.
class Prometheus {
 public:
  explicit Prometheus(const std::string& target) : port_(free_port()) {
    write_text(dir_.path() / "prometheus.yml",
               "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
               "scrape_configs:\n  - job_name: baetyl\n    static_configs:\n"
               "      - targets: ['" +
                   target + "']\n");
    ProcessOptions options;
    options.output_file = (dir_.path() / "out").string();
    process_ = std::make_unique<Process>(
        std::vector<std::string>{"/usr/bin/prometheus",
                                 "--config.file=" + (dir_.path() / "prometheus.yml").string(),
                                 "--storage.tsdb.path=" + (dir_.path() / "data").string(),
                                 "--web.listen-address=127.0.0.1:" + std::to_string(port_)},
        options);
  }
  bool ready() { return wait_for_port(port_, 30s); }
  std::string output() const { return process_->output(); }

  // The value of an instant query's first sample; nullopt when it has none yet.
  std::optional<double> query(const std::string& expression) const {
    http::ClientOptions options;
    options.address = "tcp://127.0.0.1:" + std::to_string(port_);
    options.timeout = 5s;
    http::Client client(options);
    http::Request request;
    request.path = "/api/v1/query?query=" + expression;
    auto response = client.send(request);
    if (response.status != 200) return std::nullopt;
    auto document = nlohmann::json::parse(response.body, nullptr, false);
    const auto result =
        document.value("data", nlohmann::json::object()).value("result", nlohmann::json::array());
    if (result.empty()) return std::nullopt;
    return std::stod(result[0]["value"][1].get<std::string>());
  }

 private:
  TempDir dir_;
  std::uint16_t port_;
  std::unique_ptr<Process> process_;
};

std::string metrics_conf(std::uint16_t port) {
  return "metrics:\n  address: tcp://127.0.0.1:" + std::to_string(port) + "\n";
}

TEST(OperationsE2E, PrometheusScrapesTheHubsReceivedMessages) {
  if (!fs::exists("/usr/bin/prometheus")) GTEST_SKIP() << "Debian's prometheus is not installed";
  const std::uint16_t metrics_port = free_port();
  Node node(metrics_conf(metrics_port));
  ASSERT_TRUE(node.start()) << node.run().output();

  // The endpoint itself, in the text format, once the hub has reported.
  std::string text;
  ASSERT_TRUE(MasterRun::wait_until(
      [&] {
        text = scrape_metrics(metrics_port);
        return text.find("baetyl_hub_messages_received_total") != std::string::npos;
      },
      15s))
      << text;
  EXPECT_THAT(text, HasSubstr("# TYPE baetyl_hub_messages_received_total counter"));
  EXPECT_THAT(text, HasSubstr("baetyl_instance_up{service=\"hub\",instance=\"hub\"} 1"));
  EXPECT_THAT(text,
              HasSubstr("baetyl_instance_restarts_total{service=\"timer\",instance=\"timer\"} 0"));
  EXPECT_THAT(text, HasSubstr("baetyl_host_memory_total_bytes "));

  Prometheus prometheus("127.0.0.1:" + std::to_string(metrics_port));
  ASSERT_TRUE(prometheus.ready()) << prometheus.output();
  // Per QoS: their sum is the hub's received messages.
  const std::string series = "sum(baetyl_hub_messages_received_total)";
  std::optional<double> before;
  ASSERT_TRUE(
      MasterRun::wait_until([&] { return (before = prometheus.query(series)).has_value(); }, 30s))
      << prometheus.output();
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(mosquitto_pub(node.hub_port(), "t", "m" + std::to_string(i), 1,
                            {"-u", "test", "-P", "hahaha"}),
              0);
  }
  std::optional<double> after;
  EXPECT_TRUE(MasterRun::wait_until(
      [&] {
        after = prometheus.query(series);
        return after && *after >= *before + 5;
      },
      30s))
      << "before " << *before << ", after " << after.value_or(-1);
  // The up series as Prometheus sees it.
  EXPECT_EQ(prometheus.query("up").value_or(0), 1);
}

TEST(OperationsE2E, HubMessagesPerQosAndStoreCommitLatency) {
  const std::uint16_t metrics_port = free_port();
  Node node(metrics_conf(metrics_port));
  ASSERT_TRUE(node.start()) << node.run().output();
  SubscriberOptions options;
  options.topic = "t";
  options.qos = 2;
  options.username = "test";
  options.password = "hahaha";
  MosquittoSubscriber subscriber(node.hub_port(), options);
  const std::vector<std::string> auth = {"-u", "test", "-P", "hahaha"};
  for (int qos : {0, 0, 0, 1, 1, 2}) {
    ASSERT_EQ(mosquitto_pub(node.hub_port(), "t", "q" + std::to_string(qos), qos, auth), 0);
  }
  ASSERT_EQ(subscriber.wait_for(6, 10s).size(), 6u);

  // The timer publishes nothing (one tick an hour): these are the test's messages alone, each
  // sent to the subscriber at the QoS it was published with.
  const std::string hub = "{service=\"hub\",instance=\"hub\",qos=\"";
  const std::map<std::string, double> expected = {
      {"baetyl_hub_messages_received_total" + hub + "0\"}", 3},
      {"baetyl_hub_messages_received_total" + hub + "1\"}", 2},
      {"baetyl_hub_messages_received_total" + hub + "2\"}", 1},
      {"baetyl_hub_messages_sent_total" + hub + "0\"}", 3},
      {"baetyl_hub_messages_sent_total" + hub + "1\"}", 2},
      {"baetyl_hub_messages_sent_total" + hub + "2\"}", 1}};
  std::string text;
  EXPECT_TRUE(MasterRun::wait_until(
      [&] {
        text = scrape_metrics(metrics_port);
        for (const auto& [series, value] : expected) {
          if (sample_value(text, series) != value) return false;
        }
        return true;
      },
      10s))
      << text;

  // Each of the store's commits is timed: as many observations as commits, once they settle.
  const std::string at = "{service=\"hub\",instance=\"hub\"}";
  std::optional<double> commits;
  std::optional<double> timed;
  EXPECT_TRUE(MasterRun::wait_until(
      [&] {
        text = scrape_metrics(metrics_port);
        commits = sample_value(text, "baetyl_hub_store_commits_total" + at);
        timed = sample_value(text, "baetyl_hub_store_commit_duration_seconds_count" + at);
        return commits && *commits >= 1 && timed == commits;
      },
      10s))
      << text;
  EXPECT_THAT(text, HasSubstr("# TYPE baetyl_hub_store_commit_duration_seconds histogram\n"));
  const auto sum = sample_value(text, "baetyl_hub_store_commit_duration_seconds_sum" + at);
  ASSERT_TRUE(sum.has_value()) << text;
  EXPECT_GT(*sum, 0);
  EXPECT_EQ(sample_value(text,
                         "baetyl_hub_store_commit_duration_seconds_bucket{service=\"hub\","
                         "instance=\"hub\",le=\"+Inf\"}"),
            timed);
}

TEST(OperationsE2E, TimerTicksReachTheEndpoint) {
  const std::uint16_t metrics_port = free_port();
  Node node(metrics_conf(metrics_port), "200ms");
  SubscriberOptions options;
  options.topic = "timer";
  options.username = "test";
  options.password = "hahaha";
  ASSERT_TRUE(node.start()) << node.run().output();
  MosquittoSubscriber subscriber(node.hub_port(), options);

  const std::string at = "{service=\"timer\",instance=\"timer\"}";
  std::string text;
  std::optional<double> ticks;
  ASSERT_TRUE(MasterRun::wait_until(
      [&] {
        text = scrape_metrics(metrics_port);
        ticks = sample_value(text, "baetyl_timer_ticks_total" + at);
        return ticks && *ticks >= 5;
      },
      15s))
      << text;
  EXPECT_THAT(text, HasSubstr("# TYPE baetyl_timer_ticks_total counter\n"));
  EXPECT_EQ(sample_value(text, "baetyl_timer_publish_failures_total" + at), 0);
  const auto last = sample_value(text, "baetyl_timer_last_tick_timestamp_seconds" + at);
  ASSERT_TRUE(last.has_value()) << text;
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_GT(*last, now - 5);
  EXPECT_LE(*last, now + 1);
  // What the timer counts, the hub received: its QoS 0 counter catches up with the ticks.
  EXPECT_TRUE(MasterRun::wait_until([&] {
    text = scrape_metrics(metrics_port);
    return sample_value(text,
                        "baetyl_hub_messages_received_total{service=\"hub\","
                        "instance=\"hub\",qos=\"0\"}")
               .value_or(0) >= *ticks;
  })) << text;
  EXPECT_FALSE(subscriber.messages().empty());
}

// ---- $SYS ----

TEST(OperationsE2E, SysTopicsFollowTheHubsCountersForPermittedPrincipalsOnly) {
  Node node;
  ASSERT_TRUE(node.start()) << node.run().output();

  SubscriberOptions everything;
  everything.topic = "#";
  everything.username = "test";
  everything.password = "hahaha";
  MosquittoSubscriber all(node.hub_port(), everything);

  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(mosquitto_pub(node.hub_port(), "t", "m", 0, {"-u", "test", "-P", "hahaha"}), 0);
  }
  // The hub's own counter, as it reports it to the master.
  ASSERT_TRUE(MasterRun::wait_until(
      [&] {
        auto stats = node.hub_stats();
        return stats.is_object() && stats.contains("messages") &&
               stats["messages"].value("in", 0) >= 3;
      },
      10s));
  // The hub's counter as it reports it to the master, read again each time: a message of the
  // timer may still arrive.
  auto reported = [&](const char* group, const char* key) {
    auto stats = node.hub_stats();
    if (!stats.is_object()) return std::string("?");
    const auto& object = *group ? stats.value(group, nlohmann::json::object()) : stats;
    return std::to_string(object.value(key, std::uint64_t{0}));
  };

  SubscriberOptions sys;
  sys.topic = "$SYS/broker/messages/received";
  sys.username = "monitor";
  sys.password = "watch";
  MosquittoSubscriber received(node.hub_port(), sys);
  // Retained, so a value is there at once; then again every sys.interval with the counter.
  std::vector<std::string> values;
  std::string in;
  ASSERT_TRUE(MasterRun::wait_until(
      [&] {
        values = received.messages();
        in = reported("messages", "in");
        return !values.empty() && values.back() == in;
      },
      10s))
      << (values.empty() ? "none" : values.back()) << " vs " << in;
  EXPECT_GE(std::stoul(in), 3u);

  SubscriberOptions everything_sys = sys;
  everything_sys.topic = "$SYS/broker/#";
  MosquittoSubscriber broker(node.hub_port(), everything_sys);
  std::map<std::string, std::string> latest;
  std::string connected;
  EXPECT_TRUE(MasterRun::wait_until([&] {
    for (const auto& message : broker.received()) latest[message.topic] = message.payload;
    connected = reported("", "connections");
    return latest["$SYS/broker/clients/connected"] == connected;
  })) << latest["$SYS/broker/clients/connected"]
      << " vs " << connected;
  EXPECT_THAT(latest["$SYS/broker/version"], HasSubstr("baetyl-hub"));
  EXPECT_THAT(latest["$SYS/broker/uptime"], HasSubstr(" seconds"));
  EXPECT_TRUE(latest.count("$SYS/broker/load/messages/received/1min"));
  EXPECT_TRUE(latest.count("$SYS/broker/messages/sent"));

  // A subscription to '#' matches no topic starting with '$': the messages on t, none of $SYS.
  for (const auto& message : all.received()) {
    EXPECT_THAT(message.topic, Not(HasSubstr("$SYS"))) << message.payload;
  }
  EXPECT_GE(all.received().size(), 3u);
}

}  // namespace
}  // namespace baetyl::testing
