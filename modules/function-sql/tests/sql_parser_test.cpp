// The parser: every construct is accepted, and every mistake is reported with its position.
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sql/sql.h"

namespace baetyl::sql {
namespace {

using ::testing::HasSubstr;

// "" when `text` parses, else the error message.
std::string error_of(const std::string& text) {
  try {
    Query::parse(text);
    return "";
  } catch (const SqlError& e) {
    return e.what();
  }
}

// The keys of the object a query selects from `payload` (with no WHERE).
std::vector<std::string> keys_of(const std::string& text, const std::string& payload = "{}") {
  auto result = Query::parse(text).evaluate(Json::parse(payload), Message{});
  std::vector<std::string> keys;
  if (!result) return keys;
  for (auto it = result->begin(); it != result->end(); ++it) keys.push_back(it.key());
  return keys;
}

TEST(SqlParserTest, AcceptsEveryConstruct) {
  const char* queries[] = {
      "select *",
      "select qos() as qos, topic() as topic, * where id < 10",
      "SELECT * FROM t WHERE id < 10",
      "SeLeCt a As b fRoM x wHeRe NoT a Is NuLl AnD b iN (1) oR c LiKe 'x%'",
      "select a.b.c, a.b[0], a[1][2].c, `odd-key`.`x y`, a.from",
      "select 1, -2, +3, 1.5, .5, 1e3, 2.5E-2, 'single', \"double\", true, false, null",
      "select 'it''s', \"say \"\"hi\"\"\", 'tab\\there', 'quote \\' and \\\\'",
      "select a + b - c * d / e % f, a || b, -(a), - - a",
      "select * where a = 1 and b != 2 and c <> 3 and d < 4 and e <= 5 and f > 6 and g >= 7",
      "select * where a == 1",
      "select * where a in (1, 'x', null) and b not in (2) and c like 'a_%' and d not like '%'",
      "select * where a between 1 and 2 and b not between 'a' and 'z'",
      "select * where a is null or b is not null or not (c or d)",
      "select * where ((a))",
      "select lower('A'), UPPER('a'), Length('x'), concat(1), concat(1, 2, 3), substring('a', 1),"
      " substr('a', 1, 1), trim(' '), ltrim(' '), rtrim(' '), replace('a', 'b', 'c'),"
      " startswith('a', 'b'), endswith('a', 'b'), abs(1), round(1), round(1, 2), floor(1),"
      " ceil(1), sqrt(1), power(1, 2), coalesce(1), coalesce(null, 1, 2), tostring(1),"
      " tonumber('1'), qos(), topic(), topic(1), timestamp(), function_name(), invoke_id()",
      "select abs (1)",
      "select * from t/# where a = 1",
      "select * from 'where' where a = 1",
      "select * from a, b, c join d",
      "select * from t;",
      "select * where a = 1;",
      "select a as `x y`, b as 'quoted key'",
      "select\n  a,\n  b\nfrom\n  t\nwhere\n  a > 1",
  };
  for (const char* q : queries) EXPECT_EQ(error_of(q), "") << q;
}

TEST(SqlParserTest, KeepsTheText) {
  EXPECT_EQ(Query::parse("select *  where a = 1").text(), "select *  where a = 1");
}

TEST(SqlParserTest, OutputKeys) {
  EXPECT_EQ(keys_of("select qos() as qos, topic() as topic, *", R"({"id":1})"),
            (std::vector<std::string>{"qos", "topic", "id"}));
  // A field path is named after its last member; any other expression after its text.
  EXPECT_EQ(keys_of("select a.b.c, x[0], y.z[1], 1 + 2, upper( 'a' ), `k-1`"),
            (std::vector<std::string>{"c", "x", "z", "1 + 2", "upper( 'a' )", "k-1"}));
  EXPECT_EQ(keys_of("select 1 as one, 2 as 'two words', 3 as `three`"),
            (std::vector<std::string>{"one", "two words", "three"}));
  // A later item with the same name overwrites the earlier one in its place.
  EXPECT_EQ(keys_of("select *, 1 as a", R"({"b":1,"a":2})"), (std::vector<std::string>{"b", "a"}));
}

struct ErrorCase {
  const char* query;
  const char* error;
};

TEST(SqlParserTest, ReportsErrorsWithTheirPosition) {
  const ErrorCase cases[] = {
      {"", "sql: 1:1: expected 'select' at the start of the query, found the end of the query"},
      {"update t set a = 1",
       "sql: 1:1: expected 'select' at the start of the query, found 'update'"},
      {"select",
       "sql: 1:7: expected an expression or '*' after 'select', found the end of the query"},
      {"select * where",
       "sql: 1:15: expected an expression after 'where', found the end of the query"},
      {"select * from t/# where ",
       "sql: 1:25: expected an expression after 'where', found the end of the query"},
      {"select a, from t", "sql: 1:11: expected an expression or '*' after ',', found 'from'"},
      {"select a +", "sql: 1:11: expected an expression after '+', found the end of the query"},
      {"select -", "sql: 1:9: expected an expression after '-', found the end of the query"},
      {"select a where b = 'x", "sql: 1:20: unterminated string"},
      {"select `a", "sql: 1:8: unterminated quoted name"},
      {"select ``", "sql: 1:8: empty quoted name"},
      {"select a # b", "sql: 1:10: unexpected character '#'"},
      {"select a where b = 'é' and c ~ 1", "sql: 1:30: unexpected character '~'"},
      {"select (a + 1 from t", "sql: 1:15: expected ')' to close the '(' at 1:8, found 'from'"},
      {"select a[x]",
       "sql: 1:10: expected an array index (an integer from 0) after '[', found 'x'"},
      {"select a[1.5]",
       "sql: 1:10: expected an array index (an integer from 0) after '[', found '1.5'"},
      {"select a[1", "sql: 1:11: expected ']' after the array index, found the end of the query"},
      {"select a.", "sql: 1:10: expected a field name after '.', found the end of the query"},
      {"select a.1", "sql: 1:10: expected a field name after '.', found '1'"},
      {"select a as", "sql: 1:12: expected a name after 'as', found the end of the query"},
      {"select a as 1", "sql: 1:13: expected a name after 'as', found '1'"},
      {"select foo(1)", "sql: 1:8: unknown function 'foo'"},
      {"select abs(1, 2)", "sql: 1:8: function 'abs' takes 1 argument, got 2"},
      {"select qos(1)", "sql: 1:8: function 'qos' takes 0 arguments, got 1"},
      {"select x, substring('a')", "sql: 1:11: function 'substring' takes 2 to 3 arguments, got 1"},
      {"select concat()", "sql: 1:8: function 'concat' takes at least 1 argument, got 0"},
      {"select upper(1,)", "sql: 1:16: expected an expression after ',', found ')'"},
      {"select upper(1 2)",
       "sql: 1:16: expected ',' or ')' to close the arguments opened at 1:13, found '2'"},
      {"select qos() qos",
       "sql: 1:14: expected ',', 'from', 'where' or the end of the query, found 'qos'"},
      {"select * as x",
       "sql: 1:10: expected ',', 'from', 'where' or the end of the query, found 'as'"},
      {"select * from", "sql: 1:14: expected a source (anything, it is ignored) after 'from'"},
      {"select * from where a = 1",
       "sql: 1:15: expected a source (anything, it is ignored) after 'from'"},
      {"select * from 't", "sql: 1:15: unterminated string"},
      {"select * where a is 1", "sql: 1:21: expected 'null' after 'is', found '1'"},
      {"select * where a is not 1", "sql: 1:25: expected 'null' after 'is not', found '1'"},
      {"select * where a not 1",
       "sql: 1:22: expected 'in', 'like' or 'between' after 'not', found '1'"},
      {"select * where not",
       "sql: 1:19: expected an expression after 'not', found the end of the query"},
      {"select * where a in 1", "sql: 1:21: expected '(' after 'in', found '1'"},
      {"select * where a in ()", "sql: 1:22: expected an expression after '(', found ')'"},
      {"select * where a in (1, 2",
       "sql: 1:26: expected ',' or ')' to close the list opened at 1:21, found the end of the "
       "query"},
      {"select * where a like",
       "sql: 1:22: expected an expression after 'like', found the end of the query"},
      {"select * where a between 1 or 2",
       "sql: 1:28: expected 'and' between the bounds of 'between', found 'or'"},
      {"select * where a between 1 and",
       "sql: 1:31: expected an expression after 'and', found the end of the query"},
      {"select * where a = 1 b",
       "sql: 1:22: expected an operator or the end of the query after the condition, found 'b'"},
      {"select * where a = 1 or",
       "sql: 1:24: expected an expression after 'or', found the end of the query"},
      {"select * where a = 1; x",
       "sql: 1:23: expected an operator or the end of the query after the condition, found 'x'"},
      {"select * where a = 'x' 'y'",
       "sql: 1:24: expected an operator or the end of the query after the condition, found the "
       "string 'y'"},
      {"select 1e", "sql: 1:8: invalid number '1e': expected digits in the exponent"},
      {"select 1e+x", "sql: 1:8: invalid number '1e+': expected digits in the exponent"},
      {"select 12abc", "sql: 1:8: invalid number '12abc'"},
      {"select 'a\\q'", "sql: 1:10: unknown escape '\\q'"},
      {"select select", "sql: 1:8: expected an expression or '*' after 'select', found 'select'"},
      {"select a,\n  b +\nfrom t", "sql: 3:1: expected an expression after '+', found 'from'"},
      {"select 'é' +", "sql: 1:13: expected an expression after '+', found the end of the query"},
  };
  for (const auto& c : cases) EXPECT_EQ(error_of(c.query), c.error) << c.query;
}

TEST(SqlParserTest, ErrorCarriesLineColumnAndOffset) {
  try {
    Query::parse("select a,\n  'é' +");
    FAIL() << "parsed";
  } catch (const SqlError& e) {
    EXPECT_EQ(e.line(), 2u);
    EXPECT_EQ(e.column(), 8u);
    EXPECT_EQ(e.offset(), 18u);  // 'é' is two bytes
    EXPECT_EQ(e.message(), "expected an expression after '+', found the end of the query");
  }
}

// `n` copies of `s`, joined by `separator`.
std::string repeat(const std::string& s, std::size_t n, const std::string& separator = "") {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += (i ? separator : "") + s;
  return out;
}

const std::string kTooDeep =
    "expression too deep (more than 256 levels of operators, parentheses and function calls)";

// Parsing, evaluating and destroying an expression recurse once per level: without a bound, a
// few kilobytes of '(' or of 'a+a+...' overflowed the stack (found while fuzzing).
TEST(SqlParserTest, RefusesExpressionsDeeperThanTheLimit) {
  // 255 parentheses, NOTs or signs inside a select item: 256 levels, accepted.
  EXPECT_EQ(error_of("select " + repeat("(", 255) + "1" + repeat(")", 255)), "");
  EXPECT_EQ(error_of("select * where " + repeat("not ", 255) + "a"), "");
  EXPECT_EQ(error_of("select " + repeat("- ", 255) + "a"), "");
  EXPECT_EQ(error_of("select " + repeat("abs(", 255) + "1" + repeat(")", 255)), "");
  // One more is refused where it starts.
  EXPECT_EQ(error_of("select " + repeat("(", 256) + "1" + repeat(")", 256)),
            "sql: 1:264: " + kTooDeep);
  EXPECT_EQ(error_of("select * where " + repeat("not ", 256) + "a"),
            "sql: 1:" + std::to_string(16 + 255 * 4) + ": " + kTooDeep);
  EXPECT_EQ(error_of("select " + repeat("- ", 256) + "a"),
            "sql: 1:" + std::to_string(8 + 255 * 2) + ": " + kTooDeep);
  // Chains of operators build trees as high as they are long: 255 operators are 256 levels.
  EXPECT_EQ(error_of("select " + repeat("a", 256, "+")), "");
  EXPECT_EQ(error_of("select " + repeat("a", 257, "+")),
            "sql: 1:" + std::to_string(8 + 256 * 2 - 1) + ": " + kTooDeep);
  EXPECT_EQ(error_of("select * where " + repeat("a = 1", 255, " or ")), "");  // 2 + 254 levels
  EXPECT_THAT(error_of("select * where " + repeat("a = 1", 256, " or ")), HasSubstr(kTooDeep));
  EXPECT_THAT(error_of("select a in (" + repeat("(", 255) + "1" + repeat(")", 255) + ")"),
              HasSubstr(kTooDeep));
  // Far beyond: refused, not a crash.
  EXPECT_THAT(error_of("select " + repeat("(", 100000)), HasSubstr(kTooDeep));
  EXPECT_THAT(error_of("select " + repeat("a", 100000, "*")), HasSubstr(kTooDeep));
  EXPECT_THAT(error_of("select " + repeat("not ", 100000) + "a"), HasSubstr(kTooDeep));
}

}  // namespace
}  // namespace baetyl::sql
