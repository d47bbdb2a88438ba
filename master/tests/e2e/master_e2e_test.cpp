// The real baetyl binary in native mode, supervising shell-script services (master_run.h).
#include <signal.h>

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
    EXPECT_EQ(status_of(run, "svc", name), "running") << name;
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
  pid_t orphan = *run.last_pid("svc");
  run.stop(SIGKILL);
  ASSERT_TRUE(process_alive(orphan)) << "a SIGKILLed master cannot stop its children";

  ASSERT_TRUE(run.start()) << run.output();
  EXPECT_TRUE(MasterRun::wait_until([&] { return !process_alive(orphan); }));
  ASSERT_TRUE(MasterRun::wait_until([&] { return run.pids("svc").size() == 2u; }));
  EXPECT_NE(*run.last_pid("svc"), orphan);
  EXPECT_EQ(status_of(run, "svc", "svc"), "running");
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

}  // namespace
}  // namespace baetyl::testing
