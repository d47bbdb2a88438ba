// Micro-benchmarks of the SQL function runtime's dialect (modules/function-sql/src/sql):
// the work behind one Call, without gRPC.
//
//   baetyl-function-sql-bench [--benchmark_filter=REGEX]
#include <benchmark/benchmark.h>

#include <string>

#include "sql/sql.h"

namespace {

using baetyl::sql::Json;
using baetyl::sql::Message;
using baetyl::sql::Query;

constexpr const char* kWalkthrough = "select qos() as qos, topic() as topic, * where id < 10";
const Message kMessage{.qos = 1, .topic = "t", .timestamp = 1795635033};

// Parse the payload, evaluate, serialise: one message through the walkthrough query.
void BM_RunWalkthrough(benchmark::State& state) {
  Query query = Query::parse(kWalkthrough);
  std::string payload = state.range(0) ? R"({"id":20})" : R"({"id":1})";
  for (auto _ : state) benchmark::DoNotOptimize(query.run(payload, kMessage));
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(state.range(0) ? "filtered" : "passed");
}
BENCHMARK(BM_RunWalkthrough)->Arg(0)->Arg(1);

// A sensor reading of about 200 bytes with a nested object and an array.
void BM_RunSensorQuery(benchmark::State& state) {
  Query query = Query::parse(
      "select upper(name) as name, round(temp * 1.8 + 32, 1) as fahrenheit, loc.site, "
      "readings[0] as first, topic(2) as line from t "
      "where temp between -40 and 85 and name like 'sensor-%' and status in ('ok', 'warn')");
  std::string payload = R"({"name":"sensor-17","temp":21.5,"status":"ok","seq":123456,)"
                        R"("loc":{"site":"plant-3","line":4},"readings":[21.4,21.5,21.7,21.6],)"
                        R"("fw":"1.4.2","battery":0.87,"online":true})";
  Message message{.qos = 1, .topic = "plant/line-4/temp"};
  for (auto _ : state) benchmark::DoNotOptimize(query.run(payload, message));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RunSensorQuery);

// Evaluation alone, on an already parsed payload.
void BM_EvaluateWalkthrough(benchmark::State& state) {
  Query query = Query::parse(kWalkthrough);
  Json payload = Json::parse(R"({"id":1})");
  for (auto _ : state) benchmark::DoNotOptimize(query.evaluate(payload, kMessage));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EvaluateWalkthrough);

void BM_ParseWalkthrough(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(Query::parse(kWalkthrough));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseWalkthrough);

}  // namespace

BENCHMARK_MAIN();
