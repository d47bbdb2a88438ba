#include "baetyl/mqtt/codec.h"

#include <stdexcept>
#include <utility>

#include "baetyl/mqtt/topic.h"

namespace baetyl::mqtt {
namespace {

// The longest string (or binary field) a two-byte length prefix can describe.
constexpr std::size_t kMaxFieldLength = 65535;

std::string error_for(PacketType type, std::string_view message) {
  std::string out(to_string(type));
  out += ": ";
  out += message;
  return out;
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

// Remaining Length of the packet types whose body has a fixed size; -1 for the others.
long fixed_remaining_length(PacketType type) {
  switch (type) {
    case PacketType::Connack:
    case PacketType::Puback:
    case PacketType::Pubrec:
    case PacketType::Pubrel:
    case PacketType::Pubcomp:
    case PacketType::Unsuback:
      return 2;
    case PacketType::Pingreq:
    case PacketType::Pingresp:
    case PacketType::Disconnect:
      return 0;
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

// ---------------------------------------------------------------------------------------------
// Rules on field values, shared by decode() (after parsing) and validate(). Each returns "" or a
// message prefixed with the packet type.

std::string check_string(std::string_view value, std::string_view field) {
  if (!is_valid_utf8(value)) return std::string(field) + " is not valid UTF-8";
  if (value.find('\0') != std::string_view::npos) {
    return std::string(field) + " must not contain the null character U+0000";
  }
  return {};
}

std::string check_packet_id(PacketType type, std::uint16_t packet_id) {
  if (packet_id == 0) return error_for(type, "packet identifier must be non-zero");
  return {};
}

std::string check(const Connect& c) {
  constexpr auto type = PacketType::Connect;
  if (c.protocol_name != "MQTT" && c.protocol_name != "MQIsdp") {
    return error_for(type, "protocol name must be \"MQTT\" or \"MQIsdp\"");
  }
  if (auto e = check_string(c.client_id, "client identifier"); !e.empty()) {
    return error_for(type, e);
  }
  if (c.will) {
    if (auto e = check_topic_name(c.will->topic); !e.empty()) return error_for(type, "will " + e);
    if (c.will->qos > 2) {
      return error_for(type, "will QoS " + std::to_string(c.will->qos) + " is invalid");
    }
  }
  if (c.username) {
    if (auto e = check_string(*c.username, "user name"); !e.empty()) return error_for(type, e);
  }
  if (c.password && !c.username) {
    return error_for(type, "password flag requires the username flag");
  }
  return {};
}

std::string check(const Connack& c) {
  const auto code = static_cast<std::uint8_t>(c.return_code);
  if (code > 5) {
    return error_for(PacketType::Connack, "return code " + std::to_string(code) + " is invalid");
  }
  if (c.session_present && code != 0) {
    return error_for(PacketType::Connack,
                     "session present must be 0 when the return code is non-zero");
  }
  return {};
}

template <class P>  // Publish or PublishView
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

std::string check(const Publish& p) { return check_publish(p); }

std::string check(const Puback& p) { return check_packet_id(PacketType::Puback, p.packet_id); }
std::string check(const Pubrec& p) { return check_packet_id(PacketType::Pubrec, p.packet_id); }
std::string check(const Pubrel& p) { return check_packet_id(PacketType::Pubrel, p.packet_id); }
std::string check(const Pubcomp& p) { return check_packet_id(PacketType::Pubcomp, p.packet_id); }
std::string check(const Unsuback& p) { return check_packet_id(PacketType::Unsuback, p.packet_id); }

std::string check(const Subscribe& s) {
  constexpr auto type = PacketType::Subscribe;
  if (auto e = check_packet_id(type, s.packet_id); !e.empty()) return e;
  if (s.subscriptions.empty()) {
    return error_for(type, "payload must contain at least one topic filter");
  }
  for (const auto& sub : s.subscriptions) {
    if (auto e = check_topic_filter(sub.topic_filter); !e.empty()) return error_for(type, e);
    if (sub.qos > 2) {
      return error_for(type, "requested QoS " + std::to_string(sub.qos) + " is invalid");
    }
  }
  return {};
}

std::string check(const Suback& s) {
  constexpr auto type = PacketType::Suback;
  if (auto e = check_packet_id(type, s.packet_id); !e.empty()) return e;
  if (s.return_codes.empty()) {
    return error_for(type, "payload must contain at least one return code");
  }
  for (auto code : s.return_codes) {
    if (code > 2 && code != kSubackFailure) {
      return error_for(type, "return code " + hex_byte(code) + " is invalid");
    }
  }
  return {};
}

std::string check(const Unsubscribe& u) {
  constexpr auto type = PacketType::Unsubscribe;
  if (auto e = check_packet_id(type, u.packet_id); !e.empty()) return e;
  if (u.topic_filters.empty()) {
    return error_for(type, "payload must contain at least one topic filter");
  }
  for (const auto& filter : u.topic_filters) {
    if (auto e = check_topic_filter(filter); !e.empty()) return error_for(type, e);
  }
  return {};
}

std::string check(const Pingreq&) { return {}; }
std::string check(const Pingresp&) { return {}; }
std::string check(const Disconnect&) { return {}; }

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

std::size_t body_size(const Packet& packet) {
  struct Visitor {
    std::size_t operator()(const Connect& c) const {
      std::size_t n = 2 + c.protocol_name.size() + 1 + 1 + 2 + 2 + c.client_id.size();
      if (c.will) n += 2 + c.will->topic.size() + 2 + c.will->payload.size();
      if (c.username) n += 2 + c.username->size();
      if (c.password) n += 2 + c.password->size();
      return n;
    }
    std::size_t operator()(const Connack&) const { return 2; }
    std::size_t operator()(const Publish& p) const {
      return 2 + p.topic.size() + (p.qos > 0 ? 2 : 0) + p.payload.size();
    }
    std::size_t operator()(const Puback&) const { return 2; }
    std::size_t operator()(const Pubrec&) const { return 2; }
    std::size_t operator()(const Pubrel&) const { return 2; }
    std::size_t operator()(const Pubcomp&) const { return 2; }
    std::size_t operator()(const Subscribe& s) const {
      std::size_t n = 2;
      for (const auto& sub : s.subscriptions) n += 2 + sub.topic_filter.size() + 1;
      return n;
    }
    std::size_t operator()(const Suback& s) const { return 2 + s.return_codes.size(); }
    std::size_t operator()(const Unsubscribe& u) const {
      std::size_t n = 2;
      for (const auto& filter : u.topic_filters) n += 2 + filter.size();
      return n;
    }
    std::size_t operator()(const Unsuback&) const { return 2; }
    std::size_t operator()(const Pingreq&) const { return 0; }
    std::size_t operator()(const Pingresp&) const { return 0; }
    std::size_t operator()(const Disconnect&) const { return 0; }
  };
  return std::visit(Visitor{}, packet);
}

void put_u8(std::string& out, std::uint8_t value) { out.push_back(static_cast<char>(value)); }

void put_u16(std::string& out, std::uint16_t value) {
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

struct BodyWriter {
  std::string& out;

  void operator()(const Connect& c) const {
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
    put_string(out, c.client_id);
    if (c.will) {
      put_string(out, c.will->topic);
      put_string(out, c.will->payload);
    }
    if (c.username) put_string(out, *c.username);
    if (c.password) put_string(out, *c.password);
  }
  void operator()(const Connack& c) const {
    put_u8(out, c.session_present ? 1 : 0);
    put_u8(out, static_cast<std::uint8_t>(c.return_code));
  }
  void operator()(const Publish& p) const {
    put_string(out, p.topic);
    if (p.qos > 0) put_u16(out, p.packet_id);
    out.append(p.payload);
  }
  void operator()(const Puback& p) const { put_u16(out, p.packet_id); }
  void operator()(const Pubrec& p) const { put_u16(out, p.packet_id); }
  void operator()(const Pubrel& p) const { put_u16(out, p.packet_id); }
  void operator()(const Pubcomp& p) const { put_u16(out, p.packet_id); }
  void operator()(const Subscribe& s) const {
    put_u16(out, s.packet_id);
    for (const auto& sub : s.subscriptions) {
      put_string(out, sub.topic_filter);
      put_u8(out, sub.qos);
    }
  }
  void operator()(const Suback& s) const {
    put_u16(out, s.packet_id);
    out.append(reinterpret_cast<const char*>(s.return_codes.data()), s.return_codes.size());
  }
  void operator()(const Unsubscribe& u) const {
    put_u16(out, u.packet_id);
    for (const auto& filter : u.topic_filters) put_string(out, filter);
  }
  void operator()(const Unsuback& u) const { put_u16(out, u.packet_id); }
  void operator()(const Pingreq&) const {}
  void operator()(const Pingresp&) const {}
  void operator()(const Disconnect&) const {}
};

// ---------------------------------------------------------------------------------------------
// Decoding

// Reads the fields of one packet body; the first failure records a message naming the field.
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
    if (data_.size() - pos_ < 2) return fail(std::string(field) + " length" + kPastEnd);
    const std::size_t length =
        static_cast<std::uint8_t>(data_[pos_]) << 8 | static_cast<std::uint8_t>(data_[pos_ + 1]);
    pos_ += 2;
    if (data_.size() - pos_ < length) {
      return fail(std::string(field) + kPastEnd + " (length " + std::to_string(length) + ", " +
                  std::to_string(data_.size() - pos_) + " bytes left)");
    }
    value = data_.substr(pos_, length);
    pos_ += length;
    return true;
  }

  std::string_view rest() {
    auto out = data_.substr(pos_);
    pos_ = data_.size();
    return out;
  }

  bool at_end() const { return pos_ == data_.size(); }
  std::size_t left() const { return data_.size() - pos_; }

  bool fail(std::string_view message) {
    error_ = error_for(type_, message);
    return false;
  }

  std::string& error() { return error_; }

 private:
  static constexpr char kPastEnd[] = " runs past the end of the packet";

  bool past_end(std::string_view field) { return fail(std::string(field) + kPastEnd); }

  std::string_view data_;
  std::size_t pos_ = 0;
  PacketType type_;
  std::string error_;
};

// Everything of CONNECT after the protocol level, in the MQTT 3.1 / 3.1.1 layout.
bool decode_connect_rest(Reader& in, Connect& c) {
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
  if (has_password && !has_username) {
    return in.fail("password flag requires the username flag");
  }
  c.clean_session = flags & 0x02;
  if (!in.u16(c.keep_alive, "keep alive")) return false;

  std::string_view field;
  if (!in.string(field, "client identifier")) return false;
  c.client_id.assign(field);
  if (will) {
    auto& w = c.will.emplace();
    w.qos = will_qos;
    w.retain = will_retain;
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
    return in.fail("protocol name must be \"MQTT\" or \"MQIsdp\"");
  }
  c.protocol_name.assign(name);
  if (!in.u8(c.protocol_level, "protocol level")) return false;
  if (c.protocol_level == 3 || c.protocol_level == 4) return decode_connect_rest(in, c);

  // Another protocol level (e.g. 5) may lay out the rest differently. The server must still be
  // able to answer CONNACK 1, so decode the rest best-effort and fall back to name and level.
  Reader attempt = in;
  Connect full = c;
  if (decode_connect_rest(attempt, full) && attempt.at_end() && check(full).empty()) {
    c = std::move(full);
  }
  in.rest();
  return true;
}

bool decode_connack(Reader& in, Packet& packet) {
  auto& c = packet.emplace<Connack>();
  std::uint8_t flags = 0;
  std::uint8_t code = 0;
  if (!in.u8(flags, "acknowledge flags")) return false;
  if (flags & 0xFE) {
    return in.fail("reserved acknowledge flags must be 0 (got " + hex_byte(flags) + ")");
  }
  if (!in.u8(code, "return code")) return false;
  c.session_present = flags & 0x01;
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

bool decode_publish(Reader& in, std::uint8_t flags, Packet& packet) {
  PublishView view;
  if (!decode_publish_view(in, flags, view)) return false;
  auto& p = packet.emplace<Publish>();
  p.topic.assign(view.topic);
  p.payload.assign(view.payload);
  p.qos = view.qos;
  p.retain = view.retain;
  p.dup = view.dup;
  p.packet_id = view.packet_id;
  return true;
}

template <class T>
bool decode_packet_id(Reader& in, Packet& packet) {
  return in.u16(packet.emplace<T>().packet_id, "packet identifier");
}

bool decode_subscribe(Reader& in, Packet& packet) {
  auto& s = packet.emplace<Subscribe>();
  if (!in.u16(s.packet_id, "packet identifier")) return false;
  while (!in.at_end()) {
    std::string_view filter;
    std::uint8_t options = 0;
    if (!in.string(filter, "topic filter")) return false;
    if (!in.u8(options, "requested QoS")) return false;
    if (options & 0xFC) {
      return in.fail("reserved bits of the requested QoS byte must be 0 (got " + hex_byte(options) +
                     ")");
    }
    s.subscriptions.push_back(Subscription{std::string(filter), options});
  }
  return true;
}

bool decode_suback(Reader& in, Packet& packet) {
  auto& s = packet.emplace<Suback>();
  if (!in.u16(s.packet_id, "packet identifier")) return false;
  const auto codes = in.rest();
  s.return_codes.assign(codes.begin(), codes.end());
  return true;
}

bool decode_unsubscribe(Reader& in, Packet& packet) {
  auto& u = packet.emplace<Unsubscribe>();
  if (!in.u16(u.packet_id, "packet identifier")) return false;
  while (!in.at_end()) {
    std::string_view filter;
    if (!in.string(filter, "topic filter")) return false;
    u.topic_filters.emplace_back(filter);
  }
  return true;
}

bool decode_body(Reader& in, const FixedHeader& header, Packet& packet) {
  switch (header.type) {
    case PacketType::Connect:
      return decode_connect(in, packet);
    case PacketType::Connack:
      return decode_connack(in, packet);
    case PacketType::Publish:
      return decode_publish(in, header.flags, packet);
    case PacketType::Puback:
      return decode_packet_id<Puback>(in, packet);
    case PacketType::Pubrec:
      return decode_packet_id<Pubrec>(in, packet);
    case PacketType::Pubrel:
      return decode_packet_id<Pubrel>(in, packet);
    case PacketType::Pubcomp:
      return decode_packet_id<Pubcomp>(in, packet);
    case PacketType::Subscribe:
      return decode_subscribe(in, packet);
    case PacketType::Suback:
      return decode_suback(in, packet);
    case PacketType::Unsubscribe:
      return decode_unsubscribe(in, packet);
    case PacketType::Unsuback:
      return decode_packet_id<Unsuback>(in, packet);
    case PacketType::Pingreq:
      packet.emplace<Pingreq>();
      return true;
    case PacketType::Pingresp:
      packet.emplace<Pingresp>();
      return true;
    case PacketType::Disconnect:
      packet.emplace<Disconnect>();
      return true;
  }
  return in.fail("unknown packet type");
}

std::string check_packet(const Packet& packet) {
  return std::visit([](const auto& p) { return check(p); }, packet);
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

std::string validate(const Packet& packet) {
  if (auto e = check_packet(packet); !e.empty()) return e;
  if (auto e = check_lengths(packet); !e.empty()) return e;
  const std::size_t body = body_size(packet);
  if (body > kMaxRemainingLength) {
    return error_for(type_of(packet), "packet too large (remaining length " + std::to_string(body) +
                                          " > " + std::to_string(kMaxRemainingLength) + " bytes)");
  }
  return {};
}

std::size_t encoded_size(const Packet& packet) {
  const std::size_t body = body_size(packet);
  return 1 + varint_size(body) + body;
}

void encode(const Packet& packet, std::string& out) {
  if (auto e = validate(packet); !e.empty()) throw std::invalid_argument(e);
  const std::size_t body = body_size(packet);
  out.reserve(out.size() + 1 + varint_size(body) + body);
  put_u8(out, first_byte(packet));
  put_varint(out, body);
  std::visit(BodyWriter{out}, packet);
}

void encode_publish(std::string& out, std::string_view topic, std::string_view payload,
                    std::uint8_t qos, bool retain, bool dup, std::uint16_t packet_id) {
  const std::size_t body = 2 + topic.size() + (qos > 0 ? 2 : 0) + payload.size();
  out.reserve(out.size() + 1 + varint_size(body) + body);
  put_u8(out, static_cast<std::uint8_t>(static_cast<std::uint8_t>(PacketType::Publish) << 4 |
                                        (dup ? 0x08 : 0) | (qos << 1) | (retain ? 1 : 0)));
  put_varint(out, body);
  put_string(out, topic);
  if (qos > 0) put_u16(out, packet_id);
  out.append(payload);
}

std::string encode(const Packet& packet) {
  std::string out;
  encode(packet, out);
  return out;
}

HeaderResult decode_fixed_header(std::string_view data, const DecodeLimits& limits) {
  HeaderResult result;
  if (data.empty()) return result;
  auto fail = [&](std::string message) {
    result.status = DecodeStatus::Error;
    result.error = std::move(message);
    return result;
  };

  const auto first = static_cast<std::uint8_t>(data[0]);
  const auto type_value = static_cast<std::uint8_t>(first >> 4);
  const auto flags = static_cast<std::uint8_t>(first & 0x0F);
  if (type_value == 0 || type_value == 15) {
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
                                    std::to_string(limits.max_remaining_length) + " bytes)"));
  }
  if (const long fixed = fixed_remaining_length(type);
      fixed >= 0 && value != static_cast<std::size_t>(fixed)) {
    return fail(error_for(type, "remaining length must be " + std::to_string(fixed) + " (got " +
                                    std::to_string(value) + ")"));
  }
  result.status = DecodeStatus::Ok;
  return result;
}

DecodeResult decode(std::string_view data, const DecodeLimits& limits) {
  DecodeResult result;
  HeaderResult head = decode_fixed_header(data, limits);
  if (head.status != DecodeStatus::Ok) {
    result.status = head.status;
    result.error = std::move(head.error);
    return result;
  }
  const FixedHeader& header = head.header;
  if (data.size() < header.packet_length()) return result;  // Incomplete

  Reader in(data.substr(header.header_length, header.remaining_length), header.type);
  bool ok = decode_body(in, header, result.packet);
  if (ok && !in.at_end()) {
    ok = in.fail("remaining length leaves " + std::to_string(in.left()) +
                 " bytes left over after the last field");
  }
  if (!ok) {
    result.status = DecodeStatus::Error;
    result.error = std::move(in.error());
    return result;
  }
  if (auto e = check_packet(result.packet); !e.empty()) {
    result.status = DecodeStatus::Error;
    result.error = std::move(e);
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

}  // namespace baetyl::mqtt
