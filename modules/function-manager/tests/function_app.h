#pragma once
// The application the function e2e suites run under the real master (MasterRun): baetyl-hub as
// `localhub` on a loopback port, the function manager, and runtime services started on demand.
// Every config lives in a volume under var/db/baetyl; every service logs to one shared file.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "baetyl/mqtt/client.h"
#include "baetyl/testing/ports.h"
#include "master_run.h"

namespace baetyl::function::testing {

inline void write_file(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

// The hub's service.yml: one principal test/hahaha allowed to publish and subscribe anything
// (but to publish to `pub_deny`, a YAML list, when given); `extra` is appended.
inline std::string hub_service_yml(std::uint16_t port, const std::string& pub_deny = "",
                                   const std::string& extra = "") {
  return "listen: ['tcp://127.0.0.1:" + std::to_string(port) +
         "']\n"
         "principals:\n"
         "  - username: test\n"
         "    password: hahaha\n"
         "    permissions:\n"
         "      - {action: pub, permit: ['#']" +
         (pub_deny.empty() ? "" : ", deny: " + pub_deny) +
         "}\n"
         "      - {action: sub, permit: ['#']}\n"
         "logger: {path: var/log/baetyl/service.log}\n" +
         extra;
}

// The `hub:` section of the manager's service.yml; `extra` holds more of its keys.
inline std::string manager_hub_yml(std::uint16_t port, const std::string& extra = "") {
  return "hub:\n  address: tcp://127.0.0.1:" + std::to_string(port) +
         "\n  username: test\n  password: hahaha\n" + extra;
}

// A runtime service: its service.yml is in the volume <name>-conf, and with `code` its handler
// files are in <name>-code, mounted at `code`.
struct RuntimeService {
  std::string name;
  std::string image;  // baetyl-function-sql, baetyl-function-python or baetyl-function-node
  bool code = false;

  std::filesystem::path conf_dir(const std::filesystem::path& root) const {
    return root / (name + "-conf");
  }
  std::filesystem::path code_dir(const std::filesystem::path& root) const {
    return root / (name + "-code");
  }
};

// application.yml: localhub (config in hub-conf), function-manager (fm-conf) and the runtimes.
inline std::string application_yml(const std::vector<RuntimeService>& runtimes) {
  std::string services =
      "  - name: localhub\n"
      "    image: baetyl-hub\n"
      "    replica: 1\n"
      "    mounts:\n"
      "      - {name: hub-conf, path: etc/baetyl, readonly: true}\n"
      "      - {name: log, path: var/log/baetyl}\n"
      "  - name: function-manager\n"
      "    image: baetyl-function-manager\n"
      "    replica: 1\n"
      "    mounts:\n"
      "      - {name: fm-conf, path: etc/baetyl, readonly: true}\n"
      "      - {name: log, path: var/log/baetyl}\n";
  std::string volumes =
      "  - {name: hub-conf, path: var/db/baetyl/hub-conf}\n"
      "  - {name: fm-conf, path: var/db/baetyl/fm-conf}\n"
      "  - {name: log, path: var/log/baetyl/services}\n";
  for (const auto& runtime : runtimes) {
    const auto& s = runtime.name;
    services += "  - name: " + s + "\n    image: " + runtime.image +
                "\n    replica: 0\n    mounts:\n"
                "      - {name: " + s + "-conf, path: etc/baetyl, readonly: true}\n";
    volumes += "  - {name: " + s + "-conf, path: var/db/baetyl/" + s + "-conf}\n";
    if (runtime.code) {
      services += "      - {name: " + s + "-code, path: code, readonly: true}\n";
      volumes += "  - {name: " + s + "-code, path: var/db/baetyl/" + s + "-code}\n";
    }
  }
  return "version: v1\nservices:\n" + services + "volumes:\n" + volumes;
}

// The master's output followed by the services' shared log file.
inline std::string service_logs(const baetyl::testing::MasterRun& run) {
  return run.output() +
         baetyl::testing::read_text(run.workdir() / "var/log/baetyl/services/service.log");
}

// The fixture of the suites that run the application: the master, the hub's port and an
// observer client of the hub; a failed test prints the master's output and the services' logs.
class FunctionAppTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure()) std::fprintf(stderr, "%s\n", logs().c_str());
    if (client_) client_->stop();
  }

  std::string logs() { return service_logs(run_); }

  // Starts the master on the application written before and waits until the hub listens.
  void start_master() {
    ASSERT_TRUE(run_.start()) << run_.output();
    ASSERT_TRUE(baetyl::testing::wait_for_port(hub_port_, std::chrono::seconds(10)))
        << run_.output();
  }

  // Connects `client_` to the hub as `client_id` (principal test, clean session, 100 messages
  // in flight), subscribed to `subscriptions`, handing what arrives to `on_message`.
  void connect_observer(const std::string& client_id, std::vector<mqtt::TopicInfo> subscriptions,
                        std::function<void(const mqtt::Message&)> on_message) {
    mqtt::ClientConfig config;
    config.address = "tcp://127.0.0.1:" + std::to_string(hub_port_);
    config.username = "test";
    config.password = "hahaha";
    config.client_id = client_id;
    config.clean_session = true;
    config.buffer_size = 100;
    config.subscriptions = std::move(subscriptions);
    client_ = std::make_unique<mqtt::Client>(config);
    mqtt::ClientCallbacks callbacks;
    callbacks.on_message = std::move(on_message);
    client_->start(callbacks);
    ASSERT_TRUE(client_->wait_connected(std::chrono::seconds(10)));
  }

  // Running instances of `service` as inspect lists them, by name -> pid.
  std::map<std::string, int> instances(const std::string& service) {
    std::map<std::string, int> result;
    auto document = run_.inspect();
    for (const auto& s : document.value("services", nlohmann::json::array())) {
      if (s.value("name", "") != service) continue;
      for (const auto& i : s.value("instances", nlohmann::json::array())) {
        result[i.value("name", "")] = i.contains("process") ? i["process"].value("id", 0) : 0;
      }
    }
    return result;
  }

  baetyl::testing::MasterRun run_;
  std::uint16_t hub_port_ = 0;
  std::unique_ptr<mqtt::Client> client_;
};

}  // namespace baetyl::function::testing
