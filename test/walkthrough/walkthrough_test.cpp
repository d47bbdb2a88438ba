// example/native as `baetyl start` runs it: master, hub, function manager, and the Python, Node
// and SQL runtimes started on demand. Publishing {"id":1} to `t` comes back on t/topic, t/py2hi,
// t/py3hi, t/node8hi and t/sqlfilter; {"id":20} on all of them but t/sqlfilter. remote-mqtt
// bridges the hub and a second one: t1 reaches the second hub, t2 the first.
#include <signal.h>

#include <chrono>
#include <filesystem>

#include <gtest/gtest.h>

#include "baetyl/testing/mosquitto.h"
#include "baetyl/testing/ports.h"
#include "baetyl/testing/process.h"
#include "baetyl/testing/temp_dir.h"
#include "walkthrough_support.h"

namespace baetyl::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace walkthrough;

TEST(Walkthrough, ExampleConfigurationAnswersOnEveryTopic) {
  TempDir dir;
  fs::copy(fs::path(BAETYL_SOURCE_DIR) / "example/native", dir.path(), fs::copy_options::recursive);
  const std::uint16_t port = free_port();
  const std::string socket = (dir.path() / "var/run/baetyl.sock").string();
  replace_in(dir.path() / "etc/baetyl/conf.yml", "unix:///var/run/baetyl.sock", "unix://" + socket);
  for (const char* conf : {"var/db/baetyl/localhub-conf/service.yml",
                           "var/db/baetyl/function-manager-conf/service.yml",
                           "var/db/baetyl/remote-mqtt-conf/service.yml"}) {
    replace_in(dir.path() / conf, "127.0.0.1:1883", "127.0.0.1:" + std::to_string(port));
  }
  const std::uint16_t remote_port = free_port();
  for (const char* conf :
       {"var/db/baetyl/remotehub-conf/service.yml", "var/db/baetyl/remote-mqtt-conf/service.yml"}) {
    replace_in(dir.path() / conf, "127.0.0.1:1884", "127.0.0.1:" + std::to_string(remote_port));
  }

  ProcessOptions options;
  options.output_file = (dir.path() / "baetyl.out").string();
  Process master({binary_path("baetyl"), "start", "-w", dir.path().string()}, options);
  ASSERT_TRUE(wait_for_port(port, 20s)) << master.output();

  MosquittoSubscriber subscriber(port, subscriber_options());
  check_walkthrough(port, subscriber, [&] { return master.output(); });
  if (HasFatalFailure()) return;

  // remote-mqtt bridges the local hub and remotehub: t1 goes up, t2 comes down.
  ASSERT_TRUE(wait_for_port(remote_port, 20s)) << master.output();
  MosquittoSubscriber at_remote(
      remote_port, {.topic = "t1", .qos = 1, .username = "test", .password = "hahaha"});
  EXPECT_TRUE(wait_until(
      [&] {
        mosquitto_pub(port, "t1", "up", 1, kAuth);
        return !at_remote.wait_for(1, 300ms).empty();
      },
      30s))
      << master.output();
  MosquittoSubscriber at_local(port,
                               {.topic = "t2", .qos = 1, .username = "test", .password = "hahaha"});
  EXPECT_TRUE(wait_until(
      [&] {
        mosquitto_pub(remote_port, "t2", "down", 1, kAuth);
        return !at_local.wait_for(1, 300ms).empty();
      },
      30s));

  EXPECT_EQ(master.stop(SIGTERM, 30s), 0) << master.output();
  // A quiet stop: the function manager stops its runtimes while its token is still valid, and
  // the master logs each event once.
  const std::string log = read(dir.path() / "var/log/baetyl/baetyl.log");
  EXPECT_EQ(master.output().find("unauthorized"), std::string::npos) << master.output();
  EXPECT_EQ(log.find("unauthorized"), std::string::npos) << log;
  EXPECT_EQ(count_of(log, "listening on"), 1u) << log;
  EXPECT_EQ(count_of(log, "instance localhub of service localhub started"), 1u) << log;
  EXPECT_EQ(count_of(log, "instance function-manager of service function-manager started"), 1u)
      << log;
}

}  // namespace
}  // namespace baetyl::testing
