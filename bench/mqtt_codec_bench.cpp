// Micro-benchmarks of the MQTT codec (sdk/src/mqtt/codec.cpp) and topic matching (topic.cpp).
//
//   baetyl-mqtt-codec-bench [--benchmark_filter=REGEX] [--benchmark_min_time=SECONDS]
//
// Every benchmark reports packets/s (or matches/s); the PUBLISH ones also report bytes/s of wire
// data (fixed header included).
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "baetyl/mqtt/codec.h"
#include "baetyl/mqtt/packet.h"
#include "baetyl/mqtt/topic.h"

namespace {

using namespace baetyl::mqtt;

constexpr std::size_t kStreamPackets = 1000;

// A QoS 1 PUBLISH as a module sends it to the hub: a three-level topic and `size` payload bytes.
Publish make_publish(std::size_t size, std::uint16_t packet_id = 1) {
  Publish p;
  p.topic = "baetyl/sensors/temperature";
  p.payload.assign(size, 'x');
  for (std::size_t i = 0; i < size; ++i) p.payload[i] = static_cast<char>('a' + i % 26);
  p.qos = 1;
  p.packet_id = packet_id;
  return p;
}

void set_rates(benchmark::State& state, double packets_per_iteration, double bytes_per_iteration) {
  const auto iterations = static_cast<double>(state.iterations());
  state.counters["packets/s"] =
      benchmark::Counter(iterations * packets_per_iteration, benchmark::Counter::kIsRate);
  if (bytes_per_iteration > 0) {
    state.counters["bytes/s"] = benchmark::Counter(
        iterations * bytes_per_iteration, benchmark::Counter::kIsRate, benchmark::Counter::kIs1024);
  }
}

// encode() into a reused buffer, the way the client's write loop batches packets.
void BM_EncodePublish(benchmark::State& state) {
  const Packet packet = make_publish(static_cast<std::size_t>(state.range(0)));
  const std::size_t wire_size = encoded_size(packet);
  std::string out;
  out.reserve(wire_size);
  for (auto _ : state) {
    out.clear();
    encode(packet, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_rates(state, 1, static_cast<double>(wire_size));
}
BENCHMARK(BM_EncodePublish)->Arg(16)->Arg(256)->Arg(4 << 10)->Arg(64 << 10);

// decode() of one complete PUBLISH: header, validation (UTF-8 topic) and copies into the Packet.
void BM_DecodePublish(benchmark::State& state) {
  const std::string wire = encode(make_publish(static_cast<std::size_t>(state.range(0))));
  for (auto _ : state) {
    DecodeResult result = decode(wire);
    if (result.status != DecodeStatus::Ok) {
      state.SkipWithError("decode failed");
      break;
    }
    benchmark::DoNotOptimize(result);
  }
  set_rates(state, 1, static_cast<double>(wire.size()));
}
BENCHMARK(BM_DecodePublish)->Arg(16)->Arg(256)->Arg(4 << 10)->Arg(64 << 10);

// decode() of a typical CONNECT: client id, credentials and a will.
void BM_DecodeConnect(benchmark::State& state) {
  Connect c;
  c.client_id = "baetyl-function-python-7f3a9c";
  c.clean_session = false;
  c.keep_alive = 60;
  c.username = "function-manager";
  c.password = "a-password-of-typical-length";
  c.will = Will{"baetyl/status/function-manager", "offline", 1, true};
  const std::string wire = encode(c);
  for (auto _ : state) {
    DecodeResult result = decode(wire);
    if (result.status != DecodeStatus::Ok) {
      state.SkipWithError("decode failed");
      break;
    }
    benchmark::DoNotOptimize(result);
  }
  set_rates(state, 1, static_cast<double>(wire.size()));
}
BENCHMARK(BM_DecodeConnect);

// 1000 back-to-back QoS 1 PUBLISH packets in one buffer, decoded front to back as a reader that
// received them in one go would (the client and the hub decode from a string_view that way).
void BM_DecodePublishStream(benchmark::State& state) {
  std::string stream;
  for (std::size_t i = 0; i < kStreamPackets; ++i) {
    encode(
        make_publish(static_cast<std::size_t>(state.range(0)), static_cast<std::uint16_t>(i + 1)),
        stream);
  }
  const std::string_view data(stream);
  for (auto _ : state) {
    std::size_t offset = 0;
    std::size_t count = 0;
    while (offset < data.size()) {
      DecodeResult result = decode(data.substr(offset));
      if (result.status != DecodeStatus::Ok) break;
      offset += result.consumed;
      ++count;
      benchmark::DoNotOptimize(result);
    }
    if (count != kStreamPackets) {
      state.SkipWithError("stream decode stopped early");
      break;
    }
  }
  set_rates(state, kStreamPackets, static_cast<double>(stream.size()));
}
BENCHMARK(BM_DecodePublishStream)->Arg(16)->Arg(256);

// encode_publish() from the parts, the way the hub writes one message to each subscriber.
void BM_EncodePublishParts(benchmark::State& state) {
  const Publish p = make_publish(static_cast<std::size_t>(state.range(0)));
  std::string out;
  out.reserve(encoded_size(p));
  for (auto _ : state) {
    out.clear();
    encode_publish(out, p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_rates(state, 1, static_cast<double>(out.size()));
}
BENCHMARK(BM_EncodePublishParts)->Arg(16)->Arg(256)->Arg(4 << 10);

// decode_fixed_header() + decode_publish() into a PublishView: the hub's read path, no copies.
void BM_DecodePublishView(benchmark::State& state) {
  const std::string wire = encode(make_publish(static_cast<std::size_t>(state.range(0))));
  for (auto _ : state) {
    const HeaderResult head = decode_fixed_header(wire);
    PublishView view;
    if (head.status != DecodeStatus::Ok || !decode_publish(wire, head.header, view).empty()) {
      state.SkipWithError("decode failed");
      break;
    }
    benchmark::DoNotOptimize(view);
  }
  set_rates(state, 1, static_cast<double>(wire.size()));
}
BENCHMARK(BM_DecodePublishView)->Arg(16)->Arg(256)->Arg(4 << 10);

// topic_matches() for the filters a hub evaluates on every PUBLISH.
struct MatchCase {
  const char* name;
  const char* filter;
  const char* topic;
  bool expected;
};

constexpr MatchCase kMatchCases[] = {
    {"exact", "factory/line1/sensor7/temperature", "factory/line1/sensor7/temperature", true},
    {"plus", "factory/+/sensor7/temperature", "factory/line1/sensor7/temperature", true},
    {"plus_plus", "factory/+/+/temperature", "factory/line1/sensor7/temperature", true},
    {"hash", "factory/#", "factory/line1/sensor7/temperature", true},
    {"hash_root", "#", "factory/line1/sensor7/temperature", true},
    {"no_match_last_level", "factory/line1/sensor7/humidity", "factory/line1/sensor7/temperature",
     false},
    {"no_match_first_level", "office/#", "factory/line1/sensor7/temperature", false},
    {"no_match_plus", "factory/+/sensor8/#", "factory/line1/sensor7/temperature", false},
    {"dollar_vs_hash", "#", "$SYS/broker/uptime", false},
};

void BM_TopicMatches(benchmark::State& state, MatchCase c) {
  const std::string filter = c.filter;
  const std::string topic = c.topic;
  if (topic_matches(filter, topic) != c.expected) {
    state.SkipWithError("unexpected match result");
    return;
  }
  state.SetLabel("'" + filter + "' vs '" + topic + "'");
  for (auto _ : state) {
    benchmark::DoNotOptimize(topic_matches(filter, topic));
  }
  state.counters["matches/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

[[maybe_unused]] const bool kRegistered = [] {
  for (const auto& c : kMatchCases) {
    benchmark::RegisterBenchmark((std::string("BM_TopicMatches/") + c.name).c_str(),
                                 BM_TopicMatches, c);
  }
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
