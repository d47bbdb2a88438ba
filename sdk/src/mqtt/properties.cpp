#include "baetyl/mqtt/properties.h"

#include <array>

#include "baetyl/mqtt/topic.h"

namespace baetyl::mqtt {
namespace {

constexpr std::uint32_t kMaxVariableByteInteger = 268'435'455;

constexpr std::uint16_t bit(PropertyContext c) {
  return static_cast<std::uint16_t>(1u << static_cast<unsigned>(c));
}

using C = PropertyContext;
using T = PropertyType;
using P = PropertyId;

constexpr std::uint16_t kAcks = bit(C::Puback) | bit(C::Pubrec) | bit(C::Pubrel) | bit(C::Pubcomp);

// Section 2.2.2.2, in identifier order.
constexpr std::array<PropertyInfo, 27> kProperties = {{
    {P::PayloadFormatIndicator, "Payload Format Indicator", T::Byte,
     bit(C::Publish) | bit(C::Will)},
    {P::MessageExpiryInterval, "Message Expiry Interval", T::FourByteInteger,
     bit(C::Publish) | bit(C::Will)},
    {P::ContentType, "Content Type", T::Utf8String, bit(C::Publish) | bit(C::Will)},
    {P::ResponseTopic, "Response Topic", T::Utf8String, bit(C::Publish) | bit(C::Will)},
    {P::CorrelationData, "Correlation Data", T::BinaryData, bit(C::Publish) | bit(C::Will)},
    {P::SubscriptionIdentifier, "Subscription Identifier", T::VariableByteInteger,
     bit(C::Publish) | bit(C::Subscribe)},
    {P::SessionExpiryInterval, "Session Expiry Interval", T::FourByteInteger,
     bit(C::Connect) | bit(C::Connack) | bit(C::Disconnect)},
    {P::AssignedClientIdentifier, "Assigned Client Identifier", T::Utf8String, bit(C::Connack)},
    {P::ServerKeepAlive, "Server Keep Alive", T::TwoByteInteger, bit(C::Connack)},
    {P::AuthenticationMethod, "Authentication Method", T::Utf8String,
     bit(C::Connect) | bit(C::Connack) | bit(C::Auth)},
    {P::AuthenticationData, "Authentication Data", T::BinaryData,
     bit(C::Connect) | bit(C::Connack) | bit(C::Auth)},
    {P::RequestProblemInformation, "Request Problem Information", T::Byte, bit(C::Connect)},
    {P::WillDelayInterval, "Will Delay Interval", T::FourByteInteger, bit(C::Will)},
    {P::RequestResponseInformation, "Request Response Information", T::Byte, bit(C::Connect)},
    {P::ResponseInformation, "Response Information", T::Utf8String, bit(C::Connack)},
    {P::ServerReference, "Server Reference", T::Utf8String, bit(C::Connack) | bit(C::Disconnect)},
    {P::ReasonString, "Reason String", T::Utf8String,
     bit(C::Connack) | kAcks | bit(C::Suback) | bit(C::Unsuback) | bit(C::Disconnect) |
         bit(C::Auth)},
    {P::ReceiveMaximum, "Receive Maximum", T::TwoByteInteger, bit(C::Connect) | bit(C::Connack)},
    {P::TopicAliasMaximum, "Topic Alias Maximum", T::TwoByteInteger,
     bit(C::Connect) | bit(C::Connack)},
    {P::TopicAlias, "Topic Alias", T::TwoByteInteger, bit(C::Publish)},
    {P::MaximumQos, "Maximum QoS", T::Byte, bit(C::Connack)},
    {P::RetainAvailable, "Retain Available", T::Byte, bit(C::Connack)},
    {P::UserProperty, "User Property", T::Utf8StringPair,
     bit(C::Connect) | bit(C::Connack) | bit(C::Publish) | bit(C::Will) | kAcks |
         bit(C::Subscribe) | bit(C::Suback) | bit(C::Unsubscribe) | bit(C::Unsuback) |
         bit(C::Disconnect) | bit(C::Auth)},
    {P::MaximumPacketSize, "Maximum Packet Size", T::FourByteInteger,
     bit(C::Connect) | bit(C::Connack)},
    {P::WildcardSubscriptionAvailable, "Wildcard Subscription Available", T::Byte, bit(C::Connack)},
    {P::SubscriptionIdentifierAvailable, "Subscription Identifier Available", T::Byte,
     bit(C::Connack)},
    {P::SharedSubscriptionAvailable, "Shared Subscription Available", T::Byte, bit(C::Connack)},
}};

// Reason codes with the packets that may carry them (section 2.4).
struct ReasonInfo {
  std::uint8_t code;
  std::string_view name;
  std::uint16_t contexts;
};

constexpr std::uint16_t kAllReasonPackets =
    bit(C::Connack) | kAcks | bit(C::Suback) | bit(C::Unsuback) | bit(C::Disconnect) | bit(C::Auth);
constexpr std::uint16_t kPubAckRec = bit(C::Puback) | bit(C::Pubrec);
constexpr std::uint16_t kCommonErrors =
    bit(C::Connack) | kPubAckRec | bit(C::Suback) | bit(C::Unsuback) | bit(C::Disconnect);

constexpr std::array<ReasonInfo, 43> kReasons = {{
    {0x00, "Success", kAllReasonPackets},
    {0x01, "Granted QoS 1", bit(C::Suback)},
    {0x02, "Granted QoS 2", bit(C::Suback)},
    {0x04, "Disconnect with Will Message", bit(C::Disconnect)},
    {0x10, "No matching subscribers", kPubAckRec},
    {0x11, "No subscription existed", bit(C::Unsuback)},
    {0x18, "Continue authentication", bit(C::Auth)},
    {0x19, "Re-authenticate", bit(C::Auth)},
    {0x80, "Unspecified error", kCommonErrors},
    {0x81, "Malformed Packet", bit(C::Connack) | bit(C::Disconnect)},
    {0x82, "Protocol Error", bit(C::Connack) | bit(C::Disconnect)},
    {0x83, "Implementation specific error", kCommonErrors},
    {0x84, "Unsupported Protocol Version", bit(C::Connack)},
    {0x85, "Client Identifier not valid", bit(C::Connack)},
    {0x86, "Bad User Name or Password", bit(C::Connack)},
    {0x87, "Not authorized", kCommonErrors},
    {0x88, "Server unavailable", bit(C::Connack)},
    {0x89, "Server busy", bit(C::Connack) | bit(C::Disconnect)},
    {0x8A, "Banned", bit(C::Connack)},
    {0x8B, "Server shutting down", bit(C::Disconnect)},
    {0x8C, "Bad authentication method", bit(C::Connack) | bit(C::Disconnect)},
    {0x8D, "Keep Alive timeout", bit(C::Disconnect)},
    {0x8E, "Session taken over", bit(C::Disconnect)},
    {0x8F, "Topic Filter invalid", bit(C::Suback) | bit(C::Unsuback) | bit(C::Disconnect)},
    {0x90, "Topic Name invalid", bit(C::Connack) | kPubAckRec | bit(C::Disconnect)},
    {0x91, "Packet Identifier in use", kPubAckRec | bit(C::Suback) | bit(C::Unsuback)},
    {0x92, "Packet Identifier not found", bit(C::Pubrel) | bit(C::Pubcomp)},
    {0x93, "Receive Maximum exceeded", bit(C::Disconnect)},
    {0x94, "Topic Alias invalid", bit(C::Disconnect)},
    {0x95, "Packet too large", bit(C::Connack) | bit(C::Disconnect)},
    {0x96, "Message rate too high", bit(C::Disconnect)},
    {0x97, "Quota exceeded", bit(C::Connack) | kPubAckRec | bit(C::Suback) | bit(C::Disconnect)},
    {0x98, "Administrative action", bit(C::Disconnect)},
    {0x99, "Payload format invalid", bit(C::Connack) | kPubAckRec | bit(C::Disconnect)},
    {0x9A, "Retain not supported", bit(C::Connack) | bit(C::Disconnect)},
    {0x9B, "QoS not supported", bit(C::Connack) | bit(C::Disconnect)},
    {0x9C, "Use another server", bit(C::Connack) | bit(C::Disconnect)},
    {0x9D, "Server moved", bit(C::Connack) | bit(C::Disconnect)},
    {0x9E, "Shared Subscriptions not supported", bit(C::Suback) | bit(C::Disconnect)},
    {0x9F, "Connection rate exceeded", bit(C::Connack) | bit(C::Disconnect)},
    {0xA0, "Maximum connect time", bit(C::Disconnect)},
    {0xA1, "Subscription Identifiers not supported", bit(C::Suback) | bit(C::Disconnect)},
    {0xA2, "Wildcard Subscriptions not supported", bit(C::Suback) | bit(C::Disconnect)},
}};

const ReasonInfo* reason_info(std::uint8_t code) {
  for (const auto& r : kReasons) {
    if (r.code == code) return &r;
  }
  return nullptr;
}

std::size_t varint_size(std::uint32_t value) {
  if (value < 128) return 1;
  if (value < 16'384) return 2;
  if (value < 2'097'152) return 3;
  return 4;
}

void put_u8(std::string& out, std::uint32_t v) { out.push_back(static_cast<char>(v & 0xFF)); }
void put_u16(std::string& out, std::uint32_t v) {
  put_u8(out, v >> 8);
  put_u8(out, v);
}
void put_u32(std::string& out, std::uint32_t v) {
  put_u16(out, v >> 16);
  put_u16(out, v);
}
void put_varint(std::string& out, std::uint32_t v) {
  do {
    std::uint32_t byte = v & 0x7F;
    v >>= 7;
    if (v > 0) byte |= 0x80;
    put_u8(out, byte);
  } while (v > 0);
}
void put_string(std::string& out, std::string_view s) {
  put_u16(out, static_cast<std::uint32_t>(s.size()));
  out.append(s);
}

std::size_t value_size(const PropertyInfo& info, const Property& p) {
  switch (info.type) {
    case T::Byte:
      return 1;
    case T::TwoByteInteger:
      return 2;
    case T::FourByteInteger:
      return 4;
    case T::VariableByteInteger: {
      const auto* v = std::get_if<std::uint32_t>(&p.value);
      return v ? varint_size(*v) : 1;
    }
    case T::Utf8String:
    case T::BinaryData: {
      const auto* v = std::get_if<std::string>(&p.value);
      return 2 + (v ? v->size() : 0);
    }
    case T::Utf8StringPair: {
      const auto* v = std::get_if<StringPair>(&p.value);
      return 4 + (v ? v->first.size() + v->second.size() : 0);
    }
  }
  return 0;
}

std::size_t properties_body_size(const Properties& properties) {
  std::size_t n = 0;
  for (const auto& p : properties.list) {
    const auto* info = property_info(static_cast<std::uint8_t>(p.id));
    n += 1 + (info ? value_size(*info, p) : 0);
  }
  return n;
}

PropertyError fail(ReasonCode reason, std::string message) {
  return PropertyError{reason, std::move(message)};
}

std::string where(const PropertyInfo& info, PropertyContext context) {
  return std::string(info.name) + " (" + std::string(to_string(context)) + ")";
}

// The checks after the wire type is known to be right.
PropertyError check_value(const PropertyInfo& info, const Property& p, PropertyContext context) {
  const auto malformed = [&](std::string_view why) {
    return fail(ReasonCode::MalformedPacket,
                "property " + where(info, context) + " " + std::string(why));
  };
  const auto protocol = [&](std::string_view why) {
    return fail(ReasonCode::ProtocolError,
                "property " + where(info, context) + " " + std::string(why));
  };
  auto check_utf8 = [&](std::string_view s) -> PropertyError {
    if (!is_valid_utf8(s)) return malformed("is not valid UTF-8");
    if (s.find('\0') != std::string_view::npos) {
      return malformed("must not contain the null character U+0000");
    }
    return {};
  };
  switch (info.type) {
    case T::Byte:
    case T::TwoByteInteger:
    case T::FourByteInteger:
    case T::VariableByteInteger: {
      const auto* v = std::get_if<std::uint32_t>(&p.value);
      if (v == nullptr) return malformed("must hold an integer");
      const std::uint32_t max = info.type == T::Byte                  ? 0xFF
                                : info.type == T::TwoByteInteger      ? 0xFFFF
                                : info.type == T::VariableByteInteger ? kMaxVariableByteInteger
                                                                      : 0xFFFFFFFF;
      if (*v > max) return malformed("value " + std::to_string(*v) + " is out of range");
      switch (info.id) {
        case P::PayloadFormatIndicator:
        case P::RequestProblemInformation:
        case P::RequestResponseInformation:
        case P::MaximumQos:
        case P::RetainAvailable:
        case P::WildcardSubscriptionAvailable:
        case P::SubscriptionIdentifierAvailable:
        case P::SharedSubscriptionAvailable:
          if (*v > 1) return protocol("must be 0 or 1 (got " + std::to_string(*v) + ")");
          break;
        case P::SubscriptionIdentifier:
        case P::ReceiveMaximum:
        case P::TopicAlias:
        case P::MaximumPacketSize:
          if (*v == 0) return protocol("must not be 0");
          break;
        default:
          break;
      }
      return {};
    }
    case T::Utf8String:
    case T::BinaryData: {
      const auto* v = std::get_if<std::string>(&p.value);
      if (v == nullptr) return malformed("must hold a string");
      if (v->size() > 0xFFFF) return malformed("is too long (more than 65535 bytes)");
      if (info.type == T::BinaryData) return {};
      if (auto e = check_utf8(*v); !e.message.empty()) return e;
      if (info.id == P::ResponseTopic) {
        if (auto e = check_topic_name(*v); !e.empty()) return protocol(e);
      }
      return {};
    }
    case T::Utf8StringPair: {
      const auto* v = std::get_if<StringPair>(&p.value);
      if (v == nullptr) return malformed("must hold a name and a value");
      if (v->first.size() > 0xFFFF || v->second.size() > 0xFFFF) {
        return malformed("is too long (more than 65535 bytes)");
      }
      if (auto e = check_utf8(v->first); !e.message.empty()) return e;
      return check_utf8(v->second);
    }
  }
  return {};
}

bool may_repeat(PropertyId id, PropertyContext context) {
  return id == P::UserProperty ||
         (id == P::SubscriptionIdentifier && context == PropertyContext::Publish);
}

// Reads the properties of `data`, which holds exactly the bytes after the Property Length.
class PropertyReader {
 public:
  explicit PropertyReader(std::string_view data) : data_(data) {}

  bool at_end() const { return pos_ == data_.size(); }
  std::size_t left() const { return data_.size() - pos_; }

  bool u8(std::uint32_t& v) {
    if (left() < 1) return false;
    v = byte(pos_++);
    return true;
  }
  bool u16(std::uint32_t& v) {
    if (left() < 2) return false;
    v = byte(pos_) << 8 | byte(pos_ + 1);
    pos_ += 2;
    return true;
  }
  bool u32(std::uint32_t& v) {
    if (left() < 4) return false;
    v = byte(pos_) << 24 | byte(pos_ + 1) << 16 | byte(pos_ + 2) << 8 | byte(pos_ + 3);
    pos_ += 4;
    return true;
  }
  // Returns false on truncation; sets `too_long` when a fifth byte would be needed.
  bool varint(std::uint32_t& v, bool& too_long) {
    v = 0;
    for (int i = 0; i < 4; ++i) {
      if (left() < 1) return false;
      const std::uint32_t b = byte(pos_++);
      v |= (b & 0x7F) << (7 * i);
      if (!(b & 0x80)) return true;
    }
    too_long = true;
    return false;
  }
  bool string(std::string& s) {
    std::uint32_t n = 0;
    if (!u16(n) || left() < n) return false;
    s.assign(data_.substr(pos_, n));
    pos_ += n;
    return true;
  }

 private:
  std::uint32_t byte(std::size_t i) const { return static_cast<std::uint8_t>(data_[i]); }

  std::string_view data_;
  std::size_t pos_ = 0;
};

}  // namespace

const PropertyInfo* property_info(std::uint8_t id) {
  for (const auto& info : kProperties) {
    if (static_cast<std::uint8_t>(info.id) == id) return &info;
  }
  return nullptr;
}

std::string_view to_string(PropertyId id) {
  const auto* info = property_info(static_cast<std::uint8_t>(id));
  return info ? info->name : "unknown property";
}

std::string_view to_string(PropertyContext context) {
  switch (context) {
    case C::Will:
      return "will properties";
    case C::Connect:
      return "CONNECT";
    case C::Connack:
      return "CONNACK";
    case C::Publish:
      return "PUBLISH";
    case C::Puback:
      return "PUBACK";
    case C::Pubrec:
      return "PUBREC";
    case C::Pubrel:
      return "PUBREL";
    case C::Pubcomp:
      return "PUBCOMP";
    case C::Subscribe:
      return "SUBSCRIBE";
    case C::Suback:
      return "SUBACK";
    case C::Unsubscribe:
      return "UNSUBSCRIBE";
    case C::Unsuback:
      return "UNSUBACK";
    case C::Disconnect:
      return "DISCONNECT";
    case C::Auth:
      return "AUTH";
  }
  return "unknown packet";
}

Properties& Properties::add(PropertyId id, std::uint32_t value) {
  list.push_back(Property{id, value});
  return *this;
}

Properties& Properties::add(PropertyId id, std::string value) {
  list.push_back(Property{id, std::move(value)});
  return *this;
}

Properties& Properties::add_user(std::string name, std::string value) {
  list.push_back(Property{PropertyId::UserProperty, StringPair{std::move(name), std::move(value)}});
  return *this;
}

const Property* Properties::find(PropertyId id) const {
  for (const auto& p : list) {
    if (p.id == id) return &p;
  }
  return nullptr;
}

std::optional<std::uint32_t> Properties::integer(PropertyId id) const {
  const auto* p = find(id);
  if (p == nullptr) return std::nullopt;
  if (const auto* v = std::get_if<std::uint32_t>(&p->value)) return *v;
  return std::nullopt;
}

std::optional<std::string_view> Properties::string(PropertyId id) const {
  const auto* p = find(id);
  if (p == nullptr) return std::nullopt;
  if (const auto* v = std::get_if<std::string>(&p->value)) return std::string_view(*v);
  return std::nullopt;
}

std::vector<StringPair> Properties::user_properties() const {
  std::vector<StringPair> out;
  for (const auto& p : list) {
    if (const auto* v = std::get_if<StringPair>(&p.value); v && p.id == P::UserProperty) {
      out.push_back(*v);
    }
  }
  return out;
}

std::vector<std::uint32_t> Properties::subscription_identifiers() const {
  std::vector<std::uint32_t> out;
  for (const auto& p : list) {
    if (const auto* v = std::get_if<std::uint32_t>(&p.value);
        v && p.id == P::SubscriptionIdentifier) {
      out.push_back(*v);
    }
  }
  return out;
}

std::string_view to_string(ReasonCode code) {
  const auto* info = reason_info(static_cast<std::uint8_t>(code));
  return info ? info->name : "invalid reason code";
}

bool reason_code_allowed(PropertyContext context, std::uint8_t code) {
  const auto* info = reason_info(code);
  return info != nullptr && (info->contexts & bit(context));
}

std::size_t encoded_properties_size(const Properties& properties) {
  const std::size_t body = properties_body_size(properties);
  return varint_size(static_cast<std::uint32_t>(body)) + body;
}

void encode_properties(const Properties& properties, std::string& out) {
  put_varint(out, static_cast<std::uint32_t>(properties_body_size(properties)));
  for (const auto& p : properties.list) {
    const auto* info = property_info(static_cast<std::uint8_t>(p.id));
    if (info == nullptr) continue;
    put_u8(out, static_cast<std::uint8_t>(p.id));
    const auto* number = std::get_if<std::uint32_t>(&p.value);
    const auto* text = std::get_if<std::string>(&p.value);
    const auto* pair = std::get_if<StringPair>(&p.value);
    const std::uint32_t n = number ? *number : 0;
    switch (info->type) {
      case T::Byte:
        put_u8(out, n);
        break;
      case T::TwoByteInteger:
        put_u16(out, n);
        break;
      case T::FourByteInteger:
        put_u32(out, n);
        break;
      case T::VariableByteInteger:
        put_varint(out, n);
        break;
      case T::Utf8String:
      case T::BinaryData:
        put_string(out, text ? std::string_view(*text) : std::string_view());
        break;
      case T::Utf8StringPair:
        put_string(out, pair ? std::string_view(pair->first) : std::string_view());
        put_string(out, pair ? std::string_view(pair->second) : std::string_view());
        break;
    }
  }
}

PropertyError check_properties(const Properties& properties, PropertyContext context) {
  std::uint64_t seen = 0;  // identifiers are below 64
  for (const auto& p : properties.list) {
    const auto id = static_cast<std::uint8_t>(p.id);
    const auto* info = property_info(id);
    if (info == nullptr) {
      return fail(ReasonCode::MalformedPacket, "unknown property identifier " + std::to_string(id) +
                                                   " in " + std::string(to_string(context)));
    }
    if (!info->allowed_in(context)) {
      return fail(ReasonCode::MalformedPacket, "property " + std::string(info->name) +
                                                   " is not allowed in " +
                                                   std::string(to_string(context)));
    }
    const std::uint64_t mask = std::uint64_t{1} << id;
    if ((seen & mask) && !may_repeat(p.id, context)) {
      return fail(ReasonCode::ProtocolError,
                  "property " + where(*info, context) + " must not appear more than once");
    }
    seen |= mask;
    if (auto e = check_value(*info, p, context); !e.message.empty()) return e;
  }
  if (properties_body_size(properties) > kMaxVariableByteInteger) {
    return fail(ReasonCode::PacketTooLarge,
                "properties of " + std::string(to_string(context)) + " are too long");
  }
  return {};
}

namespace {
// `value` holding a V (the one it holds, so that a string keeps its capacity, or a new one).
template <class V>
V& value_slot(Property::Value& value) {
  if (!std::holds_alternative<V>(value)) value.emplace<V>();
  return std::get<V>(value);
}

// The entry at `index` of `out` (a new one past its end), with identifier `id`.
Property& entry(Properties& out, std::size_t index, PropertyId id) {
  if (index == out.list.size()) {
    Property p{id, std::uint32_t{0}};
    out.list.push_back(std::move(p));
  }
  Property& p = out.list[index];
  p.id = id;
  return p;
}

bool is_string_type(PropertyType type) {
  return type == T::Utf8String || type == T::BinaryData || type == T::Utf8StringPair;
}
}  // namespace

PropertyError decode_properties(std::string_view data, PropertyContext context, Properties& out) {
  PropertyReader in(data);
  const auto truncated = [&](const PropertyInfo& info) {
    return fail(ReasonCode::MalformedPacket,
                "property " + where(info, context) + " runs past the end of the properties");
  };
  // out's entries are reused: a connection that parses properties of the same kinds PUBLISH after
  // PUBLISH keeps the capacity of their strings instead of allocating them again.
  std::size_t count = 0;
  struct Trim {
    Properties& out;
    const std::size_t& count;
    ~Trim() {
      while (out.list.size() > count) out.list.pop_back();
    }
  } trim{out, count};
  while (!in.at_end()) {
    std::uint32_t id = 0;
    bool too_long = false;
    // Identifiers are Variable Byte Integers; every defined one fits in one byte.
    if (!in.varint(id, too_long)) {
      return fail(ReasonCode::MalformedPacket,
                  "property identifier is malformed in " + std::string(to_string(context)));
    }
    const auto* info = id < 0x80 ? property_info(static_cast<std::uint8_t>(id)) : nullptr;
    if (info == nullptr) {
      return fail(ReasonCode::MalformedPacket, "unknown property identifier " + std::to_string(id) +
                                                   " in " + std::string(to_string(context)));
    }
    if (!info->allowed_in(context)) {
      return fail(ReasonCode::MalformedPacket, "property " + std::string(info->name) +
                                                   " is not allowed in " +
                                                   std::string(to_string(context)));
    }
    Property& p = entry(out, count, info->id);
    std::uint32_t n = 0;
    bool ok = true;
    switch (info->type) {
      case T::Byte:
        ok = in.u8(n);
        break;
      case T::TwoByteInteger:
        ok = in.u16(n);
        break;
      case T::FourByteInteger:
        ok = in.u32(n);
        break;
      case T::VariableByteInteger:
        ok = in.varint(n, too_long);
        if (too_long) {
          return fail(ReasonCode::MalformedPacket,
                      "property " + where(*info, context) +
                          " is a malformed Variable Byte Integer (more than 4 bytes)");
        }
        break;
      case T::Utf8String:
      case T::BinaryData:
        ok = in.string(value_slot<std::string>(p.value));
        break;
      case T::Utf8StringPair: {
        auto& pair = value_slot<StringPair>(p.value);
        ok = in.string(pair.first) && in.string(pair.second);
        break;
      }
    }
    if (!ok) return truncated(*info);
    if (!is_string_type(info->type)) p.value = n;
    ++count;
  }
  while (out.list.size() > count) out.list.pop_back();
  return check_properties(out, context);
}

}  // namespace baetyl::mqtt
