#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

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

// A message as it arrives (its bytes still in the read buffer, say): the hub makes a shared
// Message of it only when something keeps it (a QoS 1/2 delivery, the store, the retained set).
struct MessageView {
  std::string_view topic;
  std::string_view payload;
  std::uint8_t qos = 0;
  bool retain = false;
  std::int64_t time = 0;  // unix milliseconds; 0: when the hub routes it
};

std::int64_t unix_millis();

}  // namespace baetyl::hub
