#include "baetyl/api/inspect.h"

#include <cstdio>
#include <ctime>

namespace baetyl::api {
namespace {

using nlohmann::json;

// Parsing an object from anything else fails with nlohmann's own type_error.
void require_object(const json& j) {
  if (!j.is_object()) (void)j.get<json::object_t>();
}

template <class T>
void read(const json& j, const char* key, T& out) {
  if (const auto it = j.find(key); it != j.end() && !it->is_null()) it->get_to(out);
}

// This nlohmann release has no std::optional conversions.
template <class T>
void read(const json& j, const char* key, std::optional<T>& out) {
  if (const auto it = j.find(key); it != j.end() && !it->is_null()) out = it->get<T>();
}

void write(json& j, const char* key, const std::string& value) {
  if (!value.empty()) j[key] = value;
}

template <class T>
void write(json& j, const char* key, T value) {
  if (value != T{}) j[key] = value;
}

// nlohmann's own vector conversion, plus the check that every entry is an object.
void read_objects(const json& j, const char* key, std::vector<json>& out) {
  read(j, key, out);
  for (const auto& entry : out) require_object(entry);
}

}  // namespace

std::string to_rfc3339(std::chrono::system_clock::time_point time) {
  using namespace std::chrono;
  const auto seconds = floor<std::chrono::seconds>(time);
  const auto micros = duration_cast<microseconds>(time - seconds).count();
  const std::time_t t = system_clock::to_time_t(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[64];
  std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out(text, n);
  if (micros != 0) {
    std::snprintf(text, sizeof text, ".%06lld", static_cast<long long>(micros));
    std::string fraction(text);
    while (fraction.back() == '0') fraction.pop_back();
    out += fraction;
  }
  return out + "Z";
}

void to_json(json& j, const Software& value) {
  j = json::object();
  write(j, "os", value.os);
  write(j, "arch", value.arch);
  write(j, "pwd", value.pwd);
  write(j, "mode", value.mode);
  write(j, "compiler", value.compiler);
  write(j, "bin_version", value.bin_version);
  write(j, "git_revision", value.git_revision);
  write(j, "conf_version", value.conf_version);
}

void from_json(const json& j, Software& value) {
  require_object(j);
  value = {};
  read(j, "os", value.os);
  read(j, "arch", value.arch);
  read(j, "pwd", value.pwd);
  read(j, "mode", value.mode);
  read(j, "compiler", value.compiler);
  read(j, "bin_version", value.bin_version);
  read(j, "git_revision", value.git_revision);
  read(j, "conf_version", value.conf_version);
}

void to_json(json& j, const MemStats& value) {
  j = json::object();
  write(j, "total", value.total);
  write(j, "free", value.free);
  write(j, "used", value.used);
  write(j, "used_percent", value.used_percent);
  write(j, "swap_total", value.swap_total);
  write(j, "swap_free", value.swap_free);
  write(j, "swap_used", value.swap_used);
  write(j, "swap_used_percent", value.swap_used_percent);
}

void from_json(const json& j, MemStats& value) {
  require_object(j);
  value = {};
  read(j, "total", value.total);
  read(j, "free", value.free);
  read(j, "used", value.used);
  read(j, "used_percent", value.used_percent);
  read(j, "swap_total", value.swap_total);
  read(j, "swap_free", value.swap_free);
  read(j, "swap_used", value.swap_used);
  read(j, "swap_used_percent", value.swap_used_percent);
}

void to_json(json& j, const CpuStats& value) {
  j = json::object();
  write(j, "used_percent", value.used_percent);
}

void from_json(const json& j, CpuStats& value) {
  require_object(j);
  value = {};
  read(j, "used_percent", value.used_percent);
}

void to_json(json& j, const DiskStats& value) {
  j = json::object();
  write(j, "path", value.path);
  write(j, "total", value.total);
  write(j, "free", value.free);
  write(j, "used", value.used);
  write(j, "used_percent", value.used_percent);
}

void from_json(const json& j, DiskStats& value) {
  require_object(j);
  value = {};
  read(j, "path", value.path);
  read(j, "total", value.total);
  read(j, "free", value.free);
  read(j, "used", value.used);
  read(j, "used_percent", value.used_percent);
}

void to_json(json& j, const Hardware& value) {
  j = json::object();
  if (value.mem_stats) j["mem_stats"] = *value.mem_stats;
  if (value.cpu_stats) j["cpu_stats"] = *value.cpu_stats;
  if (value.disk_stats) j["disk_stats"] = *value.disk_stats;
  if (!value.gpu_stats.empty()) j["gpu_stats"] = value.gpu_stats;
}

void from_json(const json& j, Hardware& value) {
  require_object(j);
  value = {};
  read(j, "mem_stats", value.mem_stats);
  read(j, "cpu_stats", value.cpu_stats);
  read(j, "disk_stats", value.disk_stats);
  read(j, "gpu_stats", value.gpu_stats);
}

void to_json(json& j, const ServiceStatus& value) {
  j = json::object();
  write(j, "name", value.name);
  if (!value.instances.empty()) j["instances"] = value.instances;
}

void from_json(const json& j, ServiceStatus& value) {
  require_object(j);
  value = {};
  read(j, "name", value.name);
  read_objects(j, "instances", value.instances);
}

void to_json(json& j, const VolumeStatus& value) {
  j = json::object();
  write(j, "name", value.name);
  write(j, "version", value.version);
}

void from_json(const json& j, VolumeStatus& value) {
  require_object(j);
  value = {};
  read(j, "name", value.name);
  read(j, "version", value.version);
}

void to_json(json& j, const Inspect& value) {
  j = json::object();
  write(j, "error", value.error);
  write(j, "time", value.time);
  if (json software = value.software; !software.empty()) j["software"] = std::move(software);
  if (json hardware = value.hardware; !hardware.empty()) j["hardware"] = std::move(hardware);
  if (!value.services.empty()) j["services"] = value.services;
  if (!value.volumes.empty()) j["volumes"] = value.volumes;
}

void from_json(const json& j, Inspect& value) {
  require_object(j);
  value = {};
  read(j, "error", value.error);
  read(j, "time", value.time);
  read(j, "software", value.software);
  read(j, "hardware", value.hardware);
  read(j, "services", value.services);
  read(j, "volumes", value.volumes);
}

void to_json(json& j, const UpdateRequest& value) {
  j = json{{"type", value.type.empty() ? "APP" : value.type},
           {"path", value.path},
           {"trace", value.trace}};
}

void from_json(const json& j, UpdateRequest& value) {
  require_object(j);
  value = {};
  read(j, "type", value.type);
  if (value.type.empty()) value.type = "APP";
  read(j, "path", value.path);
  if (value.path.empty()) read(j, "file", value.path);
  read(j, "trace", value.trace);
}

}  // namespace baetyl::api
