#pragma once
// What GET /v1/system/inspect returns and what PUT /v1/system/update takes, with the JSON keys of
// the original Go structs. Serialising omits empty fields (Go's omitempty); parsing tolerates
// missing keys and ignores unknown ones, and throws nlohmann::json::exception on wrong types.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace baetyl::api {

struct Software {
  std::string os;            // "os"
  std::string arch;          // "arch"
  std::string pwd;           // "pwd": the master's work directory
  std::string mode;          // "mode": docker or native
  std::string compiler;      // "compiler" (the Go original had "go_version")
  std::string bin_version;   // "bin_version"
  std::string git_revision;  // "git_revision"
  std::string conf_version;  // "conf_version": version of the loaded application.yml
};

struct MemStats {
  std::uint64_t total = 0;
  std::uint64_t free = 0;
  std::uint64_t used = 0;
  double used_percent = 0;
  std::uint64_t swap_total = 0;
  std::uint64_t swap_free = 0;
  std::uint64_t swap_used = 0;
  double swap_used_percent = 0;
};

struct CpuStats {
  double used_percent = 0;
};

struct DiskStats {
  std::string path;
  std::uint64_t total = 0;
  std::uint64_t free = 0;
  std::uint64_t used = 0;
  double used_percent = 0;
};

struct Hardware {
  std::optional<MemStats> mem_stats;      // "mem_stats"
  std::optional<CpuStats> cpu_stats;      // "cpu_stats"
  std::optional<DiskStats> disk_stats;    // "disk_stats"
  std::vector<nlohmann::json> gpu_stats;  // "gpu_stats", passed through as they come
};

struct ServiceStatus {
  std::string name;
  // One JSON object per instance: name, status, start_time, process{id,name} or container{id,name},
  // cpu_stats, mem_stats, plus whatever top-level keys the instance reported.
  std::vector<nlohmann::json> instances;
};

struct VolumeStatus {
  std::string name;
  std::string version;
};

struct Inspect {
  std::string error;  // "error": e.g. why the last update failed
  std::string time;   // "time": RFC 3339, see to_rfc3339
  Software software;
  Hardware hardware;
  std::vector<ServiceStatus> services;
  std::vector<VolumeStatus> volumes;
};

// PUT /v1/system/update. Parsing also accepts the older agents' "file" in place of "path", and a
// missing or empty type means APP.
struct UpdateRequest {
  std::string type = "APP";  // "APP": application OTA, "MST": master binary OTA
  std::string path{};        // the new application.yml or master binary
  std::string trace{};       // opaque id echoed in ota.log
};

// "2019-04-18T16:04:45.920152Z": UTC, with the fraction (microseconds, trailing zeros dropped)
// only when it is not zero, like Go's time.RFC3339Nano.
std::string to_rfc3339(std::chrono::system_clock::time_point time);

void to_json(nlohmann::json& j, const Software& value);
void from_json(const nlohmann::json& j, Software& value);
void to_json(nlohmann::json& j, const MemStats& value);
void from_json(const nlohmann::json& j, MemStats& value);
void to_json(nlohmann::json& j, const CpuStats& value);
void from_json(const nlohmann::json& j, CpuStats& value);
void to_json(nlohmann::json& j, const DiskStats& value);
void from_json(const nlohmann::json& j, DiskStats& value);
void to_json(nlohmann::json& j, const Hardware& value);
void from_json(const nlohmann::json& j, Hardware& value);
void to_json(nlohmann::json& j, const ServiceStatus& value);
void from_json(const nlohmann::json& j, ServiceStatus& value);
void to_json(nlohmann::json& j, const VolumeStatus& value);
void from_json(const nlohmann::json& j, VolumeStatus& value);
void to_json(nlohmann::json& j, const Inspect& value);
void from_json(const nlohmann::json& j, Inspect& value);
void to_json(nlohmann::json& j, const UpdateRequest& value);
void from_json(const nlohmann::json& j, UpdateRequest& value);

}  // namespace baetyl::api
