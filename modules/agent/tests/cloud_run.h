#pragma once
// test/cloud/cloud.py on a temporary directory: its PKI (init), mosquitto with mutual TLS and the
// HTTPS server (serve, as a child process), and its commands (pack, ota).
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "baetyl/testing/process.h"
#include "baetyl/testing/temp_dir.h"

namespace baetyl::agent::testing {

class CloudRun {
 public:
  // Issues the PKI with certificates for `devices`, starts serving (`cloud.py serve DIR
  // <serve_args>`) and waits until it does.
  explicit CloudRun(const std::vector<std::string>& devices = {"dev1"},
                    const std::vector<std::string>& serve_args = {});
  ~CloudRun();
  CloudRun(const CloudRun&) = delete;
  CloudRun& operator=(const CloudRun&) = delete;

  const std::filesystem::path& dir() const { return dir_.path(); }
  std::filesystem::path pki(const std::string& file) const { return dir() / "pki" / file; }
  std::string mqtt_address() const;   // ssl://127.0.0.1:<port>
  std::string https_address() const;  // https://127.0.0.1:<port>

  // Runs cloud.py with `args` after the command name's DIR; returns its output (stdout and
  // stderr), the exit code in `code`.
  std::string command(const std::string& name, const std::vector<std::string>& args,
                      int* code = nullptr) const;
  // `cloud.py ota DIR --device <device> <args>`; the event it sent (null if it failed).
  nlohmann::json ota(const std::string& device, const std::vector<std::string>& args) const;
  // `cloud.py pack DIR <src> --name <name> --version <version>`: the volume it printed.
  nlohmann::json pack(const std::filesystem::path& src, const std::string& name,
                      const std::string& version) const;

  // The last report of `device` received over `via` (mqtt or https), null when none yet.
  nlohmann::json report(const std::string& device, const std::string& via) const;
  // The lines of https.log ("GET /volumes/x.zip 200").
  std::vector<std::string> https_requests() const;
  // Stops serving (mosquitto and the HTTPS server end).
  void stop();

 private:
  baetyl::testing::TempDir dir_;
  nlohmann::json state_;
  std::unique_ptr<baetyl::testing::Process> serve_;
};

// Polls `condition` every 50 ms until it holds or `timeout` passes.
bool eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = std::chrono::seconds(20));

}  // namespace baetyl::agent::testing
