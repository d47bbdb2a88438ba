// Instances of the native engine: how processes start, exit, stop and are reported.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "engine_test_util.h"
#include "stats/host_stats.h"

namespace baetyl::master::test {
namespace {

using Clock = std::chrono::steady_clock;

std::string proc_status_field(pid_t pid, const std::string& key) {
  std::istringstream in(read_text("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      auto value = line.substr(key.size() + 1);
      return value.substr(value.find_first_not_of(" \t"));
    }
  }
  return {};
}

TEST(ExitStatus, Describe) {
  EXPECT_EQ((ExitStatus{3, 0}).describe(), "exit code 3");
  EXPECT_EQ((ExitStatus{0, 0}).describe(), "exit code 0");
  EXPECT_EQ((ExitStatus{0, 9}).describe(), "killed by signal 9 (Killed)");
  EXPECT_EQ((ExitStatus{0, 15}).describe(), "killed by signal 15 (Terminated)");
  EXPECT_TRUE((ExitStatus{0, 0}).success());
  EXPECT_FALSE((ExitStatus{0, 9}).success());
}

TEST(MergeEnvironment, LaterEntriesWinInPlace) {
  const char* base[] = {"PATH=/bin", "HOME=/root", "ODD", nullptr};
  auto env = merge_environment(base, {{"HOME", "/a"}, {"NEW", "1"}, {"HOME", "/b"}, {"NEW", "2"}});
  EXPECT_EQ(env, (std::vector<std::string>{"PATH=/bin", "HOME=/b", "ODD", "NEW=2"}));
  EXPECT_EQ(merge_environment(nullptr, {{"A", "x=y"}}), std::vector<std::string>{"A=x=y"});
}

class NativeInstanceTest : public EngineTest {};

TEST_F(NativeInstanceTest, ProcessGetsArgvCwdEnvironmentAndItsOwnGroup) {
  // The master's own state that a child must not inherit: an ignored and a blocked signal, an
  // open descriptor without close-on-exec.
  struct sigaction ignore {};
  struct sigaction old_action {};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGUSR1, &ignore, &old_action);
  sigset_t block;
  sigset_t old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR2);
  ::pthread_sigmask(SIG_BLOCK, &block, &old_mask);
  int leaked = ::open("/dev/null", O_RDONLY);
  ::setenv("BAETYL_ENGINE_TEST_INHERITED", "yes", 1);
  ::setenv("BAETYL_ENGINE_TEST_OVERRIDDEN", "master", 1);

  ServiceInfo info;
  info.name = "sleeper";
  info.image = "sleep";  // /usr/bin/sleep through PATH
  info.args = {"29", "1s"};
  engine().setup_service(info, {});
  auto s = spec(info, "sleeper.i2");
  s.env = {{"BAETYL_ENGINE_TEST_OVERRIDDEN", "first"},
           {"BAETYL_ENGINE_TEST_NEW", "new"},
           {"BAETYL_ENGINE_TEST_OVERRIDDEN", "second"}};
  auto instance = engine().start(s);

  ::close(leaked);
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  ::sigaction(SIGUSR1, &old_action, nullptr);
  ::unsetenv("BAETYL_ENGINE_TEST_INHERITED");
  ::unsetenv("BAETYL_ENGINE_TEST_OVERRIDDEN");

  pid_t pid = pid_of(*instance);
  EXPECT_EQ(instance->name(), "sleeper.i2");
  // The spawn returns when the exec has replaced the memory, a moment before the kernel has put
  // the new argv and environment in place.
  for (int i = 0; i < 200 && proc_list(pid, "cmdline").empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(proc_list(pid, "cmdline"), (std::vector<std::string>{"sleeper.i2", "29", "1s"}));
  EXPECT_EQ(fs::read_symlink("/proc/" + std::to_string(pid) + "/cwd"),
            workdir() / "var/run/baetyl/services/sleeper");

  auto env = proc_list(pid, "environ");
  auto has = [&](const std::string& entry) {
    return std::count(env.begin(), env.end(), entry) == 1;
  };
  EXPECT_TRUE(has("BAETYL_ENGINE_TEST_INHERITED=yes"));
  EXPECT_TRUE(has("BAETYL_ENGINE_TEST_OVERRIDDEN=second"));
  EXPECT_TRUE(has("BAETYL_ENGINE_TEST_NEW=new"));
  EXPECT_EQ(std::count_if(env.begin(), env.end(),
                          [](const std::string& e) {
                            return e.rfind("BAETYL_ENGINE_TEST_OVERRIDDEN=", 0) == 0;
                          }),
            1);
  EXPECT_TRUE(std::any_of(env.begin(), env.end(),
                          [](const std::string& e) { return e.rfind("PATH=", 0) == 0; }));

  auto info_now = read_proc_info(pid);
  ASSERT_TRUE(info_now);
  EXPECT_EQ(info_now->pgrp, pid);
  EXPECT_EQ(proc_status_field(pid, "SigBlk"), "0000000000000000");
  EXPECT_EQ(proc_status_field(pid, "SigIgn"), "0000000000000000");

  // sleep(1) itself may hold a locale file open for a moment after it starts; a descriptor
  // leaked from the master would stay.
  auto open_fds = [&] {
    std::vector<std::string> fds;
    for (const auto& entry : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
      fds.push_back(entry.path().filename().string());
    }
    std::sort(fds.begin(), fds.end());
    return fds;
  };
  for (int i = 0; i < 200 && open_fds().size() > 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(open_fds(), (std::vector<std::string>{"0", "1", "2"}));
  EXPECT_EQ(fs::read_symlink("/proc/" + std::to_string(pid) + "/fd/1"),
            fs::read_symlink("/proc/self/fd/1"));

  auto stats = instance->stats();
  EXPECT_EQ(stats["process"], (nlohmann::json{{"id", pid}, {"name", "sleeper.i2"}}));
  EXPECT_TRUE(stats["cpu_stats"].contains("used_percent")) << stats;
  EXPECT_GT(stats["mem_stats"]["used"].get<std::uint64_t>(), 0u) << stats;

  instance->stop(2s);
  EXPECT_EQ(instance->wait().signal, SIGTERM);
  // Gone: only the identity is left to report.
  EXPECT_EQ(instance->stats(),
            (nlohmann::json{{"process", {{"id", pid}, {"name", "sleeper.i2"}}}}));
}

TEST_F(NativeInstanceTest, ExitCodesAndSignals) {
  auto exits = run(installed("exits", "exit-three", "exit 3\n"));
  auto status = exits->wait();
  EXPECT_EQ(status.code, 3);
  EXPECT_EQ(status.signal, 0);
  EXPECT_EQ(status.describe(), "exit code 3");
  EXPECT_EQ(exits->wait().code, 3);  // again: same answer
  exits->stop(1s);                   // after it exited: nothing to do
  EXPECT_EQ(exits->wait().code, 3);

  auto killed = run(installed("killed", "kill-self", "kill -KILL $$\n"));
  EXPECT_EQ(killed->wait().describe(), "killed by signal 9 (Killed)");

  auto clean = run(installed("clean", "exit-zero", "exit 0\n"));
  EXPECT_TRUE(clean->wait().success());
}

TEST_F(NativeInstanceTest, GracefulStopWithinGrace) {
  auto instance = run(installed("graceful", "graceful",
                                std::string(kMark) + "trap 'mark bye; exit 7' TERM\n"
                                                     "mark ready\n"
                                                     "while :; do sleep 1; done\n"));
  ASSERT_TRUE(marked("ready"));
  auto begin = Clock::now();
  instance->stop(5s);
  EXPECT_LT(Clock::now() - begin, 2s);
  EXPECT_TRUE(fs::exists(out() / "bye"));
  auto status = instance->wait();
  EXPECT_EQ(status.code, 7);  // its own exit, not a kill
  EXPECT_EQ(status.signal, 0);
}

TEST_F(NativeInstanceTest, KillAfterGraceTakesTheWholeGroup) {
  auto instance = run(installed("stubborn", "stubborn",
                                std::string(kMark) + "trap '' TERM\n"
                                                     "sleep 30 &\n"
                                                     "mark grandchild $!\n"
                                                     "mark ready\n"
                                                     "exec sleep 30\n"));
  ASSERT_TRUE(marked("ready"));
  pid_t grandchild = std::stoi(read_text(out() / "grandchild"));
  ASSERT_FALSE(gone(grandchild));
  auto begin = Clock::now();
  instance->stop(300ms);
  auto took = Clock::now() - begin;
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 2s);
  EXPECT_EQ(instance->wait().signal, SIGKILL);
  EXPECT_TRUE(eventually([&] { return gone(grandchild); }));
}

TEST_F(NativeInstanceTest, GroupIsKilledWhenTheMainProcessExits) {
  auto instance = run(installed("leaver", "leaver",
                                std::string(kMark) + "sleep 30 &\nmark grandchild $!\nexit 0\n"));
  EXPECT_TRUE(instance->wait().success());
  ASSERT_TRUE(marked("grandchild"));
  pid_t grandchild = std::stoi(read_text(out() / "grandchild"));
  EXPECT_TRUE(eventually([&] { return gone(grandchild); }));
}

TEST_F(NativeInstanceTest, StopRacingWait) {
  ServiceInfo info;
  info.name = "racer";
  info.image = "sleep";
  info.args = {"30"};
  engine().setup_service(info, {});
  for (int round = 0; round < 20; ++round) {
    auto instance = engine().start(spec(info));
    std::atomic<int> waiters_done = 0;
    ExitStatus seen[2];
    std::thread waiter([&] {
      seen[0] = instance->wait();
      ++waiters_done;
    });
    std::thread second_stopper([&] { instance->stop(2s); });
    instance->stop(2s);
    seen[1] = instance->wait();
    waiter.join();
    second_stopper.join();
    EXPECT_EQ(waiters_done, 1);
    EXPECT_EQ(seen[0].signal, SIGTERM) << "round " << round;
    EXPECT_EQ(seen[1].signal, SIGTERM) << "round " << round;
  }
}

TEST_F(NativeInstanceTest, WaitInProgressThenStopEscalates) {
  auto instance = run(installed("ignorer", "ignorer",
                                std::string(kMark) + "trap '' TERM\nmark ready\nexec sleep 30\n"));
  ASSERT_TRUE(marked("ready"));
  ExitStatus seen;
  // Whichever gets there first waits on the process, the other on the condition variable; stop()
  // must escalate after its grace either way.
  std::thread waiter([&] { seen = instance->wait(); });
  instance->stop(200ms);
  waiter.join();
  EXPECT_EQ(seen.signal, SIGKILL);
}

TEST_F(NativeInstanceTest, ExecFailureIsAStartFailure) {
  auto expect_start_failure = [&](const std::string& program, const std::string& content,
                                  const std::string& reason) {
    work_.write("bin/" + program, content);
    fs::permissions(workdir() / "bin" / program, fs::perms::owner_all);
    ServiceInfo info;
    info.name = program;
    info.image = program;
    engine().setup_service(info, {});
    try {
      engine().start(spec(info));
      ADD_FAILURE() << program << " started";
    } catch (const std::runtime_error& e) {
      std::string message = e.what();
      EXPECT_NE(message.find("cannot start instance '" + program + "'"), std::string::npos)
          << message;
      EXPECT_NE(message.find(reason), std::string::npos) << message;
    }
  };
  // The kernel's exec fails: a missing interpreter, then not an executable format at all.
  expect_start_failure("no-interpreter", "#!/nonexistent/interpreter\nexit 0\n",
                       "No such file or directory (its interpreter or dynamic loader is missing)");
  expect_start_failure("garbage",
                       std::string("\x7f"
                                   "ELF garbage"),
                       "Exec format error");
  EXPECT_TRUE(state_file()["instances"].empty()) << state_file();
}

TEST_F(NativeInstanceTest, StartNeedsTheServiceDirectoryAndAProgram) {
  auto info = installed("nodir", "exit-zero", "exit 0\n");
  try {
    engine().start(spec(info));
    FAIL() << "started";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot start instance 'nodir'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }

  ServiceInfo missing;
  missing.name = "ghost";
  missing.image = "example.com/ghost-module:1.0";
  engine().setup_service(missing, {});
  try {
    engine().start(spec(missing, "ghost.i1"));
    FAIL() << "started";
  } catch (const std::runtime_error& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("cannot start instance 'ghost.i1'"), std::string::npos) << message;
    EXPECT_NE(message.find("service 'ghost'"), std::string::npos) << message;
    EXPECT_NE(message.find("ghost-module"), std::string::npos) << message;
  }
}

TEST_F(NativeInstanceTest, StateFileRecordsRunningInstances) {
  ServiceInfo info;
  info.name = "recorded";
  info.image = "sleep";
  info.args = {"30"};
  engine().setup_service(info, {});
  auto first = engine().start(spec(info, "recorded.i1"));
  auto second = engine().start(spec(info, "recorded.i2"));
  pid_t pid = pid_of(*first);

  auto records = state_file()["instances"];
  ASSERT_EQ(records.size(), 2u) << records;
  auto record = records[0]["pid"] == pid ? records[0] : records[1];
  EXPECT_EQ(record["pid"], pid);
  EXPECT_EQ(record["pgid"], pid);
  EXPECT_EQ(record["start_ticks"], *ProcessStats::start_ticks(pid));
  EXPECT_EQ(record["service"], "recorded");
  EXPECT_EQ(record["instance"], "recorded.i1");

  first->stop(1s);
  records = state_file()["instances"];
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["instance"], "recorded.i2");
  second->stop(1s);
  EXPECT_TRUE(state_file()["instances"].empty());
  EXPECT_FALSE(fs::exists(workdir() / "var/db/baetyl/native-instances.json.tmp"));
}

}  // namespace
}  // namespace baetyl::master::test
