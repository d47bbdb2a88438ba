// The native engine around its instances: service directories, program resolution, preparation
// and the clean-up after a crashed master.
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "baetyl/testing/process.h"
#include "engine/instance_registry.h"
#include "engine_test_util.h"
#include "stats/host_stats.h"

namespace baetyl::master::test {
namespace {

class NativeEngineTest : public EngineTest {
 protected:
  // Processes a test left running on purpose (a "crashed" master's instances).
  ~NativeEngineTest() override {
    for (pid_t pid : leftover_pids_) {
      if (::kill(-pid, SIGKILL) == 0 || ::kill(pid, SIGKILL) == 0) ::waitpid(pid, nullptr, 0);
    }
  }
  std::vector<pid_t> leftover_pids_;

  // Expects `f` to throw std::runtime_error whose message holds every one of `parts`.
  template <class F>
  void expect_error(F f, std::initializer_list<std::string> parts) {
    try {
      f();
      ADD_FAILURE() << "no error";
    } catch (const std::runtime_error& e) {
      std::string message = e.what();
      for (const auto& part : parts) {
        EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
      }
    }
  }

  fs::path dir(const std::string& service) { return engine().service_dir(service); }
};

TEST_F(NativeEngineTest, SetupLinksMountsAndTheSocket) {
  NativeEngineOptions o = options();
  o.api_socket = "var/run/baetyl.sock";
  engine_ = std::make_unique<NativeEngine>(o);

  std::vector<VolumeInfo> volumes{{"conf", "var/db/baetyl/hub-conf"},
                                  {"data", "/var/db/baetyl/../baetyl/hub-data/"},
                                  {"unused", "var/db/other"}};
  ServiceInfo hub;
  hub.name = "hub";
  hub.mounts = {{"conf", "etc/baetyl", true}, {"data", "/var/db/baetyl/./data/", false}};
  work_.write("var/db/baetyl/hub-conf/service.yml", "listen: []\n");
  fs::create_directories(dir("hub") / "stale");  // from an earlier run: recreated
  engine().setup_service(hub, volumes);

  auto service = workdir() / "var/run/baetyl/services/hub";
  EXPECT_EQ(dir("hub"), service);
  EXPECT_FALSE(fs::exists(service / "stale"));
  ASSERT_TRUE(fs::is_symlink(service / "etc/baetyl"));
  EXPECT_EQ(fs::read_symlink(service / "etc/baetyl"), workdir() / "var/db/baetyl/hub-conf");
  EXPECT_FALSE(fs::is_symlink(service / "etc"));
  EXPECT_EQ(read_text(service / "etc/baetyl/service.yml"), "listen: []\n");
  ASSERT_TRUE(fs::is_symlink(service / "var/db/baetyl/data"));
  EXPECT_EQ(fs::read_symlink(service / "var/db/baetyl/data"), workdir() / "var/db/baetyl/hub-data");
  EXPECT_TRUE(fs::is_directory(workdir() / "var/db/baetyl/hub-data"));  // created when missing
  ASSERT_TRUE(fs::is_symlink(service / "var/run/baetyl.sock"));
  EXPECT_EQ(fs::read_symlink(service / "var/run/baetyl.sock"), workdir() / "var/run/baetyl.sock");

  // A process of the service sees the volumes through its working directory.
  hub.image = installed("hub", "reader", "cat etc/baetyl/service.yml > \"$OUT/seen\"\n").image;
  auto instance = engine().start(spec(hub));
  EXPECT_TRUE(instance->wait().success());
  EXPECT_EQ(read_text(out() / "seen"), "listen: []\n");
}

TEST_F(NativeEngineTest, NoSocketLinkWithoutASocketAndAbsoluteSocketAsIs) {
  ServiceInfo plain;
  plain.name = "plain";
  engine().setup_service(plain, {});
  EXPECT_TRUE(fs::is_directory(dir("plain")));
  EXPECT_FALSE(fs::exists(fs::symlink_status(dir("plain") / "var/run/baetyl.sock")));

  NativeEngineOptions o = options();
  o.api_socket = "/run/somewhere/baetyl.sock";
  engine_ = std::make_unique<NativeEngine>(o);
  engine().setup_service(plain, {});
  EXPECT_EQ(fs::read_symlink(dir("plain") / "var/run/baetyl.sock"), "/run/somewhere/baetyl.sock");
}

TEST_F(NativeEngineTest, SetupRefusesPathsThatEscapeOrOverlap) {
  std::vector<VolumeInfo> volumes{{"v", "var/db/v"}, {"w", "var/db/w"}, {"out", "../outside"}};
  auto setup = [&](std::vector<MountInfo> mounts) {
    ServiceInfo s;
    s.name = "svc";
    s.mounts = std::move(mounts);
    return [this, s, &volumes] { engine().setup_service(s, volumes); };
  };
  expect_error(setup({{"v", "../../../etc"}}), {"service 'svc'", "'../../../etc'"});
  expect_error(setup({{"v", "/"}}), {"service 'svc'", "mount path '/'"});
  expect_error(setup({{"out", "data"}}), {"service 'svc'", "volume 'out'", "leaves"});
  expect_error(setup({{"nope", "data"}}), {"service 'svc'", "'nope'"});
  expect_error(setup({{"v", "data"}, {"w", "data/inner"}}),
               {"'data/inner'", "inside another mount"});
  expect_error(setup({{"v", "data/inner"}, {"w", "data"}}), {"'data'", "overlaps"});
  // Nothing was created inside the volumes, and no half-made directory is left.
  EXPECT_FALSE(fs::exists(workdir() / "var/db/v/inner"));
  EXPECT_FALSE(fs::exists(dir("svc")));
  EXPECT_FALSE(fs::exists(workdir().parent_path() / "outside"));

  ServiceInfo odd;
  odd.name = "../escape";
  expect_error([&] { engine().setup_service(odd, {}); }, {"not a valid service name"});
}

TEST_F(NativeEngineTest, TeardownKeepsVolumeContents) {
  std::vector<VolumeInfo> volumes{{"data", "var/db/baetyl/data"}};
  ServiceInfo s;
  s.name = "keeper";
  s.mounts = {{"data", "var/db/baetyl"}};
  engine().setup_service(s, volumes);
  work_.write("var/run/baetyl/services/keeper/var/db/baetyl/deep/file.txt", "precious");
  work_.write("var/run/baetyl/services/keeper/scratch.txt", "scratch");
  ASSERT_EQ(read_text(workdir() / "var/db/baetyl/data/deep/file.txt"), "precious");

  engine().teardown_service("keeper");
  EXPECT_FALSE(fs::exists(dir("keeper")));
  EXPECT_EQ(read_text(workdir() / "var/db/baetyl/data/deep/file.txt"), "precious");
  engine().teardown_service("keeper");  // already gone: fine
}

class ResolveTest : public NativeEngineTest {
 protected:
  // A package in volume "pkgs", mounted at lib/baetyl/example.
  ServiceInfo packaged(const std::string& image, const std::string& package_dir,
                       const std::string& manifest, const std::string& entry_file = "") {
    work_.write("var/db/pkgs/" + package_dir + "/package.yml", manifest);
    if (!entry_file.empty()) {
      script("var/db/pkgs/" + package_dir + "/" + entry_file, "exit 0\n");
    }
    ServiceInfo s;
    s.name = "pkg";
    s.image = image;
    s.replica = 1;
    s.mounts = {{"pkgs", "lib/baetyl/example"}};
    return s;
  }
  std::vector<VolumeInfo> volumes_{{"pkgs", "var/db/pkgs"}};

  fs::path resolve(const ServiceInfo& s) {
    engine().setup_service(s, volumes_);
    return resolve_native_program(s, dir(s.name), options());
  }
};

TEST_F(ResolveTest, PackageAsWritten) {
  auto s = packaged("example/hello:v1", "hello:v1", "entry: bin/run.sh\n", "bin/run.sh");
  EXPECT_EQ(resolve(s), dir("pkg") / "lib/baetyl/example/hello:v1/bin/run.sh");
}

TEST_F(ResolveTest, PackageWithTheTagAsADirectory) {
  auto s = packaged("example/hello:v1", "hello/v1", "version: 1\nentry: ./run.sh\n", "run.sh");
  EXPECT_EQ(resolve(s), dir("pkg") / "lib/baetyl/example/hello/v1/run.sh");
  // It runs, with argv[0] the instance name.
  script("var/db/pkgs/hello/v1/run.sh", "echo \"$0 $*\" > \"$OUT/ran\"\n");
  s.args = {"a", "b"};
  auto instance = engine().start(spec(s, "pkg.i1"));
  EXPECT_TRUE(instance->wait().success());
  EXPECT_EQ(read_text(out() / "ran"),
            (dir("pkg") / "lib/baetyl/example/hello/v1/run.sh").string() + " a b\n");
}

TEST_F(ResolveTest, PackageWinsOverAnInstalledExecutable) {
  script("bin/hello", "exit 0\n");
  auto s = packaged("example/hello", "hello", "entry: run.sh\n", "run.sh");
  EXPECT_EQ(resolve(s), dir("pkg") / "lib/baetyl/example/hello/run.sh");
}

TEST_F(ResolveTest, BrokenPackagesAreErrors) {
  auto no_entry = packaged("example/a", "a", "version: 1\n");
  expect_error([&] { resolve(no_entry); }, {"service 'pkg'", "package.yml", "no 'entry'"});
  auto not_executable = packaged("example/b", "b", "entry: data.txt\n");
  work_.write("var/db/pkgs/b/data.txt", "just data");
  expect_error([&] { resolve(not_executable); }, {"'data.txt'", "not an executable file"});
  auto escaping = packaged("example/c", "c", "entry: ../../../../../bin/sh\n");
  expect_error([&] { resolve(escaping); }, {"inside the package directory"});
  auto bad_yaml = packaged("example/d", "d", "entry: [unclosed\n");
  expect_error([&] { resolve(bad_yaml); }, {"cannot read it"});
}

TEST_F(ResolveTest, InstalledExecutableFromBinDirsThenPath) {
  ServiceInfo s;
  s.name = "hub";
  s.image = "hub.baidubce.com/baetyl/baetyl-hub:latest";
  script("bin/baetyl-hub", "exit 0\n");
  EXPECT_EQ(resolve(s), workdir() / "bin/baetyl-hub");

  // The first of bin_dirs wins; a file without the exec bit does not count.
  auto o = options();
  o.bin_dirs = {workdir() / "first", workdir() / "bin"};
  work_.write("first/baetyl-hub", "not executable");
  EXPECT_EQ(resolve_native_program(s, dir("hub"), o), workdir() / "bin/baetyl-hub");
  script("first/baetyl-hub", "exit 0\n");
  EXPECT_EQ(resolve_native_program(s, dir("hub"), o), workdir() / "first/baetyl-hub");

  // PATH after bin_dirs; a digest is no part of the name.
  s.image = "docker.io/library/sh@sha256:0123";
  auto sh = resolve(s);
  EXPECT_EQ(sh.filename(), "sh");
  EXPECT_TRUE(sh.is_absolute());
}

TEST_F(ResolveTest, RuntimeImagesMapToOurRuntimes) {
  script("bin/baetyl-function-python", "exit 0\n");
  script("bin/baetyl-function-node", "exit 0\n");
  ServiceInfo s;
  s.name = "runtime";
  for (auto image : {"hub.baidubce.com/baetyl/baetyl-function-python27:latest",
                     "hub.baidubce.com/baetyl/baetyl-function-python36:latest"}) {
    s.image = image;
    EXPECT_EQ(resolve(s), workdir() / "bin/baetyl-function-python") << image;
  }
  s.image = "hub.baidubce.com/baetyl/baetyl-function-node85:latest";
  EXPECT_EQ(resolve(s), workdir() / "bin/baetyl-function-node");
}

TEST_F(ResolveTest, MissingProgramNamesEverythingLookedAt) {
  ServiceInfo s;
  s.name = "lost";
  s.image = "example/lost-module:1.2";
  expect_error([&] { resolve(s); },
               {"service 'lost'", "image 'example/lost-module:1.2'",
                (dir("lost") / "lib/baetyl/example/lost-module:1.2/package.yml").string(),
                (dir("lost") / "lib/baetyl/example/lost-module/1.2/package.yml").string(),
                "executable 'lost-module'", (workdir() / "bin").string(), "/usr/bin"});
}

TEST_F(ResolveTest, PrepareLooksIntoVolumesBeforeSetup) {
  AppConfig app;
  app.volumes = volumes_;
  app.services.push_back(packaged("example/hello:v1", "hello/v1", "entry: run.sh\n", "run.sh"));
  ServiceInfo installed_one = installed("hub", "baetyl-hub", "exit 0\n");
  app.services.push_back(installed_one);
  ServiceInfo on_demand;
  on_demand.name = "on-demand";
  on_demand.image = "missing-runtime";
  on_demand.replica = 0;  // started by a module later: only a warning
  app.services.push_back(on_demand);
  engine().prepare(app);
  EXPECT_FALSE(fs::exists(dir("pkg")));  // prepare creates no service directory

  // A package mounted exactly at its directory.
  AppConfig exact;
  exact.volumes = {{"hello", "var/db/pkgs/hello/v1"}};
  ServiceInfo mounted;
  mounted.name = "exact";
  mounted.image = "example/hello:v1";
  mounted.replica = 1;
  mounted.mounts = {{"hello", "/lib/baetyl/example/hello/v1/"}};
  exact.services.push_back(mounted);
  engine().prepare(exact);

  ServiceInfo broken = app.services[0];
  broken.name = "broken";
  broken.image = "example/absent:v1";
  ServiceInfo lost;
  lost.name = "lost";
  lost.image = "lost";
  lost.replica = 2;
  app.services = {broken, app.services[1], lost};
  expect_error([&] { engine().prepare(app); }, {"service 'broken'", "service 'lost'"});
}

TEST_F(NativeEngineTest, CleanLeftoversOfACrashedMaster) {
  {
    // The "crashed" master: instances and engine are dropped without stopping anything.
    NativeEngine first(options());
    auto a = run_on(first, program("polite", "sleep", {"30"}));
    script("bin/deaf",
           std::string(kMark) + "trap '' TERM\nsleep 30 &\nmark grandchild $!\nexec sleep 30\n");
    auto b = run_on(first, program("deaf", "deaf"));
    ASSERT_TRUE(marked("grandchild"));
    leftover_pids_ = {pid_of(*a), pid_of(*b)};
  }
  pid_t polite = leftover_pids_[0];
  pid_t deaf = leftover_pids_[1];
  pid_t grandchild = std::stoi(read_text(out() / "grandchild"));
  EXPECT_FALSE(gone(polite));  // the engine's destructor killed nothing
  EXPECT_FALSE(gone(deaf));
  ASSERT_EQ(state_file()["instances"].size(), 2u);

  // Records that must not be acted on: this very process with another start time, and a live
  // unrelated child whose pid was "reused".
  baetyl::testing::Process bystander({"/bin/sleep", "30"});
  auto records = state_file();
  records["instances"].push_back(InstanceRecord{::getpid(), ::getpgrp(), 1, "old", "old"});
  records["instances"].push_back(InstanceRecord{
      bystander.pid(), bystander.pid(), *ProcessStats::start_ticks(bystander.pid()) + 1, "x", "x"});
  std::ofstream(workdir() / "var/db/baetyl/native-instances.json") << records.dump();
  work_.write("var/run/baetyl/services/forgotten/file", "x");

  NativeEngine second(options());
  second.clean_leftovers();

  int status = 0;
  ASSERT_EQ(::waitpid(polite, &status, 0), polite);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
  ASSERT_EQ(::waitpid(deaf, &status, 0), deaf);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_TRUE(eventually([&] { return gone(grandchild); }));
  EXPECT_TRUE(bystander.running());

  EXPECT_TRUE(fs::is_directory(workdir() / "var/run/baetyl/services"));
  EXPECT_TRUE(fs::is_empty(workdir() / "var/run/baetyl/services"));
  EXPECT_TRUE(state_file()["instances"].empty()) << state_file();
}

TEST_F(NativeEngineTest, LeftoversStayRecordedUntilCleaned) {
  {
    NativeEngine first(options());
    leftover_pids_ = {pid_of(*run_on(first, program("kept", "sleep", {"30"})))};
  }
  // A master that starts more before cleaning keeps the old record next to the new one.
  NativeEngine second(options());
  auto instance = run_on(second, program("new", "sleep", {"30"}));
  EXPECT_EQ(state_file()["instances"].size(), 2u);
  instance->stop(1s);
  ASSERT_EQ(state_file()["instances"].size(), 1u);
  EXPECT_EQ(state_file()["instances"][0]["pid"], leftover_pids_[0]);

  // A corrupt state file is ignored, not fatal.
  std::ofstream(workdir() / "var/db/baetyl/native-instances.json") << "{not json";
  NativeEngine third(options());
  third.clean_leftovers();
  EXPECT_FALSE(gone(leftover_pids_[0]));
  ::kill(leftover_pids_[0], SIGKILL);
  ::waitpid(leftover_pids_[0], nullptr, 0);
}

}  // namespace
}  // namespace baetyl::master::test
