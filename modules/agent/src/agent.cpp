#include "agent.h"

#include <filesystem>
#include <mutex>
#include <stdexcept>

#include "agent_config.h"
#include "baetyl/config/units.h"
#include "baetyl/mqtt/client.h"
#include "cloud_http.h"
#include "ota_runner.h"
#include "progress.h"
#include "reporter.h"
#include "volume_store.h"

namespace baetyl::agent {

using namespace std::chrono_literals;

void run_agent(Context& ctx) {
  const auto cfg = ctx.load_config<AgentConfig>();
  auto logger = ctx.logger();

  CloudHttp::init_global();  // before any thread starts
  const CloudHttp cloud_http(cfg.http_options());
  ProgressBook book;
  VolumeStore store(kStoreDir, ExtractLimits{cfg.ota.volume_max.bytes, cfg.ota.volume_entries_max},
                    cloud_http, logger);
  if (!std::filesystem::is_regular_file(std::filesystem::path(kStoreDir) / "application.yml")) {
    logger->warn(
        "the master's var/db/baetyl is not mounted at {}: updates will fail until the "
        "agent's service mounts it there",
        kStoreDir);
  }

  mqtt::Client cloud(cfg.mqtt_client_config(), logger);
  const std::string report_url = cfg.report_url();
  const std::string report_topic = cfg.report_topic();

  ReportSinks sinks;
  sinks.inspect = [&ctx] { return ctx.master().inspect_document(); };
  sinks.publish = [&](const std::string& payload) {
    mqtt::Publish message;
    message.topic = report_topic;
    message.payload = payload;
    message.qos = 1;
    return cloud.try_publish(message, 0ms);
  };
  sinks.post = [&](const std::string& payload) {
    const auto response =
        cloud_http.post_json(report_url, payload, {"x-iot-edge-clientid: " + cfg.mqtt.client_id});
    if (response.status < 200 || response.status >= 300) {
      throw std::runtime_error("POST " + report_url + " answered HTTP " +
                               std::to_string(response.status));
    }
  };
  Reporter reporter(std::move(sinks), book, cfg.report.interval, logger);
  OtaRunner runner(
      store, OtaLogReader(cfg.ota.log_path), book,
      [&ctx](const api::UpdateRequest& request) { ctx.update_system(request); },
      OtaRunnerOptions{.timeout = cfg.ota.timeout}, logger);
  book.set_listener([&reporter] { reporter.poke(); });

  std::mutex error_mutex;
  std::string cloud_error;
  mqtt::ClientCallbacks callbacks;
  callbacks.on_message = [&runner](const mqtt::Message& message) {
    runner.submit(message.publish.payload);
  };
  callbacks.on_connected = [&reporter](bool) { reporter.poke(); };
  callbacks.on_error = [&](const std::string& error) {
    {
      std::lock_guard lock(error_mutex);
      cloud_error = error;
    }
    ctx.request_stop();
  };

  runner.start();
  reporter.start();
  cloud.start(std::move(callbacks));
  logger->info("cloud link {} as '{}': events on '{}', reports on '{}' and to {} every {}",
               cfg.mqtt.address, cfg.mqtt.client_id, cfg.desire_topic(), report_topic, report_url,
               config::format_duration(cfg.report.interval));

  ctx.wait();
  cloud.stop();  // no more events
  runner.stop();
  reporter.stop();
  book.set_listener({});
  std::lock_guard lock(error_mutex);
  if (!cloud_error.empty()) throw std::runtime_error("cloud link stopped: " + cloud_error);
}

}  // namespace baetyl::agent
