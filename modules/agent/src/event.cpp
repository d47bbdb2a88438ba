#include "event.h"

#include <regex>

#include <nlohmann/json.hpp>

#include "baetyl/base64.h"
#include "store_path.h"

namespace baetyl::agent {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxTrace = 256;

// The string at `key` of `object`; empty when absent or null. Throws EventError for another type.
std::string string_at(const json& object, const char* key, const std::string& field,
                      const std::string& trace) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return {};
  if (!it->is_string()) throw EventError(trace, field + "." + key + ": must be a string");
  return it->get<std::string>();
}

const json& object_at(const json& object, const char* key, const std::string& field,
                      const std::string& trace) {
  static const json empty = json::object();
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return empty;
  if (!it->is_object()) throw EventError(trace, field + "." + key + ": must be an object");
  return *it;
}

Volume parse_volume(const json& object, const std::string& field, const std::string& trace) {
  Volume volume;
  volume.name = string_at(object, "name", field, trace);
  volume.path = string_at(object, "path", field, trace);
  const json& meta = object_at(object, "meta", field, trace);
  volume.meta.url = string_at(meta, "url", field + ".meta", trace);
  volume.meta.md5 = string_at(meta, "md5", field + ".meta", trace);
  volume.meta.version = string_at(meta, "version", field + ".meta", trace);
  return volume;
}

}  // namespace

std::string check_download_volume(const Volume& volume, const std::string& field) {
  static const std::regex name_pattern("[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}");
  if (!std::regex_match(volume.name, name_pattern)) {
    return field + ".name: '" + volume.name + "' does not match [a-zA-Z0-9][a-zA-Z0-9_-]{0,63}";
  }
  std::string problem;
  if (!store_relative(volume.path, &problem)) return field + ".path: " + problem;
  if (!volume.meta.url.starts_with("https://")) {
    return field + ".meta.url: '" + volume.meta.url +
           "' is not an https:// URL (volumes are downloaded over HTTPS only)";
  }
  const auto digest = base64_decode(volume.meta.md5);
  if (!digest || digest->size() != 16) {
    return field + ".meta.md5: '" + volume.meta.md5 +
           "' is not the base64 of an MD5 digest (16 bytes)";
  }
  return {};
}

OtaEvent parse_event(std::string_view payload) {
  json document;
  try {
    document = json::parse(payload);
  } catch (const json::exception& e) {
    throw EventError({}, std::string("not JSON: ") + e.what());
  }
  if (!document.is_object()) throw EventError({}, "not a JSON object");
  // The trace first, so that every later problem is reported under it.
  std::string trace;
  const json& content = object_at(document, "content", "", "");
  if (const auto it = content.find("trace"); it != content.end() && it->is_string()) {
    trace = it->get<std::string>();
  }
  const std::string kind = string_at(document, "event", "", trace);
  OtaEvent event;
  event.trace = trace;
  if (trace.empty()) throw EventError(trace, "content.trace: is required");
  if (trace.size() > kMaxTrace) {
    throw EventError({}, "content.trace: longer than " + std::to_string(kMaxTrace) + " bytes");
  }
  event.version = string_at(content, "version", "content", trace);
  if (kind == "OTA") {
    const std::string type = string_at(content, "type", "content", trace);
    if (!type.empty()) event.type = type;
    if (event.type != "APP" && event.type != "MST") {
      throw EventError(trace, "content.type: '" + event.type + "' is not APP or MST");
    }
    event.volume =
        parse_volume(object_at(content, "volume", "content", trace), "content.volume", trace);
  } else if (kind == "UPDATE") {
    event.volume =
        parse_volume(object_at(content, "config", "content", trace), "content.config", trace);
  } else {
    throw EventError(trace, "event: '" + kind + "' is not OTA");
  }
  if (std::string problem =
          check_download_volume(event.volume, kind == "OTA" ? "content.volume" : "content.config");
      !problem.empty()) {
    throw EventError(trace, problem);
  }
  return event;
}

}  // namespace baetyl::agent
