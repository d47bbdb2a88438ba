#include "baetyl/api/inspect.h"

#include <concepts>
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

// The JSON keys of each flat struct, listed once for both directions.
template <class T, class V>
concept Is = std::same_as<std::remove_const_t<V>, T>;

template <class V, class F>
  requires Is<Software, V>
void fields(V& v, F&& f) {
  f("os", v.os);
  f("arch", v.arch);
  f("pwd", v.pwd);
  f("mode", v.mode);
  f("compiler", v.compiler);
  f("bin_version", v.bin_version);
  f("git_revision", v.git_revision);
  f("conf_version", v.conf_version);
}

template <class V, class F>
  requires Is<MemStats, V>
void fields(V& v, F&& f) {
  f("total", v.total);
  f("free", v.free);
  f("used", v.used);
  f("used_percent", v.used_percent);
  f("swap_total", v.swap_total);
  f("swap_free", v.swap_free);
  f("swap_used", v.swap_used);
  f("swap_used_percent", v.swap_used_percent);
}

template <class V, class F>
  requires Is<CpuStats, V>
void fields(V& v, F&& f) {
  f("used_percent", v.used_percent);
}

template <class V, class F>
  requires Is<DiskStats, V>
void fields(V& v, F&& f) {
  f("path", v.path);
  f("total", v.total);
  f("free", v.free);
  f("used", v.used);
  f("used_percent", v.used_percent);
}

template <class V, class F>
  requires Is<VolumeStatus, V>
void fields(V& v, F&& f) {
  f("name", v.name);
  f("version", v.version);
}

// Empty fields are left out, as Go's omitempty did.
template <class T>
void write_fields(json& j, const T& value) {
  j = json::object();
  fields(value, [&](const char* key, const auto& field) { write(j, key, field); });
}

template <class T>
void read_fields(const json& j, T& value) {
  require_object(j);
  value = {};
  fields(value, [&](const char* key, auto& field) { read(j, key, field); });
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

void to_json(json& j, const Software& value) { write_fields(j, value); }

void from_json(const json& j, Software& value) { read_fields(j, value); }

void to_json(json& j, const MemStats& value) { write_fields(j, value); }

void from_json(const json& j, MemStats& value) { read_fields(j, value); }

void to_json(json& j, const CpuStats& value) { write_fields(j, value); }

void from_json(const json& j, CpuStats& value) { read_fields(j, value); }

void to_json(json& j, const DiskStats& value) { write_fields(j, value); }

void from_json(const json& j, DiskStats& value) { read_fields(j, value); }

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

void to_json(json& j, const VolumeStatus& value) { write_fields(j, value); }

void from_json(const json& j, VolumeStatus& value) { read_fields(j, value); }

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
