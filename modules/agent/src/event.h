#pragma once
// The cloud's OTA event, received on the desire topic (REFERENCE.md, Agent):
//   {"time": ..., "event": "OTA", "content": {"type": "APP"|"MST", "trace": "...",
//    "version": "...", "volume": {"name", "path", "meta": {"url", "md5", "version"}}}}
// The original's deprecated {"event": "UPDATE", "content": {"trace", "version", "config"}} is an
// APP event with `config` as its volume.
#include <stdexcept>
#include <string>
#include <string_view>

namespace baetyl::agent {

struct VolumeMeta {
  std::string url;  // https:// URL of the volume's zip; empty: nothing to download
  std::string md5;  // base64 of the zip's MD5 digest
  std::string version;
};

struct Volume {
  std::string name;
  std::string path;  // relative to the master's work directory, inside var/db/baetyl
  VolumeMeta meta;
};

struct OtaEvent {
  std::string type = "APP";  // APP: the volume holds application.yml; MST: it holds bin/baetyl
  std::string trace;
  std::string version;
  Volume volume;
};

// A message on the desire topic that is not a valid OTA event. trace() is the event's trace when
// it could be read, so that the failure can be reported under it.
class EventError : public std::runtime_error {
 public:
  EventError(std::string trace, const std::string& message)
      : std::runtime_error(message), trace_(std::move(trace)) {}
  const std::string& trace() const { return trace_; }

 private:
  std::string trace_;
};

// Throws EventError naming the field and the reason.
OtaEvent parse_event(std::string_view payload);

// The checks of a volume that is downloaded (event volumes, and application volumes with a URL):
// name, https URL, base64 MD5 of 16 bytes, and a path inside var/db/baetyl. Returns the problem,
// empty when there is none. `field` prefixes the key in the message ("content.volume").
std::string check_download_volume(const Volume& volume, const std::string& field);

}  // namespace baetyl::agent
