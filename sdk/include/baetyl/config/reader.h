#pragma once
// Reading YAML configuration into typed structs.
//
// A struct becomes readable by declaring, next to it, a function found by argument-dependent
// lookup:
//
//   struct TimerConfig { std::chrono::milliseconds interval = std::chrono::minutes(1); };
//   void describe(config::Reader& r, TimerConfig& c) {
//     r.field("interval", c.interval).min(std::chrono::milliseconds(1));
//   }
//
// Defaults are the member initialisers. Every problem is collected with the file and the full key
// path (`services[2].restart.backoff.max`), and reported together in one ConfigError. Keys that no
// describe() reads are reported by unknown_keys() so callers can warn about them.
//
// The same describe() also lists the keys it declares, with their defaults, for the configuration
// reference (docs/configuration.md) and its test: declared_keys(T{}).
#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "baetyl/config/units.h"

namespace baetyl::config {

struct Issue {
  std::string key;      // full key path; empty for the document itself
  std::string message;  // what is wrong, e.g. "is required"
};

// Thrown when a configuration cannot be used. what() lists every issue, one per line, as
// "<file>: <key>: <message>".
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string source, std::vector<Issue> issues);
  const std::string& source() const { return source_; }
  const std::vector<Issue>& issues() const { return issues_; }

 private:
  std::string source_;
  std::vector<Issue> issues_;
};

// A key as describe() declares it: what declared_keys() lists.
struct DeclaredKey {
  std::string key;            // full path; the elements of a list as `[]`: rules[].clientid
  std::string type;           // string, boolean, integer, number, duration, size, list, map, any
  std::string default_value;  // as a file would write it; empty when the default is empty or none
};

class Reader;

template <class T>
concept Describable = requires(Reader& r, T& t) { describe(r, t); };

namespace detail {
struct ReaderState;

template <class T>
struct is_duration : std::false_type {};
template <class Rep, class Period>
struct is_duration<std::chrono::duration<Rep, Period>> : std::true_type {};

template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};

template <class T>
struct is_string_map : std::false_type {};
template <class V, class C, class A>
struct is_string_map<std::map<std::string, V, C, A>> : std::true_type {};

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
}  // namespace detail

template <class T>
class Field;

class Reader {
 public:
  // A reader over a whole document; `source` names it in messages (usually the file path).
  Reader(YAML::Node document, std::string source);

  // A reader that reads no document but records every key the describe() functions it runs
  // declare, with the value each target holds as its default (see declared_keys()). Value rules
  // do not apply in this mode, and what describe() reports is ignored.
  static Reader schema(std::string source = "<schema>");
  bool schema_mode() const;
  // In schema mode, the keys declared so far, in declaration order, each once.
  const std::vector<DeclaredKey>& declared_keys() const;

  // Reads the whole document into `target` through its describe().
  template <Describable T>
  void read(T& target);

  // Reads `key` of the current map into `target` if present (a null value counts as absent).
  template <class T>
  Field<T> field(std::string_view key, T& target);

  // Describes a nested map that has no struct of its own: r.section("age", [&](Reader& s) {...}).
  template <class Fn>
  void section(std::string_view key, Fn&& describe_section);

  // Records `message` at `key` (relative to this reader) unless `condition` holds.
  void check(bool condition, std::string_view key, std::string message);
  void error(std::string_view key, std::string message);

  // The full path of `key` below this reader, e.g. "hub.address".
  std::string path(std::string_view key) const;
  const std::string& source() const;

  bool has_errors() const;
  const std::vector<Issue>& issues() const;
  // Throws ConfigError carrying every issue recorded so far, if any.
  void throw_if_errors() const;
  // Full paths of keys present in the document that no describe() has read.
  std::vector<std::string> unknown_keys() const;

  // Decoding of one value; used by Field and for elements of containers.
  template <class T>
  bool decode(const YAML::Node& node, const std::string& path, T& out);

 private:
  Reader(std::shared_ptr<detail::ReaderState> state, YAML::Node node, std::string prefix);
  bool enter_map(const YAML::Node& node, const std::string& path);
  void declare(std::string path, std::string type, std::string default_value);
  void clear_default(const std::string& path);
  template <class T>
  void declare_value(const std::string& path, T& target);
  void mark_read(const std::string& path);
  void add_issue(std::string path, std::string message);

  bool decode_scalar(const YAML::Node& node, const std::string& path, std::string& out);
  bool decode_scalar(const YAML::Node& node, const std::string& path, bool& out);
  bool decode_scalar(const YAML::Node& node, const std::string& path, std::int64_t& out);
  bool decode_scalar(const YAML::Node& node, const std::string& path, std::uint64_t& out);
  bool decode_scalar(const YAML::Node& node, const std::string& path, double& out);
  bool decode_scalar(const YAML::Node& node, const std::string& path, std::chrono::nanoseconds& out);
  bool decode_scalar(const YAML::Node& node, const std::string& path, ByteSize& out);
  bool decode_scalar(const YAML::Node& node, const std::string& path, nlohmann::json& out);

  std::shared_ptr<detail::ReaderState> state_;
  YAML::Node node_;
  std::string prefix_;

  template <class T>
  friend class Field;
};

// The result of Reader::field: validation rules for the value just read. Value rules apply to a
// value present in the document (defaults are trusted) and stop at the first failure, so one
// mistake gives one message.
template <class T>
class Field {
 public:
  Field(Reader& reader, std::string path, T& value, bool present, bool decoded)
      : reader_(reader), path_(std::move(path)), value_(value), present_(present),
        checkable_(present && decoded) {}

  bool present() const { return present_; }

  Field& required() {
    if (!present_) fail("is required");
    return *this;
  }

  Field& min(const T& lowest) {
    if (checkable_ && value_ < lowest) fail("must be at least " + show(lowest));
    return *this;
  }

  Field& max(const T& highest) {
    if (checkable_ && highest < value_) fail("must be at most " + show(highest));
    return *this;
  }

  Field& one_of(std::initializer_list<std::string_view> allowed)
    requires std::same_as<T, std::string>
  {
    if (!checkable_) return *this;
    for (auto a : allowed) {
      if (value_ == a) return *this;
    }
    std::string list;
    for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    fail("'" + value_ + "' is not one of: " + list);
    return *this;
  }

  // The whole string must match the ECMAScript regular expression `pattern`.
  Field& matches(std::string_view pattern)
    requires std::same_as<T, std::string>
  {
    if (checkable_ && !full_match(value_, pattern)) {
      fail("'" + value_ + "' does not match " + std::string(pattern));
    }
    return *this;
  }

  // When present, not empty (strings and containers). Combine with required() for keys that
  // must be given.
  Field& not_empty() {
    if (checkable_ && value_.empty()) fail("must not be empty");
    return *this;
  }

  Field& check(const std::function<bool(const T&)>& predicate, std::string message) {
    if (checkable_ && !predicate(value_)) fail(std::move(message));
    return *this;
  }

 private:
  static bool full_match(const std::string& value, std::string_view pattern);
  static std::string show(const T& v) {
    if constexpr (detail::is_duration<T>::value) {
      return format_duration(std::chrono::duration_cast<std::chrono::nanoseconds>(v));
    } else if constexpr (std::same_as<T, ByteSize>) {
      return format_byte_size(v);
    } else if constexpr (std::is_arithmetic_v<T>) {
      return std::to_string(v);
    } else {
      return "the limit";
    }
  }

  void fail(std::string message) {
    reader_.add_issue(path_, std::move(message));
    checkable_ = false;
  }

  Reader& reader_;
  std::string path_;
  T& value_;
  bool present_;
  bool checkable_;
};

bool regex_full_match(const std::string& value, std::string_view pattern);

template <class T>
bool Field<T>::full_match(const std::string& value, std::string_view pattern) {
  return regex_full_match(value, pattern);
}

// ---- Reader templates ----

template <Describable T>
void Reader::read(T& target) {
  if (!node_ || node_.IsNull()) node_ = YAML::Node(YAML::NodeType::Map);
  if (enter_map(node_, prefix_)) describe(*this, target);
}

template <class T>
Field<T> Reader::field(std::string_view key, T& target) {
  std::string full = path(key);
  if (schema_mode()) {
    declare_value(full, target);
    return Field<T>(*this, std::move(full), target, false, true);
  }
  // Const lookup: a missing key must not be inserted into the document.
  YAML::Node child = node_.IsMap() ? std::as_const(node_)[std::string(key)] : YAML::Node();
  bool present = child && !child.IsNull();
  if (child) mark_read(full);
  bool decoded = present ? decode(child, full, target) : true;
  return Field<T>(*this, std::move(full), target, present, decoded);
}

template <class Fn>
void Reader::section(std::string_view key, Fn&& describe_section) {
  std::string full = path(key);
  // Const lookup: a missing key must not be inserted into the document.
  YAML::Node child = node_.IsMap() ? std::as_const(node_)[std::string(key)] : YAML::Node();
  if (child) mark_read(full);
  YAML::Node section_node = child && !child.IsNull() ? child : YAML::Node(YAML::NodeType::Map);
  if (!enter_map(section_node, full)) return;
  Reader sub(state_, section_node, full);
  describe_section(sub);
}

namespace detail {
std::string show_number(double value);
}  // namespace detail

template <class T>
void Reader::declare_value(const std::string& path, T& target) {
  if constexpr (Describable<T>) {
    Reader sub(state_, YAML::Node(YAML::NodeType::Map), path);
    describe(sub, target);
  } else if constexpr (detail::is_optional<T>::value) {
    if (target) {
      declare_value(path, *target);
    } else {
      typename T::value_type unset{};
      declare_value(path, unset);
      clear_default(path);  // an unset optional has no default, whatever its type's would be
    }
  } else if constexpr (detail::is_vector<T>::value) {
    std::string shown;
    if constexpr (std::same_as<typename T::value_type, std::string>) {
      for (const auto& item : target) shown += (shown.empty() ? "" : ", ") + item;
      if (!shown.empty()) shown = "[" + shown + "]";
    }
    declare(path, "list", shown);
    if constexpr (Describable<typename T::value_type>) {
      typename T::value_type element{};
      declare_value(path + "[]", element);
    }
  } else if constexpr (detail::is_string_map<T>::value) {
    declare(path, "map", "");
  } else if constexpr (detail::is_duration<T>::value) {
    declare(path, "duration",
            format_duration(std::chrono::duration_cast<std::chrono::nanoseconds>(target)));
  } else if constexpr (std::same_as<T, ByteSize>) {
    declare(path, "size", format_byte_size(target));
  } else if constexpr (std::same_as<T, bool>) {
    declare(path, "boolean", target ? "true" : "false");
  } else if constexpr (std::same_as<T, std::string>) {
    declare(path, "string", target);
  } else if constexpr (std::same_as<T, nlohmann::json>) {
    declare(path, target.is_object() ? "map" : "any", target.dump());
  } else if constexpr (std::same_as<T, YAML::Node>) {
    declare(path, "any", "");
  } else if constexpr (std::is_floating_point_v<T>) {
    declare(path, "number", detail::show_number(static_cast<double>(target)));
  } else if constexpr (std::is_integral_v<T>) {
    declare(path, "integer", std::to_string(target));
  } else {
    static_assert(sizeof(T) == 0, "no configuration decoder for this type; add describe()");
  }
}

template <class T>
bool Reader::decode(const YAML::Node& node, const std::string& path, T& out) {
  if constexpr (Describable<T>) {
    if (!enter_map(node, path)) return false;
    Reader sub(state_, node, path);
    std::size_t before = issues().size();
    describe(sub, out);
    return issues().size() == before;
  } else if constexpr (detail::is_optional<T>::value) {
    typename T::value_type value{};
    if (!decode(node, path, value)) return false;
    out = std::move(value);
    return true;
  } else if constexpr (detail::is_vector<T>::value) {
    if (!node.IsSequence()) {
      add_issue(path, "expected a list");
      return false;
    }
    T result;
    bool ok = true;
    for (std::size_t i = 0; i < node.size(); ++i) {
      typename T::value_type element{};
      std::string element_path = path + "[" + std::to_string(i) + "]";
      ok = decode(node[i], element_path, element) && ok;
      result.push_back(std::move(element));
    }
    out = std::move(result);
    return ok;
  } else if constexpr (detail::is_string_map<T>::value) {
    if (!node.IsMap()) {
      add_issue(path, "expected a map");
      return false;
    }
    T result;
    bool ok = true;
    for (const auto& entry : node) {
      std::string key = entry.first.Scalar();
      typename T::mapped_type value{};
      ok = decode(entry.second, path + "." + key, value) && ok;
      result.emplace(key, std::move(value));
    }
    out = std::move(result);
    return ok;
  } else if constexpr (detail::is_duration<T>::value) {
    std::chrono::nanoseconds ns{};
    if (!decode_scalar(node, path, ns)) return false;
    out = std::chrono::duration_cast<T>(ns);
    return true;
  } else if constexpr (std::same_as<T, bool> || std::same_as<T, std::string> ||
                       std::same_as<T, ByteSize> || std::same_as<T, nlohmann::json>) {
    return decode_scalar(node, path, out);
  } else if constexpr (std::same_as<T, YAML::Node>) {
    out = YAML::Clone(node);
    return true;
  } else if constexpr (std::is_floating_point_v<T>) {
    double value = 0;
    if (!decode_scalar(node, path, value)) return false;
    out = static_cast<T>(value);
    return true;
  } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
    std::int64_t value = 0;
    if (!decode_scalar(node, path, value)) return false;
    if (value < std::numeric_limits<T>::min() || value > std::numeric_limits<T>::max()) {
      add_issue(path, std::to_string(value) + " is out of range [" +
                          std::to_string(std::numeric_limits<T>::min()) + ", " +
                          std::to_string(std::numeric_limits<T>::max()) + "]");
      return false;
    }
    out = static_cast<T>(value);
    return true;
  } else if constexpr (std::is_integral_v<T> && std::is_unsigned_v<T>) {
    std::uint64_t value = 0;
    if (!decode_scalar(node, path, value)) return false;
    if (value > std::numeric_limits<T>::max()) {
      add_issue(path, std::to_string(value) + " is out of range [0, " +
                          std::to_string(std::numeric_limits<T>::max()) + "]");
      return false;
    }
    out = static_cast<T>(value);
    return true;
  } else {
    static_assert(sizeof(T) == 0, "no configuration decoder for this type; add describe()");
  }
}

// ---- Loading ----

// Parses YAML text; a syntax error becomes a ConfigError naming `source`, line and column.
YAML::Node parse_yaml(const std::string& text, const std::string& source);
// Reads and parses a file; a missing or unreadable file is a ConfigError naming it.
YAML::Node load_yaml_file(const std::string& path);

// Reads a whole document into T, throwing ConfigError on any issue. Unknown keys are appended to
// `unknown_keys` when given.
template <Describable T>
T read_document(const YAML::Node& document, const std::string& source,
                std::vector<std::string>* unknown_keys = nullptr) {
  Reader reader(document, source);
  T value{};
  reader.read(value);
  reader.throw_if_errors();
  if (unknown_keys) *unknown_keys = reader.unknown_keys();
  return value;
}

// Every key describe() declares for T, with the values of `defaults` as the defaults.
template <Describable T>
std::vector<DeclaredKey> declared_keys(T defaults = T{}) {
  Reader reader = Reader::schema();
  reader.read(defaults);
  return reader.declared_keys();
}

template <Describable T>
T load_file(const std::string& path, std::vector<std::string>* unknown_keys = nullptr) {
  return read_document<T>(load_yaml_file(path), path, unknown_keys);
}

template <Describable T>
T load_string(const std::string& text, const std::string& source = "<string>",
              std::vector<std::string>* unknown_keys = nullptr) {
  return read_document<T>(parse_yaml(text, source), source, unknown_keys);
}

// Converts YAML (e.g. a free-form `payload:` map) to JSON: scalars become numbers or booleans when
// they are written as such, strings otherwise.
nlohmann::json yaml_to_json(const YAML::Node& node);

}  // namespace baetyl::config
