#pragma once
// The master's inspect document as Prometheus metrics (text exposition format 0.0.4): per
// instance state, restarts, cpu and memory; the host's figures; and the stats the modules
// (hub, remote-mqtt, function manager, timer) report to the master, as labelled series.
// docs/operations.md lists every series.
#include <string>

#include <nlohmann/json.hpp>

namespace baetyl::master {

// The exposition of `inspect` (the document GET /v1/system/inspect returns).
std::string render_metrics(const nlohmann::json& inspect);

// `text` escaped for a label value: backslash, double quote and newline.
std::string escape_label_value(const std::string& text);

}  // namespace baetyl::master
