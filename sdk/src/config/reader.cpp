#include "baetyl/config/reader.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

namespace baetyl::config {

namespace detail {
struct ReaderState {
  std::string source;
  std::vector<Issue> issues;
  std::set<std::string> read_keys;
  // Every map a describe() looked at, with its path, to find the keys nobody read.
  std::vector<std::pair<std::string, YAML::Node>> described_maps;
  bool schema = false;
  std::vector<DeclaredKey> declared;
};

std::string show_number(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}
}  // namespace detail

namespace {

std::string join_issues(const std::string& source, const std::vector<Issue>& issues) {
  std::string text;
  for (const auto& issue : issues) {
    if (!text.empty()) text += '\n';
    text += source;
    if (!issue.key.empty()) text += ": " + issue.key;
    text += ": " + issue.message;
  }
  return text;
}

std::string describe_node_kind(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Scalar:
      return "'" + node.Scalar() + "'";
    default:
      return "an undefined value";
  }
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

ConfigError::ConfigError(std::string source, std::vector<Issue> issues)
    : std::runtime_error(join_issues(source, issues)),
      source_(std::move(source)),
      issues_(std::move(issues)) {}

Reader::Reader(YAML::Node document, std::string source)
    : state_(std::make_shared<detail::ReaderState>()), node_(std::move(document)) {
  state_->source = std::move(source);
}

Reader::Reader(std::shared_ptr<detail::ReaderState> state, YAML::Node node, std::string prefix)
    : state_(std::move(state)), node_(std::move(node)), prefix_(std::move(prefix)) {}

Reader Reader::schema(std::string source) {
  Reader reader(YAML::Node(YAML::NodeType::Map), std::move(source));
  reader.state_->schema = true;
  return reader;
}

bool Reader::schema_mode() const { return state_->schema; }

const std::vector<DeclaredKey>& Reader::declared_keys() const { return state_->declared; }

void Reader::declare(std::string path, std::string type, std::string default_value) {
  auto& declared = state_->declared;
  bool known = std::any_of(declared.begin(), declared.end(),
                           [&](const DeclaredKey& k) { return k.key == path; });
  if (!known) declared.push_back({std::move(path), std::move(type), std::move(default_value)});
}

void Reader::clear_default(const std::string& path) {
  for (auto& declared : state_->declared) {
    if (declared.key == path) declared.default_value.clear();
  }
}

std::string Reader::path(std::string_view key) const {
  if (prefix_.empty()) return std::string(key);
  if (key.empty()) return prefix_;
  return prefix_ + "." + std::string(key);
}

const std::string& Reader::source() const { return state_->source; }

void Reader::check(bool condition, std::string_view key, std::string message) {
  if (!condition) add_issue(path(key), std::move(message));
}

void Reader::error(std::string_view key, std::string message) {
  add_issue(path(key), std::move(message));
}

bool Reader::has_errors() const { return !state_->issues.empty(); }

const std::vector<Issue>& Reader::issues() const { return state_->issues; }

void Reader::throw_if_errors() const {
  if (!state_->issues.empty()) throw ConfigError(state_->source, state_->issues);
}

std::vector<std::string> Reader::unknown_keys() const {
  std::set<std::string> unknown;
  for (const auto& [map_path, node] : state_->described_maps) {
    for (const auto& entry : node) {
      std::string key = entry.first.Scalar();
      std::string full = map_path.empty() ? key : map_path + "." + key;
      if (!state_->read_keys.count(full)) unknown.insert(full);
    }
  }
  return {unknown.begin(), unknown.end()};
}

bool Reader::enter_map(const YAML::Node& node, const std::string& path) {
  if (!node.IsMap()) {
    add_issue(path, "expected a map of keys, got " + describe_node_kind(node));
    return false;
  }
  auto& maps = state_->described_maps;
  bool known = std::any_of(maps.begin(), maps.end(),
                           [&](const auto& entry) { return entry.first == path; });
  if (known) return true;
  maps.emplace_back(path, node);
  // YAML parsers keep one of two equal keys silently; a config with both is a mistake.
  std::set<std::string> keys;
  for (const auto& entry : node) {
    const std::string& key = entry.first.Scalar();
    if (!keys.insert(key).second) {
      add_issue(path.empty() ? key : path + "." + key, "is given more than once");
    }
  }
  return true;
}

void Reader::mark_read(const std::string& path) { state_->read_keys.insert(path); }

void Reader::add_issue(std::string path, std::string message) {
  state_->issues.push_back(Issue{std::move(path), std::move(message)});
}

bool Reader::decode_scalar(const YAML::Node& node, const std::string& path, std::string& out) {
  if (!node.IsScalar()) {
    add_issue(path, "expected a string, got " + describe_node_kind(node));
    return false;
  }
  out = node.Scalar();
  return true;
}

bool Reader::decode_scalar(const YAML::Node& node, const std::string& path, bool& out) {
  if (node.IsScalar()) {
    std::string v = lower(node.Scalar());
    if (v == "true" || v == "yes" || v == "on") {
      out = true;
      return true;
    }
    if (v == "false" || v == "no" || v == "off") {
      out = false;
      return true;
    }
  }
  add_issue(path, "expected true or false, got " + describe_node_kind(node));
  return false;
}

bool Reader::decode_scalar(const YAML::Node& node, const std::string& path, std::int64_t& out) {
  if (node.IsScalar()) {
    const std::string& s = node.Scalar();
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec == std::errc() && ptr == s.data() + s.size() && !s.empty()) return true;
    if (ec == std::errc::result_out_of_range) {
      add_issue(path, "'" + s + "' is out of range for an integer");
      return false;
    }
  }
  add_issue(path, "expected an integer, got " + describe_node_kind(node));
  return false;
}

bool Reader::decode_scalar(const YAML::Node& node, const std::string& path, std::uint64_t& out) {
  if (node.IsScalar()) {
    const std::string& s = node.Scalar();
    if (!s.empty() && s[0] == '-') {
      add_issue(path, "must not be negative, got '" + s + "'");
      return false;
    }
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec == std::errc() && ptr == s.data() + s.size() && !s.empty()) return true;
    if (ec == std::errc::result_out_of_range) {
      add_issue(path, "'" + s + "' is out of range for an integer");
      return false;
    }
  }
  add_issue(path, "expected a non-negative integer, got " + describe_node_kind(node));
  return false;
}

bool Reader::decode_scalar(const YAML::Node& node, const std::string& path, double& out) {
  if (node.IsScalar()) {
    const std::string& s = node.Scalar();
    std::istringstream in(s);
    in.imbue(std::locale::classic());
    double value = 0;
    if (!s.empty() && (in >> value) && in.peek() == std::char_traits<char>::eof()) {
      out = value;
      return true;
    }
  }
  add_issue(path, "expected a number, got " + describe_node_kind(node));
  return false;
}

bool Reader::decode_scalar(const YAML::Node& node, const std::string& path,
                           std::chrono::nanoseconds& out) {
  if (!node.IsScalar()) {
    add_issue(path, "expected a duration such as 30s or 1m30s, got " + describe_node_kind(node));
    return false;
  }
  std::string error;
  auto value = parse_duration(node.Scalar(), &error);
  if (!value) {
    add_issue(path, error);
    return false;
  }
  out = *value;
  return true;
}

bool Reader::decode_scalar(const YAML::Node& node, const std::string& path, ByteSize& out) {
  if (!node.IsScalar()) {
    add_issue(path, "expected a size such as 32k or 4m, got " + describe_node_kind(node));
    return false;
  }
  std::string error;
  auto value = parse_byte_size(node.Scalar(), &error);
  if (!value) {
    add_issue(path, error);
    return false;
  }
  out = *value;
  return true;
}

bool Reader::decode_scalar(const YAML::Node& node, const std::string&, nlohmann::json& out) {
  out = yaml_to_json(node);
  return true;
}

bool regex_full_match(const std::string& value, std::string_view pattern) {
  return std::regex_match(value, std::regex(std::string(pattern), std::regex::ECMAScript));
}

YAML::Node parse_yaml(const std::string& text, const std::string& source) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    std::string where = e.mark.is_null()
                            ? std::string()
                            : "line " + std::to_string(e.mark.line + 1) + ", column " +
                                  std::to_string(e.mark.column + 1);
    throw ConfigError(source, {Issue{where, "YAML syntax error: " + e.msg}});
  }
}

YAML::Node load_yaml_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path, {Issue{"", "cannot open file: " + std::string(strerror(errno))}});
  std::ostringstream text;
  text << in.rdbuf();
  return parse_yaml(text.str(), path);
}

nlohmann::json yaml_to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      auto object = nlohmann::json::object();
      for (const auto& entry : node) object[entry.first.Scalar()] = yaml_to_json(entry.second);
      return object;
    }
    case YAML::NodeType::Sequence: {
      auto array = nlohmann::json::array();
      for (const auto& element : node) array.push_back(yaml_to_json(element));
      return array;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      if (node.Tag() == "!") return s;  // quoted: always a string
      std::int64_t integer = 0;
      auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), integer);
      if (ec == std::errc() && ptr == s.data() + s.size() && !s.empty()) return integer;
      double number = 0;
      auto [dptr, dec] = std::from_chars(s.data(), s.data() + s.size(), number);
      if (dec == std::errc() && dptr == s.data() + s.size() && !s.empty()) return number;
      if (s == "true" || s == "True" || s == "TRUE") return true;
      if (s == "false" || s == "False" || s == "FALSE") return false;
      if (s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
      return s;
    }
    default:
      return nullptr;
  }
}

}  // namespace baetyl::config
