#pragma once
#include <cstdint>
#include <memory>
#include <string>

namespace baetyl::hub {

// A message as the hub routes it: shared, immutable, one copy for every subscriber.
struct Message {
  std::string topic;
  std::string payload;
  std::uint8_t qos = 0;
  bool retain = false;
  std::int64_t id = 0;    // row in the store for persisted (QoS 1/2) messages, else 0
  std::int64_t time = 0;  // unix milliseconds when the hub received it
};

using MessagePtr = std::shared_ptr<const Message>;

std::int64_t unix_millis();

}  // namespace baetyl::hub
