#include "cloud_run.h"

#include <signal.h>

#include <sstream>
#include <stdexcept>
#include <thread>

namespace baetyl::agent::testing {
namespace {

namespace fs = std::filesystem;
using baetyl::testing::Process;
using baetyl::testing::ProcessOptions;
using baetyl::testing::read_text;

constexpr const char* kPython = "/usr/bin/python3";

std::string script() { return std::string(BAETYL_SOURCE_DIR) + "/test/cloud/cloud.py"; }

}  // namespace

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return condition();
}

CloudRun::CloudRun(const std::vector<std::string>& devices,
                   const std::vector<std::string>& serve_args) {
  std::vector<std::string> init_args;
  for (const auto& device : devices) init_args.insert(init_args.end(), {"--device", device});
  int code = 0;
  const std::string output = command("init", init_args, &code);
  if (code != 0) throw std::runtime_error("cloud.py init failed: " + output);

  ProcessOptions options;
  options.output_file = (dir() / "serve.out").string();
  std::vector<std::string> argv{kPython, script(), "serve", dir().string()};
  argv.insert(argv.end(), serve_args.begin(), serve_args.end());
  serve_ = std::make_unique<Process>(argv, options);
  const bool up = eventually([&] { return fs::exists(dir() / "cloud.json") || !serve_->running(); },
                             std::chrono::seconds(20));
  if (!up || !fs::exists(dir() / "cloud.json")) {
    throw std::runtime_error("cloud.py serve did not start: " + serve_->output());
  }
  state_ = nlohmann::json::parse(read_text(dir() / "cloud.json"));
}

CloudRun::~CloudRun() { stop(); }

void CloudRun::stop() {
  if (serve_ && serve_->running()) serve_->stop(SIGTERM, std::chrono::seconds(10));
}

std::string CloudRun::mqtt_address() const { return state_.at("mqtt").get<std::string>(); }

std::string CloudRun::https_address() const { return state_.at("https").get<std::string>(); }

std::string CloudRun::command(const std::string& name, const std::vector<std::string>& args,
                              int* code) const {
  static int counter = 0;
  const fs::path output = dir() / ("command-" + std::to_string(++counter) + ".out");
  std::vector<std::string> argv{kPython, script(), name, dir().string()};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessOptions options;
  options.output_file = output.string();
  Process process(argv, options);
  const auto exit_code = process.wait(std::chrono::seconds(30));
  if (code != nullptr) *code = exit_code.value_or(-1);
  return read_text(output);
}

nlohmann::json CloudRun::ota(const std::string& device,
                             const std::vector<std::string>& args) const {
  std::vector<std::string> all{"--device", device};
  all.insert(all.end(), args.begin(), args.end());
  int code = 0;
  const std::string output = command("ota", all, &code);
  if (code != 0) return nullptr;
  return nlohmann::json::parse(output, nullptr, false);
}

nlohmann::json CloudRun::pack(const fs::path& src, const std::string& name,
                              const std::string& version) const {
  int code = 0;
  const std::string output =
      command("pack", {src.string(), "--name", name, "--version", version}, &code);
  if (code != 0) throw std::runtime_error("cloud.py pack failed: " + output);
  return nlohmann::json::parse(output);
}

nlohmann::json CloudRun::report(const std::string& device, const std::string& via) const {
  const fs::path file = dir() / "reports" / (device + "." + via + ".json");
  if (!fs::exists(file)) return nullptr;
  return nlohmann::json::parse(read_text(file), nullptr, false);
}

std::vector<std::string> CloudRun::https_requests() const {
  std::vector<std::string> lines;
  std::istringstream in(read_text(dir() / "https.log"));
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

}  // namespace baetyl::agent::testing
