#pragma once
// MQTT 5 properties (section 2.2.2) and reason codes (section 2.4): identifiers with their wire
// types, the table of which packet may carry which property, and the property list as a value.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace baetyl::mqtt {

enum class ProtocolVersion : std::uint8_t {
  V311 = 4,  // MQTT 3.1.1, and MQTT 3.1 (level 3) which has the same wire format
  V5 = 5,
};

enum class PropertyId : std::uint8_t {
  PayloadFormatIndicator = 0x01,
  MessageExpiryInterval = 0x02,
  ContentType = 0x03,
  ResponseTopic = 0x08,
  CorrelationData = 0x09,
  SubscriptionIdentifier = 0x0B,
  SessionExpiryInterval = 0x11,
  AssignedClientIdentifier = 0x12,
  ServerKeepAlive = 0x13,
  AuthenticationMethod = 0x15,
  AuthenticationData = 0x16,
  RequestProblemInformation = 0x17,
  WillDelayInterval = 0x18,
  RequestResponseInformation = 0x19,
  ResponseInformation = 0x1A,
  ServerReference = 0x1C,
  ReasonString = 0x1F,
  ReceiveMaximum = 0x21,
  TopicAliasMaximum = 0x22,
  TopicAlias = 0x23,
  MaximumQos = 0x24,
  RetainAvailable = 0x25,
  UserProperty = 0x26,
  MaximumPacketSize = 0x27,
  WildcardSubscriptionAvailable = 0x28,
  SubscriptionIdentifierAvailable = 0x29,
  SharedSubscriptionAvailable = 0x2A,
};

// The data types of section 1.5.
enum class PropertyType : std::uint8_t {
  Byte,
  TwoByteInteger,
  FourByteInteger,
  VariableByteInteger,
  Utf8String,
  BinaryData,
  Utf8StringPair,
};

// Where a property may appear: a packet type, or the will properties inside CONNECT.
enum class PropertyContext : std::uint8_t {
  Will = 0,  // PacketType values 1..15 for the packets themselves
  Connect = 1,
  Connack = 2,
  Publish = 3,
  Puback = 4,
  Pubrec = 5,
  Pubrel = 6,
  Pubcomp = 7,
  Subscribe = 8,
  Suback = 9,
  Unsubscribe = 10,
  Unsuback = 11,
  Disconnect = 14,
  Auth = 15,
};

struct PropertyInfo {
  PropertyId id;
  std::string_view name;  // as the specification names it, e.g. "Topic Alias"
  PropertyType type;
  std::uint16_t contexts;  // bit PropertyContext for each place the property may appear
  bool allowed_in(PropertyContext context) const {
    return contexts & (1u << static_cast<unsigned>(context));
  }
};

// The table of section 2.2.2.2; nullptr for an identifier the specification does not define.
const PropertyInfo* property_info(std::uint8_t id);
std::string_view to_string(PropertyId id);
std::string_view to_string(PropertyContext context);  // "PUBLISH", ..., "will properties"

using StringPair = std::pair<std::string, std::string>;

// One property. Integers of every width are held as uint32_t (the table gives the wire width and
// validation checks the range); UTF-8 strings and binary data as std::string.
struct Property {
  using Value = std::variant<std::uint32_t, std::string, StringPair>;
  PropertyId id{};
  Value value;

  bool operator==(const Property&) const = default;
};

// The properties of one packet (or of a will), in wire order. User Property may repeat and keeps
// its order; Subscription Identifier may repeat in a PUBLISH a server sends; any other property
// appears at most once (a duplicate is a Protocol Error).
struct Properties {
  std::vector<Property> list;

  bool empty() const { return list.empty(); }
  Properties& add(PropertyId id, std::uint32_t value);
  Properties& add(PropertyId id, std::string value);
  Properties& add_user(std::string name, std::string value);

  // The first property with `id`, or nothing (also when its value has another type).
  const Property* find(PropertyId id) const;
  std::optional<std::uint32_t> integer(PropertyId id) const;
  std::optional<std::string_view> string(PropertyId id) const;
  std::vector<StringPair> user_properties() const;
  std::vector<std::uint32_t> subscription_identifiers() const;

  bool operator==(const Properties&) const = default;
};

// Reason codes (section 2.4). A value may mean different things in different packets (0x00 is
// Success, Normal disconnection and Granted QoS 0); the names follow the most common meaning.
enum class ReasonCode : std::uint8_t {
  Success = 0x00,
  NormalDisconnection = 0x00,
  GrantedQos0 = 0x00,
  GrantedQos1 = 0x01,
  GrantedQos2 = 0x02,
  DisconnectWithWillMessage = 0x04,
  NoMatchingSubscribers = 0x10,
  NoSubscriptionExisted = 0x11,
  ContinueAuthentication = 0x18,
  ReAuthenticate = 0x19,
  UnspecifiedError = 0x80,
  MalformedPacket = 0x81,
  ProtocolError = 0x82,
  ImplementationSpecificError = 0x83,
  UnsupportedProtocolVersion = 0x84,
  ClientIdentifierNotValid = 0x85,
  BadUserNameOrPassword = 0x86,
  NotAuthorized = 0x87,
  ServerUnavailable = 0x88,
  ServerBusy = 0x89,
  Banned = 0x8A,
  ServerShuttingDown = 0x8B,
  BadAuthenticationMethod = 0x8C,
  KeepAliveTimeout = 0x8D,
  SessionTakenOver = 0x8E,
  TopicFilterInvalid = 0x8F,
  TopicNameInvalid = 0x90,
  PacketIdentifierInUse = 0x91,
  PacketIdentifierNotFound = 0x92,
  ReceiveMaximumExceeded = 0x93,
  TopicAliasInvalid = 0x94,
  PacketTooLarge = 0x95,
  MessageRateTooHigh = 0x96,
  QuotaExceeded = 0x97,
  AdministrativeAction = 0x98,
  PayloadFormatInvalid = 0x99,
  RetainNotSupported = 0x9A,
  QosNotSupported = 0x9B,
  UseAnotherServer = 0x9C,
  ServerMoved = 0x9D,
  SharedSubscriptionsNotSupported = 0x9E,
  ConnectionRateExceeded = 0x9F,
  MaximumConnectTime = 0xA0,
  SubscriptionIdentifiersNotSupported = 0xA1,
  WildcardSubscriptionsNotSupported = 0xA2,
};

// The specification's name of `code`, e.g. "Malformed Packet"; "invalid reason code" otherwise.
std::string_view to_string(ReasonCode code);

// True when the specification lists `code` for packets of `context` (CONNACK, PUBACK, PUBREC,
// PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT or AUTH).
bool reason_code_allowed(PropertyContext context, std::uint8_t code);

// Appends the Property Length and the properties. Does not validate.
void encode_properties(const Properties& properties, std::string& out);
// Bytes encode_properties() appends (Property Length included).
std::size_t encoded_properties_size(const Properties& properties);

// A rule broken by a property list: what, and the reason code for the DISCONNECT.
struct PropertyError {
  ReasonCode reason = ReasonCode::Success;
  std::string message;  // empty when there is no error
};

// Checks `properties` for `context`: each identifier allowed there, at most once unless it may
// repeat, values of the right type and in range, strings well-formed UTF-8 without U+0000.
PropertyError check_properties(const Properties& properties, PropertyContext context);

// Parses the properties after their Property Length (the bytes `data` holds exactly) and checks
// them for `context` as check_properties() does. `out` is replaced.
PropertyError decode_properties(std::string_view data, PropertyContext context, Properties& out);

}  // namespace baetyl::mqtt
