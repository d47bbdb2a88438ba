// The real baetyl binary in native mode, supervising shell-script services (master_run.h).
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "master_run.h"

namespace baetyl::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

TEST(MasterE2E, StartsReplicasWithTheirEnvironmentAndArguments) {
  MasterRun run;
  run.write_app("v1", service("svc",
                              "    args: [-x, two words]\n"
                              "    env: {MODE: run, USER_VAR: mine, BAETYL_SERVICE_NAME: fake}\n",
                              "run", 3));
  ASSERT_TRUE(run.start()) << run.output();
  for (const std::string name : {"svc", "svc.i1", "svc.i2"}) {
    ASSERT_TRUE(MasterRun::wait_until([&] { return run.last_pid(name).has_value(); })) << name;
    // The script writes its pid as it starts, which can be before the master has recorded it.
    EXPECT_TRUE(MasterRun::wait_until([&] { return status_of(run, "svc", name) == "running"; }))
        << name << ": " << status_of(run, "svc", name);
    EXPECT_EQ(run.env_value(name, "BAETYL_SERVICE_INSTANCE_NAME"), name);
    EXPECT_EQ(run.env_value(name, "OPENEDGE_SERVICE_INSTANCE_NAME"), name);
  }
  EXPECT_EQ(run.env_value("svc", "BAETYL_SERVICE_NAME"), "svc") << "system variables win";
  EXPECT_EQ(run.env_value("svc", "OPENEDGE_SERVICE_NAME"), "svc");
  EXPECT_EQ(run.env_value("svc", "USER_VAR"), "mine");
  EXPECT_EQ(run.env_value("svc", "BAETYL_SERVICE_MODE"), "native");
  EXPECT_EQ(run.env_value("svc", "OPENEDGE_RUNNING_MODE"), "native");
  EXPECT_EQ(run.env_value("svc", "BAETYL_MASTER_API_ADDRESS"), "unix://" + run.socket());
  EXPECT_EQ(run.env_value("svc", "BAETYL_MASTER_API_VERSION"), "v1");
  EXPECT_EQ(run.env_value("svc", "BAETYL_HOST_OS"), "linux");
  EXPECT_FALSE(run.env_value("svc", "BAETYL_HOST_ID").empty());
  const std::string token = run.env_value("svc", "BAETYL_SERVICE_TOKEN");
  EXPECT_EQ(token.size(), 32u);
  EXPECT_EQ(run.env_value("svc.i1", "OPENEDGE_SERVICE_TOKEN"), token);
  // A script's $0 is its path (the kernel runs the interpreter on it); the engine's own tests
  // check that argv[0] is the instance name.
  EXPECT_THAT(run.read_out("svc.i2.args"), ::testing::EndsWith("run.sh -x two words\n"));

  // The service runs in its own directory with its mounts and the master socket linked in.
  const fs::path service_dir = run.workdir() / "var/run/baetyl/services/svc";
  EXPECT_TRUE(fs::is_symlink(service_dir / "out"));
  EXPECT_TRUE(fs::is_symlink(service_dir / "lib/baetyl/test/svc"));
  EXPECT_TRUE(fs::is_socket(service_dir / "var/run/baetyl.sock"));
  EXPECT_EQ(run.read_out("svc.cwd"), fs::canonical(service_dir).string() + "\n");

  auto inspect = run.inspect();
  EXPECT_EQ(inspect["software"]["mode"], "native");
  EXPECT_EQ(inspect["software"]["conf_version"], "v1");
  EXPECT_EQ(inspect["software"]["pwd"], run.workdir().string());
  EXPECT_FALSE(inspect["software"].value("bin_version", "").empty());
  EXPECT_TRUE(inspect["hardware"].contains("mem_stats"));
  EXPECT_TRUE(inspect["hardware"].contains("cpu_stats"));
  EXPECT_TRUE(inspect["hardware"].contains("disk_stats"));
  auto entry = run.instance("svc", "svc.i1");
  EXPECT_EQ(entry["process"]["id"].get<int>(), *run.last_pid("svc.i1"));
  EXPECT_TRUE(entry.contains("start_time"));
  EXPECT_TRUE(entry.contains("mem_stats"));

  int code = 0;
  std::string printed = run_baetyl({"inspect", "-w", run.workdir().string()}, &code);
  EXPECT_EQ(code, 0) << printed;
  EXPECT_THAT(printed, HasSubstr("\"svc.i2\""));
}

TEST(MasterE2E, RestartsAKilledInstanceWithGrowingBackoff) {
  MasterRun run;
  run.write_app("v1", service("svc", "    restart: {backoff: {min: 200ms, max: 2s, factor: 2}}\n"));
  ASSERT_TRUE(run.start()) << run.output();
  std::vector<std::chrono::milliseconds> gaps;
  for (int round = 1; round <= 3; ++round) {
    ASSERT_TRUE(MasterRun::wait_until([&] { return run.pids("svc").size() == size_t(round); }));
    pid_t pid = *run.last_pid("svc");
    auto killed = std::chrono::steady_clock::now();
    ::kill(pid, SIGKILL);
    ASSERT_TRUE(MasterRun::wait_until([&] { return run.pids("svc").size() == size_t(round + 1); }))
        << run.output();
    gaps.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - killed));
  }
  EXPECT_GE(gaps[0], 190ms);
  EXPECT_GE(gaps[1], 390ms);
  EXPECT_GE(gaps[2], 790ms);
  EXPECT_LT(gaps[0], 1500ms);
  EXPECT_TRUE(MasterRun::wait_until([&] { return status_of(run, "svc", "svc") == "running"; }));
  EXPECT_EQ(run.instance("svc", "svc")["restart_count"], 3);
}

TEST(MasterE2E, BackoffGoesBackToMinAfterAHealthyRun) {
  MasterRun run;
  run.write_app("v1", service("svc", "    restart: {backoff: {min: 100ms, max: 800ms, factor: 4}}\n"));
  ASSERT_TRUE(run.start()) << run.output();
  auto kill_and_time = [&](size_t count) {
    EXPECT_TRUE(MasterRun::wait_until([&] { return run.pids("svc").size() == count; }));
    auto killed = std::chrono::steady_clock::now();
    ::kill(*run.last_pid("svc"), SIGKILL);
    EXPECT_TRUE(MasterRun::wait_until([&] { return run.pids("svc").size() == count + 1; }));
    return std::chrono::steady_clock::now() - killed;
  };
  kill_and_time(1);                 // waits 100 ms
  EXPECT_GE(kill_and_time(2), 390ms);  // waits 400 ms
  std::this_thread::sleep_for(900ms);  // healthy: ran longer than backoff.max
  EXPECT_LT(kill_and_time(3), 350ms) << "back to 100 ms";
}

TEST(MasterE2E, RestartPoliciesNoOnFailureAndRetryMax) {
  MasterRun run;
  run.write_app("v1",
                service("never", "    restart: {policy: 'no', backoff: {min: 50ms}}\n", "exit1") +
                    service("clean", "    restart: {policy: on-failure, backoff: {min: 50ms}}\n",
                            "exit0") +
                    service("failing",
                            "    restart: {policy: on-failure, retry: {max: 2}, backoff: {min: "
                            "50ms}}\n",
                            "exit1"));
  ASSERT_TRUE(run.start()) << run.output();
  EXPECT_TRUE(MasterRun::wait_until([&] { return run.pids("failing").size() == 3u; }))
      << "first run + 2 retries";
  EXPECT_TRUE(MasterRun::wait_until([&] { return status_of(run, "failing", "failing") == "exited"; }));
  EXPECT_TRUE(MasterRun::wait_until([&] { return status_of(run, "never", "never") == "exited"; }));
  EXPECT_TRUE(MasterRun::wait_until([&] { return status_of(run, "clean", "clean") == "exited"; }));
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(run.pids("never").size(), 1u);
  EXPECT_EQ(run.pids("clean").size(), 1u);
  EXPECT_EQ(run.pids("failing").size(), 3u);
  EXPECT_THAT(run.instance("failing", "failing").value("last_exit", ""), HasSubstr("exit code 1"));
}

TEST(MasterE2E, SigtermStopsGracefullyThenKillsAndLeavesNothingBehind) {
  MasterRun run;
  run.write_conf("1s");
  run.write_app("v1", service("polite", "", "run", 2) + service("stubborn", "", "ignore-term"));
  ASSERT_TRUE(run.start()) << run.output();
  ASSERT_TRUE(MasterRun::wait_until([&] {
    return run.last_pid("polite") && run.last_pid("polite.i1") && run.last_pid("stubborn");
  }));
  std::vector<pid_t> pids = {*run.last_pid("polite"), *run.last_pid("polite.i1"),
                             *run.last_pid("stubborn")};
  auto begin = std::chrono::steady_clock::now();
  EXPECT_EQ(run.stop(SIGTERM), 0) << run.output();
  auto took = std::chrono::steady_clock::now() - begin;
  EXPECT_GE(took, 900ms) << "the stubborn one had its grace";
  EXPECT_LT(took, 5s);
  for (pid_t pid : pids) EXPECT_FALSE(process_alive(pid)) << pid;
  EXPECT_THAT(run.read_out("polite.stops"), HasSubstr(std::to_string(pids[0])))
      << "the polite one got SIGTERM and exited by itself";
  EXPECT_FALSE(fs::exists(run.workdir() / "var/run/baetyl/services/polite"));
  EXPECT_FALSE(fs::exists(run.workdir() / "var/run/baetyl/services/stubborn"));
  EXPECT_FALSE(fs::exists(run.socket()));
  EXPECT_FALSE(fs::exists(run.workdir() / "var/run/baetyl/admin.json"));
  EXPECT_TRUE(fs::exists(run.workdir() / "var/db/baetyl/out/polite.env")) << "volumes are kept";
  std::ifstream log(run.workdir() / "var/log/baetyl/baetyl.log");
  std::stringstream text;
  text << log.rdbuf();
  EXPECT_THAT(text.str(), HasSubstr("master stopped"));
}

TEST(MasterE2E, CrashedMastersInstancesAreCleanedAtTheNextStart) {
  MasterRun run;
  run.write_app("v1", service("svc"));
  ASSERT_TRUE(run.start()) << run.output();
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.last_pid("svc").has_value(); }));
  // Listed: the master has recorded the process by then (the script may write its pid earlier).
  ASSERT_TRUE(MasterRun::wait_until([&] { return status_of(run, "svc", "svc") == "running"; }));
  pid_t orphan = *run.last_pid("svc");
  run.stop(SIGKILL);
  ASSERT_TRUE(process_alive(orphan)) << "a SIGKILLed master cannot stop its children";

  ASSERT_TRUE(run.start()) << run.output();
  EXPECT_TRUE(MasterRun::wait_until([&] { return !process_alive(orphan); }));
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.pids("svc").size() == 2u; }));
  EXPECT_NE(*run.last_pid("svc"), orphan);
  // The script records its pid before the master lists it.
  EXPECT_TRUE(MasterRun::wait_until([&] { return status_of(run, "svc", "svc") == "running"; }));
}

TEST(MasterE2E, ApiNeedsAServiceTokenAndDynamicInstancesGetNone) {
  MasterRun run;
  run.write_app("v1", service("manager") + service("runtime", "", "run", 0));
  ASSERT_TRUE(run.start()) << run.output();
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.last_pid("manager").has_value(); }));
  const std::string token = run.env_value("manager", "BAETYL_SERVICE_TOKEN");

  auto no_auth = run.call("GET", "/v1/system/inspect", "", "");
  EXPECT_EQ(no_auth.status, 401);
  EXPECT_EQ(no_auth.body, "account unauthorized");
  EXPECT_EQ(run.call("GET", "/v1/system/inspect", "manager", "wrong").status, 401);
  EXPECT_EQ(run.call("GET", "/v1/system/inspect", "runtime", token).status, 401)
      << "a token is good for its own service only";
  EXPECT_EQ(run.call("GET", "/v1/system/inspect", "manager", token).status, 200);
  EXPECT_EQ(run.call("GET", "/system/inspect", "manager", token).status, 200) << "legacy path";

  auto port = run.call("GET", "/v1/ports/available", "manager", token);
  ASSERT_EQ(port.status, 200);
  int number = std::stoi(nlohmann::json::parse(port.body).at("port").get<std::string>());
  EXPECT_GT(number, 0);

  auto started = run.call("PUT", "/v1/services/runtime/instances/runtime.f1/start", "manager",
                          token, R"({"BAETYL_SERVICE_INSTANCE_ADDRESS":"127.0.0.1:)" +
                                     std::to_string(number) + R"("})");
  ASSERT_EQ(started.status, 200) << started.body;
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.last_pid("runtime.f1").has_value(); }));
  EXPECT_EQ(run.env_value("runtime.f1", "BAETYL_SERVICE_INSTANCE_ADDRESS"),
            "127.0.0.1:" + std::to_string(number));
  EXPECT_EQ(run.env_value("runtime.f1", "BAETYL_SERVICE_NAME"), "runtime");
  EXPECT_EQ(run.env_value("runtime.f1", "BAETYL_SERVICE_TOKEN"), "") << "dynamic: no token";
  EXPECT_EQ(run.call("GET", "/v1/system/inspect", "runtime", "").status, 401);
  EXPECT_EQ(status_of(run, "runtime", "runtime.f1"), "running");

  // Starting it again replaces the running one.
  pid_t first = *run.last_pid("runtime.f1");
  ASSERT_EQ(run.call("PUT", "/v1/services/runtime/instances/runtime.f1/start", "manager", token,
                     "{}")
                .status,
            200);
  EXPECT_FALSE(process_alive(first));
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.pids("runtime.f1").size() == 2u; }));

  auto stopped = run.call("PUT", "/v1/services/runtime/instances/runtime.f1/stop", "manager", token);
  EXPECT_EQ(stopped.status, 200) << stopped.body;
  EXPECT_FALSE(process_alive(*run.last_pid("runtime.f1")));
  EXPECT_TRUE(run.instance("runtime", "runtime.f1").is_null());

  auto missing = run.call("PUT", "/v1/services/nope/instances/x/start", "manager", token, "{}");
  EXPECT_EQ(missing.status, 400);
  EXPECT_THAT(missing.body, HasSubstr("service 'nope' not found"));
}

TEST(MasterE2E, ReportsAreMergedIntoInspectByTopLevelKey) {
  MasterRun run;
  run.write_app("v1", service("infer"));
  ASSERT_TRUE(run.start()) << run.output();
  // Listed once the master has it; its process may have started just before.
  ASSERT_TRUE(MasterRun::wait_until([&] { return status_of(run, "infer", "infer") == "running"; }));
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.last_pid("infer").has_value(); }));
  const std::string token = run.env_value("infer", "BAETYL_SERVICE_TOKEN");
  const std::string path = "/v1/services/infer/instances/infer/report";
  ASSERT_EQ(run.call("PUT", path, "infer", token,
                     R"({"info":{"company":"baidu","scope":"ai"},"stats":{"msg_count":124}})")
                .status,
            200);
  ASSERT_EQ(run.call("PUT", path, "infer", token, R"({"stats":{"msg_count":344}})").status, 200);
  auto entry = run.instance("infer", "infer");
  EXPECT_EQ(entry["info"]["company"], "baidu");
  EXPECT_EQ(entry["stats"]["msg_count"], 344);
  EXPECT_EQ(entry["status"], "running");
  EXPECT_EQ(run.call("PUT", path, "infer", token, "[1,2]").status, 400);
}

TEST(MasterE2E, NoApplicationFileStartsNothing) {
  MasterRun run;
  ASSERT_TRUE(run.start()) << run.output();
  auto inspect = run.inspect();
  EXPECT_TRUE(inspect["services"].empty());
  EXPECT_EQ(run.stop(SIGINT), 0);
}

TEST(MasterE2E, AServiceThatCannotStartStopsTheMaster) {
  MasterRun run;
  run.write_app("v1", service("ok") + "  - name: ghost\n    image: test/no-such-module\n    replica: 1\n");
  ProcessOptions options;
  options.output_file = (run.workdir() / "out.txt").string();
  Process master({binary_path("baetyl"), "start", "-w", run.workdir().string()}, options);
  auto code = master.wait(15s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  EXPECT_THAT(master.output(), HasSubstr("ghost"));
  EXPECT_FALSE(fs::exists(run.socket()));
}

TEST(MasterE2E, CheckVersionAndUsage) {
  MasterRun run;
  run.write_app("v1", service("svc"));
  int code = 0;
  EXPECT_EQ(run_baetyl({"check", "-w", run.workdir().string()}, &code), "OK!\n");
  EXPECT_EQ(code, 0);

  run.write_conf("2s", "bogus: 1\nmode2: x\n");
  run.write_app("v1", "  - name: a\n    image: b\n    replica: -1\n    restart: {policy: x}\n");
  std::string printed = run_baetyl({"check", "-w", run.workdir().string()}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(printed, HasSubstr("application.yml: services[0].replica: must be at least 0"));
  EXPECT_THAT(printed, HasSubstr("services[0].restart.policy: 'x' is not one of"));
  EXPECT_THAT(printed, HasSubstr("conf.yml: bogus: unknown key"));

  // Native mode: every program must be found too.
  run.write_conf();
  run.write_app("v1", service("svc") + "  - name: ghost\n    image: test/no-such-module\n"
                                     "    replica: 1\n    ports: ['1883:1883']\n");
  printed = run_baetyl({"check", "-w", run.workdir().string()}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(printed, HasSubstr("ghost"));
  EXPECT_THAT(printed, HasSubstr("no-such-module"));
  EXPECT_THAT(printed, HasSubstr("service ghost: ports, devices and resources apply in docker mode"));

  printed = run_baetyl({"version"}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_THAT(printed, HasSubstr("Version:"));
  EXPECT_THAT(printed, HasSubstr("Git revision:"));
  EXPECT_THAT(printed, HasSubstr("Compiler:"));
  EXPECT_THAT(printed, HasSubstr("Platform:     linux/"));

  printed = run_baetyl({"launch"}, &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(printed, HasSubstr("unknown command launch"));
  printed = run_baetyl({"inspect", "-w", run.workdir().string()}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(printed, HasSubstr("is the master running"));
}

using ::testing::Not;

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t count = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++count;
  return count;
}

// ---- one master per work directory ----

TEST(MasterE2E, ASecondMasterInTheSameWorkDirectoryTouchesNothing) {
  MasterRun run;
  run.write_app("v1", service("svc"));
  ASSERT_TRUE(run.start()) << run.output();
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.last_pid("svc").has_value(); }));
  const pid_t instance = *run.last_pid("svc");
  const pid_t master = run.process().pid();
  const fs::path admin_file = run.workdir() / "var/run/baetyl/admin.json";
  const std::string admin = read_text(admin_file);

  int code = 0;
  const std::string printed = run_baetyl({"start", "-w", run.workdir().string()}, &code);
  EXPECT_EQ(code, 1) << printed;
  EXPECT_THAT(printed, HasSubstr("a master is already running in " + run.workdir().string() +
                                 " (pid " + std::to_string(master) + ")"));
  EXPECT_EQ(read_text(run.workdir() / "var/run/baetyl/baetyl.lock"), std::to_string(master) + "\n");

  EXPECT_TRUE(process_alive(instance));
  EXPECT_TRUE(fs::is_directory(run.workdir() / "var/run/baetyl/services/svc"));
  EXPECT_EQ(read_text(admin_file), admin) << "the admin token file is the first master's";
  EXPECT_TRUE(fs::is_socket(run.socket()));
  EXPECT_EQ(status_of(run, "svc", "svc"), "running");
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(run.pids("svc").size(), 1u) << "nothing was stopped or restarted";
  EXPECT_THAT(run.log(), Not(HasSubstr("left by a previous master")));
  EXPECT_THAT(run.log(), Not(HasSubstr("does not exist")));

  // The lock goes with the master.
  EXPECT_EQ(run.stop(SIGTERM), 0) << run.output();
  ASSERT_TRUE(run.start()) << run.output();
  EXPECT_TRUE(MasterRun::wait_until([&] { return run.pids("svc").size() == 2u; }));
}

TEST(MasterE2E, ARestartInPlaceKeepsTheWorkDirectoryLocked) {
  MasterRun run;
  run.write_app("v1", service("svc"));
  ASSERT_TRUE(run.start()) << run.output();
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.last_pid("svc").has_value(); }));
  const pid_t master = run.process().pid();
  ::kill(master, SIGUSR2);  // stop, then exec of the same binary in this process
  ASSERT_TRUE(MasterRun::wait_until([&] {
    try {
      return run.pids("svc").size() == 2u && !run.inspect().is_null();
    } catch (const std::exception&) {
      return false;
    }
  })) << run.output();
  EXPECT_TRUE(run.process().running());

  int code = 0;
  const std::string printed = run_baetyl({"start", "-w", run.workdir().string()}, &code);
  EXPECT_EQ(code, 1) << printed;
  EXPECT_THAT(printed, HasSubstr("(pid " + std::to_string(master) + ")"));
  EXPECT_EQ(run.pids("svc").size(), 2u);
  EXPECT_EQ(status_of(run, "svc", "svc"), "running");
}

// ---- who may call what ----

TEST(MasterE2E, AServiceTokenManagesOnlyTheDynamicInstancesItStarted) {
  MasterRun run;
  run.write_app("v1", service("manager") + service("other") + service("runtime", "", "run", 0));
  ASSERT_TRUE(run.start()) << run.output();
  ASSERT_TRUE(MasterRun::wait_until([&] {
    return run.last_pid("manager").has_value() && run.last_pid("other").has_value() &&
           status_of(run, "other", "other") == "running";
  }));
  const std::string manager = run.env_value("manager", "BAETYL_SERVICE_TOKEN");
  const std::string other = run.env_value("other", "BAETYL_SERVICE_TOKEN");
  const pid_t other_pid = *run.last_pid("other");
  auto put = [&](const std::string& user, const std::string& token, const std::string& path,
                 const std::string& body = "") { return run.call("PUT", path, user, token, body); };

  // Static instances are the master's and the admin's.
  auto refused = put("manager", manager, "/v1/services/other/instances/other/stop");
  EXPECT_EQ(refused.status, 403);
  EXPECT_THAT(refused.body, HasSubstr("service 'other' runs 1 static instance(s)"));
  EXPECT_EQ(put("manager", manager, "/v1/services/manager/instances/manager/stop").status, 403);
  EXPECT_EQ(put("manager", manager, "/v1/services/other/instances/other/start", "{}").status, 403);
  EXPECT_EQ(put("manager", manager, "/v1/services/other/instances/other.x/start", "{}").status,
            403);
  EXPECT_TRUE(process_alive(other_pid));
  EXPECT_EQ(status_of(run, "other", "other"), "running");
  EXPECT_TRUE(run.instance("other", "other.x").is_null());

  // The environment of a dynamic instance sets no loader, search path or system variable.
  for (const std::string name : {"LD_PRELOAD", "LD_LIBRARY_PATH", "PATH", "BAETYL_SERVICE_TOKEN",
                                 "BAETYL_SERVICE_NAME", "OPENEDGE_MASTER_API"}) {
    auto response = put("manager", manager, "/v1/services/runtime/instances/runtime.x/start",
                        R"({")" + name + R"(":"/tmp/x"})");
    EXPECT_EQ(response.status, 400) << name;
    EXPECT_THAT(response.body, HasSubstr("\"" + name + "\" cannot be set")) << name;
  }
  EXPECT_TRUE(run.pids("runtime.x").empty());
  EXPECT_TRUE(run.instance("runtime", "runtime.x").is_null());

  // A dynamic instance belongs to the service that started it (and to the admin).
  auto started = put("manager", manager, "/v1/services/runtime/instances/runtime.x/start",
                     R"({"BAETYL_SERVICE_INSTANCE_ADDRESS":"127.0.0.1:1",)"
                     R"("OPENEDGE_SERVICE_INSTANCE_ADDRESS":"127.0.0.1:1","USER_VAR":"ok"})");
  ASSERT_EQ(started.status, 200) << started.body;
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.last_pid("runtime.x").has_value(); }));
  EXPECT_EQ(run.env_value("runtime.x", "USER_VAR"), "ok");
  EXPECT_EQ(run.env_value("runtime.x", "OPENEDGE_SERVICE_INSTANCE_ADDRESS"), "127.0.0.1:1");
  const pid_t dynamic = *run.last_pid("runtime.x");
  auto foreign = put("other", other, "/v1/services/runtime/instances/runtime.x/stop");
  EXPECT_EQ(foreign.status, 403);
  EXPECT_THAT(foreign.body, HasSubstr("was started by 'manager'"));
  EXPECT_EQ(put("other", other, "/v1/services/runtime/instances/runtime.x/start", "{}").status,
            403);
  EXPECT_TRUE(process_alive(dynamic));
  EXPECT_EQ(run.pids("runtime.x").size(), 1u);

  // A service reports for its own instances only.
  EXPECT_EQ(
      put("manager", manager, "/v1/services/other/instances/other/report", R"({"fake":1})").status,
      403);
  EXPECT_FALSE(run.instance("other", "other").contains("fake"));
  EXPECT_EQ(put("manager", manager, "/v1/services/manager/instances/manager/report", R"({"own":1})")
                .status,
            200);

  EXPECT_EQ(put("manager", manager, "/v1/services/runtime/instances/runtime.x/stop").status, 200);
  EXPECT_FALSE(process_alive(dynamic));
  EXPECT_TRUE(run.instance("runtime", "runtime.x").is_null());

  // The admin stops a static instance, which stays listed as exited until started again, with
  // its service's token.
  const std::string admin = run.admin_password();
  ASSERT_EQ(put("baetyl.admin", admin, "/v1/services/other/instances/other/stop").status, 200);
  EXPECT_FALSE(process_alive(other_pid));
  EXPECT_EQ(status_of(run, "other", "other"), "exited");
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(run.pids("other").size(), 1u) << "not restarted";
  ASSERT_EQ(put("baetyl.admin", admin, "/v1/services/other/instances/other/start", "{}").status,
            200);
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.pids("other").size() == 2u; }));
  EXPECT_EQ(status_of(run, "other", "other"), "running");
  EXPECT_EQ(run.env_value("other", "BAETYL_SERVICE_TOKEN"), other);
  EXPECT_EQ(run.call("GET", "/v1/system/inspect", "other", other).status, 200);
}

// ---- check and start check the same ----

// `check` and `start` on `dir` (with `extra` arguments) both exit 1 with `reason`.
void expect_check_and_start_refuse(const fs::path& dir, const std::vector<std::string>& extra,
                                   const std::string& reason,
                                   const std::map<std::string, std::string>& env = {}) {
  for (const std::string command : {"check", "start"}) {
    std::vector<std::string> args{command, "-w", dir.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    int code = 0;
    const std::string printed = run_baetyl(args, &code, env);
    EXPECT_EQ(code, 1) << command << ":\n" << printed;
    EXPECT_THAT(printed, HasSubstr(reason)) << command;
    EXPECT_THAT(printed, Not(HasSubstr("OK!"))) << command;
  }
}

TEST(MasterE2E, CheckRefusesWhatStartRefuses) {
  TempDir empty;
  // Docker mode is the default; a daemon that does not answer is a check and start error.
  const std::map<std::string, std::string> no_daemon = {
      {"DOCKER_HOST", "unix://" + (empty.path() / "no-docker.sock").string()}};
  expect_check_and_start_refuse(
      empty.path(), {},
      "etc/baetyl/conf.yml: mode: 'docker' (the default: the file does not exist): the Docker "
      "daemon cannot be used: Docker unix://" +
          (empty.path() / "no-docker.sock").string() +
          ": GET /version: cannot connect: No such file or directory (is the Docker daemon "
          "running?); start Docker (scripts/docker-daemon.sh, systemctl start docker) or set "
          "`mode: native`",
      no_daemon);

  MasterRun run;
  run.write_app("v1", service("svc"));
  expect_check_and_start_refuse(run.workdir(), {"-c", "etc/baetyl/nope.yml"},
                                "etc/baetyl/nope.yml: no such file (given with -c)");
  std::ofstream(run.workdir() / "etc/baetyl/docker.yml") << "mode: docker\n";
  expect_check_and_start_refuse(run.workdir(), {"-c", "etc/baetyl/docker.yml"},
                                "etc/baetyl/docker.yml: mode: 'docker': the Docker daemon cannot "
                                "be used",
                                no_daemon);

  run.write_app("v1", service("svc") +
                          "  - name: ghost\n    image: test/no-such-module\n"
                          "    replica: 1\n");
  expect_check_and_start_refuse(run.workdir(), {},
                                "var/db/baetyl/application.yml: services[1].image: service "
                                "'ghost': no program for image 'test/no-such-module'");
}

TEST(MasterE2E, CheckAndStartCheckTheConfigurationOfKnownModules) {
  MasterRun run;
  // The test script is the hub's and the function manager's package here, so that their images
  // resolve without the modules installed.
  auto module = [](const std::string& name, const std::string& image, const std::string& conf) {
    return "  - name: " + name + "\n    image: hub.baidubce.com/baetyl/" + image +
           "\n    replica: 1\n    mounts:\n"
           "      - {name: pkg, path: lib/baetyl/hub.baidubce.com/baetyl/" +
           image +
           "}\n"
           "      - {name: out, path: out}\n"
           "      - {name: " +
           conf + ", path: etc/baetyl, readonly: true}\n    env: {MODE: run}\n";
  };
  run.write_app("v1", module("localhub", "baetyl-hub", "hubconf") +
                          module("function-manager", "baetyl-function-manager", "fmconf") +
                          module("remote", "baetyl-remote-mqtt", "rmconf"));
  {
    std::ofstream app(run.workdir() / "var/db/baetyl/application.yml", std::ios::app);
    app << "  - {name: hubconf, path: var/db/baetyl/hubconf}\n"
           "  - {name: fmconf, path: var/db/baetyl/fmconf}\n"
           "  - {name: rmconf, path: var/db/baetyl/rmconf}\n";
  }
  fs::create_directories(run.workdir() / "var/db/baetyl/hubconf");
  fs::create_directories(run.workdir() / "var/db/baetyl/fmconf");
  fs::create_directories(run.workdir() / "var/db/baetyl/rmconf");
  const fs::path hub_conf = run.workdir() / "var/db/baetyl/hubconf/service.yml";
  const fs::path fm_conf = run.workdir() / "var/db/baetyl/fmconf/service.yml";
  const fs::path rm_conf = run.workdir() / "var/db/baetyl/rmconf/service.yml";
  const std::string bridge = "hub: {address: 'tcp://127.0.0.1:1883'}\n"
                             "remotes: [{name: cloud, address: 'tcp://127.0.0.1:1884'}]\n";
  std::ofstream(rm_conf) << bridge
                         << "rules: [{hub: {subscriptions: [{topic: t1}]}, remote: {name: clod}}]\n";

  std::ofstream(hub_conf) << "listen: [tcp://0.0.0.0:99999]\n"
                             "principals: [{username: a, password: b}, {username: a}]\n";
  std::ofstream(fm_conf) << "rules: [\n";
  expect_check_and_start_refuse(run.workdir(), {},
                                "var/db/baetyl/hubconf/service.yml: listen[0]: "
                                "'tcp://0.0.0.0:99999': invalid port '99999' (service localhub)");
  expect_check_and_start_refuse(run.workdir(), {},
                                "principals[1].username: 'a' is listed twice (service localhub)");
  expect_check_and_start_refuse(run.workdir(), {}, "var/db/baetyl/fmconf/service.yml: ");
  expect_check_and_start_refuse(run.workdir(), {}, "(service function-manager)");
  expect_check_and_start_refuse(run.workdir(), {},
                                "var/db/baetyl/rmconf/service.yml: rules[0].remote.name: ");
  expect_check_and_start_refuse(run.workdir(), {}, "(service remote)");
  std::ofstream(rm_conf) << bridge
                         << "rules: [{hub: {subscriptions: [{topic: t1}]}, remote: {name: cloud}}]\n";

  // No file: the hub's defaults, which name no listener.
  fs::remove(hub_conf);
  std::ofstream(fm_conf) << "rules: []\n";
  expect_check_and_start_refuse(
      run.workdir(), {},
      "etc/baetyl/service.yml (var/db/baetyl/hubconf/service.yml does not exist): listen");

  std::ofstream(hub_conf) << "listen: [tcp://127.0.0.1:1883]\n";
  int code = 0;
  EXPECT_EQ(run_baetyl({"check", "-w", run.workdir().string()}, &code), "OK!\n");
  EXPECT_EQ(code, 0);
  ASSERT_TRUE(run.start()) << run.output();
  EXPECT_TRUE(MasterRun::wait_until([&] { return run.last_pid("localhub").has_value(); }));
  // start names the files it read.
  EXPECT_THAT(run.log(), HasSubstr("master configuration read from etc/baetyl/conf.yml"));
  EXPECT_THAT(run.log(), HasSubstr("application read from var/db/baetyl/application.yml: "
                                   "version 'v1', 3 service(s)"));
}

TEST(MasterE2E, EveryCommandHasItsHelp) {
  int code = 0;
  std::string printed = run_baetyl({"start", "--help"}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_THAT(printed, HasSubstr("Usage: baetyl start [-w DIR] [-c FILE]"));
  EXPECT_THAT(printed, HasSubstr("-c, --config FILE"));
  printed = run_baetyl({"inspect", "-h"}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_THAT(printed, HasSubstr("Usage: baetyl inspect [-w DIR]"));
  EXPECT_THAT(printed, Not(HasSubstr("--config")));
  printed = run_baetyl({"help", "check"}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_THAT(printed, HasSubstr("Usage: baetyl check [-w DIR] [-c FILE]"));
  printed = run_baetyl({"version", "--help"}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_THAT(printed, HasSubstr("Usage: baetyl version\n"));
  printed = run_baetyl({"--help"}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_THAT(printed, HasSubstr("Commands:"));
}

// ---- a quiet shutdown ----

TEST(MasterE2E, StoppingRefusesNoCallOfAStoppingServiceAndLogsEachEventOnce) {
  MasterRun run;
  run.write_app("v1", service("manager",
                              "    env: {MODE: starter, TARGET_SERVICE: runtime, TARGET_INSTANCE: "
                              "runtime.f1}\n") +
                          service("runtime", "", "run", 0) + service("other"));
  ASSERT_TRUE(run.start()) << run.output();
  ASSERT_TRUE(MasterRun::wait_until(
      [&] { return run.last_pid("runtime.f1").has_value() && run.last_pid("other").has_value(); }));
  EXPECT_TRUE(MasterRun::wait_until([&] { return run.read_out("manager.start") == "200"; }));
  EXPECT_EQ(run.stop(SIGTERM), 0) << run.output();
  // Like the function manager, the manager stops what it started when it is stopped itself.
  EXPECT_EQ(run.read_out("manager.stop"), "200") << "its token is valid until it has stopped";

  const std::string log = run.log();
  EXPECT_THAT(log, Not(HasSubstr("unauthorized")));
  EXPECT_THAT(log, Not(HasSubstr("from unix: 4"))) << "no refused call";
  EXPECT_EQ(count_of(log, "listening on"), 1u) << log;
  for (const std::string name : {"manager", "other"}) {
    EXPECT_EQ(count_of(log, "instance " + name + " of service " + name + " started"), 1u) << log;
    EXPECT_EQ(count_of(log, "service " + name + " stopped"), 1u) << log;
  }
  EXPECT_EQ(count_of(log, "instance runtime.f1 of service runtime started"), 1u) << log;
  EXPECT_EQ(count_of(log, "master stopped"), 1u);
  EXPECT_EQ(count_of(log, "API server stopped"), 1u);
}

}  // namespace
}  // namespace baetyl::testing
