#include "engine/native_engine.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>

#include <spdlog/sinks/null_sink.h>
#include <yaml-cpp/yaml.h>

#include "engine/instance_registry.h"
#include "engine/native_instance.h"
#include "engine/process_util.h"
#include "stats/host_stats.h"

extern char** environ;

namespace baetyl::master {
namespace {

namespace fs = std::filesystem;

constexpr const char* kServicesDir = "var/run/baetyl/services";
constexpr const char* kStateFile = "var/db/baetyl/native-instances.json";
constexpr const char* kPackagesDir = "lib/baetyl";
constexpr const char* kSocketLink = "var/run/baetyl.sock";

// Maps a path relative to the service directory to where it is on the host; nullopt when it
// would leave the service directory or lies in no mounted volume.
using ServicePathMap = std::function<std::optional<fs::path>(const std::string& relative)>;

// `path` relative and normalised ("a/b"; "" for the base itself); nullopt when it climbs out.
std::optional<std::string> normal_relative(const std::string& path) {
  auto normal = resolve_inside("/", path);
  if (!normal) return std::nullopt;
  return normal->substr(1);
}

bool is_executable_file(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec) && ::access(path.c_str(), X_OK) == 0;
}

std::string join(const std::vector<std::string>& items) {
  std::string text;
  for (const auto& item : items) {
    if (!text.empty()) text += ", ";
    text += item;
  }
  return text;
}

void warn_once(const NativeEngineOptions& options, const std::string& key,
               const std::string& message) {
  static std::mutex mutex;
  static std::set<std::string> warned;
  std::lock_guard lock(mutex);
  if (options.logger && warned.insert(key).second) options.logger->warn("{}", message);
}

// The seed's runtime images name interpreter versions that Debian 12 no longer ships.
std::string installed_program(const std::string& image, const NativeEngineOptions& options) {
  const std::string name = image_base_name(image);
  const std::string program = installed_program_name(image);
  if (program == "baetyl-function-python" && name != program) {
    warn_once(options, name,
              name + " runs on baetyl-function-python: the functions' code runs under Python 3");
  }
  return program;
}

fs::path package_entry(const ServiceInfo& service, const fs::path& package_dir,
                       const fs::path& manifest) {
  auto fail = [&](const std::string& reason) {
    return std::runtime_error("service '" + service.name + "': package " + manifest.string() +
                              ": " + reason);
  };
  std::string entry;
  try {
    entry =
        config::read_document<PackageManifest>(YAML::LoadFile(manifest.string()), manifest.string())
            .entry;
  } catch (const YAML::Exception& e) {
    throw fail(std::string("cannot read it: ") + e.what());
  } catch (const config::ConfigError& e) {
    throw fail(e.issues().front().key + ": " + e.issues().front().message);
  }
  if (entry.empty()) throw fail("no 'entry' naming the program");
  auto program = resolve_inside(package_dir.string(), entry);
  if (!program || *program == package_dir.string()) {
    throw fail("entry '" + entry + "' must name a file inside the package directory");
  }
  if (!is_executable_file(*program)) {
    throw fail("entry '" + entry + "' (" + *program + ") is not an executable file");
  }
  return *program;
}

fs::path resolve_program(const ServiceInfo& service, const ServicePathMap& in_service,
                         const NativeEngineOptions& options) {
  std::vector<std::string> looked;
  std::vector<std::string> names{service.image};
  auto slashed = service.image;
  std::replace(slashed.begin(), slashed.end(), ':', '/');
  if (slashed != service.image) names.push_back(slashed);
  for (const auto& name : names) {
    auto dir = in_service(std::string(kPackagesDir) + "/" + name);
    if (!dir) {
      looked.push_back(std::string(kPackagesDir) + "/" + name +
                       "/package.yml (in neither the service directory nor a mounted volume)");
      continue;
    }
    auto manifest = *dir / "package.yml";
    std::error_code ec;
    if (fs::is_regular_file(manifest, ec))
      return fs::absolute(package_entry(service, *dir, manifest));
    looked.push_back(manifest.string());
  }

  auto program = installed_program(service.image, options);
  std::vector<fs::path> dirs = options.bin_dirs;
  if (const char* path = std::getenv("PATH")) {
    std::istringstream parts(path);
    std::string part;
    while (std::getline(parts, part, ':')) {
      if (!part.empty()) dirs.emplace_back(part);
    }
  }
  std::vector<std::string> searched;
  if (!program.empty()) {
    for (const auto& dir : dirs) {
      auto candidate = dir / program;
      if (is_executable_file(candidate)) return fs::absolute(candidate);
      searched.push_back(dir.string());
    }
  }
  throw std::runtime_error("service '" + service.name + "': no program for image '" +
                           service.image + "': no package at " + join(looked) +
                           ", and no executable '" + program + "' in " +
                           (searched.empty() ? std::string("no directory") : join(searched)));
}

// Creates the directories from `base` down to `dir`, refusing to go through a symlink (a mount),
// which would put the link inside a volume.
void create_real_directories(const fs::path& base, const fs::path& dir) {
  auto current = base;
  for (const auto& part : dir.lexically_relative(base)) {
    if (part == ".") continue;
    current /= part;
    auto status = fs::symlink_status(current);
    if (fs::is_symlink(status)) {
      throw std::runtime_error(current.lexically_relative(base).string() + " is a mount");
    }
    if (!fs::exists(status)) {
      fs::create_directory(current);
    } else if (!fs::is_directory(status)) {
      throw std::runtime_error(current.lexically_relative(base).string() + " is not a directory");
    }
  }
}

bool same_process(const InstanceRecord& record) {
  auto info = read_proc_info(record.pid);
  return info && info->start_ticks == record.start_ticks;
}

bool leader_running(const InstanceRecord& record) {
  auto info = read_proc_info(record.pid);
  return info && info->start_ticks == record.start_ticks && info->state != 'Z';
}

// SIGKILLs the members of group `pgid` found in /proc, for a group whose leader was reaped.
void kill_group_members(pid_t pgid) {
  for (pid_t pid : list_pids()) {
    auto info = read_proc_info(pid);
    if (info && info->pgrp == pgid && info->state != 'Z') ::kill(pid, SIGKILL);
  }
}

}  // namespace

std::string installed_program_name(const std::string& image) {
  const std::string name = image_base_name(image);
  if (name == "baetyl-function-python27" || name == "baetyl-function-python36") {
    return "baetyl-function-python";
  }
  if (name == "baetyl-function-node85") return "baetyl-function-node";
  return name;
}

std::optional<fs::path> host_path_in_mounts(const AppConfig& app, const ServiceInfo& service,
                                            const fs::path& workdir, const std::string& relative) {
  auto path = normal_relative(relative);
  if (!path) return std::nullopt;
  std::optional<std::string> best_mount;
  fs::path best_host;
  for (const auto& mount : service.mounts) {
    const auto* volume = app.find_volume(mount.name);
    auto mount_path = normal_relative(mount.path);
    auto host = volume ? resolve_inside(workdir.string(), volume->path) : std::nullopt;
    if (!mount_path || !host) continue;
    const bool contains =
        mount_path->empty() || *path == *mount_path || path->starts_with(*mount_path + "/");
    if (contains && (!best_mount || mount_path->size() > best_mount->size())) {
      best_mount = *mount_path;
      best_host = *host;
    }
  }
  if (!best_mount) return std::nullopt;
  auto rest = path->substr(best_mount->size());
  return rest.empty() ? best_host : best_host / rest.substr(rest[0] == '/' ? 1 : 0);
}

struct NativeEngine::State {
  std::shared_ptr<spdlog::logger> logger;
  std::shared_ptr<InstanceRegistry> registry;
  std::unique_ptr<InstanceLogFiles> log_files;  // null: output is not captured
};

fs::path resolve_native_program(const ServiceInfo& service, const fs::path& service_dir,
                                const NativeEngineOptions& options) {
  return resolve_program(
      service,
      [&](const std::string& relative) -> std::optional<fs::path> {
        auto path = resolve_inside(service_dir.string(), relative);
        if (!path) return std::nullopt;
        return fs::path(*path);
      },
      options);
}

NativeEngine::NativeEngine(NativeEngineOptions options)
    : options_(std::move(options)), state_(std::make_unique<State>()) {
  state_->logger = options_.logger ? options_.logger
                                   : std::make_shared<spdlog::logger>(
                                         "native", std::make_shared<spdlog::sinks::null_sink_mt>());
  if (options_.state_file.empty()) options_.state_file = options_.workdir / kStateFile;
  state_->registry = std::make_shared<InstanceRegistry>(options_.state_file, state_->logger);
  if (!options_.log_dir.empty()) {
    state_->log_files = std::make_unique<InstanceLogFiles>(
        options_.log_dir.is_absolute() ? options_.log_dir : options_.workdir / options_.log_dir,
        options_.log_rotation);
  }
}

NativeEngine::~NativeEngine() = default;

fs::path NativeEngine::service_dir(const std::string& service) const {
  return options_.workdir / kServicesDir / service;
}

void NativeEngine::clean_leftovers() {
  auto& log = *state_->logger;
  auto leftovers = state_->registry->leftovers();
  std::vector<InstanceRecord> signalled;
  for (const auto& record : leftovers) {
    if (leader_running(record)) {
      log.warn("stopping instance {} of service {} (pid {}) left by a previous master",
               record.instance, record.service, record.pid);
      ::kill(-record.pgid, SIGTERM);
      signalled.push_back(record);
    } else if (same_process(record)) {
      ::kill(-record.pgid, SIGKILL);  // an unreaped zombie leader: only its group may remain
    } else {
      // The leader is gone, so its group id may since have gone to an unrelated group: killing
      // by group id could hit strangers. What the group left running stays.
      log.info("instance {} (pid {}) left by a previous master is gone", record.instance,
               record.pid);
    }
  }

  auto deadline = std::chrono::steady_clock::now() + options_.leftover_grace;
  auto any_running = [&] {
    return std::any_of(signalled.begin(), signalled.end(), leader_running);
  };
  // Not our children: nothing to wait on but /proc.
  while (any_running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (const auto& record : signalled) {
    if (leader_running(record)) {
      log.warn("killing instance {} (pid {}): still running after SIGTERM", record.instance,
               record.pid);
    }
    if (same_process(record)) {
      // Even as a zombie the leader holds the group id, so the group is still the recorded one.
      ::kill(-record.pgid, SIGKILL);
    } else {
      // Reaped during the grace (by init): an id freed milliseconds ago is not reused yet.
      kill_group_members(record.pgid);
    }
  }
  state_->registry->clear_leftovers();

  std::error_code ec;
  auto services = options_.workdir / kServicesDir;
  for (const auto& entry : fs::directory_iterator(services, ec)) {
    log.info("removing leftover service directory {}", entry.path().string());
    std::error_code remove_error;
    fs::remove_all(entry.path(), remove_error);
    if (remove_error) {
      log.error("cannot remove {}: {}", entry.path().string(), remove_error.message());
    }
  }
}

void NativeEngine::prepare(const AppConfig& app) {
  std::vector<std::string> errors;
  for (std::size_t i = 0; i < app.services.size(); ++i) {
    const auto& service = app.services[i];
    if (!service.ports.empty() || !service.devices.empty() || service.resources != Resources{}) {
      state_->logger->warn(
          "service {}: ports, devices and resources apply in docker mode only; ignored in native "
          "mode",
          service.name);
    }
    auto in_volumes = [&](const std::string& relative) {
      return host_path_in_mounts(app, service, options_.workdir, relative);
    };
    try {
      auto program = resolve_program(service, in_volumes, options_);
      state_->logger->debug("service {} runs {}", service.name, program.string());
    } catch (const std::exception& e) {
      if (service.replica > 0) {
        errors.push_back("services[" + std::to_string(i) + "].image: " + e.what());
      } else {
        state_->logger->warn("{} (it cannot be started on demand)", e.what());
      }
    }
  }
  if (!errors.empty()) {
    std::string message;
    for (const auto& error : errors) message += (message.empty() ? "" : "\n") + error;
    throw std::runtime_error(message);
  }
}

void NativeEngine::setup_service(const ServiceInfo& service,
                                 const std::vector<VolumeInfo>& volumes) {
  auto fail = [&](const std::string& reason) {
    return std::runtime_error("service '" + service.name + "': " + reason);
  };
  if (!normal_relative(service.name) || normal_relative(service.name)->empty() ||
      normal_relative(service.name)->find('/') != std::string::npos) {
    throw fail("not a valid service name");
  }
  auto dir = service_dir(service.name);
  try {
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (const auto& mount : service.mounts) {
      auto volume = std::find_if(volumes.begin(), volumes.end(),
                                 [&](const VolumeInfo& v) { return v.name == mount.name; });
      if (volume == volumes.end())
        throw fail("mount of the undeclared volume '" + mount.name + "'");
      auto target = resolve_inside(options_.workdir.string(), volume->path);
      if (!target) {
        throw fail("volume '" + volume->name + "' path '" + volume->path +
                   "' leaves the work directory");
      }
      auto relative = normal_relative(mount.path);
      if (!relative || relative->empty()) {
        throw fail("mount path '" + mount.path + "' must name a directory inside the service");
      }
      auto link = dir / *relative;
      try {
        create_real_directories(dir, link.parent_path());
      } catch (const std::runtime_error& e) {
        throw fail("mount path '" + mount.path + "' lies inside another mount (" + e.what() + ")");
      }
      if (fs::exists(fs::symlink_status(link))) {
        throw fail("mount path '" + mount.path + "' overlaps another mount");
      }
      fs::create_directories(*target);
      fs::create_directory_symlink(*target, link);
    }

    if (!options_.api_socket.empty()) {
      auto socket = options_.api_socket.is_absolute() ? options_.api_socket
                                                      : options_.workdir / options_.api_socket;
      auto link = dir / kSocketLink;
      try {
        create_real_directories(dir, link.parent_path());
        if (fs::exists(fs::symlink_status(link))) throw std::runtime_error("it exists");
        fs::create_symlink(socket, link);
      } catch (const std::runtime_error& e) {
        // A mount over var/run of the service: the volume's content wins.
        state_->logger->warn("service {}: master socket not linked as {}: {}", service.name,
                             kSocketLink, e.what());
      }
    }
  } catch (const fs::filesystem_error& e) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    throw fail(std::string("cannot prepare its work directory: ") + e.what());
  } catch (...) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    throw;
  }
}

void NativeEngine::teardown_service(const std::string& service) {
  // remove_all deletes the mount symlinks themselves, never what they point to.
  std::error_code ec;
  fs::remove_all(service_dir(service), ec);
  if (ec) {
    state_->logger->error("cannot remove the work directory of service {}: {}", service,
                          ec.message());
  }
}

std::unique_ptr<Instance> NativeEngine::start(const InstanceSpec& spec) {
  auto fail = [&](const std::string& reason) {
    return std::runtime_error("cannot start instance '" + spec.instance + "': " + reason);
  };
  auto dir = service_dir(spec.service);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw fail("the service directory " + dir.string() + " does not exist");
  }
  fs::path program;
  try {
    program = resolve_native_program(spec.info, dir, options_);
  } catch (const std::runtime_error& e) {
    throw fail(e.what());
  }

  std::vector<std::string> argv{spec.instance};
  argv.insert(argv.end(), spec.info.args.begin(), spec.info.args.end());
  auto env = merge_environment(environ, spec.env);
  // The instance's stdout and stderr: a pipe read by the master (output_capture.h).
  std::shared_ptr<spdlog::logger> log_file;
  int pipe_fds[2] = {-1, -1};
  if (state_->log_files) {
    try {
      log_file = state_->log_files->open(spec.instance);
    } catch (const std::exception& e) {
      throw fail(std::string("cannot open its log file: ") + e.what());
    }
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
      throw fail(std::string("cannot create its output pipe: ") + std::strerror(errno));
    }
  }
  auto close_pipe = [&] {
    for (int& fd : pipe_fds) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
  };
  pid_t pid = -1;
  try {
    pid = spawn_process(program, argv, env, dir, pipe_fds[1]);
  } catch (const std::system_error& e) {
    close_pipe();
    std::string reason = "cannot run " + program.string() + ": " + e.code().message();
    if (e.code().value() == ENOENT && fs::exists(program, ec)) {
      reason += " (its interpreter or dynamic loader is missing)";
    }
    throw fail(reason);
  }

  // Until reaped the child stays in /proc, so its start time is there to read.
  auto ticks = ProcessStats::start_ticks(pid).value_or(0);
  state_->registry->add({pid, pid, ticks, spec.service, spec.instance});
  state_->logger->info("instance {} of service {} started: pid {}, {}", spec.instance, spec.service,
                       pid, program.string());
  std::unique_ptr<OutputCapture> output;
  if (log_file) {
    ::close(pipe_fds[1]);
    output = std::make_unique<OutputCapture>(pipe_fds[0], spec.instance, std::move(log_file),
                                             options_.echo_output);
  }
  return std::make_unique<NativeInstance>(spec.instance, pid, state_->registry, state_->logger,
                                          std::move(output));
}

}  // namespace baetyl::master
