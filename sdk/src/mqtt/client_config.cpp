#include "baetyl/mqtt/client_config.h"

#include <stdexcept>

#include "baetyl/mqtt/topic.h"
#include "baetyl/mqtt/transport.h"

namespace baetyl::mqtt {

void describe(config::Reader& r, TopicInfo& t) {
  if (r.field("topic", t.topic).required().not_empty().present() && !t.topic.empty()) {
    std::string problem = check_topic_filter(t.topic);
    r.check(problem.empty(), "topic", "'" + t.topic + "' is not a valid topic: " + problem);
  }
  r.field("qos", t.qos).min(0).max(1);
}

void describe(config::Reader& r, ClientConfig& c) {
  r.field("address", c.address).check(
      [](const std::string& address) {
        try {
          parse_endpoint(address);
          return true;
        } catch (const std::invalid_argument&) {
          return false;
        }
      },
      "must be tcp://host:port or ssl://host:port");
  r.field("username", c.username);
  r.field("password", c.password);
  r.field("ca", c.ca);
  r.field("cert", c.cert);
  r.field("key", c.key);
  r.check(c.cert.empty() == c.key.empty(), c.cert.empty() ? "cert" : "key",
          "cert and key must be given together");
  r.field("insecureSkipVerify", c.insecure_skip_verify);
  r.field("clientid", c.client_id);
  r.field("cleansession", c.clean_session);
  r.field("timeout", c.timeout).min(std::chrono::milliseconds(1));
  r.field("interval", c.interval).min(std::chrono::milliseconds(500));
  // CONNECT carries the keepalive in whole seconds.
  r.field("keepalive", c.keepalive)
      .min(std::chrono::milliseconds(0))
      .check([](auto k) { return k.count() == 0 || k % std::chrono::seconds(1) == k.zero(); },
             "must be 0 (no pings) or a whole number of seconds")
      .max(std::chrono::seconds(65535));
  r.field("buffersize", c.buffer_size).min(1);
  r.field("validatesubs", c.validate_subs);
  r.field("subscriptions", c.subscriptions);
}

}  // namespace baetyl::mqtt
