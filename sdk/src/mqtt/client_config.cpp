#include "baetyl/mqtt/client_config.h"

#include <stdexcept>

#include "baetyl/mqtt/packet.h"
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

namespace {

constexpr std::uint32_t kNeverExpires = 0xFFFFFFFF;
// The largest packet MQTT can carry: the largest Remaining Length and a 5-byte fixed header.
constexpr std::uint64_t kLargestPacket = kMaxRemainingLength + 5;

void describe_mqtt5(config::Reader& r, ClientConfig& c) {
  std::string protocol = protocol_name(c.protocol);
  if (r.field("protocol", protocol).one_of({"3.1.1", "4", "5", "5.0"}).present()) {
    if (auto version = parse_protocol(protocol)) c.protocol = *version;
  }
  const bool v5 = c.protocol == ProtocolVersion::V5;
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  if (r.field("sessionexpiry", c.session_expiry)
          .check([](const auto& d) { return d->count() >= 0; }, "must not be negative")
          .check([](const auto& d) { return *d % seconds(1) == milliseconds(0); },
                 "must be a whole number of seconds")
          .check([](const auto& d) { return *d < seconds(kNeverExpires); },
                 "must be at most 4294967294s (leave it out for a session that never expires)")
          .present()) {
    r.check(v5, "sessionexpiry", "needs protocol: 5 (MQTT 3.1.1 has no session expiry)");
    r.check(!c.clean_session, "sessionexpiry",
            "needs cleansession: false (a clean session ends with the connection)");
  }
  if (r.field("maxpacketsize", c.max_packet_size)
          .check([](const auto& s) { return s->bytes >= 1 && s->bytes <= kLargestPacket; },
                 "must be between 1b and 268435460b, the largest packet MQTT can carry")
          .present()) {
    r.check(v5, "maxpacketsize", "needs protocol: 5 (MQTT 3.1.1 has no maximum packet size)");
  }
}

}  // namespace

std::string protocol_name(ProtocolVersion version) {
  return version == ProtocolVersion::V5 ? "5" : "3.1.1";
}

std::optional<ProtocolVersion> parse_protocol(std::string_view text) {
  if (text == "3.1.1" || text == "4") return ProtocolVersion::V311;
  if (text == "5" || text == "5.0") return ProtocolVersion::V5;
  return std::nullopt;
}

std::uint32_t session_expiry_interval(const ClientConfig& c) {
  if (c.clean_session) return 0;
  if (!c.session_expiry) return kNeverExpires;
  return static_cast<std::uint32_t>(
      std::chrono::duration_cast<std::chrono::seconds>(*c.session_expiry).count());
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
  describe_mqtt5(r, c);
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
