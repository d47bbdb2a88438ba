#include "mqtt5.h"

#include "baetyl/mqtt/codec.h"

namespace baetyl::hub {
namespace {

void put_varint(std::string& out, std::uint32_t value) {
  do {
    auto byte = static_cast<std::uint8_t>(value % 128);
    value /= 128;
    if (value > 0) byte |= 0x80;
    out.push_back(static_cast<char>(byte));
  } while (value > 0);
}

std::size_t varint_size(std::uint32_t value) {
  std::size_t n = 1;
  while (value >= 128) {
    value /= 128;
    ++n;
  }
  return n;
}

bool forwarded(mqtt::PropertyId id) {
  using P = mqtt::PropertyId;
  return id == P::PayloadFormatIndicator || id == P::ContentType || id == P::ResponseTopic ||
         id == P::CorrelationData || id == P::UserProperty;
}

}  // namespace

std::string forwarded_properties(const mqtt::Properties& properties) {
  mqtt::Properties kept;
  for (const auto& p : properties.list) {
    if (forwarded(p.id)) kept.list.push_back(p);
  }
  return properties_body(kept);
}

std::string properties_body(const mqtt::Properties& properties) {
  if (properties.empty()) return {};
  std::string wire;
  mqtt::encode_properties(properties, wire);
  std::size_t length_bytes = 1;  // the Property Length in front
  while (static_cast<std::uint8_t>(wire[length_bytes - 1]) & 0x80) ++length_bytes;
  return wire.substr(length_bytes);
}

void append_delivery_properties(std::string& out, std::string_view forwarded,
                                std::uint32_t expiry_seconds,
                                std::span<const std::uint32_t> subscription_ids,
                                std::uint16_t topic_alias) {
  std::size_t length = forwarded.size();
  if (expiry_seconds != 0) length += 5;
  for (auto id : subscription_ids) length += 1 + varint_size(id);
  if (topic_alias != 0) length += 3;
  put_varint(out, static_cast<std::uint32_t>(length));
  out.append(forwarded);
  if (expiry_seconds != 0) {
    out.push_back(static_cast<char>(mqtt::PropertyId::MessageExpiryInterval));
    for (int shift = 24; shift >= 0; shift -= 8) {
      out.push_back(static_cast<char>((expiry_seconds >> shift) & 0xFF));
    }
  }
  for (auto id : subscription_ids) {
    out.push_back(static_cast<char>(mqtt::PropertyId::SubscriptionIdentifier));
    put_varint(out, id);
  }
  if (topic_alias != 0) {
    out.push_back(static_cast<char>(mqtt::PropertyId::TopicAlias));
    out.push_back(static_cast<char>(topic_alias >> 8));
    out.push_back(static_cast<char>(topic_alias & 0xFF));
  }
}

std::string reason_string(std::string_view text) {
  std::string out(text.substr(0, 200));
  for (char& c : out) {
    if (c < 0x20 || c > 0x7E) c = '?';
  }
  return out;
}

mqtt::ReasonCode connack_reason(mqtt::ConnectReturnCode code) {
  using C = mqtt::ConnectReturnCode;
  using R = mqtt::ReasonCode;
  switch (code) {
    case C::Accepted:
      return R::Success;
    case C::UnacceptableProtocolVersion:
      return R::UnsupportedProtocolVersion;
    case C::IdentifierRejected:
      return R::ClientIdentifierNotValid;
    case C::ServerUnavailable:
      return R::ServerUnavailable;
    case C::BadUsernameOrPassword:
      return R::BadUserNameOrPassword;
    case C::NotAuthorized:
      return R::NotAuthorized;
  }
  return R::UnspecifiedError;
}

}  // namespace baetyl::hub
