// The hub's two worker threads under QoS 1 load: publishers on both workers and one subscriber,
// whose deliveries from the other worker and whose publishers' commits made by another thread are
// handed over in batches (Connection::wake_soon, Connection::on_committed).
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "baetyl/mqtt/codec.h"
#include "baetyl/testing/ports.h"
#include "baetyl/testing/temp_dir.h"
#include "config.h"
#include "hub_test_support.h"
#include "server.h"

using namespace baetyl::hub;
namespace mqtt = baetyl::mqtt;
namespace t = baetyl::hub::testing;
using namespace std::chrono_literals;

namespace {

HubConfig hub_config(std::uint16_t port, const baetyl::testing::TempDir& dir) {
  return baetyl::config::load_string<HubConfig>(
      baetyl::hub::testing::open_config(port, dir.path().string()), "service.yml");
}

// Sends `count` QoS 1 messages to `topic` ("0", "1", ... as payloads), `window` at a time, and
// checks that the PUBACKs of each window come back in the order of its PUBLISHes.
void publish_in_windows(t::RawClient& pub, const std::string& topic, int count, int window) {
  std::uint16_t next_id = 1;
  for (int sent = 0; sent < count;) {
    std::string burst;
    std::vector<std::uint16_t> ids;
    for (int i = 0; i < window && sent < count; ++i, ++sent) {
      ids.push_back(next_id);
      mqtt::encode(mqtt::Publish{topic, std::to_string(sent), 1, false, false, next_id}, burst);
      if (++next_id == 0) next_id = 1;
    }
    pub.send_raw(burst);
    for (auto id : ids) {
      auto ack = pub.receive(10s);
      ASSERT_TRUE(ack) << topic << ": no PUBACK for packet id " << id;
      const auto* puback = std::get_if<mqtt::Puback>(&*ack);
      ASSERT_NE(puback, nullptr) << topic;
      ASSERT_EQ(puback->packet_id, id) << topic << ": PUBACKs out of order";
    }
  }
}

}  // namespace

// Four publishers, two on each worker, send persisted QoS 1 messages to one subscriber on the
// first worker: the workers commit each other's messages and wake the subscriber across workers.
// Every publisher gets its PUBACKs in the order of its PUBLISHes, and the subscriber each
// publisher's messages in order, none lost.
TEST(HubWorkers, Qos1FromPublishersOnBothWorkersKeepsEachPublishersOrder) {
  baetyl::testing::TempDir dir;
  const std::uint16_t port = baetyl::testing::free_port();
  Hub hub(hub_config(port, dir), spdlog::default_logger(), 2);
  hub.start();
  t::RawClient sub(port);  // connections go to the workers in turn: this one to the first
  ASSERT_EQ(sub.connect(t::make_connect("sub")).return_code, mqtt::ConnectReturnCode::Accepted);
  sub.send(mqtt::Subscribe{1, {{"w/#", 1}}});
  sub.expect<mqtt::Suback>();
  constexpr int kPublishers = 4;
  constexpr int kMessages = 3000;
  std::vector<std::unique_ptr<t::RawClient>> pubs;
  for (int p = 0; p < kPublishers; ++p) {
    pubs.push_back(std::make_unique<t::RawClient>(port));
    ASSERT_EQ(pubs.back()->connect(t::make_connect("pub" + std::to_string(p))).return_code,
              mqtt::ConnectReturnCode::Accepted);
  }
  std::vector<std::jthread> threads;
  for (int p = 0; p < kPublishers; ++p) {
    threads.emplace_back([&, p] {
      publish_in_windows(*pubs[static_cast<std::size_t>(p)], "w/" + std::to_string(p), kMessages,
                         50);
    });
  }
  std::map<std::string, int> next;  // by topic: the payload expected next
  std::string acks;
  for (int received = 0; received < kPublishers * kMessages; ++received) {
    auto packet = sub.receive(10s);
    ASSERT_TRUE(packet) << "after " << received << " messages";
    const auto* p = std::get_if<mqtt::Publish>(&*packet);
    ASSERT_NE(p, nullptr);
    ASSERT_EQ(p->payload, std::to_string(next[p->topic]++)) << p->topic;
    mqtt::encode(mqtt::Puback{p->packet_id}, acks);
    if (acks.size() >= 4 * 20) {
      sub.send_raw(acks);
      acks.clear();
    }
  }
  if (!acks.empty()) sub.send_raw(acks);
  threads.clear();
  for (int p = 0; p < kPublishers; ++p) EXPECT_EQ(next["w/" + std::to_string(p)], kMessages);
  const auto workers = hub.stats()["workers"];
  EXPECT_EQ(workers["count"], 2);
  // The publishers of the second worker woke the subscriber through hand-overs.
  EXPECT_GT(workers["handovers"].get<std::uint64_t>(), 0u);
  EXPECT_GE(workers["handed_over"].get<std::uint64_t>(), workers["handovers"].get<std::uint64_t>());
  hub.stop(5s);
}
