#include "baetyl/mqtt/codec.h"

#include <cstring>
#include <stdexcept>
#include <utility>

#include "baetyl/mqtt/topic.h"

namespace baetyl::mqtt {
namespace {

using V = ProtocolVersion;
using R = ReasonCode;

// The longest string (or binary field) a two-byte length prefix can describe.
constexpr std::size_t kMaxFieldLength = 65535;

std::string error_for(PacketType type, std::string_view message) {
  std::string out(to_string(type));
  out += ": ";
  out += message;
  return out;
}

// A broken rule: the message (empty when none) and the reason code for an MQTT 5 DISCONNECT.
struct Fault {
  R reason = R::Success;
  std::string text;
  bool empty() const { return text.empty(); }
};

Fault fault(PacketType type, std::string_view message, R reason) {
  return Fault{reason, error_for(type, message)};
}

std::string hex_byte(std::uint8_t value) {
  constexpr char kDigits[] = "0123456789abcdef";
  return {'0', 'x', kDigits[value >> 4], kDigits[value & 0x0F]};
}

std::string nibble_bits(std::uint8_t value) {
  std::string out = "0b";
  for (int bit = 3; bit >= 0; --bit) out += ((value >> bit) & 1) ? '1' : '0';
  return out;
}

std::uint8_t required_flags(PacketType type) {
  switch (type) {
    case PacketType::Pubrel:
    case PacketType::Subscribe:
    case PacketType::Unsubscribe:
      return 0b0010;
    default:
      return 0;
  }
}

// Remaining Length of the packet types whose body has a fixed size; -1 for the others. MQTT 5
// acknowledgements, CONNACK, UNSUBACK and DISCONNECT may carry reason codes and properties.
long fixed_remaining_length(PacketType type, V version) {
  switch (type) {
    case PacketType::Connack:
    case PacketType::Puback:
    case PacketType::Pubrec:
    case PacketType::Pubrel:
    case PacketType::Pubcomp:
    case PacketType::Unsuback:
      return version == V::V5 ? -1 : 2;
    case PacketType::Pingreq:
    case PacketType::Pingresp:
      return 0;
    case PacketType::Disconnect:
      return version == V::V5 ? -1 : 0;
    default:
      return -1;
  }
}

std::size_t varint_size(std::size_t value) {
  if (value < 128) return 1;
  if (value < 16'384) return 2;
  if (value < 2'097'152) return 3;
  return 4;
}

PropertyContext context_of(PacketType type) { return static_cast<PropertyContext>(type); }

// ---------------------------------------------------------------------------------------------
// Rules on field values, shared by decode() (after parsing) and validate(). Each returns a Fault
// whose message is prefixed with the packet type.

std::string check_string(std::string_view value, std::string_view field) {
  if (!is_valid_utf8(value)) return std::string(field) + " is not valid UTF-8";
  if (value.find('\0') != std::string_view::npos) {
    return std::string(field) + " must not contain the null character U+0000";
  }
  return {};
}

// Ill-formed UTF-8 and U+0000 make a packet malformed (1.5.4); other topic rules are protocol
// errors.
R topic_reason(std::string_view topic) {
  return check_string(topic, "").empty() ? R::ProtocolError : R::MalformedPacket;
}

Fault check_topic_name_field(PacketType type, std::string_view topic,
                             std::string_view prefix = {}) {
  if (auto e = check_topic_name(topic); !e.empty()) {
    return fault(type, std::string(prefix) + e, topic_reason(topic));
  }
  return {};
}

Fault check_topic_filter_field(PacketType type, std::string_view filter) {
  if (auto e = check_topic_filter(filter); !e.empty()) {
    return fault(type, e, topic_reason(filter));
  }
  return {};
}

Fault check_packet_id(PacketType type, std::uint16_t packet_id) {
  if (packet_id == 0) return fault(type, "packet identifier must be non-zero", R::ProtocolError);
  return {};
}

Fault check_v5_properties(PacketType type, const Properties& properties, PropertyContext context) {
  if (auto e = check_properties(properties, context); !e.message.empty()) {
    return fault(type, e.message, e.reason);
  }
  // 3.1.2.11.10, 3.2.2.3.18, 3.15.2.2.3: data needs a method.
  if (properties.find(PropertyId::AuthenticationData) &&
      !properties.find(PropertyId::AuthenticationMethod)) {
    return fault(type, "Authentication Data requires an Authentication Method", R::ProtocolError);
  }
  return {};
}

// What a 3.1.1 packet must leave at its defaults.
Fault no_v5_fields_fault(PacketType type, const Properties& properties, R reason_code) {
  if (!properties.empty()) return fault(type, "properties require MQTT 5", R::ProtocolError);
  if (reason_code != R::Success) {
    return fault(type, "a reason code other than Success requires MQTT 5", R::ProtocolError);
  }
  return {};
}

[[gnu::always_inline]] inline Fault check_no_v5_fields(PacketType type,
                                                       const Properties& properties,
                                                       R reason_code) {
  if (properties.empty() && reason_code == R::Success) return {};
  return no_v5_fields_fault(type, properties, reason_code);
}

// The properties of a packet without a reason code in 3.1.1: none there, valid for `context` in 5.
Fault check_properties_of(PacketType type, const Properties& properties, V version,
                          PropertyContext context) {
  if (version != V::V5) return check_no_v5_fields(type, properties, R::Success);
  return check_v5_properties(type, properties, context);
}

// The packet identifier of a SUBSCRIBE, SUBACK or UNSUBSCRIBE, and its payload's list of `what`.
template <class List>
Fault check_id_and_list(PacketType type, std::uint16_t packet_id, const List& list,
                        const char* what) {
  if (auto f = check_packet_id(type, packet_id); !f.empty()) return f;
  if (list.empty()) {
    return fault(type, std::string("payload must contain at least one ") + what, R::ProtocolError);
  }
  return {};
}

Fault check_reason_code(PacketType type, R code) {
  if (!reason_code_allowed(context_of(type), static_cast<std::uint8_t>(code))) {
    return fault(type,
                 "reason code " + hex_byte(static_cast<std::uint8_t>(code)) +
                     " is not allowed in " + std::string(to_string(type)),
                 R::ProtocolError);
  }
  return {};
}

Fault check(const Connect& c, V) {
  constexpr auto type = PacketType::Connect;
  const bool v5 = c.protocol_level == 5;
  if (c.protocol_name != "MQTT" && c.protocol_name != "MQIsdp") {
    return fault(type, "protocol name must be \"MQTT\" or \"MQIsdp\"",
                 R::UnsupportedProtocolVersion);
  }
  if (v5 && c.protocol_name != "MQTT") {
    return fault(type, "protocol name must be \"MQTT\" with protocol level 5",
                 R::UnsupportedProtocolVersion);
  }
  if (auto e = check_string(c.client_id, "client identifier"); !e.empty()) {
    return fault(type, e, R::MalformedPacket);
  }
  if (v5) {
    if (auto f = check_v5_properties(type, c.properties, PropertyContext::Connect); !f.empty()) {
      return f;
    }
  } else if (!c.properties.empty()) {
    return fault(type, "properties require protocol level 5", R::ProtocolError);
  }
  if (c.will) {
    if (auto f = check_topic_name_field(type, c.will->topic, "will "); !f.empty()) return f;
    if (c.will->qos > 2) {
      return fault(type, "will QoS " + std::to_string(c.will->qos) + " is invalid",
                   R::MalformedPacket);
    }
    if (v5) {
      if (auto f = check_v5_properties(type, c.will->properties, PropertyContext::Will);
          !f.empty()) {
        return f;
      }
    } else if (!c.will->properties.empty()) {
      return fault(type, "will properties require protocol level 5", R::ProtocolError);
    }
  }
  if (c.username) {
    if (auto e = check_string(*c.username, "user name"); !e.empty()) {
      return fault(type, e, R::MalformedPacket);
    }
  }
  // MQTT 5 allows a password without a user name (3.1.2.9).
  if (c.password && !c.username && !v5) {
    return fault(type, "password flag requires the username flag", R::MalformedPacket);
  }
  return {};
}

Fault check(const Connack& c, V version) {
  constexpr auto type = PacketType::Connack;
  if (version == V::V5) {
    if (c.return_code != ConnectReturnCode::Accepted) {
      return fault(type, "the 3.1.1 return code is not used in MQTT 5 (use reason_code)",
                   R::ProtocolError);
    }
    if (auto f = check_reason_code(type, c.reason_code); !f.empty()) return f;
    if (c.session_present && c.reason_code != R::Success) {
      return fault(type, "session present must be 0 when the reason code is not Success",
                   R::ProtocolError);
    }
    return check_v5_properties(type, c.properties, PropertyContext::Connack);
  }
  const auto code = static_cast<std::uint8_t>(c.return_code);
  if (code > 5) {
    return fault(type, "return code " + std::to_string(code) + " is invalid", R::ProtocolError);
  }
  if (c.session_present && code != 0) {
    return fault(type, "session present must be 0 when the return code is non-zero",
                 R::ProtocolError);
  }
  return check_no_v5_fields(type, c.properties, c.reason_code);
}

// QoS, DUP and packet identifier of a Publish or PublishView.
template <class P>
Fault check_publish_header(const P& p) {
  constexpr auto type = PacketType::Publish;
  if (p.qos > 2)
    return fault(type, "QoS " + std::to_string(p.qos) + " is invalid", R::MalformedPacket);
  if (p.qos == 0 && p.dup) return fault(type, "DUP flag must be 0 for QoS 0", R::MalformedPacket);
  if (p.qos > 0 && p.packet_id == 0) {
    return fault(type, "packet identifier must be non-zero for QoS " + std::to_string(p.qos),
                 R::ProtocolError);
  }
  if (p.qos == 0 && p.packet_id != 0) {
    return fault(type, "packet identifier must be 0 for QoS 0 (it is not transmitted)",
                 R::ProtocolError);
  }
  return {};
}

// The 3.1.1 rules in one function that returns only the message, as fast as before MQTT 5 came
// in (the hub's hot path); publish_reason() tells the reason code on the error path.
template <class P>
std::string check_publish(const P& p) {
  constexpr auto type = PacketType::Publish;
  if (p.qos > 2) return error_for(type, "QoS " + std::to_string(p.qos) + " is invalid");
  if (p.qos == 0 && p.dup) return error_for(type, "DUP flag must be 0 for QoS 0");
  if (p.qos > 0 && p.packet_id == 0) {
    return error_for(type, "packet identifier must be non-zero for QoS " + std::to_string(p.qos));
  }
  if (p.qos == 0 && p.packet_id != 0) {
    return error_for(type, "packet identifier must be 0 for QoS 0 (it is not transmitted)");
  }
  if (auto e = check_topic_name(p.topic); !e.empty()) return error_for(type, e);
  return {};
}

template <class P>
R publish_reason(const P& p) {
  if (p.qos > 2 || (p.qos == 0 && p.dup)) return R::MalformedPacket;
  if ((p.qos > 0) != (p.packet_id != 0)) return R::ProtocolError;
  return topic_reason(p.topic);
}

// The MQTT 5 rules once the properties are known to be valid: an empty topic needs an alias.
template <class P>
Fault check_publish_v5(const P& p, bool has_topic_alias) {
  if (auto f = check_publish_header(p); !f.empty()) return f;
  if (p.topic.empty() && has_topic_alias) return {};
  if (p.topic.empty()) {
    return fault(PacketType::Publish, "topic name must not be empty without a Topic Alias",
                 R::ProtocolError);
  }
  return check_topic_name_field(PacketType::Publish, p.topic);
}

Fault check(const Publish& p, V version) {
  if (version == V::V5) {
    if (auto f = check_v5_properties(PacketType::Publish, p.properties, PropertyContext::Publish);
        !f.empty()) {
      return f;
    }
    return check_publish_v5(p, p.properties.find(PropertyId::TopicAlias) != nullptr);
  }
  if (auto e = check_publish(p); !e.empty()) return Fault{publish_reason(p), std::move(e)};
  return check_no_v5_fields(PacketType::Publish, p.properties, R::Success);
}

template <class Ack>
Fault check_ack(PacketType type, const Ack& a, V version) {
  if (auto f = check_packet_id(type, a.packet_id); !f.empty()) return f;
  if (version != V::V5) return check_no_v5_fields(type, a.properties, a.reason_code);
  if (auto f = check_reason_code(type, a.reason_code); !f.empty()) return f;
  return check_v5_properties(type, a.properties, context_of(type));
}

Fault check(const Puback& p, V v) { return check_ack(PacketType::Puback, p, v); }
Fault check(const Pubrec& p, V v) { return check_ack(PacketType::Pubrec, p, v); }
Fault check(const Pubrel& p, V v) { return check_ack(PacketType::Pubrel, p, v); }
Fault check(const Pubcomp& p, V v) { return check_ack(PacketType::Pubcomp, p, v); }

bool is_shared(std::string_view filter) { return filter.starts_with("$share/"); }

// $share/{ShareName}/{filter} (4.8.2): a non-empty share name without wildcards, then a filter.
Fault check_shared_filter(std::string_view filter) {
  const auto rest = filter.substr(7);
  const auto slash = rest.find('/');
  const auto name = rest.substr(0, slash);
  if (name.empty() || name.find_first_of("+#") != std::string_view::npos) {
    return fault(
        PacketType::Subscribe,
        "shared subscription \"" + std::string(filter) + "\" needs a share name without wildcards",
        R::ProtocolError);
  }
  if (slash == std::string_view::npos || slash + 1 == rest.size()) {
    return fault(PacketType::Subscribe,
                 "shared subscription \"" + std::string(filter) + "\" needs a topic filter",
                 R::ProtocolError);
  }
  return {};
}

Fault check(const Subscribe& s, V version) {
  constexpr auto type = PacketType::Subscribe;
  if (auto f = check_id_and_list(type, s.packet_id, s.subscriptions, "topic filter"); !f.empty()) {
    return f;
  }
  for (const auto& sub : s.subscriptions) {
    if (auto f = check_topic_filter_field(type, sub.topic_filter); !f.empty()) return f;
    if (sub.qos > 2) {
      return fault(type, "requested QoS " + std::to_string(sub.qos) + " is invalid",
                   R::ProtocolError);
    }
    if (version != V::V5) {
      if (sub.no_local || sub.retain_as_published || sub.retain_handling != 0) {
        return fault(type, "subscription options require MQTT 5", R::ProtocolError);
      }
      continue;
    }
    if (sub.retain_handling > 2) {
      return fault(type, "retain handling " + std::to_string(sub.retain_handling) + " is invalid",
                   R::ProtocolError);
    }
    if (is_shared(sub.topic_filter)) {
      if (auto f = check_shared_filter(sub.topic_filter); !f.empty()) return f;
      if (sub.no_local) {
        return fault(type, "no local must be 0 on a shared subscription", R::ProtocolError);
      }
    }
  }
  return check_properties_of(type, s.properties, version, PropertyContext::Subscribe);
}

Fault check(const Suback& s, V version) {
  constexpr auto type = PacketType::Suback;
  if (auto f = check_id_and_list(type, s.packet_id, s.return_codes, "return code"); !f.empty()) {
    return f;
  }
  for (auto code : s.return_codes) {
    if (version == V::V5) {
      if (auto f = check_reason_code(type, static_cast<R>(code)); !f.empty()) return f;
    } else if (code > 2 && code != kSubackFailure) {
      return fault(type, "return code " + hex_byte(code) + " is invalid", R::ProtocolError);
    }
  }
  return check_properties_of(type, s.properties, version, PropertyContext::Suback);
}

Fault check(const Unsubscribe& u, V version) {
  constexpr auto type = PacketType::Unsubscribe;
  if (auto f = check_id_and_list(type, u.packet_id, u.topic_filters, "topic filter"); !f.empty()) {
    return f;
  }
  for (const auto& filter : u.topic_filters) {
    if (auto f = check_topic_filter_field(type, filter); !f.empty()) return f;
  }
  return check_properties_of(type, u.properties, version, PropertyContext::Unsubscribe);
}

Fault check(const Unsuback& u, V version) {
  constexpr auto type = PacketType::Unsuback;
  if (auto f = check_packet_id(type, u.packet_id); !f.empty()) return f;
  if (version != V::V5) {
    if (!u.reason_codes.empty()) {
      return fault(type, "reason codes require MQTT 5", R::ProtocolError);
    }
    return check_no_v5_fields(type, u.properties, R::Success);
  }
  if (u.reason_codes.empty()) {
    return fault(type, "payload must contain at least one reason code", R::ProtocolError);
  }
  for (auto code : u.reason_codes) {
    if (auto f = check_reason_code(type, code); !f.empty()) return f;
  }
  return check_v5_properties(type, u.properties, PropertyContext::Unsuback);
}

Fault check(const Pingreq&, V) { return {}; }
Fault check(const Pingresp&, V) { return {}; }

Fault check(const Disconnect& d, V version) {
  constexpr auto type = PacketType::Disconnect;
  if (version != V::V5) return check_no_v5_fields(type, d.properties, d.reason_code);
  if (auto f = check_reason_code(type, d.reason_code); !f.empty()) return f;
  return check_v5_properties(type, d.properties, PropertyContext::Disconnect);
}

Fault check(const Auth& a, V version) {
  constexpr auto type = PacketType::Auth;
  if (version != V::V5) return fault(type, "AUTH requires MQTT 5", R::ProtocolError);
  if (auto f = check_reason_code(type, a.reason_code); !f.empty()) return f;
  if (auto f = check_v5_properties(type, a.properties, PropertyContext::Auth); !f.empty()) {
    return f;
  }
  // Only the short form (Success, no properties) may leave out the method (3.15.2.2.2).
  if ((a.reason_code != R::Success || !a.properties.empty()) &&
      !a.properties.find(PropertyId::AuthenticationMethod)) {
    return fault(type, "Authentication Method is required", R::ProtocolError);
  }
  return {};
}

// Lengths that only an in-memory packet can get wrong (decoded fields always fit their prefix).
std::string check_field_length(std::size_t length, std::string_view field) {
  if (length <= kMaxFieldLength) return {};
  return error_for(PacketType::Connect, std::string(field) + " is too long (" +
                                            std::to_string(length) + " > 65535 bytes)");
}

std::string check_lengths(const Packet& packet) {
  const auto* c = std::get_if<Connect>(&packet);
  if (c == nullptr) return {};  // topics and filters are bounded by the topic checks
  if (auto e = check_field_length(c->client_id.size(), "client identifier"); !e.empty()) return e;
  if (c->will) {
    if (auto e = check_field_length(c->will->payload.size(), "will message"); !e.empty()) return e;
  }
  if (c->username) {
    if (auto e = check_field_length(c->username->size(), "user name"); !e.empty()) return e;
  }
  if (c->password) {
    if (auto e = check_field_length(c->password->size(), "password"); !e.empty()) return e;
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// Encoding

// The MQTT 5 short form of acknowledgements and DISCONNECT: how many of reason code and
// properties are written.
std::size_t reason_and_properties_size(R reason, const Properties& properties) {
  if (!properties.empty()) return 1 + encoded_properties_size(properties);
  return reason == R::Success ? 0 : 1;
}

struct BodySize {
  V version;

  std::size_t props(const Properties& p) const {
    return version == V::V5 ? encoded_properties_size(p) : 0;
  }
  std::size_t operator()(const Connect& c) const {
    const bool v5 = c.protocol_level == 5;
    std::size_t n = 2 + c.protocol_name.size() + 1 + 1 + 2 + 2 + c.client_id.size();
    if (v5) n += encoded_properties_size(c.properties);
    if (c.will) {
      n += 2 + c.will->topic.size() + 2 + c.will->payload.size();
      if (v5) n += encoded_properties_size(c.will->properties);
    }
    if (c.username) n += 2 + c.username->size();
    if (c.password) n += 2 + c.password->size();
    return n;
  }
  std::size_t operator()(const Connack& c) const { return 2 + props(c.properties); }
  std::size_t operator()(const Publish& p) const {
    return 2 + p.topic.size() + (p.qos > 0 ? 2 : 0) + props(p.properties) + p.payload.size();
  }
  template <class Ack>
  std::size_t ack(const Ack& a) const {
    return 2 + (version == V::V5 ? reason_and_properties_size(a.reason_code, a.properties) : 0);
  }
  std::size_t operator()(const Puback& p) const { return ack(p); }
  std::size_t operator()(const Pubrec& p) const { return ack(p); }
  std::size_t operator()(const Pubrel& p) const { return ack(p); }
  std::size_t operator()(const Pubcomp& p) const { return ack(p); }
  std::size_t operator()(const Subscribe& s) const {
    std::size_t n = 2 + props(s.properties);
    for (const auto& sub : s.subscriptions) n += 2 + sub.topic_filter.size() + 1;
    return n;
  }
  std::size_t operator()(const Suback& s) const {
    return 2 + props(s.properties) + s.return_codes.size();
  }
  std::size_t operator()(const Unsubscribe& u) const {
    std::size_t n = 2 + props(u.properties);
    for (const auto& filter : u.topic_filters) n += 2 + filter.size();
    return n;
  }
  std::size_t operator()(const Unsuback& u) const {
    if (version != V::V5) return 2;
    return 2 + encoded_properties_size(u.properties) + u.reason_codes.size();
  }
  std::size_t operator()(const Pingreq&) const { return 0; }
  std::size_t operator()(const Pingresp&) const { return 0; }
  std::size_t operator()(const Disconnect& d) const {
    return version == V::V5 ? reason_and_properties_size(d.reason_code, d.properties) : 0;
  }
  std::size_t operator()(const Auth& a) const {
    if (a.reason_code == R::Success && a.properties.empty()) return 0;
    return 1 + encoded_properties_size(a.properties);
  }
};

std::size_t body_size(const Packet& packet, V version) {
  return std::visit(BodySize{version}, packet);
}

// Inlined on purpose: the 3.1.1 encoders were as fast before the MQTT 5 code added callers.
[[gnu::always_inline]] inline void put_u8(std::string& out, std::uint8_t value) {
  out.push_back(static_cast<char>(value));
}

[[gnu::always_inline]] inline void put_u16(std::string& out, std::uint16_t value) {
  out.push_back(static_cast<char>(value >> 8));
  out.push_back(static_cast<char>(value & 0xFF));
}

void put_string(std::string& out, std::string_view value) {
  put_u16(out, static_cast<std::uint16_t>(value.size()));
  out.append(value);
}

void put_varint(std::string& out, std::size_t value) {
  do {
    auto byte = static_cast<std::uint8_t>(value & 0x7F);
    value >>= 7;
    if (value > 0) byte |= 0x80;
    put_u8(out, byte);
  } while (value > 0);
}

std::uint8_t first_byte(const Packet& packet) {
  const auto type = type_of(packet);
  std::uint8_t flags = required_flags(type);
  if (const auto* p = std::get_if<Publish>(&packet)) {
    flags = static_cast<std::uint8_t>((p->dup ? 0x08 : 0) | (p->qos << 1) | (p->retain ? 1 : 0));
  }
  return static_cast<std::uint8_t>(static_cast<std::uint8_t>(type) << 4 | flags);
}

std::uint8_t subscription_options(const Subscription& sub) {
  return static_cast<std::uint8_t>(sub.qos | (sub.no_local ? 0x04 : 0) |
                                   (sub.retain_as_published ? 0x08 : 0) |
                                   (sub.retain_handling << 4));
}

struct BodyWriter {
  std::string& out;
  V version;

  void props(const Properties& p) const {
    if (version == V::V5) encode_properties(p, out);
  }
  void reason_and_properties(R reason, const Properties& p) const {
    if (reason == R::Success && p.empty()) return;
    put_u8(out, static_cast<std::uint8_t>(reason));
    if (!p.empty()) encode_properties(p, out);
  }

  void operator()(const Connect& c) const {
    const bool v5 = c.protocol_level == 5;
    put_string(out, c.protocol_name);
    put_u8(out, c.protocol_level);
    std::uint8_t flags = c.clean_session ? 0x02 : 0;
    if (c.will) {
      flags |= static_cast<std::uint8_t>(0x04 | (c.will->qos << 3) | (c.will->retain ? 0x20 : 0));
    }
    if (c.password) flags |= 0x40;
    if (c.username) flags |= 0x80;
    put_u8(out, flags);
    put_u16(out, c.keep_alive);
    if (v5) encode_properties(c.properties, out);
    put_string(out, c.client_id);
    if (c.will) {
      if (v5) encode_properties(c.will->properties, out);
      put_string(out, c.will->topic);
      put_string(out, c.will->payload);
    }
    if (c.username) put_string(out, *c.username);
    if (c.password) put_string(out, *c.password);
  }
  void operator()(const Connack& c) const {
    put_u8(out, c.session_present ? 1 : 0);
    if (version == V::V5) {
      put_u8(out, static_cast<std::uint8_t>(c.reason_code));
      encode_properties(c.properties, out);
    } else {
      put_u8(out, static_cast<std::uint8_t>(c.return_code));
    }
  }
  void operator()(const Publish& p) const {
    put_string(out, p.topic);
    if (p.qos > 0) put_u16(out, p.packet_id);
    props(p.properties);
    out.append(p.payload);
  }
  template <class Ack>
  void ack(const Ack& a) const {
    put_u16(out, a.packet_id);
    if (version == V::V5) reason_and_properties(a.reason_code, a.properties);
  }
  void operator()(const Puback& p) const { ack(p); }
  void operator()(const Pubrec& p) const { ack(p); }
  void operator()(const Pubrel& p) const { ack(p); }
  void operator()(const Pubcomp& p) const { ack(p); }
  void operator()(const Subscribe& s) const {
    put_u16(out, s.packet_id);
    props(s.properties);
    for (const auto& sub : s.subscriptions) {
      put_string(out, sub.topic_filter);
      put_u8(out, subscription_options(sub));
    }
  }
  void operator()(const Suback& s) const {
    put_u16(out, s.packet_id);
    props(s.properties);
    out.append(reinterpret_cast<const char*>(s.return_codes.data()), s.return_codes.size());
  }
  void operator()(const Unsubscribe& u) const {
    put_u16(out, u.packet_id);
    props(u.properties);
    for (const auto& filter : u.topic_filters) put_string(out, filter);
  }
  void operator()(const Unsuback& u) const {
    put_u16(out, u.packet_id);
    if (version != V::V5) return;
    encode_properties(u.properties, out);
    for (auto code : u.reason_codes) put_u8(out, static_cast<std::uint8_t>(code));
  }
  void operator()(const Pingreq&) const {}
  void operator()(const Pingresp&) const {}
  void operator()(const Disconnect& d) const {
    if (version == V::V5) reason_and_properties(d.reason_code, d.properties);
  }
  void operator()(const Auth& a) const {
    if (a.reason_code == R::Success && a.properties.empty()) return;
    put_u8(out, static_cast<std::uint8_t>(a.reason_code));
    encode_properties(a.properties, out);
  }
};

// ---------------------------------------------------------------------------------------------
// Decoding

// Reads the fields of one packet body; the first failure records a message naming the field and
// the reason code (Malformed Packet unless said otherwise).
class Reader {
 public:
  Reader(std::string_view data, PacketType type) : data_(data), type_(type) {}

  bool u8(std::uint8_t& value, std::string_view field) {
    if (data_.size() - pos_ < 1) return past_end(field);
    value = static_cast<std::uint8_t>(data_[pos_++]);
    return true;
  }

  bool u16(std::uint16_t& value, std::string_view field) {
    if (data_.size() - pos_ < 2) return past_end(field);
    value = static_cast<std::uint16_t>(static_cast<std::uint8_t>(data_[pos_]) << 8 |
                                       static_cast<std::uint8_t>(data_[pos_ + 1]));
    pos_ += 2;
    return true;
  }

  // A two-byte length followed by that many bytes.
  bool string(std::string_view& value, std::string_view field) {
    if (data_.size() - pos_ < 2) return length_field_past_end(field);
    const std::size_t length =
        static_cast<std::uint8_t>(data_[pos_]) << 8 | static_cast<std::uint8_t>(data_[pos_ + 1]);
    pos_ += 2;
    if (data_.size() - pos_ < length) return length_past_end(field, length);
    value = data_.substr(pos_, length);
    pos_ += length;
    return true;
  }

  // A Variable Byte Integer (1.5.5): at most four bytes. The field is named `field` + `suffix`
  // (joined only for an error: this runs for every MQTT 5 PUBLISH).
  bool varint(std::size_t& value, std::string_view field, std::string_view suffix = {}) {
    value = 0;
    for (int i = 0; i < 4; ++i) {
      if (data_.size() - pos_ < 1) return past_end(std::string(field).append(suffix));
      const auto byte = static_cast<std::uint8_t>(data_[pos_++]);
      value |= static_cast<std::size_t>(byte & 0x7F) << (7 * i);
      if (!(byte & 0x80)) return true;
    }
    return fail(std::string(field).append(suffix) +
                " is a malformed Variable Byte Integer (more than 4 bytes)");
  }

  // Property Length and the property bytes, unparsed.
  [[gnu::always_inline]] bool property_bytes(std::string_view& bytes, std::string_view what) {
    std::size_t length = 0;
    if (pos_ < data_.size() && static_cast<std::uint8_t>(data_[pos_]) < 0x80) {
      length = static_cast<std::uint8_t>(data_[pos_++]);  // the usual one-byte Property Length
    } else if (!varint(length, what, " length")) {
      return false;
    }
    if (data_.size() - pos_ < length) return length_past_end(what, length);
    bytes = std::string_view(data_.data() + pos_, length);  // within data_, checked above
    pos_ += length;
    return true;
  }

  // Property Length and the properties, parsed and checked for `context`.
  bool properties(Properties& out, PropertyContext context) {
    std::string_view bytes;
    const bool will = context == PropertyContext::Will;
    if (!property_bytes(bytes, will ? "will properties" : "properties")) return false;
    if (auto e = decode_properties(bytes, context, out); !e.message.empty()) {
      return fail(e.message, e.reason);
    }
    return true;
  }

  std::string_view rest() {
    auto out = data_.substr(pos_);
    pos_ = data_.size();
    return out;
  }

  bool at_end() const { return pos_ == data_.size(); }
  std::size_t left() const { return data_.size() - pos_; }

  // The failures are out of line: the reads above stay small in the functions that inline them
  // (every PUBLISH goes through them).
  [[gnu::cold, gnu::noinline]] bool fail(std::string_view message, R reason = R::MalformedPacket) {
    error_ = error_for(type_, message);
    reason_ = reason;
    return false;
  }

  std::string& error() { return error_; }
  R reason() const { return reason_; }

 private:
  static constexpr char kPastEnd[] = " runs past the end of the packet";

  [[gnu::cold, gnu::noinline]] bool past_end(std::string_view field) {
    return fail(std::string(field) + kPastEnd);
  }
  [[gnu::cold, gnu::noinline]] bool length_field_past_end(std::string_view field) {
    return fail(std::string(field) + " length" + kPastEnd);
  }
  // `field` announced `length` bytes, more than are left.
  [[gnu::cold, gnu::noinline]] bool length_past_end(std::string_view field, std::size_t length) {
    return fail(std::string(field) + kPastEnd + " (length " + std::to_string(length) + ", " +
                std::to_string(data_.size() - pos_) + " bytes left)");
  }

  std::string_view data_;
  std::size_t pos_ = 0;
  PacketType type_;
  std::string error_;
  R reason_ = R::MalformedPacket;
};

// Everything of CONNECT after the protocol level, in the MQTT 3.1 / 3.1.1 layout, or in the MQTT 5
// layout (properties after keep alive and before the will topic; a password without a user name).
bool decode_connect_rest(Reader& in, Connect& c, bool v5) {
  std::uint8_t flags = 0;
  if (!in.u8(flags, "connect flags")) return false;
  if (flags & 0x01) return in.fail("reserved connect flag (bit 0) must be 0");
  const bool will = flags & 0x04;
  const auto will_qos = static_cast<std::uint8_t>((flags >> 3) & 0x03);
  const bool will_retain = flags & 0x20;
  const bool has_password = flags & 0x40;
  const bool has_username = flags & 0x80;
  if (!will && (will_qos != 0 || will_retain)) {
    return in.fail("will QoS and will retain flags must be 0 when the will flag is 0");
  }
  if (will_qos == 3) return in.fail("will QoS 3 is invalid");
  if (has_password && !has_username && !v5) {
    return in.fail("password flag requires the username flag");
  }
  c.clean_session = flags & 0x02;
  if (!in.u16(c.keep_alive, "keep alive")) return false;
  if (v5 && !in.properties(c.properties, PropertyContext::Connect)) return false;

  std::string_view field;
  if (!in.string(field, "client identifier")) return false;
  c.client_id.assign(field);
  if (will) {
    auto& w = c.will.emplace();
    w.qos = will_qos;
    w.retain = will_retain;
    if (v5 && !in.properties(w.properties, PropertyContext::Will)) return false;
    if (!in.string(field, "will topic")) return false;
    w.topic.assign(field);
    if (!in.string(field, "will message")) return false;
    w.payload.assign(field);
  }
  if (has_username) {
    if (!in.string(field, "user name")) return false;
    c.username.emplace(field);
  }
  if (has_password) {
    if (!in.string(field, "password")) return false;
    c.password.emplace(field);
  }
  return true;
}

bool decode_connect(Reader& in, Packet& packet) {
  auto& c = packet.emplace<Connect>();
  std::string_view name;
  if (!in.string(name, "protocol name")) return false;
  if (name != "MQTT" && name != "MQIsdp") {
    return in.fail("protocol name must be \"MQTT\" or \"MQIsdp\"", R::UnsupportedProtocolVersion);
  }
  c.protocol_name.assign(name);
  if (!in.u8(c.protocol_level, "protocol level")) return false;
  if (c.protocol_level == 3 || c.protocol_level == 4) return decode_connect_rest(in, c, false);
  if (c.protocol_level == 5) {
    if (name != "MQTT") {
      return in.fail("protocol name must be \"MQTT\" with protocol level 5",
                     R::UnsupportedProtocolVersion);
    }
    return decode_connect_rest(in, c, true);
  }

  // Another protocol level may lay out the rest differently. The server must still be able to
  // answer CONNACK 1, so decode the rest best-effort and fall back to name and level.
  Reader attempt = in;
  Connect full = c;
  if (decode_connect_rest(attempt, full, false) && attempt.at_end() &&
      check(full, V::V311).empty()) {
    c = std::move(full);
  }
  in.rest();
  return true;
}

bool decode_connack(Reader& in, Packet& packet, V version) {
  auto& c = packet.emplace<Connack>();
  std::uint8_t flags = 0;
  std::uint8_t code = 0;
  if (!in.u8(flags, "acknowledge flags")) return false;
  if (flags & 0xFE) {
    return in.fail("reserved acknowledge flags must be 0 (got " + hex_byte(flags) + ")");
  }
  c.session_present = flags & 0x01;
  if (version == V::V5) {
    if (!in.u8(code, "reason code")) return false;
    c.reason_code = static_cast<R>(code);
    return in.properties(c.properties, PropertyContext::Connack);
  }
  if (!in.u8(code, "return code")) return false;
  c.return_code = static_cast<ConnectReturnCode>(code);
  return true;
}

bool decode_publish_view(Reader& in, std::uint8_t flags, PublishView& p) {
  p.dup = flags & 0x08;
  p.qos = static_cast<std::uint8_t>((flags >> 1) & 0x03);
  p.retain = flags & 0x01;
  if (!in.string(p.topic, "topic name")) return false;
  if (p.qos > 0 && !in.u16(p.packet_id, "packet identifier")) return false;
  p.payload = in.rest();
  return true;
}

// The MQTT 5 PUBLISH: properties between the packet identifier and the payload.
[[gnu::always_inline]] inline bool decode_publish_view_v5(Reader& in, std::uint8_t flags,
                                                          PublishView& p, Properties& properties) {
  p.dup = flags & 0x08;
  p.qos = static_cast<std::uint8_t>((flags >> 1) & 0x03);
  p.retain = flags & 0x01;
  if (!in.string(p.topic, "topic name")) return false;
  if (p.qos > 0 && !in.u16(p.packet_id, "packet identifier")) return false;
  if (!in.property_bytes(p.properties, "properties")) return false;
  if (p.properties.empty()) {
    properties.list.clear();
  } else if (auto e = decode_properties(p.properties, PropertyContext::Publish, properties);
             !e.message.empty()) {
    return in.fail(e.message, e.reason);
  }
  p.payload = in.rest();
  return true;
}

[[gnu::always_inline]] inline Publish& publish_from_view(Packet& packet, const PublishView& view) {
  auto& p = packet.emplace<Publish>();
  p.topic.assign(view.topic);
  p.payload.assign(view.payload);
  p.qos = view.qos;
  p.retain = view.retain;
  p.dup = view.dup;
  p.packet_id = view.packet_id;
  return p;
}

bool decode_publish(Reader& in, std::uint8_t flags, Packet& packet, V version) {
  PublishView view;
  if (version == V::V5) {
    Properties properties;
    if (!decode_publish_view_v5(in, flags, view, properties)) return false;
    publish_from_view(packet, view).properties = std::move(properties);
    return true;
  }
  if (!decode_publish_view(in, flags, view)) return false;
  publish_from_view(packet, view);
  return true;
}

// PUBACK, PUBREC, PUBREL, PUBCOMP: in MQTT 5 the reason code and the properties may be left out.
template <class T>
bool decode_ack(Reader& in, Packet& packet, V version) {
  auto& a = packet.emplace<T>();
  if (!in.u16(a.packet_id, "packet identifier")) return false;
  if (version != V::V5 || in.at_end()) return true;
  std::uint8_t code = 0;
  if (!in.u8(code, "reason code")) return false;
  a.reason_code = static_cast<R>(code);
  if (in.at_end()) return true;
  return in.properties(a.properties, context_of(type_of(packet)));
}

bool decode_subscribe(Reader& in, Packet& packet, V version) {
  auto& s = packet.emplace<Subscribe>();
  const bool v5 = version == V::V5;
  if (!in.u16(s.packet_id, "packet identifier")) return false;
  if (v5 && !in.properties(s.properties, PropertyContext::Subscribe)) return false;
  while (!in.at_end()) {
    std::string_view filter;
    std::uint8_t options = 0;
    if (!in.string(filter, "topic filter")) return false;
    if (!in.u8(options, v5 ? "subscription options" : "requested QoS")) return false;
    if (v5 && (options & 0xC0)) {
      return in.fail("reserved bits of the subscription options must be 0 (got " +
                     hex_byte(options) + ")");
    }
    if (!v5 && (options & 0xFC)) {
      return in.fail("reserved bits of the requested QoS byte must be 0 (got " + hex_byte(options) +
                     ")");
    }
    Subscription sub{std::string(filter), static_cast<std::uint8_t>(options & 0x03)};
    sub.no_local = options & 0x04;
    sub.retain_as_published = options & 0x08;
    sub.retain_handling = static_cast<std::uint8_t>((options >> 4) & 0x03);
    s.subscriptions.push_back(std::move(sub));
  }
  return true;
}

bool decode_suback(Reader& in, Packet& packet, V version) {
  auto& s = packet.emplace<Suback>();
  if (!in.u16(s.packet_id, "packet identifier")) return false;
  if (version == V::V5 && !in.properties(s.properties, PropertyContext::Suback)) return false;
  const auto codes = in.rest();
  s.return_codes.assign(codes.begin(), codes.end());
  return true;
}

bool decode_unsubscribe(Reader& in, Packet& packet, V version) {
  auto& u = packet.emplace<Unsubscribe>();
  if (!in.u16(u.packet_id, "packet identifier")) return false;
  if (version == V::V5 && !in.properties(u.properties, PropertyContext::Unsubscribe)) return false;
  while (!in.at_end()) {
    std::string_view filter;
    if (!in.string(filter, "topic filter")) return false;
    u.topic_filters.emplace_back(filter);
  }
  return true;
}

bool decode_unsuback(Reader& in, Packet& packet, V version) {
  auto& u = packet.emplace<Unsuback>();
  if (!in.u16(u.packet_id, "packet identifier")) return false;
  if (version != V::V5) return true;
  if (!in.properties(u.properties, PropertyContext::Unsuback)) return false;
  for (char code : in.rest())
    u.reason_codes.push_back(static_cast<R>(static_cast<std::uint8_t>(code)));
  return true;
}

// DISCONNECT and AUTH: no body means Success; a reason code alone means no properties.
template <class T>
bool decode_reason_and_properties(Reader& in, Packet& packet, PropertyContext context) {
  auto& p = packet.emplace<T>();
  if (in.at_end()) return true;
  std::uint8_t code = 0;
  if (!in.u8(code, "reason code")) return false;
  p.reason_code = static_cast<R>(code);
  if (in.at_end()) return true;
  return in.properties(p.properties, context);
}

bool decode_body(Reader& in, const FixedHeader& header, Packet& packet, V version) {
  switch (header.type) {
    case PacketType::Connect:
      return decode_connect(in, packet);
    case PacketType::Connack:
      return decode_connack(in, packet, version);
    case PacketType::Publish:
      return decode_publish(in, header.flags, packet, version);
    case PacketType::Puback:
      return decode_ack<Puback>(in, packet, version);
    case PacketType::Pubrec:
      return decode_ack<Pubrec>(in, packet, version);
    case PacketType::Pubrel:
      return decode_ack<Pubrel>(in, packet, version);
    case PacketType::Pubcomp:
      return decode_ack<Pubcomp>(in, packet, version);
    case PacketType::Subscribe:
      return decode_subscribe(in, packet, version);
    case PacketType::Suback:
      return decode_suback(in, packet, version);
    case PacketType::Unsubscribe:
      return decode_unsubscribe(in, packet, version);
    case PacketType::Unsuback:
      return decode_unsuback(in, packet, version);
    case PacketType::Pingreq:
      packet.emplace<Pingreq>();
      return true;
    case PacketType::Pingresp:
      packet.emplace<Pingresp>();
      return true;
    case PacketType::Disconnect:
      if (version != V::V5) {
        packet.emplace<Disconnect>();
        return true;
      }
      return decode_reason_and_properties<Disconnect>(in, packet, PropertyContext::Disconnect);
    case PacketType::Auth:
      return decode_reason_and_properties<Auth>(in, packet, PropertyContext::Auth);
  }
  return in.fail("unknown packet type");
}

Fault check_packet(const Packet& packet, V version) {
  return std::visit([version](const auto& p) { return check(p, version); }, packet);
}

}  // namespace

std::string_view to_string(PacketType type) {
  switch (type) {
    case PacketType::Connect:
      return "CONNECT";
    case PacketType::Connack:
      return "CONNACK";
    case PacketType::Publish:
      return "PUBLISH";
    case PacketType::Puback:
      return "PUBACK";
    case PacketType::Pubrec:
      return "PUBREC";
    case PacketType::Pubrel:
      return "PUBREL";
    case PacketType::Pubcomp:
      return "PUBCOMP";
    case PacketType::Subscribe:
      return "SUBSCRIBE";
    case PacketType::Suback:
      return "SUBACK";
    case PacketType::Unsubscribe:
      return "UNSUBSCRIBE";
    case PacketType::Unsuback:
      return "UNSUBACK";
    case PacketType::Pingreq:
      return "PINGREQ";
    case PacketType::Pingresp:
      return "PINGRESP";
    case PacketType::Disconnect:
      return "DISCONNECT";
    case PacketType::Auth:
      return "AUTH";
  }
  return "RESERVED";
}

std::string_view to_string(ConnectReturnCode code) {
  switch (code) {
    case ConnectReturnCode::Accepted:
      return "connection accepted";
    case ConnectReturnCode::UnacceptableProtocolVersion:
      return "unacceptable protocol version";
    case ConnectReturnCode::IdentifierRejected:
      return "identifier rejected";
    case ConnectReturnCode::ServerUnavailable:
      return "server unavailable";
    case ConnectReturnCode::BadUsernameOrPassword:
      return "bad user name or password";
    case ConnectReturnCode::NotAuthorized:
      return "not authorized";
  }
  return "invalid return code";
}

std::string validate(const Packet& packet, ProtocolVersion version) {
  if (auto f = check_packet(packet, version); !f.empty()) return std::move(f.text);
  if (auto e = check_lengths(packet); !e.empty()) return e;
  const std::size_t body = body_size(packet, version);
  if (body > kMaxRemainingLength) {
    return error_for(type_of(packet), "packet too large (remaining length " + std::to_string(body) +
                                          " > " + std::to_string(kMaxRemainingLength) + " bytes)");
  }
  return {};
}

std::size_t encoded_size(const Packet& packet, ProtocolVersion version) {
  const std::size_t body = body_size(packet, version);
  return 1 + varint_size(body) + body;
}

namespace {
// The usual acknowledgement of a QoS 1/2 message: Success without properties, the 3.1.1 bytes in
// either version (MQTT 5's short form), appended without the checks, which it passes whatever
// its packet identifier but 0. False for any other packet.
template <class Ack>
[[gnu::always_inline]] inline bool encode_plain_ack(const Packet& packet, std::string& out) {
  const auto* a = std::get_if<Ack>(&packet);
  if (a == nullptr || a->packet_id == 0 || a->reason_code != R::Success || !a->properties.empty()) {
    return false;
  }
  const char bytes[4] = {static_cast<char>(first_byte(packet)), 2,
                         static_cast<char>(a->packet_id >> 8),
                         static_cast<char>(a->packet_id & 0xFF)};
  out.append(bytes, 4);
  return true;
}
}  // namespace

void encode(const Packet& packet, std::string& out, ProtocolVersion version) {
  if (encode_plain_ack<Puback>(packet, out) || encode_plain_ack<Pubrec>(packet, out) ||
      encode_plain_ack<Pubrel>(packet, out) || encode_plain_ack<Pubcomp>(packet, out)) {
    return;
  }
  if (auto e = validate(packet, version); !e.empty()) throw std::invalid_argument(e);
  if (const auto* p = std::get_if<Publish>(&packet); p != nullptr && version != V::V5) {
    encode_publish(out, p->topic, p->payload, p->qos, p->retain, p->dup, p->packet_id);
    return;
  }
  const std::size_t body = body_size(packet, version);
  out.reserve(out.size() + 1 + varint_size(body) + body);
  put_u8(out, first_byte(packet));
  put_varint(out, body);
  std::visit(BodyWriter{out, version}, packet);
}

namespace {
// A PUBLISH made of its parts. `properties`: nullopt for 3.1.1; else what encode_properties()
// wrote, or empty for a Property Length 0. Everything before the payload goes in one append when
// it fits a small buffer (the usual topic), so that both versions take two appends, on the path
// every subscriber's copy of a message takes; else one per field.
[[gnu::always_inline]] inline void append_publish(std::string& out, std::string_view topic,
                                                  std::string_view payload, std::uint8_t qos,
                                                  bool retain, bool dup, std::uint16_t packet_id,
                                                  std::optional<std::string_view> properties) {
  const std::size_t props = !properties ? 0 : properties->empty() ? 1 : properties->size();
  const std::size_t body = 2 + topic.size() + (qos > 0 ? 2 : 0) + props + payload.size();
  out.reserve(out.size() + 1 + varint_size(body) + body);
  constexpr std::size_t kSmallHead = 128;
  char head[kSmallHead];
  std::size_t n = 0;
  head[n++] = static_cast<char>(static_cast<std::uint8_t>(PacketType::Publish) << 4 |
                                (dup ? 0x08 : 0) | (qos << 1) | (retain ? 1 : 0));
  std::size_t length = body;
  do {
    auto byte = static_cast<std::uint8_t>(length & 0x7F);
    length >>= 7;
    if (length > 0) byte |= 0x80;
    head[n++] = static_cast<char>(byte);
  } while (length > 0);
  head[n++] = static_cast<char>(topic.size() >> 8);
  head[n++] = static_cast<char>(topic.size() & 0xFF);
  const bool small = n + topic.size() + 2 + props <= kSmallHead;
  if (small) {
    std::memcpy(head + n, topic.data(), topic.size());
    n += topic.size();
  } else {
    out.append(head, n);
    out.append(topic);
    n = 0;
  }
  if (qos > 0) {
    head[n++] = static_cast<char>(packet_id >> 8);
    head[n++] = static_cast<char>(packet_id & 0xFF);
  }
  if (properties && properties->empty()) head[n++] = 0;
  if (properties && !properties->empty() && small) {
    std::memcpy(head + n, properties->data(), properties->size());
    n += properties->size();
  }
  out.append(head, n);
  if (properties && !properties->empty() && !small) out.append(*properties);
  out.append(payload);
}
}  // namespace

void encode_publish(std::string& out, std::string_view topic, std::string_view payload,
                    std::uint8_t qos, bool retain, bool dup, std::uint16_t packet_id) {
  append_publish(out, topic, payload, qos, retain, dup, packet_id, std::nullopt);
}

void encode_publish_v5(std::string& out, std::string_view topic, std::string_view payload,
                       std::uint8_t qos, bool retain, bool dup, std::uint16_t packet_id,
                       std::string_view properties) {
  append_publish(out, topic, payload, qos, retain, dup, packet_id, properties);
}

std::string encode(const Packet& packet, ProtocolVersion version) {
  std::string out;
  encode(packet, out, version);
  return out;
}

HeaderResult decode_fixed_header(std::string_view data, const DecodeLimits& limits,
                                 ProtocolVersion version) {
  HeaderResult result;
  if (data.empty()) return result;
  auto fail = [&](std::string message, R reason = R::MalformedPacket) {
    result.status = DecodeStatus::Error;
    result.error = std::move(message);
    result.reason = reason;
    return result;
  };

  const auto first = static_cast<std::uint8_t>(data[0]);
  const auto type_value = static_cast<std::uint8_t>(first >> 4);
  const auto flags = static_cast<std::uint8_t>(first & 0x0F);
  if (type_value == 0 || (type_value == 15 && version != V::V5)) {
    return fail("invalid packet type " + std::to_string(type_value) + " (reserved)");
  }
  const auto type = static_cast<PacketType>(type_value);
  result.header.type = type;
  result.header.flags = flags;
  if (type == PacketType::Publish) {
    const auto qos = (flags >> 1) & 0x03;
    if (qos == 3) return fail(error_for(type, "QoS 3 is invalid"));
    if (qos == 0 && (flags & 0x08)) return fail(error_for(type, "DUP flag must be 0 for QoS 0"));
  } else if (flags != required_flags(type)) {
    return fail(error_for(type, "reserved fixed header flags must be " +
                                    nibble_bits(required_flags(type)) + " (got " +
                                    nibble_bits(flags) + ")"));
  }

  // Remaining Length: at most four bytes, seven bits each, least significant first.
  std::size_t value = 0;
  std::size_t i = 0;
  for (;; ++i) {
    if (i == 4) {
      return fail(error_for(type, "malformed remaining length (more than 4 bytes)"));
    }
    if (1 + i >= data.size()) return result;  // Incomplete
    const auto byte = static_cast<std::uint8_t>(data[1 + i]);
    value |= static_cast<std::size_t>(byte & 0x7F) << (7 * i);
    if (!(byte & 0x80)) break;
  }
  result.header.remaining_length = value;
  result.header.header_length = 2 + i;
  if (value > limits.max_remaining_length) {
    return fail(error_for(type, "remaining length exceeds limit (" + std::to_string(value) + " > " +
                                    std::to_string(limits.max_remaining_length) + " bytes)"),
                R::PacketTooLarge);
  }
  if (limits.maximum_packet_size != 0 &&
      result.header.packet_length() > limits.maximum_packet_size) {
    return fail(error_for(type, "packet size exceeds the Maximum Packet Size (" +
                                    std::to_string(result.header.packet_length()) + " > " +
                                    std::to_string(limits.maximum_packet_size) + " bytes)"),
                R::PacketTooLarge);
  }
  if (const long fixed = fixed_remaining_length(type, version);
      fixed >= 0 && value != static_cast<std::size_t>(fixed)) {
    return fail(error_for(type, "remaining length must be " + std::to_string(fixed) + " (got " +
                                    std::to_string(value) + ")"));
  }
  result.status = DecodeStatus::Ok;
  return result;
}

namespace {
// The usual acknowledgement of a QoS 1/2 message (see encode_plain_ack), in `body`, the two bytes
// after its fixed header: the packet identifier alone, valid in either version unless it is 0.
// False for any other packet.
bool decode_plain_ack(std::string_view body, PacketType type, Packet& packet) {
  const auto id = static_cast<std::uint16_t>(static_cast<std::uint8_t>(body[0]) << 8 |
                                             static_cast<std::uint8_t>(body[1]));
  if (id == 0) return false;
  switch (type) {
    case PacketType::Puback:
      packet.emplace<Puback>().packet_id = id;
      return true;
    case PacketType::Pubrec:
      packet.emplace<Pubrec>().packet_id = id;
      return true;
    case PacketType::Pubrel:
      packet.emplace<Pubrel>().packet_id = id;
      return true;
    case PacketType::Pubcomp:
      packet.emplace<Pubcomp>().packet_id = id;
      return true;
    default:
      return false;
  }
}
}  // namespace

DecodeResult decode(std::string_view data, const DecodeLimits& limits, ProtocolVersion version) {
  DecodeResult result;
  HeaderResult head = decode_fixed_header(data, limits, version);
  if (head.status != DecodeStatus::Ok) {
    result.status = head.status;
    result.error = std::move(head.error);
    result.reason = head.reason;
    return result;
  }
  const FixedHeader& header = head.header;
  if (data.size() < header.packet_length()) return result;  // Incomplete
  if (header.remaining_length == 2 &&
      decode_plain_ack(data.substr(header.header_length, 2), header.type, result.packet)) {
    result.status = DecodeStatus::Ok;
    result.consumed = header.packet_length();
    return result;
  }

  Reader in(data.substr(header.header_length, header.remaining_length), header.type);
  bool ok = decode_body(in, header, result.packet, version);
  if (ok && !in.at_end()) {
    ok = in.fail("remaining length leaves " + std::to_string(in.left()) +
                 " bytes left over after the last field");
  }
  if (!ok) {
    result.status = DecodeStatus::Error;
    result.error = std::move(in.error());
    result.reason = in.reason();
    return result;
  }
  if (auto f = check_packet(result.packet, version); !f.empty()) {
    result.status = DecodeStatus::Error;
    result.error = std::move(f.text);
    result.reason = f.reason;
    return result;
  }
  result.status = DecodeStatus::Ok;
  result.consumed = header.packet_length();
  return result;
}

std::string decode_publish(std::string_view data, const FixedHeader& header, PublishView& out) {
  Reader in(data.substr(header.header_length, header.remaining_length), header.type);
  out = PublishView{};
  if (!decode_publish_view(in, header.flags, out)) return std::move(in.error());
  return check_publish(out);
}

namespace {
// The MQTT 5 PUBLISH with its properties parsed into `properties` (inlined: the hub's read path
// calls decode_publish() below for every PUBLISH).
[[gnu::always_inline]] inline DecodeError decode_publish_v5(std::string_view data,
                                                            const FixedHeader& header,
                                                            PublishView& out,
                                                            Properties& properties) {
  Reader in(data.substr(header.header_length, header.remaining_length), header.type);
  out = PublishView{};
  if (!decode_publish_view_v5(in, header.flags, out, properties)) {
    return DecodeError{in.reason(), std::move(in.error())};
  }
  // A topic given: the rules are those of 3.1.1, checked as fast; the MQTT 5 check words an error
  // with its reason code, and allows an empty topic with a Topic Alias.
  if (!out.topic.empty() && check_publish(out).empty()) return {};
  auto f = check_publish_v5(out, properties.find(PropertyId::TopicAlias) != nullptr);
  return DecodeError{f.reason, std::move(f.text)};
}

// The usual MQTT 5 PUBLISH, a valid one with a topic and no properties, read as fast as a 3.1.1
// one: its layout with a Property Length 0 before the payload. False for any other, which
// decode_publish_v5() then reads (and words the error of).
[[gnu::always_inline]] inline bool decode_plain_publish_v5(std::string_view data,
                                                           const FixedHeader& header,
                                                           PublishView& out) {
  // The 3.1.1 rules require a topic; the payload starts with the Property Length.
  if (!decode_publish(data, header, out).empty() || out.payload.empty() ||
      out.payload.front() != 0) {
    return false;
  }
  out.payload.remove_prefix(1);
  return true;
}

// The paths off the usual ones, out of line: the function below keeps a small frame.
// A 3.1.1 PUBLISH that decode_publish() refused with `error`.
[[gnu::noinline]] DecodeError refused_publish(std::string_view data, const FixedHeader& header,
                                              ProtocolVersion version, std::string error) {
  // decode_publish() words what it found; the reason follows the same rules as decode().
  const DecodeResult full = decode(data.substr(0, header.packet_length()), {}, version);
  return DecodeError{full.reason, std::move(error)};
}

// An MQTT 5 PUBLISH with properties, without a topic, or not valid.
[[gnu::noinline]] DecodeError decode_other_publish_v5(std::string_view data,
                                                      const FixedHeader& header, PublishView& out,
                                                      Properties* parsed) {
  if (parsed != nullptr) return decode_publish_v5(data, header, out, *parsed);
  Properties properties;
  return decode_publish_v5(data, header, out, properties);
}
}  // namespace

// The layout of decode_publish_view() (and the Property Length 0 of an MQTT 5 PUBLISH without
// properties), with the checks of check_publish() that do not concern the topic: the QoS and DUP
// rules of the fixed header are decode_fixed_header()'s, a QoS 1/2 packet identifier must not be 0.
bool decode_known_publish(std::string_view data, const FixedHeader& header, PublishView& out,
                          ProtocolVersion version, std::string_view known_topic) {
  if (known_topic.empty() || data.size() < header.packet_length()) return false;
  const std::string_view body = data.substr(header.header_length, header.remaining_length);
  const std::size_t topic_size = known_topic.size();
  if (body.size() < 2 + topic_size ||
      (static_cast<std::size_t>(static_cast<std::uint8_t>(body[0])) << 8 |
       static_cast<std::uint8_t>(body[1])) != topic_size ||
      std::memcmp(body.data() + 2, known_topic.data(), topic_size) != 0) {
    return false;
  }
  std::size_t at = 2 + topic_size;
  const auto qos = static_cast<std::uint8_t>((header.flags >> 1) & 0x03);
  std::uint16_t packet_id = 0;
  if (qos > 0) {
    if (body.size() < at + 2) return false;
    packet_id = static_cast<std::uint16_t>(static_cast<std::uint8_t>(body[at]) << 8 |
                                           static_cast<std::uint8_t>(body[at + 1]));
    if (packet_id == 0) return false;
    at += 2;
  }
  if (version == V::V5) {
    if (body.size() < at + 1 || body[at] != 0) return false;
    ++at;
  }
  out.topic = body.substr(2, topic_size);
  out.payload = body.substr(at);
  out.qos = qos;
  out.retain = header.flags & 0x01;
  out.dup = header.flags & 0x08;
  out.packet_id = packet_id;
  out.properties = {};
  return true;
}

DecodeError decode_publish(std::string_view data, const FixedHeader& header, PublishView& out,
                           ProtocolVersion version, Properties* parsed) {
  if (version != V::V5) {
    auto e = decode_publish(data, header, out);
    if (e.empty()) return {};
    return refused_publish(data, header, version, std::move(e));
  }
  if (decode_plain_publish_v5(data, header, out)) {
    if (parsed != nullptr) parsed->list.clear();
    return {};
  }
  return decode_other_publish_v5(data, header, out, parsed);
}

}  // namespace baetyl::mqtt
