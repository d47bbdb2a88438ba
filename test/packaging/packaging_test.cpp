// What `make install-native`, `make install` and `make uninstall*` do to a prefix
// (scripts/install-tree.sh), the systemd unit they write, and the packages of `make package`.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "baetyl/testing/mosquitto.h"
#include "baetyl/testing/ports.h"
#include "baetyl/testing/process.h"
#include "baetyl/testing/temp_dir.h"
#include "walkthrough_support.h"

namespace baetyl::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace walkthrough;

const std::string kSource = BAETYL_SOURCE_DIR;
const std::string kBuild = BAETYL_BINARY_DIR;

const std::vector<std::string> kPrograms = {"baetyl",
                                            "baetyl-update-guard",
                                            "baetyl-hub",
                                            "baetyl-timer",
                                            "baetyl-function-manager",
                                            "baetyl-function-sql",
                                            "baetyl-agent",
                                            "baetyl-remote-mqtt",
                                            "baetyl-function-python",
                                            "baetyl-function-node"};

// scripts/install-tree.sh with `args`, as the Makefile runs it; `env` is put before the command.
CommandResult install_tree(const std::string& args, const std::string& env = "") {
  return run_command(env + " " + kSource + "/scripts/install-tree.sh " + args);
}

// Every entry under `root`, relative, directories with a trailing '/'.
std::set<std::string> tree_of(const fs::path& root) {
  std::set<std::string> entries;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    auto relative = entry.path().lexically_relative(root).string();
    entries.insert(entry.is_directory() && !entry.is_symlink() ? relative + "/" : relative);
  }
  return entries;
}

std::string show(const std::set<std::string>& entries) {
  std::string text;
  for (const auto& entry : entries) text += "  " + entry + "\n";
  return text;
}

// The entries of `after` that are not in `before`, and the other way round.
std::string difference(const std::set<std::string>& before, const std::set<std::string>& after) {
  std::set<std::string> added, removed;
  for (const auto& e : after)
    if (!before.count(e)) added.insert(e);
  for (const auto& e : before)
    if (!after.count(e)) removed.insert(e);
  return "added:\n" + show(added) + "removed:\n" + show(removed);
}

// The executables of the running processes whose argv[0] is `name` (the master runs an instance
// with its name as argv[0]).
std::set<std::string> executables_named(const std::string& name) {
  std::set<std::string> found;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::error_code ec;
    auto argv0 = read(entry.path() / "cmdline");
    if (argv0.c_str() != name) continue;
    auto exe = fs::read_symlink(entry.path() / "exe", ec);
    if (!ec) found.insert(exe.string());
  }
  return found;
}

bool is_executable(const fs::path& path) {
  return fs::is_regular_file(path) && ::access(path.c_str(), X_OK) == 0;
}

TEST(InstallNative, LaysOutThePrefixAndItsUnitVerifies) {
  TempDir prefix;
  auto installed = install_tree("install native " + kBuild + " " + prefix.path().string());
  ASSERT_EQ(installed.exit_code, 0) << installed.output;

  for (const auto& program : kPrograms) {
    EXPECT_TRUE(is_executable(prefix.path() / "bin" / program)) << program;
  }
  const fs::path& p = prefix.path();
  EXPECT_NE(read(p / "etc/baetyl/conf.yml").find("mode: native"), std::string::npos);
  EXPECT_EQ(read(p / "var/db/baetyl/application.yml"),
            read(kSource + "/example/native/var/db/baetyl/application.yml"));
  EXPECT_TRUE(fs::is_directory(p / "var/log/baetyl"));
  EXPECT_TRUE(fs::exists(p / "lib/baetyl/function-node/node_modules/@grpc/grpc-js/package.json"));
  EXPECT_TRUE(fs::exists(p / "share/baetyl/example/docker/etc/baetyl/conf.yml"));
  // The docker drop-in belongs to `make install` (docker mode) only.
  EXPECT_FALSE(fs::exists(p / "lib/systemd/system/baetyl.service.d"));
  // The SDK: headers, libraries and the CMake package.
  EXPECT_TRUE(fs::exists(p / "include/baetyl/context.h"));
  EXPECT_TRUE(fs::exists(p / "lib/cmake/baetyl/baetylConfig.cmake"));

  const fs::path unit = p / "lib/systemd/system/baetyl.service";
  const std::string text = read(unit);
  EXPECT_NE(text.find("ExecStart=" + p.string() + "/bin/baetyl start -w " + p.string() + "\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("ExecStartPre=" + p.string() + "/bin/baetyl-update-guard " + p.string()),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("Restart=on-failure"), std::string::npos);
  EXPECT_NE(text.find("KillMode=mixed"), std::string::npos);
  EXPECT_EQ(text.find("@BAETYL_PREFIX@"), std::string::npos);
  auto verified = run_command("systemd-analyze verify " + unit.string());
  EXPECT_EQ(verified.exit_code, 0) << verified.output;
  EXPECT_EQ(verified.output, "");
}

TEST(InstallNative, BaetylStartRunsTheWalkthroughFromThePrefix) {
  TempDir prefix;
  const fs::path& p = prefix.path();
  auto installed = install_tree("install native " + kBuild + " " + p.string());
  ASSERT_EQ(installed.exit_code, 0) << installed.output;

  // The installed example, moved aside from the ports and socket of other tests.
  const std::uint16_t port = free_port();
  const std::uint16_t remote_port = free_port();
  replace_in(p / "etc/baetyl/conf.yml", "unix:///var/run/baetyl.sock",
             "unix://" + (p / "var/run/baetyl.sock").string());
  for (const char* conf : {"var/db/baetyl/localhub-conf/service.yml",
                           "var/db/baetyl/function-manager-conf/service.yml",
                           "var/db/baetyl/remote-mqtt-conf/service.yml"}) {
    replace_in(p / conf, "127.0.0.1:1883", "127.0.0.1:" + std::to_string(port));
  }
  for (const char* conf :
       {"var/db/baetyl/remotehub-conf/service.yml", "var/db/baetyl/remote-mqtt-conf/service.yml"}) {
    replace_in(p / conf, "127.0.0.1:1884", "127.0.0.1:" + std::to_string(remote_port));
  }

  // No -w: the work directory is the prefix, the parent of bin/. PATH holds no build tree, so
  // every program comes from the prefix.
  ProcessOptions options;
  options.output_file = (p / "baetyl.out").string();
  options.env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin";
  Process master({(p / "bin/baetyl").string(), "start"}, options);
  ASSERT_TRUE(wait_for_port(port, 20s)) << master.output();
  MosquittoSubscriber subscriber(port, subscriber_options());
  check_walkthrough(port, subscriber, [&] { return master.output(); });
  // The instances run the installed programs.
  EXPECT_EQ(executables_named("localhub").count((p / "bin/baetyl-hub").string()), 1u);
  EXPECT_EQ(
      executables_named("function-manager").count((p / "bin/baetyl-function-manager").string()),
      1u);
  EXPECT_EQ(master.stop(SIGTERM, 40s), 0) << master.output();

  const std::string log = read(p / "var/log/baetyl/baetyl.log");
  EXPECT_NE(log.find("instance localhub of service localhub started"), std::string::npos) << log;
}

TEST(Uninstall, LeavesThePrefixAsItWasAndKeepsDataUnlessPurged) {
  TempDir prefix;
  const fs::path& p = prefix.path();
  prefix.write("bin/other-tool", "#!/bin/sh\n");
  prefix.write("etc/other.conf", "kept\n");
  fs::create_directories(p / "share/empty");
  const auto before = tree_of(p);

  // install, then install-native over it: one uninstall removes both.
  for (const char* mode : {"docker", "native"}) {
    auto installed = install_tree(std::string("install ") + mode + " " + kBuild + " " + p.string());
    ASSERT_EQ(installed.exit_code, 0) << installed.output;
  }
  prefix.write("var/db/baetyl/localhub-data/data.db", "user data\n");
  auto removed = install_tree("uninstall " + p.string());
  ASSERT_EQ(removed.exit_code, 0) << removed.output;
  auto expected = before;
  for (const char* kept : {"var/", "var/db/", "var/db/baetyl/", "var/db/baetyl/localhub-data/",
                           "var/db/baetyl/localhub-data/data.db"}) {
    expected.insert(kept);
  }
  EXPECT_EQ(tree_of(p), expected) << difference(expected, tree_of(p));
  EXPECT_EQ(read(p / "etc/other.conf"), "kept\n");

  // From the state before the first install, PURGE=1 leaves nothing.
  fs::remove_all(p / "var");
  auto again = install_tree("install native " + kBuild + " " + p.string());
  ASSERT_EQ(again.exit_code, 0) << again.output;
  prefix.write("var/log/baetyl/baetyl.log", "a log\n");
  auto purged = install_tree("uninstall " + p.string(), "PURGE=1");
  ASSERT_EQ(purged.exit_code, 0) << purged.output;
  EXPECT_EQ(tree_of(p), before) << difference(before, tree_of(p));

  auto nothing = install_tree("uninstall " + p.string());
  EXPECT_NE(nothing.exit_code, 0);
  EXPECT_NE(nothing.output.find("install-manifest not found"), std::string::npos) << nothing.output;
}

TEST(Install, DockerModeUnderDestdirAndAMissingPrefixGoesAway) {
  TempDir destdir;
  auto installed = install_tree("install docker " + kBuild + " /usr/local",
                                "DESTDIR=" + destdir.path().string());
  ASSERT_EQ(installed.exit_code, 0) << installed.output;
  const fs::path root = destdir.path() / "usr/local";
  EXPECT_TRUE(is_executable(root / "bin/baetyl"));
  EXPECT_NE(read(root / "etc/baetyl/conf.yml").find("mode: docker"), std::string::npos);
  EXPECT_EQ(read(root / "var/db/baetyl/application.yml"),
            read(kSource + "/example/docker/var/db/baetyl/application.yml"));
  // The unit names the prefix, not the staging directory; docker mode adds the drop-in.
  const std::string unit = read(root / "lib/systemd/system/baetyl.service");
  EXPECT_NE(unit.find("ExecStart=/usr/local/bin/baetyl start -w /usr/local\n"), std::string::npos)
      << unit;
  EXPECT_NE(
      read(root / "lib/systemd/system/baetyl.service.d/docker.conf").find("Wants=docker.service"),
      std::string::npos);
  EXPECT_EQ(tree_of(destdir.path()).count("usr/"), 1u);
  EXPECT_EQ(tree_of(destdir.path()).size(), tree_of(root).size() + 2) << "only usr/local/";

  auto removed = install_tree("uninstall /usr/local", "DESTDIR=" + destdir.path().string());
  ASSERT_EQ(removed.exit_code, 0) << removed.output;
  EXPECT_EQ(tree_of(destdir.path()), std::set<std::string>{}) << show(tree_of(destdir.path()));
}

TEST(Install, RefusesABadModeAndAnUnbuiltTree) {
  TempDir prefix;
  auto bad_mode = install_tree("install cloud " + kBuild + " " + prefix.path().string());
  EXPECT_EQ(bad_mode.exit_code, 2);
  EXPECT_NE(bad_mode.output.find("usage:"), std::string::npos) << bad_mode.output;
  auto unbuilt = install_tree("install native " + prefix.path().string() + " " +
                              prefix.path().string() + "/p");
  EXPECT_NE(unbuilt.exit_code, 0);
  EXPECT_NE(unbuilt.output.find("is not a configured build"), std::string::npos) << unbuilt.output;
  EXPECT_FALSE(fs::exists(prefix.path() / "p"));
}

// example/out-of-tree-module against the SDK of a `make install-native` prefix, run by that
// prefix's master beside the example's hub: its greetings reach a subscriber.
TEST(Sdk, AModuleBuiltOutOfTreeRunsUnderTheMaster) {
  TempDir prefix;
  const fs::path& p = prefix.path();
  auto installed = install_tree("install native " + kBuild + " " + p.string());
  ASSERT_EQ(installed.exit_code, 0) << installed.output;

  // Built by a CMake that knows nothing of this tree but the prefix.
  TempDir build;
  auto built = run_command("cmake -S " + kSource + "/example/out-of-tree-module -B " +
                           build.path().string() + " -DCMAKE_BUILD_TYPE=Release" +
                           " -DCMAKE_PREFIX_PATH=" + p.string() + " && cmake --build " +
                           build.path().string() + " && cmake --install " + build.path().string() +
                           " --prefix " + p.string());
  ASSERT_EQ(built.exit_code, 0) << built.output;
  ASSERT_TRUE(is_executable(p / "bin/baetyl-greeter")) << built.output;

  const std::uint16_t port = free_port();
  replace_in(p / "etc/baetyl/conf.yml", "unix:///var/run/baetyl.sock",
             "unix://" + (p / "var/run/baetyl.sock").string());
  replace_in(p / "var/db/baetyl/localhub-conf/service.yml", "127.0.0.1:1883",
             "127.0.0.1:" + std::to_string(port));
  prefix.write("var/db/baetyl/greeter-conf/service.yml",
               "hub:\n  address: tcp://127.0.0.1:" + std::to_string(port) +
                   "\n  clientid: greeter\n  username: test\n  password: hahaha\n"
                   "topic: greetings\ngreeting: hello\ninterval: 200ms\n");
  prefix.write("var/db/baetyl/application.yml", R"(version: v1
services:
  - name: localhub
    image: hub.baidubce.com/baetyl/baetyl-hub
    replica: 1
    mounts:
      - {name: localhub-conf, path: etc/baetyl, readonly: true}
  - name: greeter
    image: baetyl-greeter
    replica: 1
    mounts:
      - {name: greeter-conf, path: etc/baetyl, readonly: true}
volumes:
  - {name: localhub-conf, path: var/db/baetyl/localhub-conf}
  - {name: greeter-conf, path: var/db/baetyl/greeter-conf}
)");

  ProcessOptions options;
  options.output_file = (p / "baetyl.out").string();
  options.env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin";
  Process master({(p / "bin/baetyl").string(), "start"}, options);
  ASSERT_TRUE(wait_for_port(port, 20s)) << master.output();
  MosquittoSubscriber subscriber(port, subscriber_options("greetings"));
  auto received = subscriber.wait_for(2, 20s);
  ASSERT_GE(received.size(), 2u) << master.output();
  EXPECT_EQ(received[0], "hello from greeter");
  EXPECT_EQ(executables_named("greeter").count((p / "bin/baetyl-greeter").string()), 1u);
  EXPECT_EQ(master.stop(SIGTERM, 40s), 0) << master.output();
}

// The paths of the files (not directories) `listing_command` lists, one a line starting with
// its permissions; `path_of` finds the path in a line.
std::set<std::string> listed_files(const std::string& listing_command,
                                   const std::function<std::string(const std::string&)>& path_of) {
  auto listed = run_command(listing_command);
  EXPECT_EQ(listed.exit_code, 0) << listed.output;
  std::set<std::string> files;
  std::istringstream lines(listed.output);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty() && line[0] != 'd') files.insert(path_of(line));
  }
  return files;
}

// The paths of a package's files: `dpkg -c` or the rpm's file list.
std::set<std::string> deb_files(const fs::path& deb) {
  return listed_files("dpkg-deb -c " + deb.string(), [](const std::string& line) {
    auto at = line.find(" ./");
    auto arrow = line.find(" -> ");
    return line.substr(at + 2, arrow == std::string::npos ? std::string::npos : arrow - at - 2);
  });
}

std::set<std::string> rpm_files(const fs::path& rpm) {
  return listed_files("rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\\n]' " + rpm.string(),
                      [](const std::string& line) { return line.substr(line.find(' ') + 1); });
}

fs::path only_file(const fs::path& dir, const std::string& prefix, const std::string& suffix) {
  std::vector<fs::path> found;
  for (const auto& entry : fs::directory_iterator(dir)) {
    auto name = entry.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      found.push_back(entry.path());
    }
  }
  EXPECT_EQ(found.size(), 1u) << prefix << "*" << suffix << " in " << dir;
  return found.empty() ? fs::path() : found.front();
}

TEST(Packages, TheRpmsHoldTheFilesOfTheDebs) {
  TempDir out;
  auto built = run_command("cd " + kBuild + " && cpack --config CPackConfig.cmake -B " +
                           out.path().string());
  ASSERT_EQ(built.exit_code, 0) << built.output;

  const fs::path deb = only_file(out.path(), "baetyl_", ".deb");
  const fs::path dev_deb = only_file(out.path(), "baetyl-dev_", ".deb");
  const fs::path rpm = only_file(out.path(), "baetyl-1", ".rpm");
  const fs::path dev_rpm = only_file(out.path(), "baetyl-dev-", ".rpm");
  ASSERT_FALSE(HasFailure());

  auto files = deb_files(deb);
  EXPECT_EQ(files, rpm_files(rpm)) << difference(files, rpm_files(rpm));
  EXPECT_EQ(deb_files(dev_deb), rpm_files(dev_rpm));
  for (const auto& program : kPrograms) EXPECT_TRUE(files.count("/usr/local/bin/" + program));
  EXPECT_TRUE(files.count("/usr/local/lib/systemd/system/baetyl.service"));
  EXPECT_TRUE(files.count("/usr/local/etc/baetyl/conf.yml"));
  EXPECT_TRUE(deb_files(dev_deb).count("/usr/local/lib/cmake/baetyl/baetylConfig.cmake"));

  // Dependencies from the binaries (dpkg-shlibdeps), the configuration as conffiles.
  auto depends = run_command("dpkg-deb -f " + deb.string() + " Depends");
  EXPECT_NE(depends.output.find("libc6"), std::string::npos) << depends.output;
  EXPECT_NE(depends.output.find("libgrpc++"), std::string::npos) << depends.output;
  EXPECT_NE(depends.output.find("python3-grpcio"), std::string::npos) << depends.output;
  // The directories base-files makes under /usr/local are not the package's, so that dpkg never
  // removes them (cmake/BaetylDebSystemDirs.cmake); those the package brings are.
  const std::string dirs =
      "\n" + run_command("dpkg-deb -c " + deb.string() + " | awk '/^d/ {print $NF}'").output;
  for (const char* dir : {"./usr/local/", "./usr/local/bin/", "./usr/local/etc/",
                          "./usr/local/lib/", "./usr/local/share/"}) {
    EXPECT_EQ(dirs.find(std::string("\n") + dir + "\n"), std::string::npos) << dir;
  }
  EXPECT_NE(dirs.find("\n./usr/local/etc/baetyl/\n"), std::string::npos);
  EXPECT_NE(dirs.find("\n./usr/local/var/\n"), std::string::npos);
  // Docker only for docker mode: suggested, so apt does not install it with the package.
  EXPECT_EQ(run_command("dpkg-deb -f " + deb.string() + " Recommends").output, "ca-certificates\n");
  EXPECT_EQ(run_command("dpkg-deb -f " + deb.string() + " Suggests").output, "docker.io\n");
  auto conffiles = run_command("dpkg-deb -I " + deb.string() + " conffiles");
  EXPECT_EQ(conffiles.output,
            "/usr/local/etc/baetyl/conf.yml\n/usr/local/var/db/baetyl/application.yml\n");
  auto config = run_command("rpm -qcp " + rpm.string());
  EXPECT_EQ(config.output,
            "/usr/local/etc/baetyl/conf.yml\n/usr/local/var/db/baetyl/application.yml\n");
  // The programs are shipped stripped: no symbol table left in them.
  const fs::path hub = out.path() / "baetyl-hub";
  auto symbols = run_command("dpkg-deb --fsys-tarfile " + deb.string() +
                             " | tar -xO ./usr/local/bin/baetyl-hub > " + hub.string() +
                             " && readelf -S " + hub.string() + " | grep -c ' .symtab ' || true");
  EXPECT_EQ(symbols.output, "0\n") << "baetyl-hub in the .deb has a symbol table";
  auto unit = run_command("dpkg-deb --fsys-tarfile " + deb.string() +
                          " | tar -xO ./usr/local/lib/systemd/system/baetyl.service");
  EXPECT_NE(unit.output.find("ExecStart=/usr/local/bin/baetyl start -w /usr/local\n"),
            std::string::npos)
      << unit.output;
}

}  // namespace
}  // namespace baetyl::testing
