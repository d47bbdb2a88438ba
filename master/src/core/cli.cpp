#include "core/cli.h"

#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "baetyl/config/units.h"
#include "baetyl/log/logger.h"
#include "core/cli_ops.h"
#include "core/master.h"
#include "core/master_lock.h"
#include "core/master_update.h"
#include "core/start_check.h"
#include "core/system_info.h"
#include "core/update_waiter.h"

namespace baetyl::master {

namespace fs = std::filesystem;

namespace {

constexpr const char* kUsage =
    "Usage: baetyl <command> [options]\n"
    "\n"
    "Commands:\n"
    "  start    run the master in the foreground until SIGTERM or SIGINT\n"
    "  check    check everything start checks before it starts anything, print OK!\n"
    "  version  print the version, git revision, compiler and platform\n"
    "  inspect  print the running master's inspect JSON\n"
    "  list     one line per service instance: status, restarts, uptime, pid, cpu, memory\n"
    "  logs     print (and follow) the output of one service instance\n"
    "  restart  restart every instance of a service\n"
    "  stop     stop the running master and its services, as SIGTERM does\n"
    "\n"
    "Options:\n"
    "  -w, --workdir DIR   work directory (default: the parent of the binary's directory)\n"
    "  -c, --config FILE   master configuration, relative to the work directory\n"
    "                      (default: etc/baetyl/conf.yml; for start and check only)\n"
    "  -h, --help          this text; `baetyl <command> --help` for one command\n";

constexpr const char* kWorkdirOption =
    "  -w, --workdir DIR   work directory (default: the parent of the binary's directory); every\n"
    "                      relative path is relative to it\n";
constexpr const char* kConfigOption =
    "  -c, --config FILE   master configuration, relative to the work directory (default:\n"
    "                      etc/baetyl/conf.yml, whose absence means defaults; a file given here\n"
    "                      must exist)\n";
constexpr const char* kHelpOption = "  -h, --help          this text\n";

std::string command_usage(const std::string& command) {
  if (command == "start") {
    return std::string(
               "Usage: baetyl start [-w DIR] [-c FILE]\n"
               "\n"
               "Runs the master in the foreground until SIGTERM or SIGINT: checks what `check`\n"
               "checks, then starts the services of var/db/baetyl/application.yml. Exits 1 when\n"
               "a check fails or a master already runs in the work directory.\n"
               "\n"
               "Options:\n") +
           kWorkdirOption + kConfigOption + kHelpOption;
  }
  if (command == "check") {
    return std::string(
               "Usage: baetyl check [-w DIR] [-c FILE]\n"
               "\n"
               "Checks what `start` checks before it starts anything: the master configuration\n"
               "and its mode (docker: the daemon answers), var/db/baetyl/application.yml, that\n"
               "every image resolves to a program (native mode) or is local or pulled (docker\n"
               "mode; one that cannot be had is printed, as start logs it, without failing)\n"
               "and the configuration files of known modules. Prints OK! (exit 0), or every\n"
               "problem as <file>: <key>: <reason> (exit 1).\n"
               "\n"
               "Options:\n") +
           kWorkdirOption + kConfigOption + kHelpOption;
  }
  if (command == "version") {
    return std::string(
               "Usage: baetyl version\n"
               "\n"
               "Prints the version, git revision, compiler and platform.\n"
               "\n"
               "Options:\n") +
           kHelpOption;
  }
  if (command == "inspect") {
    return std::string(
               "Usage: baetyl inspect [-w DIR]\n"
               "\n"
               "Prints the inspect JSON of the master running in the work directory, with the\n"
               "admin credentials of var/run/baetyl/admin.json.\n"
               "\n"
               "Options:\n") +
           kWorkdirOption + kHelpOption;
  }
  if (command == "list") {
    return std::string(
               "Usage: baetyl list [-w DIR] [--json]\n"
               "\n"
               "Prints one line per instance of each service of the master running in the work\n"
               "directory: service, instance, status, restarts, uptime, pid (native) or\n"
               "container (docker), cpu, memory and image, as an aligned table.\n"
               "\n"
               "Options:\n") +
           kWorkdirOption + "  --json              the rows as a JSON array, for scripts\n" +
           kHelpOption;
  }
  if (command == "logs") {
    return std::string(
               "Usage: baetyl logs SERVICE [INSTANCE] [-w DIR] [-f] [--tail N] [--since DURATION]\n"
               "\n"
               "Prints the output (stdout and stderr) of one instance of SERVICE, each line\n"
               "prefixed with the UTC time it was received (by the master in native mode, by\n"
               "Docker in docker mode). INSTANCE defaults to the\n"
               "instance named like the service, or to the only one. Native mode reads\n"
               "var/log/baetyl/services/<instance>.log and its rotated files (also when no\n"
               "master runs); docker mode asks the Docker daemon for the container's logs.\n"
               "\n"
               "Options:\n") +
           kWorkdirOption +
           "  -f, --follow        keep printing new lines until interrupted\n"
           "  --tail N            only the last N lines\n"
           "  --since DURATION    only lines of the last DURATION (e.g. 90s, 10m, 1h)\n" +
           kHelpOption;
  }
  if (command == "restart") {
    return std::string(
               "Usage: baetyl restart SERVICE [-w DIR]\n"
               "\n"
               "Stops every instance of SERVICE (SIGTERM, grace, SIGKILL) and starts it again\n"
               "with the same definition, one after the other; prints each instance's old and\n"
               "new pid (or container). Exits 1 with the reason when an instance does not run\n"
               "again.\n"
               "\n"
               "Options:\n") +
           kWorkdirOption + kHelpOption;
  }
  if (command == "stop") {
    return std::string(
               "Usage: baetyl stop [-w DIR]\n"
               "\n"
               "Asks the master running in the work directory to stop, as SIGTERM does (its\n"
               "services stop first), and waits until its process has ended.\n"
               "\n"
               "Options:\n") +
           kWorkdirOption + kHelpOption;
  }
  return kUsage;
}

struct Arguments {
  std::string command;
  bool help = false;  // -h: the usage of `command` (of every command when none is given)
  std::optional<std::string> workdir;
  std::optional<std::string> config;
  std::vector<std::string> operands;              // logs, restart
  bool json = false;                              // list
  bool follow = false;                            // logs
  std::optional<std::size_t> tail;                // logs
  std::optional<std::chrono::nanoseconds> since;  // logs
};

class UsageError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

Arguments parse_arguments(int argc, char** argv) {
  Arguments args;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const std::string& name) {
      if (i + 1 >= argc) throw UsageError(name + " needs a value");
      return std::string(argv[++i]);
    };
    if (arg == "-h" || arg == "--help" || (arg == "help" && args.command.empty())) {
      args.help = true;
    } else if (arg == "-w" || arg == "--workdir") {
      args.workdir = value(arg);
    } else if (arg.rfind("--workdir=", 0) == 0) {
      args.workdir = arg.substr(10);
    } else if (arg == "-c" || arg == "--config") {
      args.config = value(arg);
    } else if (arg.rfind("--config=", 0) == 0) {
      args.config = arg.substr(9);
    } else if (arg == "--json") {
      args.json = true;
    } else if (arg == "-f" || arg == "--follow") {
      args.follow = true;
    } else if (arg == "--tail" || arg.rfind("--tail=", 0) == 0) {
      const std::string text = arg == "--tail" ? value(arg) : arg.substr(7);
      if (text.empty() || text.size() > 9 ||
          text.find_first_not_of("0123456789") != std::string::npos) {
        throw UsageError("--tail needs a number of lines, not '" + text + "'");
      }
      args.tail = std::stoul(text);
    } else if (arg == "--since" || arg.rfind("--since=", 0) == 0) {
      const std::string text = arg == "--since" ? value(arg) : arg.substr(8);
      std::string error;
      auto duration = config::parse_duration(text, &error);
      if (!duration) throw UsageError("--since: " + error);
      args.since = *duration;
    } else if (!arg.empty() && arg[0] == '-') {
      throw UsageError("unknown option " + arg);
    } else if (args.command.empty()) {
      args.command = arg;
    } else {
      args.operands.push_back(arg);
    }
  }
  if (args.help && args.command.empty()) return args;
  if (args.command.empty()) throw UsageError("no command given");
  static const std::vector<std::string> kCommands = {"start", "check", "version", "inspect",
                                                     "list",  "logs",  "restart", "stop"};
  if (std::find(kCommands.begin(), kCommands.end(), args.command) == kCommands.end()) {
    throw UsageError("unknown command " + args.command);
  }
  if (args.help) return args;
  const std::size_t operands_max = args.command == "logs" ? 2 : args.command == "restart" ? 1 : 0;
  if (args.operands.size() > operands_max) {
    throw UsageError("unexpected argument " + args.operands[operands_max]);
  }
  if ((args.command == "logs" || args.command == "restart") && args.operands.empty()) {
    throw UsageError(args.command + " needs the name of a service");
  }
  if (args.json && args.command != "list") throw UsageError("--json is an option of list");
  if ((args.follow || args.tail || args.since) && args.command != "logs") {
    throw UsageError("-f, --tail and --since are options of logs");
  }
  if (args.config && args.command != "start" && args.command != "check") {
    throw UsageError(args.command + " takes no --config");
  }
  if (args.command == "version" && (args.workdir || args.config)) {
    throw UsageError("version takes no options");
  }
  return args;
}

fs::path own_binary() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : self;
}

// The work directory, absolute: -w (relative to the current directory) or the parent of the
// binary's directory (/usr/local for /usr/local/bin/baetyl).
fs::path resolve_workdir(const Arguments& args) {
  if (args.workdir) return fs::absolute(*args.workdir).lexically_normal();
  fs::path self = own_binary();
  if (self.empty()) throw std::runtime_error("cannot find the baetyl binary to derive -w from");
  return self.parent_path().parent_path();
}

void enter_workdir(const fs::path& workdir) {
  if (::chdir(workdir.c_str()) != 0) {
    throw std::runtime_error("cannot enter work directory " + workdir.string() + ": " +
                             std::strerror(errno));
  }
}

int print_version() {
  BuildInfo info = build_info();
  std::cout << "Version:      " << info.version << "\n"
            << "Git revision: " << info.git_revision << "\n"
            << "Compiler:     " << info.compiler << "\n"
            << "Platform:     " << info.platform << "\n";
  return 0;
}

void print_unknown_keys(const std::string& file, const std::vector<std::string>& keys) {
  for (const auto& key : keys) std::cerr << file << ": " << key << ": unknown key, ignored\n";
}

int check(const Arguments& args) {
  const fs::path workdir = resolve_workdir(args);
  enter_workdir(workdir);
  bool ok = true;
  auto report = [&ok](const std::exception& e) {
    std::cerr << e.what() << "\n";
    ok = false;
  };
  std::unique_ptr<Engine> engine;
  try {
    MasterConfigFile conf = read_master_config_file(args.config);
    print_unknown_keys(conf.path, conf.unknown_keys);
    log::LoggerConfig to_stderr;
    to_stderr.path.clear();
    to_stderr.level = "warn";
    engine = open_engine(conf, workdir, own_binary(), log::make_logger(to_stderr, "baetyl"));
  } catch (const std::exception& e) {
    report(e);
  }
  try {
    AppConfigFile app = read_app_config_file();
    print_unknown_keys(app.path, app.unknown_keys);
    if (!app.found) {
      std::cerr << app.path << ": does not exist; the master would start no service\n";
    }
    check_services(app, engine.get(), workdir);
  } catch (const std::exception& e) {
    report(e);
  }
  if (!ok) return 1;
  std::cout << "OK!\n";
  return 0;
}

// ---- start ----

// `start` as the update waiter runs it for the next binary: the same work directory (absolute:
// the waiter runs in it) and configuration file.
std::vector<std::string> start_arguments(const Arguments& args, const fs::path& workdir) {
  std::vector<std::string> result = {"start", "-w", workdir.string()};
  if (args.config) {
    result.push_back("-c");
    result.push_back(*args.config);
  }
  return result;
}

int start(const Arguments& args, char** argv) {
  const fs::path workdir = resolve_workdir(args);
  enter_workdir(workdir);
  // Before anything in the work directory is read or changed.
  MasterLock lock = MasterLock::acquire(workdir);
  // One malloc arena per supervising thread would cost more memory than those threads use.
  ::mallopt(M_ARENA_MAX, 2);

  // Every thread started from here on inherits this mask; the main thread takes the signals.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  // Started by an update waiter: a master update hands over by exiting (see update_waiter.h).
  const bool under_waiter = take_update_waiter();
  const fs::path marker_file = workdir / kMasterUpdateFile;

  MasterConfigFile conf;
  try {
    conf = read_master_config_file(args.config);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  auto logger = log::make_logger(conf.config.logger, "baetyl");
  for (const auto& key : conf.unknown_keys) {
    logger->warn("{}: {}: unknown key, ignored", conf.path, key);
  }
  logger->info("baetyl {} starting in {}", build_info().version, workdir.string());
  if (conf.found) {
    logger->info("master configuration read from {}", conf.path);
  } else {
    logger->info("{} does not exist: default master configuration", conf.path);
  }

  MasterOptions options;
  options.workdir = workdir;
  options.config = conf.config;
  options.binary = own_binary();
  options.logger = logger;
  options.request_reexec = [] { ::kill(::getpid(), SIGUSR2); };
  options.request_stop = [] { ::kill(::getpid(), SIGTERM); };
  // Only the processes of a master that is gone are leftovers. A lock handed over by this
  // master's update waiter counts as free: the waiter runs no service, and what is recorded is
  // of a master that ended under it (the old one, stopped, or a new binary that failed).
  options.clean_leftovers = lock.origin() != MasterLock::Origin::kHandedOver ||
                            (under_waiter && lock.previous_holder() == ::getppid());
  std::unique_ptr<Master> master;
  try {
    options.engine = open_engine(conf, workdir, options.binary, logger);
    AppConfigFile app = read_app_config_file();
    for (const auto& key : app.unknown_keys) {
      logger->warn("{}: {}: unknown key, ignored", app.path, key);
    }
    if (app.found) {
      logger->info("application read from {}: version '{}', {} service(s)", app.path,
                   app.app.version, app.app.services.size());
    } else {
      logger->info("{} does not exist: no service to start", app.path);
    }
    check_services(app, options.engine.get(), workdir);
    options.app = std::move(app.app);
    master = std::make_unique<Master>(std::move(options));
    master->start();
  } catch (const std::exception& e) {
    logger->error("{}", e.what());
    master.reset();
    return 1;
  }
  master->finish_master_update();

  int received = 0;
  while (sigwait(&signals, &received) != 0 || received == 0) {
  }
  if (received == SIGUSR2) {
    logger->info("stopping to start the updated master binary");
  } else {
    logger->info("received {}, stopping", received == SIGTERM ? "SIGTERM" : "SIGINT");
  }
  master->stop();
  master.reset();
  if (received == SIGUSR2) {
    if (auto pending = MasterUpdateMarker::load(marker_file);
        pending && pending->stage == "restarting") {
      logger->info("handing over to the new master binary {}", pending->binary.string());
      logger->flush();
      if (under_waiter) return kHandOverExitCode;
      lock.keep_across_exec();  // for the waiter, which hands it to each master it starts
      const std::string problem =
          exec_update_waiter(argv[0], workdir, start_arguments(args, workdir));
      logger->error("{}", problem);
      return 1;
    }
    // Without an update in progress SIGUSR2 restarts the master in place.
    const fs::path target = own_binary();
    std::vector<std::string> again = {argv[0]};
    for (auto& arg : start_arguments(args, workdir)) again.push_back(std::move(arg));
    std::vector<char*> again_argv;
    for (auto& arg : again) again_argv.push_back(arg.data());
    again_argv.push_back(nullptr);
    if (under_waiter) ::setenv(kUpdateWaiterVariable, std::to_string(::getppid()).c_str(), 1);
    logger->flush();
    lock.keep_across_exec();
    ::execv(target.c_str(), again_argv.data());
    logger->error("cannot exec {}: {}", target.string(), std::strerror(errno));
    return 1;
  }
  return 0;
}

}  // namespace

int run_cli(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == kUpdateWaiterCommand) {
    try {
      return run_update_waiter(argc, argv);
    } catch (const std::exception& e) {
      std::cerr << "baetyl update-waiter: " << e.what() << "\n";
      return 1;
    }
  }
  Arguments args;
  try {
    args = parse_arguments(argc, argv);
  } catch (const UsageError& e) {
    std::cerr << "baetyl: " << e.what() << "\n\n" << kUsage;
    return 2;
  }
  try {
    if (args.help) {
      std::cout << command_usage(args.command);
      return 0;
    }
    if (args.command == "version") return print_version();
    if (args.command == "check") return check(args);
    if (args.command != "start") {
      OpsArguments ops;
      ops.workdir = resolve_workdir(args);
      ops.operands = args.operands;
      ops.json = args.json;
      ops.follow = args.follow;
      ops.tail = args.tail;
      ops.since = args.since;
      if (args.command == "inspect") return run_inspect(ops);
      if (args.command == "list") return run_list(ops);
      if (args.command == "logs") return run_logs(ops);
      if (args.command == "restart") return run_restart(ops);
      return run_stop(ops);
    }
    return start(args, argv);
  } catch (const std::exception& e) {
    std::cerr << "baetyl " << args.command << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace baetyl::master
