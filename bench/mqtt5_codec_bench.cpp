// Micro-benchmarks of the MQTT 5 side of the codec: the PUBLISH paths of mqtt_codec_bench.cpp
// with protocol version 5, without properties and with the properties a request/response message
// typically carries. Linked into baetyl-mqtt-codec-bench (BENCHMARK_MAIN is in
// mqtt_codec_bench.cpp); docs/benchmarks-mqtt5-codec.md has the figures.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "baetyl/mqtt/codec.h"
#include "baetyl/mqtt/packet.h"
#include "baetyl/mqtt/properties.h"

namespace {

using namespace baetyl::mqtt;

constexpr auto kV5 = ProtocolVersion::V5;

// The QoS 1 PUBLISH of mqtt_codec_bench.cpp; with `properties`, a message expiry, a content
// type, a response topic, correlation data and one user property (65 bytes of properties).
Publish make_publish_v5(std::size_t size, bool properties) {
  Publish p;
  p.topic = "baetyl/sensors/temperature";
  p.payload.assign(size, 'x');
  for (std::size_t i = 0; i < size; ++i) p.payload[i] = static_cast<char>('a' + i % 26);
  p.qos = 1;
  p.packet_id = 1;
  if (properties) {
    p.properties.add(PropertyId::MessageExpiryInterval, 60)
        .add(PropertyId::ContentType, "application/json")
        .add(PropertyId::ResponseTopic, "replies/7f3a")
        .add(PropertyId::CorrelationData, "req-0001")
        .add_user("site", "line-4");
  }
  return p;
}

void set_rates(benchmark::State& state, double bytes_per_iteration) {
  const auto iterations = static_cast<double>(state.iterations());
  state.counters["packets/s"] = benchmark::Counter(iterations, benchmark::Counter::kIsRate);
  state.counters["bytes/s"] = benchmark::Counter(
      iterations * bytes_per_iteration, benchmark::Counter::kIsRate, benchmark::Counter::kIs1024);
}

// Args: payload size, properties (0/1).
void BM_EncodePublishV5(benchmark::State& state) {
  const Packet packet =
      make_publish_v5(static_cast<std::size_t>(state.range(0)), state.range(1) != 0);
  std::string out;
  out.reserve(encoded_size(packet, kV5));
  for (auto _ : state) {
    out.clear();
    encode(packet, out, kV5);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_rates(state, static_cast<double>(out.size()));
}
BENCHMARK(BM_EncodePublishV5)->Args({16, 0})->Args({256, 0})->Args({16, 1})->Args({256, 1});

void BM_DecodePublishV5(benchmark::State& state) {
  const std::string wire =
      encode(make_publish_v5(static_cast<std::size_t>(state.range(0)), state.range(1) != 0), kV5);
  for (auto _ : state) {
    DecodeResult result = decode(wire, {}, kV5);
    if (result.status != DecodeStatus::Ok) {
      state.SkipWithError("decode failed");
      break;
    }
    benchmark::DoNotOptimize(result);
  }
  set_rates(state, static_cast<double>(wire.size()));
}
BENCHMARK(BM_DecodePublishV5)->Args({16, 0})->Args({256, 0})->Args({16, 1})->Args({256, 1});

// The broker's path: fixed header, PublishView (properties checked, kept as bytes) and the
// re-encoding with encode_publish_v5() from those bytes.
void BM_DecodePublishViewV5(benchmark::State& state) {
  const std::string wire =
      encode(make_publish_v5(static_cast<std::size_t>(state.range(0)), state.range(1) != 0), kV5);
  for (auto _ : state) {
    const HeaderResult head = decode_fixed_header(wire, {}, kV5);
    PublishView view;
    if (head.status != DecodeStatus::Ok ||
        !decode_publish(wire, head.header, view, kV5).message.empty()) {
      state.SkipWithError("decode failed");
      break;
    }
    benchmark::DoNotOptimize(view);
  }
  set_rates(state, static_cast<double>(wire.size()));
}
BENCHMARK(BM_DecodePublishViewV5)->Args({16, 0})->Args({256, 0})->Args({16, 1})->Args({256, 1});

void BM_EncodePublishPartsV5(benchmark::State& state) {
  const Publish p = make_publish_v5(static_cast<std::size_t>(state.range(0)), state.range(1) != 0);
  std::string properties;
  encode_properties(p.properties, properties);
  std::string out;
  for (auto _ : state) {
    out.clear();
    encode_publish_v5(out, p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id, properties);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_rates(state, static_cast<double>(out.size()));
}
BENCHMARK(BM_EncodePublishPartsV5)->Args({16, 0})->Args({256, 0})->Args({16, 1})->Args({256, 1});

}  // namespace
