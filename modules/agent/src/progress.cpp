#include "progress.h"

#include <algorithm>
#include <chrono>

#include "baetyl/api/inspect.h"

namespace baetyl::agent {

void ProgressBook::set_listener(std::function<void()> listener) {
  std::lock_guard lock(mutex_);
  listener_ = std::move(listener);
}

ProgressBook::Entry& ProgressBook::entry(const std::string& trace) {
  auto it = std::find_if(entries_.begin(), entries_.end(),
                         [&](const Entry& e) { return e.trace == trace; });
  if (it != entries_.end()) return *it;
  entries_.push_back(Entry{trace, false, {}});
  while (entries_.size() > keep_) entries_.pop_front();
  return entries_.back();
}

void ProgressBook::changed() {
  std::function<void()> listener;
  {
    std::lock_guard lock(mutex_);
    listener = listener_;
  }
  if (listener) listener();
}

void ProgressBook::start(const std::string& trace) {
  {
    std::lock_guard lock(mutex_);
    auto it = std::find_if(entries_.begin(), entries_.end(),
                           [&](const Entry& e) { return e.trace == trace; });
    if (it != entries_.end()) entries_.erase(it);
    entry(trace).started = true;
  }
  changed();
}

void ProgressBook::add(const std::string& trace, const std::string& step, const std::string& type,
                       const std::string& error) {
  {
    std::lock_guard lock(mutex_);
    entry(trace).records.push_back(
        OtaRecord{step, type, trace, api::to_rfc3339(std::chrono::system_clock::now()), error});
  }
  changed();
}

void ProgressBook::add_master(const std::string& trace, const std::vector<OtaRecord>& records) {
  bool any = false;
  {
    std::lock_guard lock(mutex_);
    Entry& e = entry(trace);
    for (const auto& record : records) {
      if (record.trace != trace) continue;
      const bool received_twice =
          record.step == step::kReceived &&
          std::any_of(e.records.begin(), e.records.end(),
                      [](const OtaRecord& r) { return r.step == step::kReceived; });
      if (received_twice) continue;
      e.records.push_back(record);
      any = true;
    }
  }
  if (any) changed();
}

bool ProgressBook::started(const std::string& trace) const {
  std::lock_guard lock(mutex_);
  return std::any_of(entries_.begin(), entries_.end(),
                     [&](const Entry& e) { return e.trace == trace && e.started; });
}

std::optional<std::string> ProgressBook::last_step(const std::string& trace) const {
  std::lock_guard lock(mutex_);
  for (const auto& e : entries_) {
    if (e.trace == trace && !e.records.empty()) return e.records.back().step;
  }
  return std::nullopt;
}

nlohmann::json ProgressBook::to_json() const {
  std::lock_guard lock(mutex_);
  nlohmann::json out = nlohmann::json::object();
  for (const auto& e : entries_) {
    nlohmann::json records = nlohmann::json::array();
    for (const auto& record : e.records) records.push_back(record.to_json());
    out[e.trace] = std::move(records);
  }
  return out;
}

bool ProgressBook::empty() const {
  std::lock_guard lock(mutex_);
  return entries_.empty();
}

}  // namespace baetyl::agent
