// The inspect document as Prometheus' text exposition format.
#include "stats/prometheus.h"

#include <fstream>
#include <regex>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace baetyl::master {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

nlohmann::json sample() {
  return nlohmann::json::parse(R"({
    "software": {"bin_version": "1.2.3", "mode": "native", "conf_version": "v7"},
    "hardware": {"mem_stats": {"total": 1000, "used": 400, "swap_total": 10, "swap_used": 1},
                 "cpu_stats": {"used_percent": 25.0},
                 "disk_stats": {"path": "/work", "total": 5000, "used": 100}},
    "services": [
      {"name": "hub", "image": "baetyl-hub", "instances": [
        {"name": "hub", "status": "running", "start_time": "2026-12-07T00:00:10.5Z",
         "restart_count": 2, "process": {"id": 42, "name": "hub"},
         "cpu_stats": {"used_percent": 50}, "mem_stats": {"used": 2048},
         "connections": 3, "sessions": 4, "subscriptions": 5, "retained": 6,
         "messages": {"in": 100, "out": 90, "dropped": 7, "dropped_qos1": 8, "dropped_qos2": 4, "paged": 9,
                      "in_qos": {"0": 60, "1": 30, "2": 10}, "out_qos": {"0": 50, "1": 40, "2": 0}},
         "denied": {"connect": 1, "publish": 2, "reserved": 3, "subscribe": 4},
         "store": {"backlog": 11, "commits": 12,
                   "commit_duration_seconds": {"le": [0.001, 0.01], "buckets": [10, 12],
                                               "sum": 0.0125, "count": 12}},
         "rules": [{"source": "a/#", "target": "b\"x", "messages": 13}]}]},
      {"name": "bridge", "instances": [
        {"name": "bridge", "status": "restarting", "restart_count": 1,
         "rules": [{"remote": "cloud",
                    "hub_client": {"connected": true, "reconnects": 2},
                    "remote_client": {"connected": false, "reconnects": 5},
                    "hub_to_remote": {"forwarded": 20, "inflight": 1},
                    "remote_to_hub": {"forwarded": 30, "inflight": 0}}]}]},
      {"name": "function-manager", "instances": [
        {"name": "function-manager", "status": "running",
         "functions": [{"name": "filter", "calls": 5, "errors": 2, "in_flight": 1,
                        "call_duration_seconds": {"le": [0.0005, 0.0025, 1], "buckets": [1, 4, 5],
                                                  "sum": 0.5, "count": 5}}]}]},
      {"name": "timer", "instances": [
        {"name": "timer", "status": "running",
         "timer": {"ticks": 42, "publish_failures": 1, "last_tick": 1796601610.25}}]}
    ]})");
}

TEST(PrometheusMetrics, InstancesHostAndMasterInfo) {
  const std::string text = render_metrics(sample());
  EXPECT_THAT(text, HasSubstr("# TYPE baetyl_instance_up gauge\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_instance_up{service=\"hub\",instance=\"hub\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_instance_up{service=\"bridge\",instance=\"bridge\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_instance_state{service=\"bridge\",instance=\"bridge\","
                              "state=\"restarting\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE baetyl_instance_restarts_total counter\n"));
  EXPECT_THAT(text,
              HasSubstr("baetyl_instance_restarts_total{service=\"hub\",instance=\"hub\"} 2\n"));
  EXPECT_THAT(text,
              HasSubstr("baetyl_instance_cpu_usage_ratio{service=\"hub\",instance=\"hub\"} 0.5\n"));
  EXPECT_THAT(text,
              HasSubstr("baetyl_instance_memory_bytes{service=\"hub\",instance=\"hub\"} 2048\n"));
  EXPECT_THAT(text,
              HasSubstr("baetyl_instance_start_time_seconds{service=\"hub\",instance=\"hub\"} "
                        "1796601610.5\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_host_memory_used_bytes 400\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_host_cpu_usage_ratio 0.25\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_host_disk_total_bytes{path=\"/work\"} 5000\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_master_info{version=\"1.2.3\",mode=\"native\","
                              "conf_version=\"v7\"} 1\n"));
}

TEST(PrometheusMetrics, TheHubsReportedStats) {
  const std::string text = render_metrics(sample());
  const std::string hub = "{service=\"hub\",instance=\"hub\"";
  EXPECT_THAT(text, HasSubstr("baetyl_hub_messages_received_total" + hub + ",qos=\"0\"} 60\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_hub_messages_received_total" + hub + ",qos=\"1\"} 30\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_hub_messages_received_total" + hub + ",qos=\"2\"} 10\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_hub_messages_sent_total" + hub + ",qos=\"1\"} 40\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_hub_messages_sent_total" + hub + ",qos=\"2\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_hub_messages_dropped_total" + hub + ",qos=\"0\"} 7\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_hub_messages_dropped_total" + hub + ",qos=\"1\"} 8\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_hub_messages_dropped_total" + hub + ",qos=\"2\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_hub_connections" + hub + "} 3\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_hub_store_backlog_messages" + hub + "} 11\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_hub_denied_total" + hub + ",action=\"reserved\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE baetyl_hub_store_commit_duration_seconds histogram\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_hub_store_commit_duration_seconds_bucket" + hub +
                              ",le=\"0.001\"} 10\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_hub_store_commit_duration_seconds_bucket" + hub +
                              ",le=\"+Inf\"} 12\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_hub_store_commit_duration_seconds_sum" + hub + "} 0.0125\n"));
  // Label values are escaped.
  EXPECT_THAT(text, HasSubstr("baetyl_hub_route_messages_total" + hub +
                              ",source=\"a/#\",target=\"b\\\"x\"} 13\n"));
  // One HELP and TYPE per family, even with several samples.
  const std::string type = "# TYPE baetyl_hub_messages_dropped_total counter\n";
  EXPECT_EQ(text.find(type), text.rfind(type));
}

TEST(PrometheusMetrics, RemoteMqttRulesAndNothingForWhatIsNotReported) {
  const std::string text = render_metrics(sample());
  const std::string rule = "{service=\"bridge\",instance=\"bridge\",rule=\"0\",remote=\"cloud\"";
  EXPECT_THAT(text, HasSubstr("baetyl_remote_mqtt_messages_forwarded_total" + rule +
                              ",direction=\"hub_to_remote\"} 20\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_remote_mqtt_inflight_messages" + rule +
                              ",direction=\"hub_to_remote\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("baetyl_remote_mqtt_reconnects_total" + rule + ",link=\"remote\"} 5\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_remote_mqtt_connected" + rule + ",link=\"hub\"} 1\n"));
  // The bridge reports no hub counters, and a restarting instance no start time.
  EXPECT_THAT(text, Not(HasSubstr("baetyl_hub_connections{service=\"bridge\"")));
  EXPECT_THAT(text, Not(HasSubstr("baetyl_instance_start_time_seconds{service=\"bridge\"")));
}

TEST(PrometheusMetrics, TheFunctionManagersCallsPerFunction) {
  const std::string text = render_metrics(sample());
  const std::string at =
      "{service=\"function-manager\",instance=\"function-manager\",function=\"filter\"";
  EXPECT_THAT(text, HasSubstr("# TYPE baetyl_function_calls_total counter\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_function_calls_total" + at + "} 5\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_function_errors_total" + at + "} 2\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE baetyl_function_in_flight gauge\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_function_in_flight" + at + "} 1\n"));
  // A histogram: one HELP and TYPE, cumulative buckets in order up to +Inf, then sum and count.
  const std::string family = "baetyl_function_call_duration_seconds";
  EXPECT_THAT(text, HasSubstr("# TYPE " + family + " histogram\n" + family + "_bucket" + at +
                              ",le=\"0.0005\"} 1\n" + family + "_bucket" + at +
                              ",le=\"0.0025\"} 4\n" + family + "_bucket" + at + ",le=\"1\"} 5\n" +
                              family + "_bucket" + at + ",le=\"+Inf\"} 5\n" + family + "_sum" + at +
                              "} 0.5\n" + family + "_count" + at + "} 5\n"));
}

TEST(PrometheusMetrics, TheTimersTicks) {
  const std::string text = render_metrics(sample());
  const std::string at = "{service=\"timer\",instance=\"timer\"}";
  EXPECT_THAT(text, HasSubstr("baetyl_timer_ticks_total" + at + " 42\n"));
  EXPECT_THAT(text, HasSubstr("baetyl_timer_publish_failures_total" + at + " 1\n"));
  EXPECT_THAT(text,
              HasSubstr("baetyl_timer_last_tick_timestamp_seconds" + at + " 1796601610.25\n"));
}

TEST(PrometheusMetrics, AMalformedHistogramIsLeftOut) {
  auto document = sample();
  auto& function = document["services"][2]["instances"][0]["functions"][0];
  function["call_duration_seconds"]["buckets"] = {1, 4};  // fewer counts than bounds
  const std::string text = render_metrics(document);
  EXPECT_THAT(text, Not(HasSubstr("baetyl_function_call_duration_seconds")));
  EXPECT_THAT(text, HasSubstr("baetyl_function_calls_total{"));
}

TEST(PrometheusMetrics, AnEmptyDocumentStillHasTheMasterInfo) {
  const std::string text = render_metrics(nlohmann::json::object());
  EXPECT_THAT(text, HasSubstr("baetyl_master_info{version=\"\",mode=\"\",conf_version=\"\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("baetyl_instance_up")));
}

// Every metric docs/grafana-dashboard.json queries is one the endpoint exports.
void collect_queries(const nlohmann::json& node, std::vector<std::string>& out) {
  if (node.is_object()) {
    for (const auto& [key, value] : node.items()) {
      if ((key == "expr" || key == "query") && value.is_string()) out.push_back(value);
      collect_queries(value, out);
    }
  } else if (node.is_array()) {
    for (const auto& value : node) collect_queries(value, out);
  }
}

TEST(PrometheusMetrics, TheGrafanaDashboardQueriesOnlyExportedSeries) {
  std::ifstream in(std::string(BAETYL_SOURCE_DIR) + "/docs/grafana-dashboard.json");
  ASSERT_TRUE(in) << "docs/grafana-dashboard.json is missing";
  const auto dashboard = nlohmann::json::parse(in, nullptr, false);
  ASSERT_FALSE(dashboard.is_discarded()) << "docs/grafana-dashboard.json is not valid JSON";
  ASSERT_TRUE(dashboard.contains("panels"));

  const std::string exported = render_metrics(sample());
  std::vector<std::string> queries;
  collect_queries(dashboard, queries);
  ASSERT_GE(queries.size(), dashboard["panels"].size());
  const std::regex metric("baetyl_[a-z0-9_]+");
  std::set<std::string> used;
  for (const auto& query : queries) {
    for (std::sregex_iterator it(query.begin(), query.end(), metric), end; it != end; ++it) {
      used.insert(it->str());
    }
  }
  EXPECT_GE(used.size(), 15u);
  for (const auto& name : used) {
    // A histogram's samples are named after its family: x_bucket, x_sum, x_count.
    std::string family = name;
    for (const std::string suffix : {"_bucket", "_sum", "_count"}) {
      if (family.ends_with(suffix) &&
          exported.find("# TYPE " + family.substr(0, family.size() - suffix.size()) +
                        " histogram\n") != std::string::npos) {
        family.resize(family.size() - suffix.size());
      }
    }
    EXPECT_THAT(exported, HasSubstr("# TYPE " + family + " ")) << name << " is not exported";
  }
  for (const auto& panel : dashboard["panels"]) {
    EXPECT_FALSE(panel.value("targets", nlohmann::json::array()).empty()) << panel.dump();
  }
}

}  // namespace
}  // namespace baetyl::master
