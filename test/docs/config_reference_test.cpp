// docs/configuration.md must list every key the code declares, with its default, and no key the
// code does not declare.
//
// Each reference table follows a marker `<!-- config-keys: NAME -->` and has the columns
// `key | type | default | ...`. A key cell holds one or more keys in backticks (`a`, `b`); the
// default cell holds the default in backticks (one per key, or one for all), or `empty`/`none`
// (or nothing) for no default, or plain text for a default that depends on the machine. A row
// whose key is `prefix.*` stands for every key of another table, which it links to
// (`[hub](#hub)`): the code must declare those keys under the prefix with that table's defaults;
// explicit rows under the prefix override them.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent_config.h"
#include "baetyl/config/reader.h"
#include "baetyl/config/units.h"
#include "baetyl/context.h"
#include "config/app_config.h"
#include "config/master_config.h"
#include "function-manager/src/config.h"
#include "function-sql/src/server.h"
#include "hub/src/config.h"
#include "remote-mqtt/src/config.h"
#include "timer.h"

namespace {

namespace config = baetyl::config;
using Keys = std::vector<config::DeclaredKey>;

// ---- What the code declares ----

// The keys of a module built on the SDK's Context: the shared `hub` and `logger`, then its own.
template <config::Describable T>
Keys module_keys() {
  Keys keys = config::declared_keys<baetyl::ServiceConfig>();
  T defaults;  // default member initialisers (GCC 12 warns wrongly about `const T defaults{}`)
  for (auto& key : config::declared_keys(defaults)) {
    bool known = false;
    for (const auto& k : keys) known = known || k.key == key.key;
    if (!known) keys.push_back(std::move(key));
  }
  return keys;
}

// `program --print-config-keys`: lines of key, type and default separated by tabs.
Keys script_keys(const std::string& program) {
  const std::string command =
      std::string(BAETYL_BINARY_DIR) + "/bin/" + program + " --print-config-keys";
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run " + command);
  std::string output;
  char buffer[4096];
  while (std::size_t n = fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  if (pclose(pipe) != 0) throw std::runtime_error(command + " failed:\n" + output);
  Keys keys;
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    const auto tab1 = line.find('\t');
    const auto tab2 = line.find('\t', tab1 + 1);
    if (tab1 == std::string::npos || tab2 == std::string::npos) {
      throw std::runtime_error(command + ": unexpected line '" + line + "'");
    }
    keys.push_back(
        {line.substr(0, tab1), line.substr(tab1 + 1, tab2 - tab1 - 1), line.substr(tab2 + 1)});
  }
  return keys;
}

std::map<std::string, Keys> code_tables() {
  // The master's API address default comes from this variable when it is set.
  unsetenv("BAETYL_MASTER_API_ADDRESS");
  unsetenv("OPENEDGE_MASTER_API");
  return {
      {"hub", config::declared_keys<baetyl::mqtt::ClientConfig>()},
      {"logger", config::declared_keys<baetyl::log::LoggerConfig>()},
      {"confyml", config::declared_keys(baetyl::master::master_config_defaults())},
      {"applicationyml", config::declared_keys<baetyl::master::AppConfig>()},
      {"packageyml", config::declared_keys<baetyl::master::PackageManifest>()},
      {"baetyl-hub", module_keys<baetyl::hub::HubConfig>()},
      {"baetyl-timer", module_keys<baetyl::timer::TimerConfig>()},
      {"baetyl-function-manager", module_keys<baetyl::function::ManagerConfig>()},
      {"baetyl-function-sql", module_keys<baetyl::sql::RuntimeConfig>()},
      {"baetyl-function-python", script_keys("baetyl-function-python")},
      {"baetyl-function-node", script_keys("baetyl-function-node")},
      {"baetyl-remote-mqtt", module_keys<baetyl::remote::BridgeConfig>()},
      {"baetyl-agent", module_keys<baetyl::agent::AgentConfig>()},
  };
}

// ---- What the document says ----

struct DocRow {
  std::string key;
  std::string default_value;  // "" for none
  int line = 0;
};

struct DocTable {
  std::map<std::string, DocRow> rows;                         // explicit keys
  std::vector<std::pair<std::string, std::string>> includes;  // prefix ("hub."), table name
  int line = 0;
};

std::string trim(std::string s) {
  const auto begin = s.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  const auto end = s.find_last_not_of(" \t");
  return s.substr(begin, end - begin + 1);
}

std::vector<std::string> cells(const std::string& line) {
  std::vector<std::string> out;
  std::string cell;
  bool code = false;
  for (std::size_t i = 1; i < line.size(); ++i) {  // line[0] is the leading '|'
    const char c = line[i];
    if (c == '`') code = !code;
    if (c == '\\' && i + 1 < line.size() && line[i + 1] == '|') {
      cell += '|';
      ++i;
    } else if (c == '|' && !code) {
      out.push_back(trim(cell));
      cell.clear();
    } else {
      cell += c;
    }
  }
  return out;
}

std::vector<std::string> backticked(const std::string& cell) {
  std::vector<std::string> out;
  static const std::regex code("`([^`]*)`");
  for (auto it = std::sregex_iterator(cell.begin(), cell.end(), code); it != std::sregex_iterator();
       ++it) {
    out.push_back((*it)[1]);
  }
  return out;
}

std::string source_path() { return std::string(BAETYL_SOURCE_DIR) + "/docs/configuration.md"; }

std::map<std::string, DocTable> doc_tables() {
  std::ifstream in(source_path());
  if (!in) throw std::runtime_error("cannot read " + source_path());
  static const std::regex marker("<!-- config-keys: ([a-z0-9-]+) -->");
  static const std::regex link("\\]\\(#([a-z0-9-]+)\\)");
  std::map<std::string, DocTable> tables;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    std::smatch m;
    if (!std::regex_search(line, m, marker)) continue;
    const std::string name = m[1];
    if (tables.count(name)) throw std::runtime_error("table '" + name + "' is there twice");
    DocTable& table = tables[name];
    table.line = number;
    // Up to the table, then its header, separator and rows.
    while (std::getline(in, line) && ++number && trim(line).empty()) {
    }
    if (line.empty() || line[0] != '|') {
      throw std::runtime_error("line " + std::to_string(number) + ": no table after the marker");
    }
    const auto header = cells(line);
    std::size_t default_column = header.size();
    for (std::size_t i = 0; i < header.size(); ++i) {
      if (header[i] == "default") default_column = i;
    }
    if (header.empty() || header[0] != "key" || default_column == header.size()) {
      throw std::runtime_error("line " + std::to_string(number) +
                               ": the table needs the columns key and default");
    }
    std::getline(in, line);  // | --- | --- |
    ++number;
    while (std::getline(in, line) && ++number && !line.empty() && line[0] == '|') {
      const auto row = cells(line);
      const std::string where = "line " + std::to_string(number);
      if (row.size() <= default_column) throw std::runtime_error(where + ": too few columns");
      const auto keys = backticked(row[0]);
      if (keys.empty()) throw std::runtime_error(where + ": no key in backticks");
      if (keys.size() == 1 && keys[0].ends_with(".*")) {
        std::smatch target;
        if (!std::regex_search(line, target, link)) {
          throw std::runtime_error(where + ": " + keys[0] + " links to no table");
        }
        table.includes.emplace_back(keys[0].substr(0, keys[0].size() - 1), target[1]);
        continue;
      }
      const std::string& cell = row[default_column];
      auto defaults = backticked(cell);
      if (defaults.empty()) {
        const std::string text = trim(cell);
        defaults.push_back(text == "empty" || text == "none" ? "" : text);
      }
      if (defaults.size() != 1 && defaults.size() != keys.size()) {
        throw std::runtime_error(where + ": " + std::to_string(keys.size()) + " keys but " +
                                 std::to_string(defaults.size()) + " defaults");
      }
      for (std::size_t i = 0; i < keys.size(); ++i) {
        const std::string& value = defaults.size() == 1 ? defaults[0] : defaults[i];
        if (!table.rows.emplace(keys[i], DocRow{keys[i], value, number}).second) {
          throw std::runtime_error(where + ": key '" + keys[i] + "' is there twice");
        }
      }
    }
  }
  return tables;
}

// ---- Comparing ----

bool same_default(const config::DeclaredKey& code, const std::string& documented) {
  if (code.default_value == documented) return true;
  if (code.default_value.empty() || documented.empty()) return false;
  if (code.type == "duration") {
    auto a = config::parse_duration(code.default_value);
    auto b = config::parse_duration(documented);
    return a && b && *a == *b;
  }
  if (code.type == "size") {
    auto a = config::parse_byte_size(code.default_value);
    auto b = config::parse_byte_size(documented);
    return a && b && *a == *b;
  }
  return false;
}

std::string shown(const std::string& value) { return value.empty() ? "none" : "`" + value + "`"; }

// Every problem of table `name`, one per line.
std::vector<std::string> compare(const std::string& name, const Keys& code, const DocTable& doc,
                                 const std::map<std::string, Keys>& all) {
  std::vector<std::string> problems;
  const std::string where = "docs/configuration.md:" + std::to_string(doc.line) + " (" + name + ")";
  std::set<std::string> covered;
  for (const auto& [prefix, target] : doc.includes) {
    auto included = all.find(target);
    if (included == all.end()) {
      problems.push_back(where + ": " + prefix + "* links to #" + target +
                         ", which is no reference table");
      continue;
    }
    for (const auto& key : included->second) {
      const std::string full = prefix + key.key;
      const config::DeclaredKey* declared = nullptr;
      for (const auto& k : code) declared = k.key == full ? &k : declared;
      if (!declared) {
        problems.push_back(where + ": " + prefix + "* says '" + full + "' is read (as in #" +
                           target + "); the code does not declare it");
        continue;
      }
      if (doc.rows.count(full)) continue;  // documented on its own row, checked below
      covered.insert(full);
      if (declared->default_value != key.default_value) {
        problems.push_back(where + ": '" + full + "' defaults to " +
                           shown(declared->default_value) + ", not " + shown(key.default_value) +
                           " as in #" + target + ": give it a row of its own");
      }
    }
  }
  for (const auto& key : code) {
    if (covered.count(key.key)) continue;
    auto row = doc.rows.find(key.key);
    if (row == doc.rows.end()) {
      problems.push_back(where + ": '" + key.key + "' (" + key.type + ", default " +
                         shown(key.default_value) + ") is declared in the code but not documented");
    } else if (!same_default(key, row->second.default_value)) {
      problems.push_back("docs/configuration.md:" + std::to_string(row->second.line) + ": '" +
                         key.key + "' is documented with the default " +
                         shown(row->second.default_value) + "; the code's is " +
                         shown(key.default_value));
    }
  }
  for (const auto& [key, row] : doc.rows) {
    bool declared = false;
    for (const auto& k : code) declared = declared || k.key == key;
    if (!declared) {
      problems.push_back("docs/configuration.md:" + std::to_string(row.line) + ": '" + key +
                         "' is documented for " + name + " but the code does not declare it");
    }
  }
  return problems;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& line : lines) text += line + "\n";
  return text;
}

class ConfigReference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    code_ = new std::map<std::string, Keys>(code_tables());
    docs_ = new std::map<std::string, DocTable>(doc_tables());
  }
  static void TearDownTestSuite() {
    delete code_;
    delete docs_;
  }
  static std::map<std::string, Keys>* code_;
  static std::map<std::string, DocTable>* docs_;
};

std::map<std::string, Keys>* ConfigReference::code_ = nullptr;
std::map<std::string, DocTable>* ConfigReference::docs_ = nullptr;

TEST_F(ConfigReference, EveryConfigurationHasATableAndEveryTableAConfiguration) {
  std::vector<std::string> problems;
  for (const auto& [name, keys] : *code_) {
    if (!docs_->count(name)) {
      problems.push_back("no table <!-- config-keys: " + name + " --> in docs/configuration.md");
    }
    if (keys.empty()) problems.push_back(name + ": the code declares no key");
  }
  for (const auto& [name, table] : *docs_) {
    if (!code_->count(name)) {
      problems.push_back("docs/configuration.md:" + std::to_string(table.line) + ": table '" +
                         name + "' is no configuration the test knows");
    }
  }
  EXPECT_TRUE(problems.empty()) << joined(problems);
}

TEST_F(ConfigReference, EveryTableListsExactlyTheDeclaredKeysWithTheirDefaults) {
  std::vector<std::string> problems;
  for (const auto& [name, keys] : *code_) {
    auto doc = docs_->find(name);
    if (doc == docs_->end()) continue;  // reported above
    for (auto& problem : compare(name, keys, doc->second, *code_)) problems.push_back(problem);
  }
  EXPECT_TRUE(problems.empty()) << joined(problems);
}

// The comparison itself: a table that drifted from the code is caught.
TEST(ConfigReferenceCheck, CatchesAMissingKeyAWrongDefaultAndAnUndeclaredKey) {
  Keys code = {
      {"interval", "duration", "1m0s"}, {"topic", "string", "timer"}, {"qos", "integer", "0"}};
  DocTable doc;
  doc.rows["interval"] = {"interval", "1m", 10};  // 1m is 1m0s
  doc.rows["topic"] = {"topic", "time", 11};
  doc.rows["retain"] = {"retain", "false", 12};
  auto problems = compare("t", code, doc, {});
  ASSERT_EQ(problems.size(), 3u) << joined(problems);
  EXPECT_NE(problems[0].find("'topic' is documented with the default `time`"), std::string::npos);
  EXPECT_NE(problems[1].find("'qos' (integer, default `0`) is declared"), std::string::npos);
  EXPECT_NE(problems[2].find("'retain' is documented for t"), std::string::npos);
}

TEST(ConfigReferenceCheck, AnIncludedTableCoversItsKeysUnderThePrefix) {
  std::map<std::string, Keys> all = {
      {"logger", {{"path", "string", ""}, {"level", "string", "info"}}}};
  Keys code = {{"logger.path", "string", "var/log/x.log"}, {"logger.level", "string", "info"}};
  DocTable doc;
  doc.includes.emplace_back("logger.", "logger");
  auto problems = compare("t", code, doc, all);
  ASSERT_EQ(problems.size(), 1u) << joined(problems);
  EXPECT_NE(problems[0].find("'logger.path' defaults to `var/log/x.log`"), std::string::npos);
  doc.rows["logger.path"] = {"logger.path", "var/log/x.log", 3};
  EXPECT_TRUE(compare("t", code, doc, all).empty());
  code.pop_back();  // logger.level no longer declared
  EXPECT_EQ(compare("t", code, doc, all).size(), 1u);
}

}  // namespace
