#include "master_run.h"

#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <thread>

namespace baetyl::testing {

namespace fs = std::filesystem;

namespace {

constexpr const char* kServiceScript = R"(#!/bin/sh
name="$BAETYL_SERVICE_INSTANCE_NAME"
env > "out/$name.env"
echo "$0 $*" > "out/$name.args"
pwd -P > "out/$name.cwd"
echo $$ >> "out/$name.pids"
# PUT /v1/services/$1/instances/$2/$3 with this service's token; prints the HTTP status.
api() {
  python3 -c '
import http.client, os, socket, sys
class Connection(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(os.environ["BAETYL_MASTER_API_ADDRESS"][len("unix://"):])
connection = Connection("baetyl")
connection.request("PUT", "/v1/services/%s/instances/%s/%s" % tuple(sys.argv[1:4]), body=b"",
                   headers={"x-openedge-username": os.environ["BAETYL_SERVICE_NAME"],
                            "x-openedge-password": os.environ["BAETYL_SERVICE_TOKEN"]})
print(connection.getresponse().status, end="")' "$1" "$2" "$3"
}
case "$MODE" in
  exit0) exit 0 ;;
  exit1) exit 1 ;;
  ignore-term) trap '' TERM ;;
  # Starts instance $TARGET_INSTANCE of service $TARGET_SERVICE, and stops it when stopped itself
  # (as the function manager does), recording the answers in out/$name.start and .stop.
  starter)
    trap 'api "$TARGET_SERVICE" "$TARGET_INSTANCE" stop > "out/$name.stop"; exit 0' TERM
    api "$TARGET_SERVICE" "$TARGET_INSTANCE" start > "out/$name.start" ;;
  *) trap 'echo $$ >> "out/$name.stops"; exit 0' TERM ;;
esac
while true; do sleep 0.05; done
)";

}  // namespace

bool process_alive(pid_t pid) {
  if (::kill(pid, 0) != 0) return false;
  // A zombie is dead for our purposes.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  std::getline(stat, text);
  auto close = text.rfind(')');
  return close == std::string::npos || text.size() < close + 3 || text[close + 2] != 'Z';
}

MasterRun::MasterRun(std::string mode) : mode_(std::move(mode)) {
  auto script = dir_.write("var/db/baetyl/pkg/run.sh", kServiceScript);
  fs::permissions(script, fs::perms::owner_all, fs::perm_options::add);
  dir_.write("var/db/baetyl/pkg/package.yml", "entry: run.sh\n");
  fs::create_directories(dir_.path() / "var/db/baetyl/out");
  write_conf();
}

MasterRun::~MasterRun() {
  if (master_ && master_->running()) master_->stop(SIGTERM, std::chrono::seconds(20));
}

void MasterRun::write_conf(const std::string& grace, const std::string& extra) {
  dir_.write("etc/baetyl/conf.yml", "mode: " + mode_ + "\ngrace: " + grace +
                                        "\nserver:\n  address: unix://" + socket() +
                                        "\nlogger:\n  path: var/log/baetyl/baetyl.log\n  level: "
                                        "debug\n" +
                                        extra);
}

void MasterRun::write_app(const std::string& version, const std::string& services,
                          const std::string& file, const std::string& extra_volumes) {
  dir_.write(file, "version: " + version + "\nservices:\n" + services +
                       "volumes:\n"
                       "  - {name: pkg, path: var/db/baetyl/pkg}\n"
                       "  - {name: out, path: var/db/baetyl/out}\n" +
                       extra_volumes);
}

bool MasterRun::start(const std::string& binary) {
  ProcessOptions options;
  options.output_file = (dir_.path() / "master.out").string();
  master_ = std::make_unique<Process>(
      std::vector<std::string>{binary.empty() ? binary_path("baetyl") : binary, "start", "-w",
                               dir_.path().string()},
      options);
  return wait_until([&] {
    if (!master_->running()) return false;
    try {
      return !inspect().is_null();
    } catch (const std::exception&) {
      return false;
    }
  });
}

int MasterRun::stop(int signal, std::chrono::milliseconds timeout) {
  return master_->stop(signal, timeout);
}

std::string MasterRun::admin_password() const {
  auto admin = nlohmann::json::parse(read_text(dir_.path() / "var/run/baetyl/admin.json"));
  return admin.at("password").get<std::string>();
}

http::Response MasterRun::call(const std::string& method, const std::string& path,
                               const std::string& username, const std::string& password,
                               const std::string& body) const {
  http::ClientOptions options;
  options.address = "unix://" + socket();
  options.timeout = std::chrono::seconds(30);
  http::Client client(options);
  http::Request request;
  request.method = method;
  request.path = path;
  request.body = body;
  if (!username.empty()) request.headers.emplace_back("x-openedge-username", username);
  if (!password.empty()) request.headers.emplace_back("x-openedge-password", password);
  return client.send(request);
}

nlohmann::json MasterRun::inspect() const {
  auto response = call("GET", "/v1/system/inspect", "baetyl.admin", admin_password());
  if (response.status != 200) return nullptr;
  return nlohmann::json::parse(response.body);
}

nlohmann::json MasterRun::instance(const std::string& service, const std::string& instance) const {
  auto document = inspect();
  for (const auto& entry : document.value("services", nlohmann::json::array())) {
    if (entry.value("name", "") != service) continue;
    for (const auto& candidate : entry.value("instances", nlohmann::json::array())) {
      if (candidate.value("name", "") == instance) return candidate;
    }
  }
  return nullptr;
}

std::vector<pid_t> MasterRun::pids(const std::string& instance) const {
  std::vector<pid_t> result;
  std::istringstream in(read_text(dir_.path() / "var/db/baetyl/out" / (instance + ".pids")));
  pid_t pid = 0;
  while (in >> pid) result.push_back(pid);
  return result;
}

std::optional<pid_t> MasterRun::last_pid(const std::string& instance) const {
  auto all = pids(instance);
  if (all.empty()) return std::nullopt;
  return all.back();
}

std::string MasterRun::env_value(const std::string& instance, const std::string& name) const {
  std::istringstream in(read_text(dir_.path() / "var/db/baetyl/out" / (instance + ".env")));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + "=", 0) == 0) return line.substr(name.size() + 1);
  }
  return "";
}

std::string MasterRun::read_out(const std::string& file) const {
  return read_text(dir_.path() / "var/db/baetyl/out" / file);
}

std::string MasterRun::log() const { return read_text(dir_.path() / "var/log/baetyl/baetyl.log"); }

bool MasterRun::wait_until(const std::function<bool()>& condition,
                           std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

std::string service(const std::string& name, const std::string& extra, const std::string& mode,
                    int replica) {
  return "  - name: " + name +
         "\n"
         "    image: test/svc\n"
         "    replica: " +
         std::to_string(replica) +
         "\n"
         "    mounts:\n"
         "      - {name: pkg, path: lib/baetyl/test/svc, readonly: true}\n"
         "      - {name: out, path: out}\n" +
         (extra.find("    env:") == std::string::npos ? "    env: {MODE: " + mode + "}\n" : "") +
         extra;
}

std::string agent_service(const std::string& name, const std::string& extra) {
  std::string item = service(name, extra);
  for (const auto& [from, to] :
       {std::pair<std::string, std::string>{"image: test/svc\n",
                                            "image: hub.baidubce.com/baetyl/baetyl-agent:latest\n"},
        {"path: lib/baetyl/test/svc,",
         "path: lib/baetyl/hub.baidubce.com/baetyl/baetyl-agent/latest,"}}) {
    const auto at = item.find(from);
    if (at != std::string::npos) item.replace(at, from.size(), to);
  }
  return item;
}

std::string status_of(const MasterRun& run, const std::string& service, const std::string& name) {
  auto entry = run.instance(service, name);
  return entry.is_null() ? "" : entry.value("status", "");
}

std::string run_baetyl(const std::vector<std::string>& args, int* code,
                       const std::map<std::string, std::string>& env) {
  TempDir out;
  ProcessOptions options;
  options.output_file = (out.path() / "out").string();
  options.env = env;
  std::vector<std::string> argv = {binary_path("baetyl")};
  argv.insert(argv.end(), args.begin(), args.end());
  Process process(argv, options);
  auto exit = process.wait(std::chrono::seconds(10));
  *code = exit.value_or(-1);
  return process.output();
}

std::vector<std::string> ota_steps(const MasterRun& run) {
  std::ifstream in(run.workdir() / "var/db/baetyl/ota.log");
  std::vector<std::string> steps;
  std::string line;
  while (std::getline(in, line)) steps.push_back(nlohmann::json::parse(line).at("step"));
  return steps;
}

bool ota_finished(const MasterRun& run) {
  auto steps = ota_steps(run);
  return !steps.empty() &&
         (steps.back() == "UPDATED" || steps.back() == "ROLLEDBACK" || steps.back() == "FAILURE");
}

std::string scrape_metrics(std::uint16_t port) {
  http::ClientOptions options;
  options.address = "tcp://127.0.0.1:" + std::to_string(port);
  options.timeout = std::chrono::seconds(5);
  try {
    http::Client client(options);
    http::Request request;
    request.path = "/metrics";
    auto response = client.send(request);
    return response.status == 200 ? response.body : "";
  } catch (const std::exception&) {
    return "";
  }
}

std::optional<double> sample_value(const std::string& exposition, const std::string& series) {
  std::istringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return std::nullopt;
}

}  // namespace baetyl::testing
