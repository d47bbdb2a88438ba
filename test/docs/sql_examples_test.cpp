// docs/sql.md's examples must be what the SQL runtime does, and they must use every function,
// keyword and operator of the dialect.
//
// An example is a ```sql block (the query) followed by a table `| payload | result |`. A payload
// cell holds the message's JSON payload in backticks, or `—` for a query that fails at start. A
// result cell holds the runtime's reply payload in backticks (compared as text: key order and
// number formatting count), `nothing` when WHERE rejects the message, or `error:` and the error's
// text in backticks. Every example runs on the message the page describes (kMessage).
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "sql/ast.h"
#include "sql/lexer.h"
#include "sql/sql.h"

namespace {

namespace sql = baetyl::sql;

const sql::Message kMessage{.qos = 1,
                            .topic = "sensors/room1/temp",
                            .timestamp = 1700000000,
                            .function_name = "filter",
                            .invoke_id = "4b1d"};

const char* const kPage = "docs/sql.md";

struct Case {
  int line = 0;
  std::optional<std::string> payload;  // none: the query fails at start
  enum class Expect { kResult, kNothing, kError } expect = Expect::kResult;
  std::string text;  // the result, or the error's text
};

struct Example {
  int line = 0;
  std::string query;
  std::vector<Case> cases;
};

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t") - begin + 1);
}

// The cells of a table row, split at '|' outside backquoted code.
std::vector<std::string> cells(const std::string& row) {
  std::vector<std::string> out;
  std::string cell;
  bool code = false;
  for (std::size_t i = 1; i < row.size(); ++i) {
    const char c = row[i];
    if (c == '`') code = !code;
    if (c == '|' && !code) {
      out.push_back(trim(cell));
      cell.clear();
    } else {
      cell += c;
    }
  }
  return out;
}

// The text between the first pair of backquotes, or nullopt.
std::optional<std::string> code_in(const std::string& cell) {
  const auto open = cell.find('`');
  if (open == std::string::npos) return std::nullopt;
  const auto close = cell.find('`', open + 1);
  if (close == std::string::npos) return std::nullopt;
  return cell.substr(open + 1, close - open - 1);
}

std::string where(int line) { return std::string(kPage) + ":" + std::to_string(line); }

std::vector<Example> read_examples(std::vector<std::string>& problems) {
  std::ifstream in(std::string(BAETYL_SOURCE_DIR) + "/" + kPage);
  if (!in) {
    problems.push_back(std::string("cannot read ") + kPage);
    return {};
  }
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);

  std::vector<Example> examples;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i] != "```sql") continue;
    Example example{.line = static_cast<int>(i + 1)};
    for (++i; i < lines.size() && lines[i] != "```"; ++i) {
      example.query += (example.query.empty() ? "" : "\n") + lines[i];
    }
    std::size_t row = i + 1;
    while (row < lines.size() && trim(lines[row]).empty()) ++row;
    if (row >= lines.size() || cells(lines[row]) != std::vector<std::string>{"payload", "result"}) {
      problems.push_back(where(example.line) + ": a query without a `| payload | result |` table");
      continue;
    }
    for (row += 2; row < lines.size() && lines[row].starts_with("|"); ++row) {
      const auto cols = cells(lines[row]);
      Case c{.line = static_cast<int>(row + 1)};
      if (cols.size() != 2) {
        problems.push_back(where(c.line) + ": a row needs two cells");
        continue;
      }
      if (cols[0] != "—") c.payload = code_in(cols[0]);
      if (cols[0] != "—" && !c.payload) {
        problems.push_back(where(c.line) + ": the payload is neither `code` nor —");
        continue;
      }
      if (cols[1].starts_with("nothing")) {
        c.expect = Case::Expect::kNothing;
      } else {
        if (cols[1].starts_with("error")) c.expect = Case::Expect::kError;
        const auto text = code_in(cols[1]);
        if (!text) {
          problems.push_back(where(c.line) + ": the result is neither `code`, nothing nor error");
          continue;
        }
        c.text = *text;
      }
      example.cases.push_back(std::move(c));
    }
    if (example.cases.empty()) problems.push_back(where(example.line) + ": an empty table");
    examples.push_back(std::move(example));
  }
  return examples;
}

// What the runtime makes of one case, in the notation of the page.
std::string outcome(const std::optional<sql::Query>& query, const std::string& parse_error,
                    const Case& c) {
  if (!query) return "error: " + parse_error;
  if (!c.payload) return "a query that parses (the row says it fails at start)";
  try {
    const std::string out = query->run(*c.payload, kMessage);
    return out.empty() ? "nothing" : out;
  } catch (const std::exception& e) {
    return std::string("error: ") + e.what();
  }
}

std::string expected(const Case& c) {
  switch (c.expect) {
    case Case::Expect::kNothing:
      return "nothing";
    case Case::Expect::kError:
      return "error: " + c.text;
    case Case::Expect::kResult:
      break;
  }
  return c.text;
}

TEST(SqlExamplesTest, EveryExampleIsWhatTheRuntimeDoes) {
  std::vector<std::string> problems;
  const auto examples = read_examples(problems);
  std::size_t cases = 0;
  for (const auto& example : examples) {
    std::optional<sql::Query> query;
    std::string parse_error;
    try {
      query = sql::Query::parse(example.query);
    } catch (const sql::SqlError& e) {
      parse_error = e.what();
    }
    for (const auto& c : example.cases) {
      ++cases;
      const std::string got = outcome(query, parse_error, c);
      if (got != expected(c)) {
        problems.push_back(where(c.line) + ": `" + example.query + "` on " +
                           c.payload.value_or("—") + " gives " + got + ", the page says " +
                           expected(c));
      }
    }
  }
  EXPECT_GE(cases, 30u) << "the page's examples were not found";
  for (const auto& p : problems) ADD_FAILURE() << p;
}

TEST(SqlExamplesTest, TheExamplesUseEveryFunctionKeywordAndOperator) {
  std::vector<std::string> problems;
  std::set<std::string> functions, words, symbols;
  for (const auto& example : read_examples(problems)) {
    sql::Lexer lexer(example.query);
    try {
      std::string previous;
      for (auto t = lexer.next(); t.kind != sql::TokenKind::kEnd; t = lexer.next()) {
        if (t.kind == sql::TokenKind::kKeyword) words.insert(t.text);
        if (t.kind == sql::TokenKind::kSymbol) symbols.insert(t.text);
        if (t.kind == sql::TokenKind::kSymbol && t.text == "(") functions.insert(previous);
        previous = t.kind == sql::TokenKind::kIdentifier ? t.text : "";
        if (t.kind == sql::TokenKind::kKeyword && t.text == "from") lexer.skip_source();
      }
    } catch (const sql::SqlError&) {
      // The examples of errors need not lex.
    }
  }
  for (const auto& builtin : sql::builtins()) {
    bool used = false;
    for (const auto& f : functions) {
      std::string lower = f;
      for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      used = used || lower == builtin.name;
    }
    if (!used) ADD_FAILURE() << kPage << " has no example calling " << builtin.name << "()";
  }
  for (const char* word : {"select", "from", "where", "as", "and", "or", "not", "in", "like",
                           "between", "is", "null", "true", "false"}) {
    EXPECT_TRUE(sql::is_keyword(word)) << word;
    EXPECT_TRUE(words.contains(word)) << kPage << " has no example using " << word;
  }
  for (const char* symbol :
       {"*", "+", "-", "/", "%", "=", "!=", "<>", "<", "<=", ">", ">=", "||", "[", ".", ";"}) {
    EXPECT_TRUE(symbols.contains(symbol)) << kPage << " has no example using " << symbol;
  }
}

}  // namespace
