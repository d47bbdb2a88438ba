#pragma once
// The progress of the latest updates as the agent reports it: per trace, the records of its
// steps (the agent's own, RECEIVED, FAILURE and TIMEOUT, and the master's from ota.log), as the
// original's report carried them: "ota": {"<trace>": [{"time","step","trace","error"}, ...]}.
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ota_log.h"

namespace baetyl::agent {

class ProgressBook {
 public:
  explicit ProgressBook(std::size_t keep = 10) : keep_(keep) {}

  // Called after every change, outside the book's lock (the reporter reports at once).
  void set_listener(std::function<void()> listener);

  // Starts the records of an update the agent runs or follows (dropping older records of the
  // same trace).
  void start(const std::string& trace);
  // Appends the agent's own record (creating the trace's entry when there is none).
  void add(const std::string& trace, const std::string& step, const std::string& type,
           const std::string& error = {});
  // Appends the master's records of `trace`; a RECEIVED is left out when the trace has one.
  void add_master(const std::string& trace, const std::vector<OtaRecord>& records);

  // Whether the agent started (or followed) an update with this trace.
  bool started(const std::string& trace) const;
  // The last step of `trace`, if any.
  std::optional<std::string> last_step(const std::string& trace) const;
  // {"<trace>": [records...], ...}, at most `keep` traces, the latest ones.
  nlohmann::json to_json() const;
  bool empty() const;

 private:
  struct Entry {
    std::string trace;
    bool started = false;
    std::vector<OtaRecord> records;
  };
  Entry& entry(const std::string& trace);  // with the lock held
  void changed();

  std::size_t keep_;
  mutable std::mutex mutex_;
  std::deque<Entry> entries_;  // oldest first
  std::function<void()> listener_;
};

}  // namespace baetyl::agent
