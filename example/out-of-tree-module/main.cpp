// baetyl-greeter: publishes `<greeting> from <instance>` to a topic of the hub every `interval`
// until the master stops it. The smallest module with its own configuration keys.
#include <chrono>
#include <string>

#include "baetyl/config/reader.h"
#include "baetyl/context.h"
#include "baetyl/mqtt/topic.h"

struct GreeterConfig {
  std::string topic = "greetings";
  std::string greeting = "hello";
  std::chrono::milliseconds interval = std::chrono::seconds(1);
};

void describe(baetyl::config::Reader& r, GreeterConfig& c) {
  r.field("topic", c.topic).not_empty();
  r.check(baetyl::mqtt::check_topic_name(c.topic).empty(), "topic",
          "'" + c.topic + "' is not a topic to publish to");
  r.field("greeting", c.greeting);
  r.field("interval", c.interval).min(std::chrono::milliseconds(10));
}

int main(int argc, char** argv) {
  return baetyl::run(argc, argv, [](baetyl::Context& ctx) {
    const auto cfg = ctx.load_config<GreeterConfig>();
    auto hub = ctx.new_hub_client();
    hub->start();
    const std::string text = cfg.greeting + " from " + ctx.instance_name();
    while (!ctx.wait_for(cfg.interval)) {
      if (!hub->try_publish({.topic = cfg.topic, .payload = text, .qos = 1}, cfg.interval)) {
        ctx.log().warn("the hub is unreachable: a greeting was dropped");
      }
    }
    hub->stop();
  });
}
