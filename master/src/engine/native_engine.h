#pragma once
// Native mode: every instance is a process (its own process group) running in the service's work
// directory var/run/baetyl/services/<service>, where each mount is a symlink to its volume.
#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "baetyl/log/logger.h"
#include "engine/engine.h"

namespace baetyl::master {

struct NativeEngineOptions {
  std::filesystem::path workdir;  // the master's work directory (absolute)
  // The master API socket to link into each service directory as var/run/baetyl.sock; empty when
  // the API listens on TCP.
  std::filesystem::path api_socket;
  // Where installed module executables are looked up, in order, before PATH (the master puts
  // <workdir>/bin and the directory of its own binary here).
  std::vector<std::filesystem::path> bin_dirs;
  // Where the engine records the processes it started, so that the next master can clean them up
  // after a crash (default var/db/baetyl/native-instances.json under workdir when empty).
  std::filesystem::path state_file;
  // How long clean_leftovers() lets a previous master's processes exit after SIGTERM.
  std::chrono::milliseconds leftover_grace{std::chrono::seconds(5)};
  std::shared_ptr<spdlog::logger> logger;  // null: log nothing
  // Where each instance's stdout and stderr go, one file per instance (<instance>.log, see
  // output_capture.h); empty: instances inherit the master's stdout and stderr.
  std::filesystem::path log_dir;
  log::RotationPolicy log_rotation;
  // Whether captured lines are also written on the master's stderr, prefixed "<instance> | ".
  bool echo_output = true;
};

// Resolves a service image to the program to run, in this order:
//  1. a package in a mounted volume: <service dir>/lib/baetyl/<image>/package.yml, trying the image
//     as written and with ':' replaced by '/', whose `entry:` names the executable relative to
//     the package directory;
//  2. the installed module executable named after the image's last path element without its tag
//     (hub.baidubce.com/baetyl/baetyl-hub:latest -> baetyl-hub), searched in bin_dirs then PATH;
//     the seed's runtime names baetyl-function-python27/-python36 map to baetyl-function-python
//     (with a warning that Python 3 runs the code) and baetyl-function-node85 to
//     baetyl-function-node.
// Returns an absolute path. Throws std::runtime_error naming the service, the image and every
// place looked at, or what is wrong with a package that was found.
std::filesystem::path resolve_native_program(const ServiceInfo& service,
                                             const std::filesystem::path& service_dir,
                                             const NativeEngineOptions& options);

// The installed module executable an image names: its last path element without tag or digest
// (hub.baidubce.com/baetyl/baetyl-hub:latest -> baetyl-hub), the seed's runtime names mapped as
// above.
std::string installed_program_name(const std::string& image);

// Where `relative`, a path inside the directory of `service`, lies on the host: in the volume of
// the longest mount path that contains it (volume paths relative to `workdir`). nullopt when it
// lies in no mount or climbs out of the service directory.
std::optional<std::filesystem::path> host_path_in_mounts(const AppConfig& app,
                                                         const ServiceInfo& service,
                                                         const std::filesystem::path& workdir,
                                                         const std::string& relative);

class NativeEngine final : public Engine {
 public:
  explicit NativeEngine(NativeEngineOptions options);
  // Leaves running instances alone (the master stops them); their records stay in the state file.
  ~NativeEngine() override;

  std::string_view mode() const override { return "native"; }
  void clean_leftovers() override;
  // Resolves the program of every service with replica > 0 the way start() will, except that the
  // service directory does not exist yet: a package path lib/baetyl/<image> is looked up in the
  // volume of the longest mount path that contains it. A service with replica 0 (started on
  // demand) only gets a warning. start() resolves again in the real service directory. Each
  // problem is a line "services[<i>].image: <reason>".
  void prepare(const AppConfig& app) override;
  void setup_service(const ServiceInfo& service, const std::vector<VolumeInfo>& volumes) override;
  void teardown_service(const std::string& service) override;
  std::unique_ptr<Instance> start(const InstanceSpec& spec) override;

  std::filesystem::path service_dir(const std::string& service) const;

 private:
  struct State;
  NativeEngineOptions options_;
  std::unique_ptr<State> state_;
};

}  // namespace baetyl::master
