// Unit tests of baetyl-hub: configuration, topic trie, ACL and the SQLite store.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <future>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include "acl.h"
#include "baetyl/mqtt/codec.h"
#include "broker.h"
#include "connection.h"
#include "egress_queue.h"
#include "hub_test_support.h"
#include "server.h"
#include "workers.h"
#include "baetyl/testing/config_error.h"
#include "baetyl/testing/ports.h"
#include "baetyl/testing/temp_dir.h"
#include "config.h"
#include "sharded_shared_mutex.h"
#include "store.h"
#include "topic_tree.h"

using namespace baetyl::hub;
namespace mqtt = baetyl::mqtt;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

HubConfig load(const std::string& yaml) {
  return baetyl::config::load_string<HubConfig>(yaml, "service.yml");
}

std::string error_of(const std::string& yaml) {
  return baetyl::testing::config_error([&] { load(yaml); });
}

// The numeric keys of message: (durations in ms): what each reads, its default (the docs') and
// the value HubConfig.EveryKeyIsRead gives it.
struct MessageKey {
  const char* key;
  std::function<std::uint64_t(const MessageConfig&)> read;
  std::uint64_t default_value, value_read;
};

constexpr std::uint64_t ms(std::chrono::milliseconds d) { return d.count(); }

using M = MessageConfig;
const std::vector<MessageKey> kMessageKeys = {
    {"length.max", [](const M& m) { return m.length_max.bytes; }, 32u * 1024, 4u << 20},
    {"ingress.qos0.buffer.size", [](const M& m) { return m.ingress.qos0_buffer_size; }, 10000, 5},
    {"ingress.qos1.buffer.size", [](const M& m) { return m.ingress.qos1_buffer_size; }, 100, 6},
    {"ingress.qos1.batch.max", [](const M& m) { return m.ingress.qos1_batch_max; }, 50, 7},
    {"ingress.qos1.cleanup.retention",
     [](const M& m) { return ms(m.ingress.qos1_cleanup_retention); }, ms(48h), ms(1h)},
    {"ingress.qos1.cleanup.interval",
     [](const M& m) { return ms(m.ingress.qos1_cleanup_interval); }, ms(1min), ms(2s)},
    {"egress.qos0.buffer.size", [](const M& m) { return m.egress.qos0_buffer_size; }, 10000, 8},
    {"egress.qos0.buffer.bytes", [](const M& m) { return m.egress.qos0_buffer_bytes.bytes; },
     8u << 20, 64u << 10},
    {"egress.qos1.buffer.size", [](const M& m) { return m.egress.qos1_buffer_size; }, 100, 9},
    {"egress.qos1.queue.size", [](const M& m) { return m.egress.qos1_queue_size; }, 1000, 13},
    {"egress.qos1.queue.bytes", [](const M& m) { return m.egress.qos1_queue_bytes.bytes; },
     16u << 20, 2u << 20},
    {"egress.qos1.batch.max", [](const M& m) { return m.egress.qos1_batch_max; }, 50, 10},
    {"egress.qos1.retry.interval", [](const M& m) { return ms(m.egress.qos1_retry_interval); },
     ms(20s), ms(3s)},
    {"offset.buffer.size", [](const M& m) { return m.offset.buffer_size; }, 10000, 11},
    {"offset.batch.max", [](const M& m) { return m.offset.batch_max; }, 100, 12},
};

std::set<std::string> matches(const TopicTree<std::string>& tree, const std::string& topic) {
  std::set<std::string> out;
  tree.match(topic, [&](const std::string& key, std::uint8_t qos) {
    out.insert(key + ":" + std::to_string(qos));
  });
  return out;
}

}  // namespace

TEST(HubConfig, DefaultsFromTheDocs) {
  auto c = load("listen: [tcp://0.0.0.0:1883]\n");
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].scheme, "tcp");
  EXPECT_EQ(c.listeners[0].host, "0.0.0.0");
  EXPECT_EQ(c.listeners[0].port, 1883);
  for (const auto& k : kMessageKeys) EXPECT_EQ(k.read(c.message), k.default_value) << k.key;
  EXPECT_FALSE(c.status.logging_enable);
  EXPECT_EQ(c.status.logging_interval, 60s);
  EXPECT_EQ(c.storage_dir, "var/db/baetyl/data");
  EXPECT_EQ(c.shutdown_timeout, 10min);
  EXPECT_EQ(c.logger.level, "info");
  EXPECT_FALSE(c.certificate.use_username_as_identity);
}

TEST(HubConfig, EveryKeyIsRead) {
  const std::string yaml = R"(
listen: [tcp://0.0.0.0:1883, 'ssl://[::1]:8883', 'ws://:8080/mqtt', 'wss://localhost:8884/mqtt']
certificate: {ca: ca.pem, key: server.key, cert: server.pem, useUsernameAsIdentity: true}
principals:
  - username: test
    password: hahaha
    permissions:
      - action: pub
        permit: ['#']
        deny: [secret/#]
      - action: sub
        permit: [a/+, b/#]
  - username: two-way-tls
    permissions: [{action: sub, permit: ['tls/#']}]
subscriptions:
  - source: {topic: t, qos: 1}
    target: {topic: t/topic, qos: 1}
message:
  length: {max: 4m}
  ingress:
    qos0: {buffer: {size: 5}}
    qos1: {buffer: {size: 6}, batch: {max: 7}, cleanup: {retention: 1h, interval: 2s}}
  egress:
    qos0: {buffer: {size: 8, bytes: 64k}}
    qos1: {buffer: {size: 9}, queue: {size: 13, bytes: 2m}, batch: {max: 10}, retry: {interval: 3s}}
  offset: {buffer: {size: 11}, batch: {max: 12}}
status: {logging: {enable: true, interval: 5s}}
storage: {dir: data}
shutdown: {timeout: 30s}
logger: {level: debug}
)";
  std::vector<std::string> unknown;
  auto c = baetyl::config::read_document<HubConfig>(baetyl::config::parse_yaml(yaml, "s.yml"),
                                                    "s.yml", &unknown);
  EXPECT_TRUE(unknown.empty()) << unknown.front();
  ASSERT_EQ(c.listeners.size(), 4u);
  EXPECT_EQ(c.listeners[1].host, "::1");
  EXPECT_EQ(c.listeners[2].host, "");
  EXPECT_EQ(c.listeners[2].path, "/mqtt");
  EXPECT_TRUE(c.listeners[3].tls());
  EXPECT_TRUE(c.certificate.use_username_as_identity);
  EXPECT_EQ(c.principals[0].permissions[0].deny, std::vector<std::string>{"secret/#"});
  EXPECT_EQ(c.subscriptions[0].target.qos, 1);
  for (const auto& k : kMessageKeys) EXPECT_EQ(k.read(c.message), k.value_read) << k.key;
  EXPECT_TRUE(c.status.logging_enable);
  EXPECT_EQ(c.status.logging_interval, 5s);
  EXPECT_EQ(c.storage_dir, "data");
  EXPECT_EQ(c.shutdown_timeout, 30s);
  EXPECT_EQ(c.logger.level, "debug");
}

TEST(HubConfig, RejectsBadValuesWithFileAndKey) {
  // Each text and what its error names; every text but the first two listens on tcp://:1.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"{}", "service.yml: listen: is required"},
      {"listen: [udp://:1]", "listen[0]: 'udp://:1': unknown scheme"},
      {"listen: [tcp://:99999]", "invalid port"},
      {"listen: [ssl://:8883]", "certificate: cert and key are required"},
      {"principals: [{username: a, permissions: [{action: publish, permit: [x]}]}]",
       "principals[0].permissions[0].action: 'publish' is not one of: pub, sub"},
      {"principals: [{username: a, permissions: [{action: sub, permit: [a/#/b]}]}]",
       "principals[0].permissions[0].permit[0]"},
      {"principals: [{username: a}, {username: a}]", "principals[1].username: 'a' is listed twice"},
      {"message: {length: {max: 300m}}", "message.length.max"},
      {"message: {egress: {qos1: {retry: {interval: 5}}}}", "message.egress.qos1.retry.interval"},
      {"message: {egress: {qos0: {buffer: {bytes: 0}}}}", "message.egress.qos0.buffer.bytes"},
      {"message: {egress: {qos1: {queue: {size: 0}}}}", "message.egress.qos1.queue.size"},
      {"message: {egress: {qos1: {queue: {bytes: 1x}}}}", "message.egress.qos1.queue.bytes"},
      {"subscriptions: [{source: {topic: a, qos: 3}, target: {topic: b}}]",
       "subscriptions[0].source.qos"},
      {"subscriptions: [{source: {topic: a}, target: {topic: b/+}}]",
       "subscriptions[0].target.topic"},
      {"subscriptions: [{source: {topic: a}, target: {topic: $SYS/a}}]",
       "subscriptions[0].target.topic: '$SYS/a': $SYS topics are reserved"},
  };
  for (std::size_t i = 0; i < bad.size(); ++i) {
    const auto& [text, error] = bad[i];
    const std::string yaml = i < 4 ? text : "listen: [tcp://:1]\n" + text;
    EXPECT_NE(error_of(yaml).find(error), std::string::npos) << yaml;
  }
  // '$' topics may be route targets, but $SYS is the hub's (above).
  EXPECT_EQ(error_of("listen: [tcp://:1]\nsubscriptions: [{source: {topic: a}, target: {topic: "
                     "$baidu/a}}]"),
            "");
}

TEST(HubConfig, RoutesWithDuplicatesOrCyclesAreRejected) {
  auto route = [](std::string s, std::string t) { return Route{{s, 0}, {t, 0}}; };
  EXPECT_EQ(check_routes({route("t", "t/topic")}), "");
  EXPECT_EQ(check_routes({route("a", "b"), route("b", "c")}), "");
  EXPECT_NE(check_routes({route("a", "b"), route("a", "b")}).find("duplicates"), std::string::npos);
  EXPECT_NE(check_routes({route("a/#", "a/b")}).find("cycle"), std::string::npos);
  EXPECT_NE(check_routes({route("a", "b"), route("b", "c"), route("+", "a")}).find("cycle"),
            std::string::npos);
  EXPECT_NE(error_of("listen: [tcp://:1]\nsubscriptions: [{source: {topic: a}, target: {topic: b}},"
                     " {source: {topic: b}, target: {topic: a}}]")
                .find("subscriptions: routes form a cycle"),
            std::string::npos);
}

TEST(TopicTree, MatchesWildcardsAndDollarTopics) {
  TopicTree<std::string> tree;
  EXPECT_TRUE(tree.insert("a/b", "exact", 1));
  EXPECT_TRUE(tree.insert("a/+", "plus", 0));
  EXPECT_TRUE(tree.insert("a/#", "hash", 2));
  EXPECT_TRUE(tree.insert("#", "all", 0));
  EXPECT_TRUE(tree.insert("+/b", "first", 1));
  EXPECT_TRUE(tree.insert("$SYS/#", "sys", 0));
  EXPECT_FALSE(tree.insert("a/b", "exact", 2));  // replaced
  EXPECT_EQ(tree.size(), 6u);
  EXPECT_EQ(matches(tree, "a/b"),
            (std::set<std::string>{"exact:2", "plus:0", "hash:2", "all:0", "first:1"}));
  EXPECT_EQ(matches(tree, "a"), (std::set<std::string>{"hash:2", "all:0"}));
  EXPECT_EQ(matches(tree, "a/"), (std::set<std::string>{"plus:0", "hash:2", "all:0"}));
  EXPECT_EQ(matches(tree, "a/b/c"), (std::set<std::string>{"hash:2", "all:0"}));
  EXPECT_EQ(matches(tree, "$SYS/x"), (std::set<std::string>{"sys:0"}));
  EXPECT_EQ(matches(tree, "x/b"), (std::set<std::string>{"all:0", "first:1"}));
  EXPECT_TRUE(tree.erase("#", "all"));
  EXPECT_FALSE(tree.erase("#", "all"));
  EXPECT_FALSE(tree.erase("a/b/c", "exact"));
  EXPECT_EQ(matches(tree, "x/b"), (std::set<std::string>{"first:1"}));
  for (auto [f, k] : {std::pair{"a/b", "exact"},
                      {"a/+", "plus"},
                      {"a/#", "hash"},
                      {"+/b", "first"},
                      {"$SYS/#", "sys"}}) {
    EXPECT_TRUE(tree.erase(f, k));
  }
  EXPECT_TRUE(tree.empty());
  EXPECT_TRUE(matches(tree, "a/b").empty());
}

TEST(TopicTree, ManySubscribersOnOneFilter) {
  TopicTree<int> tree;
  for (int i = 0; i < 1000; ++i) tree.insert("s/+/x", i, static_cast<std::uint8_t>(i % 3));
  int count = 0;
  tree.match("s/1/x", [&](int, std::uint8_t) { ++count; });
  EXPECT_EQ(count, 1000);
  for (int i = 0; i < 1000; i += 2) tree.erase("s/+/x", i);
  count = 0;
  tree.match("s/1/x", [&](int key, std::uint8_t) {
    EXPECT_EQ(key % 2, 1);
    ++count;
  });
  EXPECT_EQ(count, 500);
}

TEST(Acl, FilterCovers) {
  EXPECT_TRUE(filter_covers("#", "a/b/c"));
  EXPECT_TRUE(filter_covers("#", "+/#"));
  EXPECT_TRUE(filter_covers("a/#", "a"));
  EXPECT_TRUE(filter_covers("a/+", "a/b"));
  EXPECT_TRUE(filter_covers("a/+", "a/+"));
  EXPECT_FALSE(filter_covers("a/+", "a/#"));
  EXPECT_FALSE(filter_covers("a/b", "a/+"));
  EXPECT_FALSE(filter_covers("a/+", "a/b/c"));
  EXPECT_FALSE(filter_covers("a", "a/b"));
}

TEST(Acl, PermitAndDeny) {
  Principal p{
      "u",
      "pw",
      {{"pub", {"#"}, {"secret/#"}}, {"sub", {"sensor/+/temp", "public/#"}, {"public/private"}}}};
  Auth auth({p, Principal{"cert", "", {{"pub", {"tls/#"}, {}}}}});
  auto a = auth.authenticate("u", "pw");
  ASSERT_TRUE(a);
  EXPECT_FALSE(auth.authenticate("u", "wrong"));
  EXPECT_FALSE(auth.authenticate("u", ""));
  EXPECT_FALSE(auth.authenticate("nobody", "pw"));
  EXPECT_FALSE(auth.authenticate_certificate("u"));  // has a password
  EXPECT_FALSE(auth.authenticate("cert", "x"));
  auto c = auth.authenticate_certificate("cert");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->can_publish("tls/a"));
  EXPECT_FALSE(c->can_publish("other"));
  EXPECT_FALSE(c->can_subscribe("tls/a"));

  EXPECT_TRUE(a->can_publish("any/topic"));
  EXPECT_FALSE(a->can_publish("secret"));
  EXPECT_FALSE(a->can_publish("secret/x"));
  EXPECT_EQ(a->check_subscribe("sensor/1/temp"), SubscribeGrant::Granted);
  EXPECT_EQ(a->check_subscribe("sensor/+/temp"), SubscribeGrant::Granted);
  // Partly permitted: granted, and what is not permitted is not delivered.
  EXPECT_EQ(a->check_subscribe("sensor/#"), SubscribeGrant::Filtered);
  EXPECT_EQ(a->check_subscribe("sensor/1/humidity"), SubscribeGrant::Refused);
  EXPECT_EQ(a->check_subscribe("public/news"), SubscribeGrant::Granted);
  EXPECT_EQ(a->check_subscribe("public/private"), SubscribeGrant::Refused);
  // Overlapping the denied topic: granted, the denied topic filtered at delivery.
  EXPECT_EQ(a->check_subscribe("public/#"), SubscribeGrant::Filtered);
  EXPECT_EQ(a->check_subscribe("public/+"), SubscribeGrant::Filtered);
  EXPECT_EQ(a->check_subscribe("#"), SubscribeGrant::Filtered);
  EXPECT_TRUE(a->may_receive("sensor/1/temp"));
  EXPECT_TRUE(a->may_receive("public/news"));
  EXPECT_FALSE(a->may_receive("public/private"));
  EXPECT_FALSE(a->may_receive("sensor/1/humidity"));
  EXPECT_EQ(a->principal(), "u");
  EXPECT_EQ(auth.find("cert"), c);
  EXPECT_FALSE(auth.find("nobody"));
}

TEST(Acl, IntersectionOfASubscriptionAndAPermission) {
  using S = std::optional<std::string>;
  EXPECT_EQ(filter_intersection("#", "secret/#"), S("secret/#"));
  EXPECT_EQ(filter_intersection("a/+", "a/#"), S("a/+"));
  EXPECT_EQ(filter_intersection("a/#", "a"), S("a"));  // '#' matches its parent level
  EXPECT_EQ(filter_intersection("a", "a/#"), S("a"));
  EXPECT_EQ(filter_intersection("+/b", "a/+"), S("a/b"));
  EXPECT_EQ(filter_intersection("a/#", "+/+/c"), S("a/+/c"));
  EXPECT_EQ(filter_intersection("a/b", "a/c"), std::nullopt);
  EXPECT_EQ(filter_intersection("a/+", "a"), std::nullopt);
  // A subscription starting with a wildcard matches no '$' topic; a permission is about names.
  EXPECT_EQ(filter_intersection("#", "$SYS/#"), std::nullopt);
  EXPECT_EQ(filter_intersection("+/x", "$a/+"), std::nullopt);
  EXPECT_EQ(filter_intersection("$SYS/#", "#"), S("$SYS/#"));
  EXPECT_EQ(filter_intersection("$a/+", "+/b"), S("$a/b"));
}

TEST(Acl, CoverageBySeveralFiltersTogether) {
  EXPECT_TRUE(filters_cover({"#"}, "#"));
  EXPECT_TRUE(filters_cover({"a", "a/+/#"}, "a/#"));
  EXPECT_FALSE(filters_cover({"a/+/#"}, "a/#"));  // not "a" itself
  EXPECT_FALSE(filters_cover({"a/b", "a/c"}, "a/+"));
  EXPECT_TRUE(filters_cover({"a/b", "a/+"}, "a/+"));
  EXPECT_TRUE(filters_cover({"+", "+/+/#"}, "#"));
  EXPECT_FALSE(filters_cover({"+", "+/+/+/#"}, "#"));  // two-level topics escape
  EXPECT_TRUE(filters_cover({"x/+/z", "x/y/+"}, "x/y/z"));
  EXPECT_FALSE(filters_cover({"x/+/z"}, "x/y/+"));
  EXPECT_TRUE(filters_cover({"+/#"}, "$SYS/x"));
  EXPECT_FALSE(filters_cover({"x/#"}, "#"));
  EXPECT_FALSE(filters_cover({}, "a"));
}

TEST(Acl, ASubscriptionIsRefusedOnlyWhenNothingItMatchesMayBeReceived) {
  Authorizer everything_but_secret({{"sub", {"#"}, {"secret/#"}}}, "u");
  EXPECT_EQ(everything_but_secret.check_subscribe("#"), SubscribeGrant::Filtered);
  EXPECT_EQ(everything_but_secret.check_subscribe("+"), SubscribeGrant::Filtered);
  EXPECT_EQ(everything_but_secret.check_subscribe("+/+"), SubscribeGrant::Filtered);
  EXPECT_EQ(everything_but_secret.check_subscribe("secret"), SubscribeGrant::Refused);
  EXPECT_EQ(everything_but_secret.check_subscribe("secret/+/x"), SubscribeGrant::Refused);
  EXPECT_EQ(everything_but_secret.check_subscribe("public/#"), SubscribeGrant::Granted);
  // '#' of the subscription does not reach '$' topics: it overlaps no deny on them.
  EXPECT_EQ(everything_but_secret.check_subscribe("$baidu/#"), SubscribeGrant::Granted);
  EXPECT_FALSE(everything_but_secret.may_receive("secret"));
  EXPECT_FALSE(everything_but_secret.may_receive("secret/a/b"));
  EXPECT_TRUE(everything_but_secret.may_receive("secrets"));

  // Every topic denied, though no single deny covers the subscription.
  Authorizer nothing({{"sub", {"#"}, {"+", "+/+/#"}}});
  EXPECT_EQ(nothing.check_subscribe("#"), SubscribeGrant::Refused);
  EXPECT_EQ(nothing.check_subscribe("a/b/c"), SubscribeGrant::Refused);
  // '$' topics are names like any other for permissions.
  EXPECT_EQ(nothing.check_subscribe("$baidu/x"), SubscribeGrant::Refused);

  Authorizer dollar({{"sub", {"#"}, {"$secret/#"}}});
  EXPECT_EQ(dollar.check_subscribe("#"), SubscribeGrant::Granted);
  EXPECT_EQ(dollar.check_subscribe("$secret/+"), SubscribeGrant::Refused);
  EXPECT_FALSE(dollar.may_receive("$secret/x"));

  Authorizer several_permits({{"sub", {"a/+", "b/#"}, {"b/private"}}});
  EXPECT_EQ(several_permits.check_subscribe("+/x"), SubscribeGrant::Filtered);
  EXPECT_EQ(several_permits.check_subscribe("b/#"), SubscribeGrant::Filtered);
  EXPECT_EQ(several_permits.check_subscribe("c/#"), SubscribeGrant::Refused);
  EXPECT_EQ(several_permits.check_subscribe("a/x"), SubscribeGrant::Granted);
}

namespace {
MessagePtr make_message(std::int64_t id, std::string topic, std::string payload,
                        std::int64_t time) {
  auto m = std::make_shared<Message>();
  m->id = id;
  m->topic = std::move(topic);
  m->payload = std::move(payload);
  m->qos = 1;
  m->time = time;
  return m;
}
}  // namespace

TEST(Store, PersistsSessionsQueuesRetainedAndWills) {
  baetyl::testing::TempDir dir;
  auto log = spdlog::default_logger();
  const std::string path = (dir.path() / "data").string();
  {
    Store store(path, {}, log);
    auto state = store.load();
    EXPECT_TRUE(state.sessions.empty());
    store.start();
    store.save_session("c1");
    store.add_subscription("c1", "a/#", 1);
    store.add_subscription("c1", "b", 2);
    store.remove_subscription("c1", "b");
    std::atomic<int> committed{0};
    for (int i = 0; i < 10; ++i) {
      auto id = store.next_message_id();
      std::string payload = std::string("p\0", 2) + std::to_string(i);
      store.add_message(make_message(id, "a/x", payload, baetyl::hub::unix_millis()), {{"c1", 1}},
                        [&] { ++committed; });
    }
    store.ack("c1", 1);
    store.ack("c1", 3);
    auto retained = make_message(0, "r", "kept", 1);
    store.set_retained(retained);
    store.set_retained(make_message(0, "r2", "gone", 1));
    store.clear_retained("r2");
    Message will;
    will.topic = "wills/c2";
    will.payload = "bye";
    will.qos = 1;
    store.set_will("c2", std::make_shared<Message>(will));
    store.save_session("gone");
    store.add_subscription("gone", "x", 0);
    store.delete_session("gone");
    store.flush();
    EXPECT_EQ(committed.load(), 10);
  }
  Store store(path, {}, log);
  auto state = store.load();
  ASSERT_EQ(state.sessions.size(), 1u);
  EXPECT_EQ(state.sessions[0].client_id, "c1");
  ASSERT_EQ(state.sessions[0].subscriptions.size(), 1u);
  EXPECT_EQ(state.sessions[0].subscriptions[0].first, "a/#");
  // The queue stays in the store; it is read in pages.
  auto page = store.read_queue("c1", 0, 100, 1 << 20);
  EXPECT_TRUE(page.complete);
  ASSERT_EQ(page.deliveries.size(), 8u);
  EXPECT_EQ(page.deliveries[0].message->id, 2);
  EXPECT_EQ(page.deliveries[0].message->payload, std::string("p\0"
                                                             "1",
                                                             3));
  EXPECT_EQ(page.deliveries[1].message->id, 4);
  page = store.read_queue("c1", 4, 3, 1 << 20);  // after id 4, three of them
  EXPECT_FALSE(page.complete);
  ASSERT_EQ(page.deliveries.size(), 3u);
  EXPECT_EQ(page.deliveries[0].message->id, 5);
  EXPECT_EQ(page.deliveries[2].message->id, 7);
  page = store.read_queue("c1", 4, 100, 1);  // at least one, however small the byte budget
  ASSERT_EQ(page.deliveries.size(), 1u);
  EXPECT_FALSE(page.complete);
  ASSERT_EQ(state.retained.size(), 1u);
  EXPECT_EQ(state.retained[0]->payload, "kept");
  ASSERT_EQ(state.wills.size(), 1u);
  EXPECT_EQ(state.wills[0].client_id, "c2");
  EXPECT_EQ(state.wills[0].message.payload, "bye");
  EXPECT_EQ(store.next_message_id(), 11);
}

namespace {

// A store in a temporary directory, loaded and started.
struct StartedStore {
  baetyl::testing::TempDir dir;
  Store store{dir.path().string(), {}, spdlog::default_logger()};
  StartedStore() {
    store.load();
    store.start();
  }
};

// Writes `dir`/hub.db as an older hub left it: `sql` creates its tables and rows.
void write_old_database(const baetyl::testing::TempDir& dir, const char* sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir.path() / "hub.db").string().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
}

}  // namespace

TEST(Store, CleanupRemovesMessagesPastRetention) {
  StartedStore started;
  Store& store = started.store;
  store.save_session("c");
  store.add_message(make_message(store.next_message_id(), "t", "old", 1000), {{"c", 1}}, {});
  store.add_message(make_message(store.next_message_id(), "t", "new", 5000), {{"c", 1}}, {});
  store.cleanup(2000);
  store.flush();
  store.stop();
  auto state = store.load();
  ASSERT_EQ(state.sessions.size(), 1u);
  auto page = store.read_queue("c", 0, 100, 1 << 20);
  ASSERT_EQ(page.deliveries.size(), 1u);
  EXPECT_EQ(page.deliveries[0].message->payload, "new");
}

// A queue entry remembers whether its message was sent: after a restart only those go with DUP.
TEST(Store, QueueEntriesRememberWhetherTheyWereSent) {
  StartedStore started;
  Store& store = started.store;
  store.save_session("c");
  for (int i = 0; i < 4; ++i) {
    store.add_message(make_message(store.next_message_id(), "t", std::to_string(i), 1), {{"c", 1}},
                      {});
  }
  store.sent("c", {1, 3});
  store.flush();
  auto page = store.read_queue("c", 0, 100, 1 << 20);
  ASSERT_EQ(page.deliveries.size(), 4u);
  std::vector<bool> sent;
  for (const auto& d : page.deliveries) sent.push_back(d.sent);
  EXPECT_EQ(sent, (std::vector<bool>{true, false, true, false}));
}

// A hub.db of an older hub has no `sent` column: it is added when the store opens.
TEST(Store, OpensADatabaseWithoutTheSentColumn) {
  baetyl::testing::TempDir dir;
  ASSERT_NO_FATAL_FAILURE(
      write_old_database(dir,
                         "CREATE TABLE queue (client_id TEXT NOT NULL, message_id INTEGER NOT "
                         "NULL, qos INTEGER NOT NULL, released INTEGER NOT NULL DEFAULT 0, "
                         "PRIMARY KEY (client_id, message_id)) WITHOUT ROWID;"
                         "CREATE TABLE messages (id INTEGER PRIMARY KEY, topic TEXT NOT NULL, "
                         "payload BLOB, qos INTEGER NOT NULL, time INTEGER NOT NULL);"
                         "INSERT INTO messages VALUES (1, 't', 'old', 1, 1);"
                         "INSERT INTO queue (client_id, message_id, qos) VALUES ('c', 1, 1);"));
  Store store(dir.path().string(), {}, spdlog::default_logger());
  store.load();
  auto page = store.read_queue("c", 0, 10, 1 << 20);
  ASSERT_EQ(page.deliveries.size(), 1u);
  EXPECT_EQ(page.deliveries[0].message->payload, "old");
  EXPECT_FALSE(page.deliveries[0].sent);
}

// MQTT 5: messages, retained messages and wills keep their properties and expiry; a hub.db of
// an earlier version gains the columns, and its rows come back with none.
TEST(Store, Mqtt5PropertiesAndExpiryAreStoredAndOldRowsHaveNone) {
  baetyl::testing::TempDir dir;
  ASSERT_NO_FATAL_FAILURE(
      write_old_database(dir,
                         "CREATE TABLE messages (id INTEGER PRIMARY KEY, topic TEXT NOT NULL, "
                         "payload BLOB, qos INTEGER NOT NULL, time INTEGER NOT NULL);"
                         "CREATE TABLE queue (client_id TEXT NOT NULL, message_id INTEGER NOT "
                         "NULL, qos INTEGER NOT NULL, released INTEGER NOT NULL DEFAULT 0, "
                         "sent INTEGER NOT NULL DEFAULT 0, "
                         "PRIMARY KEY (client_id, message_id)) WITHOUT ROWID;"
                         "CREATE TABLE retained (topic TEXT PRIMARY KEY, payload BLOB, "
                         "qos INTEGER NOT NULL, time INTEGER NOT NULL);"
                         "CREATE TABLE wills (client_id TEXT PRIMARY KEY, topic TEXT NOT NULL, "
                         "payload BLOB, qos INTEGER NOT NULL, retain INTEGER NOT NULL);"
                         "INSERT INTO messages VALUES (1, 't', 'old', 1, 1);"
                         "INSERT INTO queue (client_id, message_id, qos) VALUES ('c', 1, 1);"
                         "INSERT INTO retained VALUES ('r/old', 'old', 0, 1);"));
  const std::string properties("\x26\x00\x01k\x00\x01v", 7);  // User Property k=v
  {
    Store store(dir.path().string(), {}, spdlog::default_logger());
    auto state = store.load();
    ASSERT_EQ(state.retained.size(), 1u);
    EXPECT_TRUE(state.retained[0]->properties.empty());
    EXPECT_EQ(state.retained[0]->expiry, 0);
    store.start();
    auto m = std::make_shared<Message>();
    m->id = store.next_message_id();
    m->topic = "t";
    m->payload = "new";
    m->qos = 1;
    m->time = 2;
    m->properties = properties;
    m->expiry = 123456;
    store.add_message(m, {{"c", 1}}, {});
    auto retained = std::make_shared<Message>(*m);
    retained->topic = "r/new";
    store.set_retained(retained);
    auto will = std::make_shared<Message>(*m);
    will->topic = "w";
    store.set_will("c", will);
    store.flush();
    auto page = store.read_queue("c", 0, 10, 1 << 20);
    ASSERT_EQ(page.deliveries.size(), 2u);
    EXPECT_TRUE(page.deliveries[0].message->properties.empty());
    EXPECT_EQ(page.deliveries[0].message->expiry, 0);
    EXPECT_EQ(page.deliveries[1].message->properties, properties);
    EXPECT_EQ(page.deliveries[1].message->expiry, 123456);
  }
  Store store(dir.path().string(), {}, spdlog::default_logger());
  auto state = store.load();
  ASSERT_EQ(state.retained.size(), 2u);
  for (const auto& r : state.retained) {
    EXPECT_EQ(r->properties, r->topic == "r/new" ? properties : "") << r->topic;
  }
  ASSERT_EQ(state.wills.size(), 1u);
  EXPECT_EQ(state.wills[0].message.properties, properties);
  EXPECT_EQ(state.wills[0].message.expiry, 123456);
}

// A hub.db written before sessions recorded their principal is migrated in place: its sessions
// come back without one.
TEST(Store, SessionsRecordTheirPrincipalAndOldDatabasesAreMigrated) {
  baetyl::testing::TempDir dir;
  ASSERT_NO_FATAL_FAILURE(write_old_database(dir,
                                             "CREATE TABLE sessions (client_id TEXT PRIMARY KEY);"
                                             "INSERT INTO sessions VALUES ('old');"));
  {
    Store store(dir.path().string(), {}, spdlog::default_logger());
    auto state = store.load();
    ASSERT_EQ(state.sessions.size(), 1u);
    EXPECT_EQ(state.sessions[0].client_id, "old");
    EXPECT_EQ(state.sessions[0].principal, "");
    store.start();
    store.save_session("new", "alice");
    store.save_session("old", "bob");  // claimed
    store.flush();
  }
  Store store(dir.path().string(), {}, spdlog::default_logger());
  auto state = store.load();
  ASSERT_EQ(state.sessions.size(), 2u);
  EXPECT_EQ(state.sessions[0].client_id, "new");
  EXPECT_EQ(state.sessions[0].principal, "alice");
  EXPECT_EQ(state.sessions[1].client_id, "old");
  EXPECT_EQ(state.sessions[1].principal, "bob");
}

TEST(HubConfig, ExampleConfigurationLoadsWithoutUnknownKeys) {
  std::vector<std::string> unknown;
  auto c = baetyl::config::load_file<HubConfig>(
      std::string(BAETYL_SOURCE_DIR) + "/modules/hub/example/etc/baetyl/service.yml", &unknown);
  EXPECT_TRUE(unknown.empty()) << unknown.front();
  EXPECT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.principals.size(), 1u);
  EXPECT_EQ(c.subscriptions.size(), 1u);
  EXPECT_EQ(c.message.length_max.bytes, 32u * 1024);
}

TEST(Store, Qos2ReceiptsStoredWithTheMessage) {
  StartedStore started;
  Store& store = started.store;
  store.save_session("p");
  store.add_message(make_message(store.next_message_id(), "t", "a", 1), {}, {}, "p", 5);
  store.add_message(make_message(store.next_message_id(), "t", "b", 1), {}, {}, "p", 6);
  store.release_qos2("p", 5);
  store.flush();
  store.stop();
  auto state = store.load();
  ASSERT_EQ(state.sessions.size(), 1u);
  EXPECT_EQ(state.sessions[0].incoming_qos2, std::vector<std::uint16_t>{6});
}

// A slow consumer acknowledges one message at a time; a transaction for each acknowledgement
// made the hub's cost per message several times that of a consumer acknowledging in bursts.
TEST(Store, AcknowledgementsWaitForABatchOrOtherWork) {
  baetyl::testing::TempDir dir;
  StoreOptions options;
  options.ack_batch_max = 10;
  options.ack_delay = std::chrono::hours(1);
  Store store(dir.path().string(), options, spdlog::default_logger());
  store.load();
  store.start();
  store.save_session("c");
  for (int i = 0; i < 20; ++i) {
    store.add_message(make_message(store.next_message_id(), "t", "m", 1), {{"c", 1}}, {});
  }
  store.flush();
  const auto before = store.commits();

  for (std::int64_t id = 1; id <= 9; ++id) {
    store.ack("c", id);
    std::this_thread::sleep_for(1ms);  // time for the writer to pick up each one on its own
  }
  EXPECT_EQ(store.backlog(), 9u);  // below the batch: nothing committed
  EXPECT_EQ(store.commits(), before);

  // A message does not wait: it takes the acknowledgements along in its transaction.
  std::promise<void> committed;
  store.add_message(make_message(store.next_message_id(), "t", "m", 1), {{"c", 1}},
                    [&] { committed.set_value(); });
  ASSERT_EQ(committed.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_EQ(store.commits(), before + 1);

  // A full batch of acknowledgements is committed without waiting for the delay.
  for (std::int64_t id = 10; id <= 19; ++id) store.ack("c", id);
  for (int i = 0; i < 10000 && store.commits() == before + 1; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(store.commits(), before + 2);
  store.stop();
  auto state = store.load();
  ASSERT_EQ(state.sessions.size(), 1u);
  auto page = store.read_queue(state.sessions[0].client_id, 0, 1000, 1 << 20);
  ASSERT_EQ(page.deliveries.size(), 2u);  // 20 and 21 were never acknowledged
  EXPECT_EQ(page.deliveries[0].message->id, 20);
}

// A read's deliveries are queued on their sessions when its DeliveryBatch ends: one lock per
// session, each publisher's messages in order, the same rules as without a batch (QoS 0 is not
// queued for an offline session, QoS 1 is for a persistent one).
// Readers on many threads never see a writer's change half done, and a writer waits for them.
TEST(ShardedSharedMutex, WritersExcludeReadersOnEveryShard) {
  ShardedSharedMutex mutex;
  long a = 0, b = 0;  // a writer keeps them equal
  std::atomic<bool> torn{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 20; ++t) {  // more threads than shards: some share one
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        if (t % 5 == 0) {
          std::unique_lock lock(mutex);
          ++a;
          std::this_thread::yield();
          ++b;
        } else {
          std::shared_lock lock(mutex);
          if (a != b) torn = true;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_FALSE(torn);
  EXPECT_EQ(a, 4 * 2000);
  EXPECT_EQ(b, a);
}

// Counted within a batch and added to the stats once, at its end.
TEST(Broker, MessagesInAreCountedPerDeliveryBatch) {
  HubConfig config;
  Broker broker(config, nullptr, spdlog::default_logger());
  {
    Broker::DeliveryBatch batch(broker);
    broker.count_message_in(0);
    broker.count_message_in(1);
    broker.count_message_in(0);
    EXPECT_EQ(broker.stats().messages_in.load(), 0u);
  }
  EXPECT_EQ(broker.stats().messages_in.load(), 3u);
  EXPECT_EQ(broker.stats().messages_in.load(0), 2u);
  EXPECT_EQ(broker.stats().messages_in.load(1), 1u);
  broker.count_message_in(2);  // outside a batch: at once
  EXPECT_EQ(broker.stats().messages_in.load(), 4u);
  EXPECT_EQ(broker.stats().messages_in.load(2), 1u);
}

TEST(Broker, DeliveryBatchQueuesWhenItEnds) {
  HubConfig config;
  Broker broker(config, nullptr, spdlog::default_logger());
  auto a = broker.attach("a", false, nullptr).session;
  auto b = broker.attach("b", false, nullptr).session;
  ASSERT_EQ(broker.subscribe(a, {{"t/#", 1}}, nullptr), std::vector<std::uint8_t>{1});
  ASSERT_EQ(broker.subscribe(b, {{"t/x", 1}}, nullptr), std::vector<std::uint8_t>{1});
  auto pending = [](Session& s) {
    std::lock_guard lock(s.mutex);
    std::vector<std::string> payloads;
    for (const auto& entry : s.pending.entries()) payloads.push_back(entry.out.message->payload);
    return payloads;
  };
  auto message = [](std::string topic, std::string payload, std::uint8_t qos) {
    Message m;
    m.topic = std::move(topic);
    m.payload = std::move(payload);
    m.qos = qos;
    return m;
  };
  {
    Broker::DeliveryBatch batch(broker);
    broker.publish(message("t/x", "1", 1));
    broker.publish(message("t/y", "2", 1));
    broker.publish(message("t/x", "3", 0));  // offline: QoS 0 is not kept
    broker.publish(message("t/x", "4", 1));
    EXPECT_TRUE(pending(*a).empty());
    EXPECT_TRUE(pending(*b).empty());
  }
  EXPECT_EQ(pending(*a), (std::vector<std::string>{"1", "2", "4"}));
  EXPECT_EQ(pending(*b), (std::vector<std::string>{"1", "4"}));
  broker.publish(message("t/x", "5", 1));  // without a batch: at once
  EXPECT_EQ(pending(*b), (std::vector<std::string>{"1", "4", "5"}));
}

namespace {
std::string qos0_packet(std::string_view topic, std::string_view payload) {
  std::string out;
  mqtt::encode_publish(out, topic, payload, 0, false, false, 0);
  return out;
}

Outgoing qos1_delivery(std::string payload) {
  Message m;
  m.topic = "t";
  m.payload = std::move(payload);
  m.qos = 1;
  return Outgoing{std::make_shared<const Message>(std::move(m)), 1};
}

// The payloads of the PUBLISH packets in `bytes`, in order.
std::vector<std::string> publish_payloads(std::string_view bytes) {
  std::vector<std::string> payloads;
  while (!bytes.empty()) {
    auto head = mqtt::decode_fixed_header(bytes);
    EXPECT_EQ(head.status, mqtt::DecodeStatus::Ok);
    if (head.status != mqtt::DecodeStatus::Ok) break;
    auto packet = mqtt::decode(bytes.substr(0, head.header.packet_length()));
    payloads.push_back(std::get<mqtt::Publish>(packet.packet).payload);
    bytes.remove_prefix(head.header.packet_length());
  }
  return payloads;
}
}  // namespace

// Encoded QoS 0 packets and shared QoS 1 messages come out in the order they were queued.
TEST(EgressQueue, KeepsTheOrderOfEncodedAndSharedDeliveries) {
  EgressQueue q;
  EXPECT_EQ(q.push_encoded(qos0_packet("t", "a") + qos0_packet("t", "b"), 2, 10), 2u);
  q.push(qos1_delivery("c"));
  EXPECT_EQ(q.push_encoded(qos0_packet("t", "d"), 1, 10), 1u);
  EXPECT_EQ(q.push_encoded(qos0_packet("t", "e"), 1, 10), 1u);  // joins the entry before
  ASSERT_EQ(q.entries().size(), 3u);
  EXPECT_EQ(q.qos0(), 4u);
  EXPECT_EQ(publish_payloads(q.encoded_bytes(q.entries()[2])), (std::vector<std::string>{"d", "e"}));

  std::string out;
  EXPECT_EQ(q.take_encoded(out, 1 << 20), 2u);
  EXPECT_EQ(publish_payloads(out), (std::vector<std::string>{"a", "b"}));
  ASSERT_FALSE(q.front().encoded());
  EXPECT_EQ(q.front().out.message->payload, "c");
  q.pop_front();
  out.clear();
  EXPECT_EQ(q.take_encoded(out, 1 << 20), 2u);
  EXPECT_EQ(publish_payloads(out), (std::vector<std::string>{"d", "e"}));
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.qos0(), 0u);
}

// A run goes whole up to four times the limit; a longer one is cut after whole packets, at least
// one.
TEST(EgressQueue, TakesWholePacketsWithinTheLimit) {
  std::string packets;
  for (int i = 0; i < 20; ++i) packets += qos0_packet("t", std::string(100, char('a' + i)));
  const std::size_t one = packets.size() / 20;
  EgressQueue q;
  ASSERT_EQ(q.push_encoded(packets, 20, 20), 20u);
  std::string out;
  EXPECT_EQ(q.take_encoded(out, 2 * one + 1), 2u);  // 20 packets: more than 4 x the limit
  EXPECT_EQ(publish_payloads(out), (std::vector<std::string>{std::string(100, 'a'),
                                                             std::string(100, 'b')}));
  out = "x";
  EXPECT_EQ(q.take_encoded(out, 10), 1u);  // one packet even beyond the limit
  out.clear();
  EXPECT_EQ(q.take_encoded(out, 5 * one), 17u);  // 17 packets: within 4 x the limit
  EXPECT_EQ(publish_payloads(out).back(), std::string(100, 't'));
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.qos0(), 0u);
}

// Beyond the room a session has, the rest of the packets is dropped whole.
TEST(EgressQueue, QueuesOnlyWhatFitsTheRoom) {
  EgressQueue q;
  const std::string packets = qos0_packet("t", "1") + qos0_packet("t/long", "22") +
                              qos0_packet("t", "333");
  EXPECT_EQ(q.push_encoded(packets, 3, 2), 2u);
  EXPECT_EQ(q.push_encoded(packets, 3, 0), 0u);
  EXPECT_EQ(q.qos0(), 2u);
  std::string out;
  q.take_encoded(out, 1 << 20);
  EXPECT_EQ(publish_payloads(out), (std::vector<std::string>{"1", "22"}));
}

TEST(EgressQueue, DropsQos0AndKeepsTheRest) {
  EgressQueue q;
  q.push_encoded(qos0_packet("t", "a"), 1, 10);
  q.push(qos1_delivery("b"));
  Outgoing retained = qos1_delivery("r");
  retained.qos = 0;
  retained.retain = true;
  q.push(retained);
  EXPECT_EQ(q.qos0(), 2u);
  q.drop_qos0();
  ASSERT_EQ(q.entries().size(), 1u);
  EXPECT_EQ(q.front().out.message->payload, "b");
  EXPECT_EQ(q.qos0(), 0u);
  q.erase_outgoing_if([](const Outgoing& o) { return o.message->payload == "b"; });
  EXPECT_TRUE(q.empty());
}

// A session that is online gets QoS 0 deliveries as encoded packets, up to its QoS 0 bound; the
// drops are counted.
TEST(Broker, Qos0DeliveriesAreEncodedOnceAndBounded) {
  HubConfig config;
  config.message.egress.qos0_buffer_size = 3;
  Broker broker(config, nullptr, spdlog::default_logger());
  // An attached connection object is all `connected` needs; it is never run.
  asio::io_context io;
  auto connection = std::make_shared<Connection>(
      broker, make_stream(PlainSocket(io.get_executor()), "tcp", nullptr, ""), io.get_executor());
  auto s = broker.attach("s", true, connection).session;
  ASSERT_EQ(broker.subscribe(s, {{"t/#", 0}}, nullptr), std::vector<std::uint8_t>{0});
  {
    Broker::DeliveryBatch batch(broker);
    for (const char* payload : {"1", "2", "3", "4", "5"}) {
      broker.publish(MessageView{"t/x", payload, 1});
    }
  }
  std::lock_guard lock(s->mutex);
  ASSERT_EQ(s->pending.entries().size(), 1u);
  EXPECT_EQ(publish_payloads(s->pending.encoded_bytes(s->pending.entries()[0])),
            (std::vector<std::string>{"1", "2", "3"}));
  EXPECT_EQ(broker.stats().messages_dropped.load(), 2u);
}

// The QoS 0 queue is bounded in bytes as well: whole packets that fit, the rest dropped.
TEST(EgressQueue, CountsBytesAndQueuesOnlyWhatFitsTheByteRoom) {
  EgressQueue q;
  const std::string one = qos0_packet("t", "1");
  EXPECT_EQ(q.push_encoded(one + one + one, 3, 10, 2 * one.size() + 1), 2u);
  EXPECT_EQ(q.qos0(), 2u);
  EXPECT_EQ(q.qos0_bytes(), 2 * one.size());
  q.push(qos1_delivery("abc"));
  EXPECT_EQ(q.qos12(), 1u);
  EXPECT_EQ(q.qos12_bytes(), 4u);  // topic "t" and payload "abc"
  std::string out;
  q.take_encoded(out, 1 << 20);
  EXPECT_EQ(q.qos0_bytes(), 0u);
  Outgoing taken = std::move(q.front().out);  // as a writer takes it into flight
  q.pop_front();
  EXPECT_EQ(taken.message->payload, "abc");
  EXPECT_EQ(q.qos12(), 0u);
  EXPECT_EQ(q.qos12_bytes(), 0u);
  EXPECT_TRUE(q.empty());
}

namespace {
// A connection object attached to a session makes it online; it is never run.
struct Attached {
  asio::io_context io;
  std::shared_ptr<Connection> connection;
  std::shared_ptr<Session> session;
  Attached(Broker& broker, const std::string& id, bool clean) {
    connection = std::make_shared<Connection>(
        broker, make_stream(PlainSocket(io.get_executor()), "tcp", nullptr, ""), io.get_executor());
    session = broker.attach(id, clean, connection).session;
  }
};

std::vector<std::string> pending_payloads(Session& s) {
  std::lock_guard lock(s.mutex);
  std::vector<std::string> payloads;
  for (const auto& entry : s.pending.entries()) payloads.push_back(entry.out.message->payload);
  return payloads;
}
}  // namespace

// A clean session's QoS 1/2 queue is bounded in messages and bytes: new messages beyond it are
// dropped for that session only, and counted.
TEST(Broker, CleanSessionQos1QueueIsBounded) {
  HubConfig config;
  config.message.egress.qos1_queue_size = 3;
  config.message.egress.qos1_queue_bytes = baetyl::config::ByteSize{1000};
  Broker broker(config, nullptr, spdlog::default_logger());
  Attached small(broker, "small", true);
  Attached other(broker, "other", false);
  broker.subscribe(small.session, {{"t", 1}}, nullptr);
  for (int i = 1; i <= 5; ++i) broker.publish(Message{"t", std::to_string(i), 1});
  EXPECT_EQ(pending_payloads(*small.session), (std::vector<std::string>{"1", "2", "3"}));
  EXPECT_EQ(broker.stats().messages_dropped_qos1.load(), 2u);
  // In bytes: two messages of 400 bytes fit 1000, the third does not.
  broker.subscribe(other.session, {{"big", 1}}, nullptr);
  for (int i = 0; i < 3; ++i) broker.publish(Message{"big", std::string(400, 'x'), 1});
  EXPECT_EQ(pending_payloads(*other.session).size(), 2u);
  EXPECT_EQ(broker.stats().messages_dropped_qos1.load(), 3u);
  // QoS 2 deliveries dropped are counted apart from QoS 1 ones.
  Attached exact(broker, "exact", true);
  broker.subscribe(exact.session, {{"q2", 2}}, nullptr);
  for (int i = 1; i <= 5; ++i) broker.publish(Message{"q2", std::to_string(i), 2});
  EXPECT_EQ(pending_payloads(*exact.session).size(), 3u);
  EXPECT_EQ(broker.stats().messages_dropped_qos2.load(), 2u);
  EXPECT_EQ(broker.stats().messages_dropped_qos1.load(), 3u);
}

// A persistent session keeps at most its bound of stored deliveries in memory; the rest stays in
// the store and is read back, in order, each time its queue drained to half.
TEST(Broker, PersistentQueueBeyondItsBoundIsPagedInFromTheStore) {
  baetyl::testing::TempDir dir;
  HubConfig config;
  config.message.egress.qos1_queue_size = 4;
  Store store(dir.path().string(), {}, spdlog::default_logger());
  store.load();
  store.start();
  Broker broker(config, &store, spdlog::default_logger());
  Attached p(broker, "p", false);
  broker.subscribe(p.session, {{"t", 1}}, nullptr);
  for (int i = 1; i <= 10; ++i) broker.publish(Message{"t", std::to_string(i), 1});
  EXPECT_EQ(pending_payloads(*p.session), (std::vector<std::string>{"1", "2", "3", "4"}));
  std::vector<std::string> received;
  for (int round = 0; round < 10 && received.size() < 10; ++round) {
    bool page_in = false;
    {
      std::lock_guard lock(p.session->mutex);
      auto& q = p.session->pending;
      while (!q.empty()) {  // what the connection's writer does
        received.push_back(q.front().out.message->payload);
        q.pop_front();
      }
      page_in = broker.wants_page_in_locked(*p.session);
      if (page_in) p.session->paging = true;
    }
    if (received.size() == 10) break;
    ASSERT_TRUE(page_in) << "round " << round;
    broker.request_page_in(p.session);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!p.session->page_ready.exchange(false)) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline);
      std::this_thread::sleep_for(1ms);
    }
    broker.page_in(p.session);
  }
  std::vector<std::string> expected;
  for (int i = 1; i <= 10; ++i) expected.push_back(std::to_string(i));
  EXPECT_EQ(received, expected);
  std::lock_guard lock(p.session->mutex);
  EXPECT_FALSE(p.session->stored_only);
  EXPECT_EQ(broker.stats().messages_paged.load(), 6u);
  EXPECT_EQ(broker.stats().messages_dropped_qos1.load(), 0u);
}

// Offline, a persistent session keeps nothing of its stored queue in memory.
TEST(Broker, OfflinePersistentSessionKeepsItsQueueInTheStoreOnly) {
  baetyl::testing::TempDir dir;
  HubConfig config;
  Store store(dir.path().string(), {}, spdlog::default_logger());
  store.load();
  store.start();
  Broker broker(config, &store, spdlog::default_logger());
  Attached p(broker, "p", false);
  broker.subscribe(p.session, {{"t", 1}}, nullptr);
  broker.publish(Message{"t", "online", 1});
  EXPECT_EQ(pending_payloads(*p.session).size(), 1u);
  broker.detach(p.session, p.connection.get());
  EXPECT_TRUE(pending_payloads(*p.session).empty());
  broker.publish(Message{"t", "offline", 1});
  EXPECT_TRUE(pending_payloads(*p.session).empty());
  store.flush();
  auto page = store.read_queue("p", 0, 10, 1 << 20);
  ASSERT_EQ(page.deliveries.size(), 2u);
  EXPECT_EQ(page.deliveries[1].message->payload, "offline");
  std::lock_guard lock(p.session->mutex);
  EXPECT_TRUE(p.session->stored_only);
  EXPECT_EQ(p.session->paged_until, 0);
}

// A thread remembers the sessions its last topic matched; any change of the subscriptions (on any
// thread) makes it match again.
TEST(Broker, RememberedMatchesFollowSubscriptionChanges) {
  HubConfig config;
  Broker broker(config, nullptr, spdlog::default_logger());
  auto a = broker.attach("a", false, nullptr).session;
  auto b = broker.attach("b", false, nullptr).session;
  auto count = [](Session& s) {
    std::lock_guard lock(s.mutex);
    return s.pending.entries().size();
  };
  const Message m{"t/x", "p", 1};
  broker.subscribe(a, {{"t/x", 1}}, nullptr);
  broker.publish(m);
  EXPECT_EQ(count(*a), 1u);
  std::thread([&] { broker.subscribe(b, {{"t/+", 1}}, nullptr); }).join();
  broker.publish(m);
  EXPECT_EQ(count(*a), 2u);
  EXPECT_EQ(count(*b), 1u);
  broker.unsubscribe(a, {"t/x"});
  broker.publish(m);
  EXPECT_EQ(count(*a), 2u);
  EXPECT_EQ(count(*b), 2u);
  broker.detach(b, nullptr);  // persistent: its subscriptions stay
  broker.publish(m);
  EXPECT_EQ(count(*b), 3u);
}

namespace {
std::vector<std::string> pending_topics(Session& s) {
  std::lock_guard lock(s.mutex);
  std::vector<std::string> topics;
  for (const auto& entry : s.pending.entries()) topics.push_back(entry.out.message->topic);
  return topics;
}

Message qos1_message(std::string topic, bool retain = false) {
  return Message{std::move(topic), std::string("p"), 1, retain};
}
}  // namespace

// A wildcard that overlaps a deny is granted; the denied topics are not delivered on it, live,
// retained or routed.
TEST(Broker, DeniedTopicsAreFilteredAtDelivery) {
  HubConfig config;
  config.principals = {Principal{"u", "pw", {{"sub", {"#"}, {"secret/#"}}}}};
  config.subscriptions = {Route{{"in", 1}, {"secret/routed", 1}}, Route{{"in", 1}, {"routed", 1}}};
  Broker broker(config, nullptr, spdlog::default_logger());
  auto u = broker.auth().authenticate("u", "pw");
  auto s = broker.attach("s", false, nullptr, u).session;
  // MQTT 5 reason codes: 0x87 Not authorized (a 3.1.1 SUBACK says 0x80).
  EXPECT_EQ(broker.subscribe(s, {{"#", 1}, {"secret/+", 1}, {"+/x", 1}}, u.get()),
            (std::vector<std::uint8_t>{1, 0x87, 1}));
  for (const char* topic : {"secret/x", "open/x", "secret", "open", "in"}) {
    broker.publish(qos1_message(topic));
  }
  EXPECT_EQ(pending_topics(*s), (std::vector<std::string>{"open/x", "open", "in", "routed"}));

  // The same topic again, from the matches this thread remembers.
  broker.publish(qos1_message("secret/x"));
  EXPECT_EQ(pending_topics(*s).size(), 4u);

  broker.publish(qos1_message("secret/r", true));
  broker.publish(qos1_message("open/r", true));
  auto later = broker.attach("later", true, nullptr, u).session;
  const std::vector<mqtt::Subscription> subs{{"+/r", 1}};
  auto codes = broker.subscribe(later, subs, u.get());
  EXPECT_EQ(codes, std::vector<std::uint8_t>{1});
  broker.queue_retained(later, subs, codes);
  EXPECT_EQ(pending_topics(*later), std::vector<std::string>{"open/r"});
}

TEST(Broker, ASessionIsNeverAttachedForAnotherPrincipal) {
  HubConfig config;
  config.principals = {Principal{"a", "pa", {{"sub", {"#"}, {}}}},
                       Principal{"b", "pb", {{"sub", {"#"}, {}}}}};
  Broker broker(config, nullptr, spdlog::default_logger());
  auto a = broker.auth().authenticate("a", "pa");
  auto b = broker.auth().authenticate("b", "pb");
  auto first = broker.attach("id", false, nullptr, a);
  ASSERT_FALSE(first.refused);
  broker.subscribe(first.session, {{"private/#", 1}}, a.get());
  broker.detach(first.session, nullptr);
  broker.publish(qos1_message("private/1"));

  EXPECT_TRUE(broker.attach("id", false, nullptr, b).refused);
  EXPECT_TRUE(broker.attach("id", true, nullptr, b).refused);  // nor discarded
  auto again = broker.attach("id", false, nullptr, a);
  EXPECT_FALSE(again.refused);
  EXPECT_TRUE(again.present);
  EXPECT_EQ(again.session, first.session);
  EXPECT_EQ(pending_topics(*again.session), std::vector<std::string>{"private/1"});
  // Resumed by its principal, it is still refused to the other one.
  EXPECT_TRUE(broker.attach("id", false, nullptr, b).refused);
}

// Takes what `session` has queued, as its connection's writer would, and reads back from the store
// what stays there, until nothing more comes; returns the topics in order.
std::vector<std::string> drain_topics(Broker& broker, const std::shared_ptr<Session>& session) {
  std::vector<std::string> topics;
  for (int round = 0; round < 100; ++round) {
    bool page_in = false;
    {
      std::lock_guard lock(session->mutex);
      auto& q = session->pending;
      while (!q.empty()) {
        topics.push_back(q.front().out.message->topic);
        q.pop_front();
      }
      page_in = broker.wants_page_in_locked(*session);
      if (page_in) session->paging = true;
    }
    if (!page_in) break;
    broker.request_page_in(session);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!session->page_ready.exchange(false)) {
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "no page-in within 5 s";
        return topics;
      }
      std::this_thread::sleep_for(1ms);
    }
    broker.page_in(session);
  }
  return topics;
}

// Restored subscriptions and stored queues follow the permissions of the configuration the hub
// starts with; a session stored without a principal is bound to the first one that resumes it.
TEST(Broker, RestoredSessionsAreCheckedAgainstTheCurrentPermissions) {
  baetyl::testing::TempDir dir;
  auto log = spdlog::default_logger();
  {
    Store store(dir.path().string(), {}, log);
    store.load();
    store.start();
    store.save_session("kept", "u");
    for (const char* filter : {"#", "secret/#", "open/x"}) store.add_subscription("kept", filter, 1);
    store.save_session("legacy", "");  // as an earlier version stored it: no principal
    for (const char* filter : {"secret/#", "open/#"}) store.add_subscription("legacy", filter, 1);
    store.save_session("orphan", "removed");
    store.add_subscription("orphan", "a", 1);
    const std::pair<const char*, const char*> queued[] = {
        {"kept", "open/1"}, {"kept", "secret/1"}, {"legacy", "open/a"}, {"legacy", "secret/a"}};
    for (const auto& [client, topic] : queued) {
      store.add_message(make_message(store.next_message_id(), topic, "p", unix_millis()),
                        {{client, 1}}, [] {});
    }
    store.flush();
  }
  HubConfig config;
  config.principals = {Principal{"u", "pw", {{"sub", {"#"}, {"secret/#"}}}},
                       Principal{"v", "pv", {{"sub", {"#"}, {}}}}};
  Store store(dir.path().string(), {}, log);
  auto state = store.load();
  store.start();
  Broker broker(config, &store, log);
  auto u = broker.auth().authenticate("u", "pw");
  auto v = broker.auth().authenticate("v", "pv");
  broker.restore(std::move(state));

  auto resumed = broker.attach("kept", false, nullptr, u);
  ASSERT_TRUE(resumed.present);
  {
    std::lock_guard lock(resumed.session->mutex);
    EXPECT_EQ(resumed.session->subscriptions.size(), 2u);
    EXPECT_FALSE(resumed.session->subscriptions.contains("secret/#"));
  }
  EXPECT_EQ(drain_topics(broker, resumed.session), std::vector<std::string>{"open/1"});
  broker.publish(qos1_message("secret/2"));
  broker.publish(qos1_message("open/2"));
  EXPECT_EQ(drain_topics(broker, resumed.session), std::vector<std::string>{"open/2"});

  // Not subscribed anywhere until claimed, then filtered for its new principal.
  auto claimed = broker.attach("legacy", false, nullptr, u);
  ASSERT_TRUE(claimed.present);
  EXPECT_EQ(claimed.session->principal, "u");
  EXPECT_EQ(drain_topics(broker, claimed.session), std::vector<std::string>{"open/a"});
  broker.publish(qos1_message("open/b"));
  broker.publish(qos1_message("secret/b"));
  EXPECT_EQ(drain_topics(broker, claimed.session), std::vector<std::string>{"open/b"});
  EXPECT_TRUE(broker.attach("legacy", false, nullptr, v).refused);

  // Its principal left the configuration: nothing is permitted any more.
  auto orphaned = broker.attach("orphan", false, nullptr, v);
  EXPECT_TRUE(orphaned.refused);
  EXPECT_EQ(broker.subscription_count(), 2u + 1u);  // kept: #, open/x; legacy: open/#

  // The queue entries refused when read back are gone from the store.
  store.flush();
  for (const char* client : {"kept", "legacy"}) {
    for (const auto& d : store.read_queue(client, 0, 100, 1 << 20).deliveries) {
      EXPECT_EQ(d.message->topic.rfind("secret/", 0), std::string::npos) << client;
    }
  }
}

namespace {
HubConfig open_hub_config(std::uint16_t port, const baetyl::testing::TempDir& dir) {
  return load(baetyl::hub::testing::open_config(port, dir.path().string()));
}

// Keeps worker `index` busy in slices of 3 ms (other handlers of that worker run in between),
// sampling its load, until `burning` is false.
void burn(Workers& workers, std::size_t index, std::atomic<bool>& burning) {
  const auto end = std::chrono::steady_clock::now() + 3ms;
  while (std::chrono::steady_clock::now() < end) {
  }
  workers.sample();
  if (burning) asio::post(workers.executor(index), [&, index] { burn(workers, index, burning); });
}
}  // namespace

// A worker that spins on the CPU is busy and an idle one is not: the busy one's large writes go
// to the idle one, its small ones and the idle one's stay where they are. (A lower bar than the
// hub's: other processes on the machine lower a spinning thread's share of the CPU.)
TEST(Workers, LargeWritesOfABusyWorkerGoToAnIdleOne) {
  asio::io_context a(1);
  asio::io_context b(1);
  const Workers::Policy policy{0.3, 0.2, 16 * 1024, 0.5};
  Workers workers({&a, &b}, policy);
  auto keep_a = asio::make_work_guard(a);
  auto keep_b = asio::make_work_guard(b);
  std::thread run_a([&] { workers.run(0); });
  std::thread run_b([&] { workers.run(1); });
  std::promise<std::pair<bool, bool>> busy_side;
  asio::post(a, [&] {
    // Busy is CPU time over wall time, which other processes on the machine lower: spin until
    // the samples show it (60 ms on an idle machine), for up to a second.
    const auto start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() < start + 60ms ||
           (workers.busy(0) < policy.busy && std::chrono::steady_clock::now() < start + 1s)) {
      workers.sample();
    }
    EXPECT_EQ(current_worker(), std::optional<std::size_t>(0));
    const auto large = workers.offload_target(64 * 1024);
    busy_side.set_value({large && *large == b.get_executor(),
                         workers.offload_target(policy.min_bytes - 1).has_value()});
  });
  const auto [large_moves, small_moves] = busy_side.get_future().get();
  EXPECT_GE(workers.busy(0), policy.busy);
  EXPECT_TRUE(large_moves);
  EXPECT_FALSE(small_moves);
  std::promise<bool> idle_side;
  asio::post(b, [&] { idle_side.set_value(workers.offload_target(64 * 1024).has_value()); });
  EXPECT_FALSE(idle_side.get_future().get());
  EXPECT_FALSE(workers.offload_target(64 * 1024).has_value());  // not a worker thread
  keep_a.reset();
  keep_b.reset();
  run_a.join();
  run_b.join();
}

// A subscriber whose worker is kept busy gets its messages, in order, sent by the other worker.
TEST(HubWorkers, ASubscribersWritesGoToTheOtherWorkerWhileItsOwnIsBusy) {
  baetyl::testing::TempDir dir;
  const std::uint16_t port = baetyl::testing::free_port();
  const HubConfig config = open_hub_config(port, dir);
  // Any write of a worker busier than the other moves: this tests the moving, not the policy; and
  // the publisher's worker does not write to the subscriber itself.
  Hub hub(config, spdlog::default_logger(), 2, Workers::Policy{0, 0, 1, 0});
  hub.start();
  namespace t = baetyl::hub::testing;
  t::RawClient sub(port);  // the first connection: worker 0
  ASSERT_EQ(sub.connect(t::make_connect("sub")).return_code, mqtt::ConnectReturnCode::Accepted);
  sub.send(mqtt::Subscribe{1, {{"t/#", 0}}});
  sub.expect<mqtt::Suback>();
  t::RawClient pub(port);  // worker 1
  ASSERT_EQ(pub.connect(t::make_connect("pub")).return_code, mqtt::ConnectReturnCode::Accepted);

  std::atomic<bool> burning{true};
  asio::post(hub.workers().executor(0), [&] { burn(hub.workers(), 0, burning); });
  std::this_thread::sleep_for(30ms);
  // Bursts a few milliseconds apart: the publisher's worker stays mostly idle, while the
  // subscriber's, busy, finds tens of kilobytes queued whenever it gets to write.
  constexpr int kBursts = 30;
  int next = 1;
  for (int round = 0; round < 5 && hub.broker().stats().writes_offloaded.load() == 0; ++round) {
    const int first = next;
    std::jthread publisher([&pub, first] {
      for (int b = 0; b < kBursts; ++b) {
        std::string burst;
        for (int i = first + b * 100; i < first + (b + 1) * 100; ++i) {
          mqtt::encode(mqtt::Publish{"t/x", std::to_string(i) + std::string(300, '.'), 0}, burst);
        }
        pub.send_raw(burst);
        std::this_thread::sleep_for(2ms);
      }
    });
    for (int received = 0; received < kBursts * 100; ++received, ++next) {
      auto packet = sub.receive(10s);
      ASSERT_TRUE(packet) << "round " << round << ", after " << received << " messages";
      const auto& p = std::get<mqtt::Publish>(*packet);
      ASSERT_EQ(p.payload.substr(0, p.payload.find('.')), std::to_string(next));
    }
    publisher.join();
  }
  burning = false;
  EXPECT_GT(hub.broker().stats().writes_offloaded.load(), 0u);
  EXPECT_EQ(hub.stats()["workers"]["count"], 2);
  hub.stop(5s);
}

// A publisher's worker that is not busy writes QoS 0 packets to a subscriber on the other worker
// itself (no wake-up of that worker); QoS 1 deliveries in between still go through the
// subscriber's writer, and everything arrives in order.
TEST(HubWorkers, AnIdlePublishersWorkerWritesQos0ToASubscriberOnTheOtherOne) {
  baetyl::testing::TempDir dir;
  const std::uint16_t port = baetyl::testing::free_port();
  const HubConfig config = open_hub_config(port, dir);
  Hub hub(config, spdlog::default_logger(), 2);
  hub.start();
  namespace t = baetyl::hub::testing;
  t::RawClient sub(port);  // worker 0
  ASSERT_EQ(sub.connect(t::make_connect("sub")).return_code, mqtt::ConnectReturnCode::Accepted);
  sub.send(mqtt::Subscribe{1, {{"t/#", 1}}});
  sub.expect<mqtt::Suback>();
  t::RawClient pub(port);  // worker 1
  ASSERT_EQ(pub.connect(t::make_connect("pub")).return_code, mqtt::ConnectReturnCode::Accepted);
  constexpr int kMessages = 200;
  for (int i = 1; i <= kMessages; ++i) {
    const std::uint8_t qos = i % 10 == 0 ? 1 : 0;
    pub.send(mqtt::Publish{"t/x", std::to_string(i), qos, false, false,
                           static_cast<std::uint16_t>(qos ? i : 0)});
    if (qos) pub.expect<mqtt::Puback>();
    std::this_thread::sleep_for(1ms);
  }
  for (int i = 1; i <= kMessages; ++i) {
    auto packet = sub.receive(5s);
    ASSERT_TRUE(packet) << "after " << i - 1 << " messages";
    const auto& p = std::get<mqtt::Publish>(*packet);
    ASSERT_EQ(p.payload, std::to_string(i));
    if (p.qos == 1) sub.send(mqtt::Puback{p.packet_id});
  }
  EXPECT_GT(hub.broker().stats().writes_direct.load(), 0u);
  hub.stop(5s);
}

// A connection's read commits its messages on its own thread when the read is handled.
TEST(Store, CommitScopeCommitsOnTheSubmittingThread) {
  baetyl::testing::TempDir dir;
  StoreOptions options;
  options.ack_delay = std::chrono::hours(1);
  Store store(dir.path().string(), options, spdlog::default_logger());
  store.load();
  store.start();
  store.save_session("c");
  store.flush();
  // flush() returns from the writer's last commit; the writer then goes back to waiting.
  for (int i = 0; i < 10000 && !store.idle(); ++i) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(store.idle());
  const auto before = store.commits();
  std::vector<std::thread::id> committed_on;
  {
    Store::CommitScope scope(&store);
    for (int i = 0; i < 3; ++i) {
      store.add_message(make_message(store.next_message_id(), "t", "m", 1), {{"c", 1}},
                        [&] { committed_on.push_back(std::this_thread::get_id()); });
    }
    store.ack("c", 1);
    std::this_thread::sleep_for(20ms);  // the writer was not woken: nothing committed yet
    EXPECT_EQ(store.commits(), before);
    EXPECT_TRUE(committed_on.empty());
  }
  EXPECT_EQ(store.commits(), before + 1);  // messages and acknowledgement in one transaction
  ASSERT_EQ(committed_on.size(), 3u);
  for (auto id : committed_on) EXPECT_EQ(id, std::this_thread::get_id());
  EXPECT_EQ(store.backlog(), 0u);
  store.stop();
  auto state = store.load();
  ASSERT_EQ(state.sessions.size(), 1u);
  EXPECT_EQ(store.read_queue(state.sessions[0].client_id, 0, 1000, 1 << 20).deliveries.size(), 2u);
}

// Threads ending their scopes while another one commits leave their work to it: every message
// is committed (its callback runs) without anyone flushing, in the order of each thread.
TEST(Store, CommitScopesOnManyThreadsLoseNothing) {
  baetyl::testing::TempDir dir;
  StoreOptions options;
  options.ack_delay = std::chrono::hours(1);
  options.message_batch_max = 7;
  Store store(dir.path().string(), options, spdlog::default_logger());
  store.load();
  store.start();
  store.save_session("c");
  constexpr int kThreads = 4;
  constexpr int kReads = 300;
  constexpr int kPerRead = 5;
  std::atomic<int> committed{0};
  std::vector<std::vector<std::int64_t>> order(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kReads; ++r) {
        Store::CommitScope scope(&store);
        for (int i = 0; i < kPerRead; ++i) {
          auto id = store.next_message_id();
          store.add_message(make_message(id, "t", "m", 1), {{"c", 1}}, [&, t, id] {
            order[t].push_back(id);  // callbacks run under the commit lock: no race
            committed.fetch_add(1);
          });
          if (id % 3 == 0) store.ack("c", id);
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  constexpr int kTotal = kThreads * kReads * kPerRead;
  for (int i = 0; i < 10000 && committed.load() < kTotal; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(committed.load(), kTotal);
  for (const auto& ids : order) EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  store.stop();
  auto state = store.load();
  ASSERT_EQ(state.sessions.size(), 1u);
  EXPECT_EQ(store.read_queue(state.sessions[0].client_id, 0, kTotal, 64 << 20).deliveries.size(),
            static_cast<std::size_t>(kTotal - kTotal / 3));
}

// The WAL is copied into the database by the checkpoint thread, not inside the writer's commits.
TEST(Store, CheckpointsRunOnTheirOwnThread) {
  baetyl::testing::TempDir dir;
  StoreOptions options;
  options.checkpoint_pages = 2;
  Store store(dir.path().string(), options, spdlog::default_logger());
  store.load();
  store.start();
  store.save_session("c");
  for (int i = 0; i < 200; ++i) {
    store.add_message(make_message(store.next_message_id(), "t", std::string(1000, 'x'), 1),
                      {{"c", 1}}, {});
  }
  store.flush();
  for (int i = 0; i < 10000 && store.checkpoints() == 0; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_GT(store.checkpoints(), 0u);
  store.stop();
  const auto client = store.load().sessions[0].client_id;
  EXPECT_EQ(store.read_queue(client, 0, 1000, 64 << 20).deliveries.size(), 200u);
}
