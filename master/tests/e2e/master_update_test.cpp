// Updates against the real baetyl binary: where an update may be read from, what a failed one
// leaves, and the rollback of a master binary whatever the new binary does (master_run.h).
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "master_run.h"

namespace baetyl::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

constexpr const char* kSecret = "hunter2-secret";

std::vector<nlohmann::json> ota_lines(const MasterRun& run) {
  std::ifstream in(run.workdir() / "var/db/baetyl/ota.log");
  std::vector<nlohmann::json> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

http::Response put_update(const MasterRun& run, const std::string& body,
                          const std::string& user = "baetyl.admin", std::string password = "") {
  if (password.empty()) password = run.admin_password();
  return run.call("PUT", "/v1/system/update", user, password, body);
}

// Sends an update that must be accepted (by default as the admin) and waits for its final step;
// returns that line.
nlohmann::json update_and_wait(const MasterRun& run, const std::string& body,
                               std::chrono::milliseconds timeout = 20s,
                               const std::string& user = "baetyl.admin",
                               const std::string& password = "") {
  const std::size_t before = ota_lines(run).size();
  auto response = put_update(run, body, user, password);
  EXPECT_EQ(response.status, 200) << response.body;
  if (response.status != 200) return nullptr;
  nlohmann::json last;
  EXPECT_TRUE(MasterRun::wait_until(
      [&] {
        auto lines = ota_lines(run);
        if (lines.size() <= before) return false;
        last = lines.back();
        const std::string step = last.value("step", "");
        return step == "UPDATED" || step == "ROLLEDBACK" || step == "FAILURE";
      },
      timeout))
      << body;
  return last;
}

std::string app_update(const std::string& path, const std::string& trace) {
  return nlohmann::json{{"type", "APP"}, {"path", path}, {"trace", trace}}.dump();
}

// ---- application updates ----

TEST(MasterUpdateE2E, ApplicationUpdateRestartsOnlyWhatChanged) {
  MasterRun run;
  run.write_app("v1", service("same") + service("changed") + service("removed"));
  ASSERT_TRUE(run.start()) << run.output();
  ASSERT_TRUE(MasterRun::wait_until(
      [&] { return run.last_pid("same") && run.last_pid("changed") && run.last_pid("removed"); }));
  pid_t same = *run.last_pid("same"), changed = *run.last_pid("changed"),
        removed = *run.last_pid("removed");
  const std::string v1 = read_text(run.workdir() / "var/db/baetyl/application.yml");

  run.write_app(
      "v2",
      service("same") + service("changed", "    env: {MODE: run, NEW: yes}\n") + service("added"),
      "var/db/baetyl/v2/application.yml");
  // The legacy key, and no type: an application update.
  auto response = put_update(run, R"({"file":"var/db/baetyl/v2/application.yml","trace":"t-1"})");
  ASSERT_EQ(response.status, 200) << response.body;
  ASSERT_TRUE(MasterRun::wait_until([&] { return ota_finished(run); })) << run.output();
  EXPECT_EQ(ota_steps(run), (std::vector<std::string>{"RECEIVED", "UPDATING", "UPDATED"}));

  EXPECT_TRUE(process_alive(same));
  EXPECT_EQ(*run.last_pid("same"), same);
  EXPECT_FALSE(process_alive(changed));
  EXPECT_FALSE(process_alive(removed));
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.pids("changed").size() == 2u; }));
  EXPECT_EQ(run.env_value("changed", "NEW"), "yes");
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.last_pid("added").has_value(); }));
  auto inspect = run.inspect();
  EXPECT_EQ(inspect["software"]["conf_version"], "v2");
  EXPECT_FALSE(inspect.contains("error"));
  EXPECT_TRUE(run.instance("removed", "removed").is_null());
  EXPECT_FALSE(fs::exists(run.workdir() / "var/run/baetyl/services/removed"));
  EXPECT_EQ(read_text(run.workdir() / "var/db/baetyl/application.yml.old"), v1);
  EXPECT_EQ(read_text(run.workdir() / "var/db/baetyl/application.yml"),
            read_text(run.workdir() / "var/db/baetyl/v2/application.yml"));
}

TEST(MasterUpdateE2E, PathsOutsideTheUpdateDirectoryAreRefusedBeforeAnythingIsRead) {
  MasterRun run;
  // A service that may update, as the issue's attacker was.
  run.write_app("v1", agent_service("svc"));
  ASSERT_TRUE(run.start()) << run.output();
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.last_pid("svc").has_value(); }));
  const pid_t svc = *run.last_pid("svc");
  const std::string token = run.env_value("svc", "BAETYL_SERVICE_TOKEN");
  const fs::path db = run.workdir() / "var/db/baetyl";
  const std::string app = read_text(db / "application.yml");

  // A secret beside the work directory's update directory, and ways to point at it.
  auto secret = run.workdir() / "secret.yml";
  std::ofstream(secret) << "services:\n  - {name: " << kSecret << ", image: x}\n";
  fs::permissions(secret, fs::perms::owner_read | fs::perms::owner_write);
  fs::create_symlink("../../../secret.yml", db / "relative-link.yml");
  fs::create_symlink(secret, db / "absolute-link.yml");
  fs::create_directories(db / "v2");
  fs::create_symlink(run.workdir() / "etc", db / "v2/etc");
  ASSERT_EQ(::mkfifo((db / "fifo.yml").c_str(), 0600), 0);

  const std::vector<std::pair<std::string, std::string>> refused = {
      {"/etc/passwd", "is outside"},
      {"../../../../etc/shadow", "is outside"},
      {"var/db/baetyl/../../../secret.yml", "is outside"},
      {secret.string(), "is outside"},
      {"var/db/baetyl/relative-link.yml", "is outside"},
      {"var/db/baetyl/absolute-link.yml", "is outside"},
      {"var/db/baetyl/v2/etc/baetyl/conf.yml", "is outside"},
      {"/var", "is outside"},
      {"var/db/baetyl/out", "is a directory"},
      {"var/db/baetyl", "is the update directory itself"},
      {"var/db/baetyl/fifo.yml", "is not a regular file"},
      {"var/db/baetyl/none.yml", "does not exist"},
  };
  for (const auto& [path, reason] : refused) {
    for (const char* key : {"path", "file"}) {
      for (const char* type : {"APP", "MST"}) {
        auto body = nlohmann::json{{"type", type}, {key, path}, {"trace", "x"}}.dump();
        auto response = put_update(run, body, "svc", token);
        EXPECT_EQ(response.status, 400) << body;
        EXPECT_THAT(response.body, HasSubstr("update path '" + path + "' " + reason)) << body;
        EXPECT_THAT(response.body, Not(HasSubstr(kSecret)));
        EXPECT_THAT(response.body, Not(HasSubstr("root:")));
      }
    }
  }
  auto empty = put_update(run, R"({"type":"APP","path":""})", "svc", token);
  EXPECT_EQ(empty.status, 400);
  EXPECT_THAT(empty.body, HasSubstr("update path is required"));
  std::ofstream(db / "big.yml") << std::string((1 << 20) + 1, '#');
  auto big = put_update(run, R"({"type":"APP","path":"var/db/baetyl/big.yml"})", "svc", token);
  EXPECT_EQ(big.status, 400);
  EXPECT_THAT(big.body, HasSubstr("update path 'var/db/baetyl/big.yml' is larger than 1048576"));

  EXPECT_FALSE(fs::exists(db / "ota.log")) << "nothing was received";
  EXPECT_EQ(read_text(db / "application.yml"), app);
  EXPECT_FALSE(fs::exists(db / "application.yml.old"));
  EXPECT_EQ(run.pids("svc"), std::vector<pid_t>{svc}) << "nothing stopped";
  EXPECT_EQ(status_of(run, "svc", "svc"), "running");
  EXPECT_FALSE(run.inspect().contains("error"));

  // A link that stays inside is followed.
  run.write_app("v2", agent_service("svc", "    env: {MODE: run, V: 2}\n"),
                "var/db/baetyl/v2/application.yml");
  fs::create_symlink("v2/application.yml", db / "current.yml");
  auto last = update_and_wait(run, app_update("var/db/baetyl/current.yml", "t-2"));
  EXPECT_EQ(last.value("step", ""), "UPDATED") << last.dump();
  EXPECT_EQ(run.inspect()["software"]["conf_version"], "v2");
}

TEST(MasterUpdateE2E, UpdateErrorsNeverQuoteTheFile) {
  MasterRun run;
  run.write_app("v1", service("svc"));
  ASSERT_TRUE(run.start()) << run.output();
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.last_pid("svc").has_value(); }));
  const fs::path db = run.workdir() / "var/db/baetyl";
  const std::string app = read_text(db / "application.yml");
  const std::string secret = kSecret;

  struct Case {
    std::string file, text, shown;
  };
  const std::vector<Case> cases = {
      {"scalar.yml", secret + " is the password\nof root\n",
       "scalar.yml: expected a map of keys, got something else (not shown)"},
      {"syntax.yml", "version: \"\\q" + secret + "\"\n", "syntax.yml: line 1, column"},
      {"value.yml", "services: [{name: a, image: b, restart: {policy: " + secret + "}}]\n",
       "value.yml: services[0].restart.policy: invalid value (not shown)"},
      {"typo.yml", "version: v2\nservice:\n  - {name: a, image: b}\n",
       "typo.yml: service: unknown key; an application has only version, services and volumes"},
      {"empty.yml", "version: v2\nservices: []\n",
       "empty.yml: services: an update needs at least one service"},
      {"long-key.yml", std::string(100, 'k') + ": 1\n",
       "long-key.yml: " + std::string(64, 'k') + "...: unknown key"},
  };
  for (const auto& c : cases) {
    std::ofstream(db / c.file) << c.text;
    auto last = update_and_wait(run, app_update("var/db/baetyl/" + c.file, c.file));
    EXPECT_EQ(last.value("step", ""), "FAILURE") << c.file;
    EXPECT_THAT(last.value("error", ""), HasSubstr(c.shown)) << c.file;
    EXPECT_THAT(run.inspect().value("error", ""), HasSubstr(c.shown)) << c.file;
  }
  EXPECT_THAT(read_text(db / "ota.log"), Not(HasSubstr(secret)));
  EXPECT_THAT(run.inspect().dump(), Not(HasSubstr(secret)));
  EXPECT_THAT(read_text(run.workdir() / "var/log/baetyl/baetyl.log"), Not(HasSubstr(secret)));
  EXPECT_EQ(read_text(db / "application.yml"), app) << "no failed update replaced it";
  EXPECT_EQ(run.pids("svc").size(), 1u) << "nothing stopped";
}

TEST(MasterUpdateE2E, EveryFailedApplicationUpdateLeavesTheFileAndTheServicesAsTheyWere) {
  MasterRun run;
  run.write_app("v1", service("keep") + service("svc"));
  ASSERT_TRUE(run.start()) << run.output();
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.last_pid("keep") && run.last_pid("svc"); }));
  const pid_t keep = *run.last_pid("keep");
  const pid_t svc = *run.last_pid("svc");
  const fs::path db = run.workdir() / "var/db/baetyl";
  const std::string v1 = read_text(db / "application.yml");
  run.write_app("v2", service("keep") + service("svc", "    env: {MODE: run, V: 2}\n"),
                "var/db/baetyl/v2/application.yml");
  const std::string v2_update = app_update("var/db/baetyl/v2/application.yml", "v2");
  auto untouched = [&](const std::string& what) {
    EXPECT_EQ(read_text(db / "application.yml"), v1) << what;
    EXPECT_EQ(run.pids("keep"), std::vector<pid_t>{keep}) << what;
    EXPECT_EQ(run.pids("svc"), std::vector<pid_t>{svc}) << what;
    EXPECT_EQ(run.inspect()["software"]["conf_version"], "v1") << what;
  };

  // The issue's case: a directory as the path, refused before anything happens.
  EXPECT_EQ(put_update(run, R"({"path":"/var"})").status, 400);
  untouched("a directory as the path");

  // The new file cannot be written beside the current one.
  fs::create_directories(db / "application.yml.tmp/in-the-way");
  auto last = update_and_wait(run, v2_update);
  EXPECT_EQ(last.value("step", ""), "FAILURE");
  EXPECT_THAT(last.value("error", ""), HasSubstr("cannot write"));
  untouched("the new file cannot be written");
  fs::remove_all(db / "application.yml.tmp");

  // The current file cannot be kept as application.yml.old.
  fs::create_directories(db / "application.yml.old.tmp/in-the-way");
  last = update_and_wait(run, v2_update);
  EXPECT_EQ(last.value("step", ""), "FAILURE");
  EXPECT_THAT(last.value("error", ""), HasSubstr("application.yml.old"));
  untouched("the old file cannot be kept");
  fs::remove_all(db / "application.yml.old.tmp");

  // An image that resolves to no program.
  run.write_app("v3",
                service("keep") + "  - {name: ghost, image: test/no-such-module, replica: 1}\n",
                "var/db/baetyl/v3/application.yml");
  last = update_and_wait(run, app_update("var/db/baetyl/v3/application.yml", "v3"));
  EXPECT_EQ(last.value("step", ""), "FAILURE");
  EXPECT_THAT(last.value("error", ""), HasSubstr("no-such-module"));
  untouched("an unknown image");

  // After all that the same update goes through.
  last = update_and_wait(run, v2_update);
  EXPECT_EQ(last.value("step", ""), "UPDATED") << last.dump();
  EXPECT_EQ(run.pids("keep"), std::vector<pid_t>{keep});
  EXPECT_TRUE(MasterRun::wait_until([&] { return run.env_value("svc", "V") == "2"; }));
  EXPECT_EQ(read_text(db / "application.yml.old"), v1);

  // The master finds its application at the next start.
  EXPECT_EQ(run.stop(SIGTERM), 0);
  ASSERT_TRUE(run.start()) << run.output();
  EXPECT_EQ(run.inspect()["software"]["conf_version"], "v2");
  EXPECT_TRUE(MasterRun::wait_until([&] { return status_of(run, "svc", "svc") == "running"; }));
  EXPECT_TRUE(MasterRun::wait_until([&] { return status_of(run, "keep", "keep") == "running"; }));
}

TEST(MasterUpdateE2E, AServiceThatFailsToStartRollsBackFileAndServices) {
  MasterRun run;
  run.write_app("v1", service("keep") + service("svc"));
  ASSERT_TRUE(run.start()) << run.output();
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.last_pid("keep") && run.last_pid("svc"); }));
  const pid_t keep = *run.last_pid("keep");
  const fs::path db = run.workdir() / "var/db/baetyl";
  const std::string v1 = read_text(db / "application.yml");

  // A package whose entry is there for the check but is not an executable the kernel can run.
  fs::create_directories(db / "broken");
  std::ofstream(db / "broken/package.yml") << "entry: run.sh\n";
  std::ofstream(db / "broken/run.sh") << "#!/nonexistent/interpreter\n";
  fs::permissions(db / "broken/run.sh", fs::perms::owner_all);
  run.write_app("v2",
                service("keep") + service("svc", "    env: {MODE: run, V: 2}\n") +
                    "  - name: broken\n    image: test/broken\n    replica: 1\n"
                    "    mounts: [{name: broken, path: lib/baetyl/test/broken}]\n",
                "var/db/baetyl/v2/application.yml");
  {
    std::ofstream app(db / "v2/application.yml", std::ios::app);
    app << "  - {name: broken, path: var/db/baetyl/broken}\n";
  }
  auto last = update_and_wait(run, app_update("var/db/baetyl/v2/application.yml", "v2"));
  EXPECT_EQ(last.value("step", ""), "ROLLEDBACK") << run.output();
  EXPECT_EQ(ota_steps(run),
            (std::vector<std::string>{"RECEIVED", "UPDATING", "ROLLINGBACK", "ROLLEDBACK"}));
  auto inspect = run.inspect();
  EXPECT_THAT(inspect.value("error", ""), HasSubstr("broken"));
  EXPECT_EQ(inspect["software"]["conf_version"], "v1");
  EXPECT_EQ(read_text(db / "application.yml"), v1);
  EXPECT_TRUE(process_alive(keep)) << "the unchanged service never stopped";
  EXPECT_EQ(run.pids("keep"), std::vector<pid_t>{keep});
  EXPECT_TRUE(run.instance("broken", "broken").is_null());
  ASSERT_TRUE(MasterRun::wait_until([&] { return status_of(run, "svc", "svc") == "running"; }));
  EXPECT_EQ(run.env_value("svc", "V"), "") << "svc runs its v1 definition again";
}

TEST(MasterUpdateE2E, AMisspeltTopLevelKeyStopsStartAndCheckToo) {
  MasterRun run;
  run.write_app("v1", service("svc"));
  {
    std::ofstream app(run.workdir() / "var/db/baetyl/application.yml", std::ios::app);
    app << "volume:\n  - {name: x, path: x}\n";
  }
  const std::string error =
      "var/db/baetyl/application.yml: volume: unknown key; an application has only version, "
      "services and volumes";
  int code = 0;
  std::string printed = run_baetyl({"check", "-w", run.workdir().string()}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(printed, HasSubstr(error));
  printed = run_baetyl({"start", "-w", run.workdir().string()}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(printed, HasSubstr(error));
  EXPECT_TRUE(run.pids("svc").empty());
}

// ---- master binary updates ----

// A master started from <workdir>/bin/baetyl (a copy of the build's), as an installed one is.
class InstalledMaster {
 public:
  explicit InstalledMaster(MasterRun& run) : run_(run) {
    fs::create_directories(run.workdir() / "bin");
    fs::copy_file(binary_path("baetyl"), binary(), fs::copy_options::overwrite_existing);
  }
  fs::path binary() const { return run_.workdir() / "bin/baetyl"; }
  fs::path backup() const { return run_.workdir() / "bin/baetyl.old"; }
  void launch() {
    ProcessOptions options;
    options.output_file = (run_.workdir() / "master.out").string();
    process_ =
        std::make_unique<Process>(std::vector<std::string>{binary().string(), "start"}, options);
  }
  bool api_up() const {
    try {
      return !run_.inspect().is_null();
    } catch (const std::exception&) {
      return false;
    }
  }
  bool start() {
    launch();
    return MasterRun::wait_until([&] { return process_->running() && api_up(); });
  }
  Process& process() { return *process_; }

 private:
  MasterRun& run_;
  std::unique_ptr<Process> process_;
};

// What /proc says about a process.
std::string cmdline_of(pid_t pid) {
  std::string text = read_text("/proc/" + std::to_string(pid) + "/cmdline");
  std::replace(text.begin(), text.end(), '\0', ' ');
  return text;
}

std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> children;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat = read_text(entry.path() / "stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent && state != 'Z') children.push_back(std::stoi(name));
  }
  return children;
}

std::vector<std::string> open_fds(pid_t pid) {
  std::vector<std::string> fds;
  for (const auto& entry : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    fds.push_back(entry.path().filename());
  }
  std::sort(fds.begin(), fds.end());
  return fds;
}

// A copy of the build's binary that differs from it (so the installed file can be told apart).
fs::path new_build(const MasterRun& run, const std::string& name) {
  const fs::path path = run.workdir() / "var/db/baetyl" / name;
  fs::copy_file(binary_path("baetyl"), path, fs::copy_options::overwrite_existing);
  std::ofstream(path, std::ios::app) << name;
  return path;
}

// A binary that answers `check` as the real one does and does `on_start` for anything else.
fs::path fake_build(const MasterRun& run, const std::string& name, const std::string& on_start) {
  const fs::path path = run.workdir() / "var/db/baetyl" / name;
  std::ofstream(path) << "#!/bin/sh\nif [ \"$1\" = check ]; then exec '" << binary_path("baetyl")
                      << "' \"$@\"; fi\n"
                      << on_start << "\n";
  fs::permissions(path, fs::perms::owner_all);
  return path;
}

std::string mst_update(const std::string& path, const std::string& trace) {
  return nlohmann::json{{"type", "MST"}, {"path", path}, {"trace", trace}}.dump();
}

fs::path lock_file(const MasterRun& run) { return run.workdir() / "var/run/baetyl/baetyl.lock"; }

// What the descriptors of `pid` above stderr refer to.
std::vector<fs::path> open_files(pid_t pid) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    if (std::stoi(entry.path().filename().string()) > 2) {
      files.push_back(fs::read_symlink(entry.path()));
    }
  }
  return files;
}

// A second `start` in the work directory exits 1 naming `holder`, whose pid the lock file holds.
void expect_second_start_refused(const MasterRun& run, pid_t holder) {
  EXPECT_EQ(read_text(lock_file(run)), std::to_string(holder) + "\n");
  int code = 0;
  const std::string printed = run_baetyl({"start", "-w", run.workdir().string()}, &code);
  EXPECT_EQ(code, 1) << printed;
  EXPECT_THAT(printed, HasSubstr("a master is already running in " + run.workdir().string() +
                                 " (pid " + std::to_string(holder) + ")"));
  EXPECT_EQ(read_text(lock_file(run)), std::to_string(holder) + "\n");
}

// The only child of `parent`, the master an update waiter runs; 0 when there is not exactly one.
pid_t only_child(pid_t parent) {
  auto children = children_of(parent);
  return children.size() == 1u ? children[0] : 0;
}

TEST(MasterUpdateE2E, MasterUpdateInstallsTheNewBinaryAndTheOldProcessOnlyWaits) {
  MasterRun run;
  run.write_app("v1", service("svc"));
  InstalledMaster master(run);
  ASSERT_TRUE(master.start()) << master.process().output();
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.last_pid("svc").has_value(); }));
  const pid_t main_pid = master.process().pid();
  const fs::path first = new_build(run, "baetyl-new");

  auto last = update_and_wait(run, mst_update("var/db/baetyl/baetyl-new", "m-1"));
  EXPECT_EQ(last.value("step", ""), "UPDATED") << master.process().output();
  EXPECT_EQ(ota_steps(run), (std::vector<std::string>{"RECEIVED", "UPDATING", "RESTARTING",
                                                      "RESTARTED", "UPDATED"}));
  EXPECT_EQ(read_text(master.binary()), read_text(first));
  EXPECT_EQ(read_text(master.backup()), read_text(binary_path("baetyl")));
  EXPECT_FALSE(fs::exists(run.workdir() / "bin/baetyl.new"));
  EXPECT_FALSE(fs::exists(run.workdir() / "var/db/baetyl/master-update.json"));
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.pids("svc").size() == 2u; }));
  EXPECT_TRUE(MasterRun::wait_until([&] { return status_of(run, "svc", "svc") == "running"; }));
  EXPECT_FALSE(run.inspect().contains("error"));

  // The process that was started is still the main one: a waiter holding nothing open but the
  // work directory's lock, whose only child is the new master, named by the lock.
  EXPECT_EQ(master.process().pid(), main_pid);
  ASSERT_TRUE(master.process().running());
  EXPECT_THAT(cmdline_of(main_pid), HasSubstr("update-waiter"));
  EXPECT_EQ(open_fds(main_pid).size(), 4u);
  EXPECT_EQ(open_files(main_pid), std::vector<fs::path>{fs::canonical(lock_file(run))});
  auto children = children_of(main_pid);
  ASSERT_EQ(children.size(), 1u);
  EXPECT_THAT(cmdline_of(children[0]), HasSubstr(master.binary().string() + " start -w"));
  expect_second_start_refused(run, children[0]);
  EXPECT_EQ(run.pids("svc").size(), 2u);

  // A second update: the new master hands back to the same waiter, no second one.
  const fs::path second = new_build(run, "baetyl-newer");
  last = update_and_wait(run, mst_update("var/db/baetyl/baetyl-newer", "m-2"));
  EXPECT_EQ(last.value("step", ""), "UPDATED") << master.process().output();
  EXPECT_EQ(read_text(master.binary()), read_text(second));
  EXPECT_EQ(read_text(master.backup()), read_text(first));
  children = children_of(main_pid);
  ASSERT_EQ(children.size(), 1u);
  EXPECT_NE(cmdline_of(children[0]).find(" start -w"), std::string::npos);
  EXPECT_TRUE(children_of(children[0]).size() >= 1u) << "its services";
  for (pid_t grandchild : children_of(children[0])) {
    EXPECT_THAT(cmdline_of(grandchild), Not(HasSubstr("update-waiter")));
  }
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.pids("svc").size() == 3u; }));
  expect_second_start_refused(run, children[0]);

  // A restart in place (SIGUSR2) of the master under the waiter keeps the lock too.
  ::kill(children[0], SIGUSR2);
  ASSERT_TRUE(MasterRun::wait_until([&] {
    return run.pids("svc").size() == 4u && master.api_up();
  })) << master.process().output();
  EXPECT_EQ(only_child(main_pid), children[0]);
  expect_second_start_refused(run, children[0]);

  // SIGTERM to the main process stops everything.
  const pid_t svc = *run.last_pid("svc");
  ASSERT_TRUE(MasterRun::wait_until([&] { return process_alive(svc); }));
  EXPECT_EQ(master.process().stop(SIGTERM, 20s), 0) << master.process().output();
  EXPECT_FALSE(process_alive(children[0]));
  EXPECT_FALSE(process_alive(svc));
}

TEST(MasterUpdateE2E, MasterUpdateRefusesABinaryThatFailsCheck) {
  MasterRun run;
  run.write_app("v1", service("svc"));
  InstalledMaster master(run);
  ASSERT_TRUE(master.start()) << master.process().output();
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.last_pid("svc").has_value(); }));
  auto fake = run.workdir() / "var/db/baetyl/not-baetyl";
  std::ofstream(fake) << "#!/bin/sh\necho 'config is broken'\nexit 1\n";
  auto last = update_and_wait(run, mst_update("var/db/baetyl/not-baetyl", "m-2"));
  EXPECT_EQ(last.value("step", ""), "FAILURE");
  EXPECT_THAT(run.inspect().value("error", ""),
              HasSubstr("var/db/baetyl/not-baetyl: `check` failed: config is broken"));
  EXPECT_EQ(run.pids("svc").size(), 1u) << "nothing was restarted";
  EXPECT_FALSE(fs::exists(master.backup()));
  EXPECT_FALSE(fs::exists(run.workdir() / "bin/baetyl.new"));
  EXPECT_EQ(read_text(master.binary()), read_text(binary_path("baetyl")));
}

// ---- who may update ----

// `item` (one services entry of master_run.h) with `mounts` (YAML list items) added.
std::string with_mounts(std::string item, const std::string& mounts) {
  const std::string last = "      - {name: out, path: out}\n";
  item.insert(item.find(last) + last.size(), mounts);
  return item;
}

TEST(MasterUpdateE2E, OnlyTheAdminTheAgentAndTheNamedServicesMayUpdate) {
  MasterRun run;
  run.write_conf("1s", "update:\n  services: [ota]\n");
  // The agent downloads into a volume of its own, which svc may read; writer can write to drop.
  const std::string services =
      with_mounts(agent_service("agent"), "      - {name: agent-dl, path: dl}\n") +
      with_mounts(service("svc"), "      - {name: agent-dl, path: dl, readonly: true}\n") +
      service("ota") + with_mounts(service("writer"), "      - {name: drop, path: drop}\n");
  const std::string volumes =
      "  - {name: agent-dl, path: var/db/baetyl/agent-dl}\n"
      "  - {name: drop, path: var/db/baetyl/drop}\n";
  const fs::path db = run.workdir() / "var/db/baetyl";
  auto write_app = [&](const std::string& version, const std::string& file) {
    run.write_app(version, services, file);
    std::ofstream(run.workdir() / file, std::ios::app) << volumes;
  };
  write_app("v1", "var/db/baetyl/application.yml");
  fs::create_directories(db / "agent-dl");
  fs::create_directories(db / "drop");
  InstalledMaster master(run);
  ASSERT_TRUE(master.start()) << master.process().output();
  for (const std::string name : {"agent", "svc", "ota", "writer"}) {
    ASSERT_TRUE(MasterRun::wait_until([&] { return run.last_pid(name).has_value(); })) << name;
  }
  auto token = [&](const std::string& name) { return run.env_value(name, "BAETYL_SERVICE_TOKEN"); };
  write_app("v2", "var/db/baetyl/agent-dl/v2.yml");
  new_build(run, "agent-dl/baetyl-new");

  // A service that is not the agent may neither replace the application nor the binary, even
  // from a file it can only read; nothing is received.
  for (const auto& body : {app_update("var/db/baetyl/agent-dl/v2.yml", "svc-app"),
                           mst_update("var/db/baetyl/agent-dl/baetyl-new", "svc-mst")}) {
    auto refused = put_update(run, body, "svc", token("svc"));
    EXPECT_EQ(refused.status, 403) << body;
    EXPECT_THAT(refused.body, HasSubstr("service 'svc' may not update the node: an update "
                                        "replaces the application or the master binary"));
    EXPECT_EQ(put_update(run, body, "writer", token("writer")).status, 403) << body;
  }
  // Not even the agent or the admin update from a file another service could have written.
  write_app("v2", "var/db/baetyl/drop/v2.yml");
  for (const auto& [user, password] : {std::pair{std::string("agent"), token("agent")},
                                       std::pair{std::string("baetyl.admin"), std::string()}}) {
    auto refused = put_update(run, app_update("var/db/baetyl/drop/v2.yml", "drop"), user, password);
    EXPECT_EQ(refused.status, 403) << user;
    EXPECT_THAT(refused.body,
                HasSubstr("update path 'var/db/baetyl/drop/v2.yml' is in volume 'drop' "
                          "(var/db/baetyl/drop), which service 'writer' mounts writable"))
        << user;
  }
  EXPECT_FALSE(fs::exists(db / "ota.log"));
  EXPECT_EQ(run.inspect()["software"]["conf_version"], "v1");

  // The agent, from its own volume; a service named in update.services; the admin.
  const std::size_t agent_starts = run.pids("agent").size();
  auto last = update_and_wait(run, app_update("var/db/baetyl/agent-dl/v2.yml", "agent-app"), 20s,
                              "agent", token("agent"));
  EXPECT_EQ(last.value("step", ""), "UPDATED") << last.dump();
  EXPECT_EQ(run.inspect()["software"]["conf_version"], "v2");
  EXPECT_EQ(run.pids("agent").size(), agent_starts) << "unchanged, so its token is too";
  write_app("v3", "var/db/baetyl/v3.yml");
  last =
      update_and_wait(run, app_update("var/db/baetyl/v3.yml", "ota-app"), 20s, "ota", token("ota"));
  EXPECT_EQ(last.value("step", ""), "UPDATED") << last.dump();
  write_app("v4", "var/db/baetyl/v4.yml");
  last = update_and_wait(run, app_update("var/db/baetyl/v4.yml", "admin-app"));
  EXPECT_EQ(last.value("step", ""), "UPDATED") << last.dump();
  EXPECT_EQ(run.inspect()["software"]["conf_version"], "v4");

  last = update_and_wait(run, mst_update("var/db/baetyl/agent-dl/baetyl-new", "agent-mst"), 20s,
                         "agent", token("agent"));
  EXPECT_EQ(last.value("step", ""), "UPDATED") << master.process().output();
  EXPECT_EQ(read_text(master.binary()), read_text(db / "agent-dl/baetyl-new"));
}

struct BadBinary {
  std::string name;
  std::string on_start;  // shell
  std::string reason;    // in inspect's error and ota.log
};

void PrintTo(const BadBinary& bad, std::ostream* out) { *out << bad.name; }

class MasterRollbackE2E : public ::testing::TestWithParam<BadBinary> {};

TEST_P(MasterRollbackE2E, TheOldBinaryComesBackWhateverTheNewOneDoes) {
  const BadBinary& bad = GetParam();
  MasterRun run;
  run.write_conf("1s", "update:\n  timeout: 3s\n");
  run.write_app("v1", service("svc"));
  InstalledMaster master(run);
  ASSERT_TRUE(master.start()) << master.process().output();
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.last_pid("svc").has_value(); }));
  const pid_t main_pid = master.process().pid();
  fake_build(run, "bad-baetyl", bad.on_start);

  auto last = update_and_wait(run, mst_update("var/db/baetyl/bad-baetyl", "m-" + bad.name), 30s);
  EXPECT_EQ(last.value("step", ""), "ROLLEDBACK") << master.process().output();
  EXPECT_EQ(ota_steps(run), (std::vector<std::string>{"RECEIVED", "UPDATING", "RESTARTING",
                                                      "ROLLINGBACK", "ROLLEDBACK"}));
  EXPECT_THAT(last.value("error", ""), HasSubstr(bad.reason));
  EXPECT_EQ(read_text(master.binary()), read_text(binary_path("baetyl"))) << "the old one is back";
  ASSERT_TRUE(MasterRun::wait_until([&] { return master.api_up(); }));
  EXPECT_THAT(run.inspect().value("error", ""), HasSubstr("master update failed, rolled back: "));
  EXPECT_THAT(run.inspect().value("error", ""), HasSubstr(bad.reason));
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.pids("svc").size() == 2u; }));
  EXPECT_TRUE(MasterRun::wait_until([&] { return status_of(run, "svc", "svc") == "running"; }));
  EXPECT_EQ(master.process().pid(), main_pid);
  EXPECT_TRUE(master.process().running());
  EXPECT_FALSE(fs::exists(run.workdir() / "var/db/baetyl/master-update.json"));
  // The lock names the old binary's master, the waiter's child.
  const pid_t old_master = only_child(main_pid);
  ASSERT_NE(old_master, 0);
  expect_second_start_refused(run, old_master);
  EXPECT_EQ(run.pids("svc").size(), 2u);
  if (fs::exists(run.workdir() / "var/db/baetyl/out/hung.pid")) {
    const pid_t hung = std::stoi(read_text(run.workdir() / "var/db/baetyl/out/hung.pid"));
    EXPECT_FALSE(process_alive(hung)) << "the hung binary was stopped";
  }
}

INSTANTIATE_TEST_SUITE_P(
    BadBinaries, MasterRollbackE2E,
    ::testing::Values(
        BadBinary{"crash", "kill -SEGV $$",
                  "the new master binary was killed by signal 11 (Segmentation fault) before it "
                  "had started its services"},
        BadBinary{"exit0", "exit 0",
                  "the new master binary exited with code 0 before it had started its services"},
        BadBinary{"hang", "echo $$ > var/db/baetyl/out/hung.pid\nexec sleep 600",
                  "the new master binary did not start its services within 3000 ms"}),
    [](const auto& info) { return info.param.name; });

TEST(MasterUpdateE2E, ASecondStartDuringTheHandOverIsRefusedAndTouchesNothing) {
  MasterRun run;
  run.write_conf("1s", "update:\n  timeout: 4s\n");
  run.write_app("v1", service("svc"));
  InstalledMaster master(run);
  ASSERT_TRUE(master.start()) << master.process().output();
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.last_pid("svc").has_value(); }));
  const pid_t main_pid = master.process().pid();
  const fs::path db = run.workdir() / "var/db/baetyl";
  // A new binary that starts an instance in a session of its own (out of its process group),
  // records it as a master does, and hangs.
  fake_build(run, "hanging-baetyl",
             "setsid sleep 600 &\n"
             "pid=$!\n"
             "ticks=$(cut -d' ' -f22 /proc/$pid/stat)\n"
             "printf '{\"instances\":[{\"pid\":%s,\"pgid\":%s,\"start_ticks\":%s,"
             "\"service\":\"svc\",\"instance\":\"svc\"}]}' $pid $pid $ticks "
             "> var/db/baetyl/native-instances.json.tmp\n"
             "mv var/db/baetyl/native-instances.json.tmp var/db/baetyl/native-instances.json\n"
             "echo $pid > var/db/baetyl/out/orphan.pid\n"
             "echo $$ > var/db/baetyl/out/hung.pid\n"
             "exec sleep 600");
  ASSERT_EQ(put_update(run, mst_update("var/db/baetyl/hanging-baetyl", "m-lock")).status, 200);
  ASSERT_TRUE(MasterRun::wait_until([&] { return fs::exists(db / "out/hung.pid"); }, 20s))
      << master.process().output();
  const pid_t hung = std::stoi(read_text(db / "out/hung.pid"));
  const pid_t orphan = std::stoi(read_text(db / "out/orphan.pid"));
  ASSERT_TRUE(MasterRun::wait_until([&] { return fs::exists(db / "native-instances.json"); }));
  const std::string instances = read_text(db / "native-instances.json");
  const std::string marker = read_text(db / "master-update.json");
  const std::string installed = read_text(master.binary());
  const std::size_t steps = ota_steps(run).size();
  const std::size_t svc_starts = run.pids("svc").size();

  // The waiter holds the lock while it waits for the new binary: a second start touches nothing,
  // neither the instance the hanging master recorded nor the update.
  expect_second_start_refused(run, main_pid);
  EXPECT_TRUE(process_alive(orphan));
  EXPECT_TRUE(process_alive(hung));
  EXPECT_EQ(read_text(db / "native-instances.json"), instances);
  EXPECT_EQ(read_text(db / "master-update.json"), marker);
  EXPECT_EQ(read_text(master.binary()), installed);
  EXPECT_EQ(ota_steps(run).size(), steps);
  EXPECT_EQ(run.pids("svc").size(), svc_starts);
  EXPECT_FALSE(fs::exists(run.workdir() / "var/run/baetyl/admin.json"));
  EXPECT_FALSE(fs::exists(run.socket()));

  // The rollback then runs as if nobody had tried: the old binary's master, to which the waiter
  // hands the lock, stops what the failed one left running.
  ASSERT_TRUE(MasterRun::wait_until([&] { return ota_finished(run); }, 20s))
      << master.process().output();
  EXPECT_EQ(ota_steps(run).back(), "ROLLEDBACK");
  ASSERT_TRUE(MasterRun::wait_until([&] { return master.api_up(); }));
  EXPECT_TRUE(MasterRun::wait_until([&] { return !process_alive(orphan); }))
      << "an instance of a master that is gone";
  EXPECT_FALSE(process_alive(hung));
  EXPECT_THAT(run.log(), HasSubstr("left by a previous master"));
  ASSERT_TRUE(MasterRun::wait_until([&] { return status_of(run, "svc", "svc") == "running"; }));
  const pid_t old_master = only_child(main_pid);
  ASSERT_NE(old_master, 0);
  expect_second_start_refused(run, old_master);
  EXPECT_EQ(run.pids("svc").size(), svc_starts + 1);
}

TEST(MasterUpdateE2E, StoppingTheMasterWhileTheNewBinaryStartsRollsBack) {
  MasterRun run;
  run.write_conf("1s", "update:\n  timeout: 60s\n");
  run.write_app("v1", service("svc"));
  InstalledMaster master(run);
  ASSERT_TRUE(master.start()) << master.process().output();
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.last_pid("svc").has_value(); }));
  fake_build(run, "slow-baetyl", "echo $$ > var/db/baetyl/out/hung.pid\nexec sleep 600");
  ASSERT_EQ(put_update(run, mst_update("var/db/baetyl/slow-baetyl", "m-stop")).status, 200);
  ASSERT_TRUE(MasterRun::wait_until(
      [&] { return fs::exists(run.workdir() / "var/db/baetyl/out/hung.pid"); }, 20s));

  EXPECT_NE(master.process().stop(SIGTERM, 20s), 0) << "the new binary died of the signal";
  EXPECT_EQ(read_text(master.binary()), read_text(binary_path("baetyl")));
  EXPECT_EQ(ota_steps(run).back(), "ROLLINGBACK");

  ASSERT_TRUE(master.start()) << master.process().output();
  ASSERT_TRUE(MasterRun::wait_until([&] { return ota_finished(run); }));
  EXPECT_EQ(ota_steps(run).back(), "ROLLEDBACK");
  EXPECT_THAT(run.inspect().value("error", ""), HasSubstr("the master was stopped"));
  EXPECT_TRUE(MasterRun::wait_until([&] { return status_of(run, "svc", "svc") == "running"; }));
}

// systemd runs the guard before each start (scripts/baetyl.service.in); here a loop does.
TEST(MasterUpdateE2E, ACrashLoopOfANewBinaryUnderSystemdEndsInTheOldOne) {
  MasterRun run;
  run.write_app("v1", service("svc"));
  InstalledMaster master(run);
  // What a master update leaves when its waiter is gone: the new binary installed, the old one
  // kept, the marker in stage "restarting".
  fs::rename(master.binary(), master.backup());
  fs::copy_file(fake_build(run, "crashing", "kill -SEGV $$"), master.binary());
  const fs::path marker = run.workdir() / "var/db/baetyl/master-update.json";
  std::ofstream(marker) << nlohmann::json{{"trace", "m-loop"},
                                          {"stage", "restarting"},
                                          {"binary", master.binary().string()},
                                          {"backup", master.backup().string()},
                                          {"timeout_ms", 120000},
                                          {"grace_ms", 1000},
                                          {"error", ""}}
                               .dump()
                        << "\n";
  const std::string guard = std::string(BAETYL_SOURCE_DIR) + "/scripts/baetyl-update-guard";

  // While the work directory is locked (by a master or its waiter still running) the guard
  // neither counts nor rolls back.
  {
    fs::create_directories(lock_file(run).parent_path());
    Process holder({"flock", "-o", lock_file(run).string(), "sleep", "30"});
    ASSERT_TRUE(MasterRun::wait_until([&] {
      Process probe({"flock", "-n", lock_file(run).string(), "true"});
      return probe.wait(5s) == 1;
    }));
    for (int start = 1; start <= 3; ++start) {
      Process guard_run({"/bin/sh", guard, run.workdir().string()});
      ASSERT_EQ(guard_run.wait(10s), 0);
    }
    EXPECT_THAT(read_text(marker), HasSubstr("\"stage\":\"restarting\""));
    EXPECT_FALSE(fs::exists(run.workdir() / "var/db/baetyl/master-update.starts"));
    EXPECT_FALSE(fs::exists(run.workdir() / "var/db/baetyl/ota.log"));
    ::kill(-holder.pid(), SIGKILL);  // flock and its sleep
    holder.stop(SIGKILL);
  }

  std::vector<int> exits;
  for (int start = 1; start <= 3; ++start) {
    Process guard_run({"/bin/sh", guard, run.workdir().string()});
    ASSERT_EQ(guard_run.wait(10s), 0);
    master.launch();
    auto code = master.process().wait(3s);
    if (!code) break;  // it runs
    exits.push_back(*code);
  }
  EXPECT_EQ(exits, std::vector<int>{128 + SIGSEGV}) << "one start of the new binary, then the old";
  ASSERT_TRUE(MasterRun::wait_until([&] { return master.api_up() && ota_finished(run); }))
      << master.process().output();
  EXPECT_EQ(ota_steps(run), (std::vector<std::string>{"ROLLINGBACK", "ROLLEDBACK"}));
  EXPECT_EQ(read_text(master.binary()), read_text(binary_path("baetyl")));
  EXPECT_THAT(run.inspect().value("error", ""), HasSubstr("by systemd"));
  EXPECT_TRUE(MasterRun::wait_until([&] { return status_of(run, "svc", "svc") == "running"; }));
  EXPECT_FALSE(fs::exists(marker));
  Process guard_run({"/bin/sh", guard, run.workdir().string()});
  EXPECT_EQ(guard_run.wait(10s), 0);
  EXPECT_FALSE(fs::exists(run.workdir() / "var/db/baetyl/master-update.starts"));
}

TEST(MasterUpdateE2E, TheSystemdUnitVerifies) {
  if (!fs::exists("/usr/bin/systemd-analyze") && !fs::exists("/bin/systemd-analyze")) {
    GTEST_SKIP() << "systemd-analyze is not installed";
  }
  const std::string unit =
      read_text(std::string(BAETYL_SOURCE_DIR) + "/scripts/baetyl.service.in");
  EXPECT_THAT(unit, HasSubstr("ExecStartPre=@BAETYL_PREFIX@/bin/baetyl-update-guard "
                              "@BAETYL_PREFIX@\n"));
  EXPECT_THAT(unit, HasSubstr("ExecStart=@BAETYL_PREFIX@/bin/baetyl start"));
  EXPECT_THAT(unit, HasSubstr("KillMode=mixed\n"));
  TempDir prefix;
  fs::create_directories(prefix.path() / "bin");
  fs::copy_file(std::string(BAETYL_SOURCE_DIR) + "/scripts/baetyl-update-guard",
                prefix.path() / "bin/baetyl-update-guard");
  fs::copy_file(binary_path("baetyl"), prefix.path() / "bin/baetyl");
  std::string moved = unit;
  const std::string placeholder = "@BAETYL_PREFIX@";
  for (auto at = moved.find(placeholder); at != std::string::npos;
       at = moved.find(placeholder, at)) {
    moved.replace(at, placeholder.size(), prefix.path().string());
    at += prefix.path().string().size();
  }
  prefix.write("baetyl.service", moved);
  ProcessOptions options;
  options.output_file = (prefix.path() / "verify.out").string();
  Process verify({"systemd-analyze", "verify", (prefix.path() / "baetyl.service").string()},
                 options);
  EXPECT_EQ(verify.wait(30s), 0) << verify.output();
}

}  // namespace
}  // namespace baetyl::testing
