// The evaluator: operators, functions, NULL handling, paths, arrays and `*`.
#include <cmath>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "sql/sql.h"

namespace baetyl::sql {
namespace {

const Message kMessage{.qos = 1,
                       .topic = "site/line-4/temperature",
                       .timestamp = 1795635033,
                       .function_name = "filter",
                       .invoke_id = "6f1c3a52"};

const char* kPayload = R"({
  "id": 7, "name": "Sensor-A", "temp": 21.5, "neg": -3, "on": true, "off": false, "nothing": null,
  "empty": "", "pad": "  x y  ", "uni": "héllo", "big": 18446744073709551557,
  "a": {"b": {"c": 42}, "list": [10, {"deep": "yes"}, [1, 2]]},
  "tags": ["x", "y"], "obj": {"k": 1}, "odd-key": {"x y": "spaced"}
})";

// The selected object, or nullopt when WHERE rejected the payload.
std::optional<Json> select(const std::string& query, const char* payload = kPayload) {
  return Query::parse(query).evaluate(Json::parse(payload), kMessage);
}

// The value of the single expression `expr` (selected as "v").
Json value(const std::string& expr, const char* payload = kPayload) {
  auto result = select("select " + expr + " as v", payload);
  EXPECT_TRUE(result.has_value());
  return result ? (*result)["v"] : Json("<filtered>");
}

bool where(const std::string& condition, const char* payload = kPayload) {
  return select("select * where " + condition, payload).has_value();
}

TEST(SqlEvalTest, Walkthrough) {
  auto query = Query::parse("select qos() as qos, topic() as topic, * where id < 10");
  Message m{.qos = 1, .topic = "t"};
  EXPECT_EQ(query.run(R"({"id":1})", m), R"({"qos":1,"topic":"t","id":1})");
  EXPECT_EQ(query.run(R"({"id":20})", m), "");
  EXPECT_EQ(query.run(R"({"id":"1"})", m), "");  // a string is never less than a number
  EXPECT_EQ(query.run(R"({})", m), "");          // missing id is null: the comparison is false
}

TEST(SqlEvalTest, Literals) {
  EXPECT_EQ(value("1"), Json(1));
  EXPECT_EQ(value("-2"), Json(-2));
  EXPECT_EQ(value("+3"), Json(3));
  EXPECT_EQ(value("1.5"), Json(1.5));
  EXPECT_EQ(value(".5"), Json(0.5));
  EXPECT_EQ(value("1e3"), Json(1000.0));
  EXPECT_EQ(value("2.5E-1"), Json(0.25));
  EXPECT_EQ(value("9223372036854775807"), Json(9223372036854775807LL));
  EXPECT_EQ(value("9223372036854775808"), Json(9223372036854775808.0));
  EXPECT_EQ(value("'single'"), Json("single"));
  EXPECT_EQ(value("\"double\""), Json("double"));
  EXPECT_EQ(value("'it''s'"), Json("it's"));
  EXPECT_EQ(value("'a\\tb\\nc\\\\'"), Json("a\tb\nc\\"));
  EXPECT_EQ(value("true"), Json(true));
  EXPECT_EQ(value("FALSE"), Json(false));
  EXPECT_EQ(value("null"), Json());
}

TEST(SqlEvalTest, FieldPaths) {
  EXPECT_EQ(value("id"), Json(7));
  EXPECT_EQ(value("a.b.c"), Json(42));
  EXPECT_EQ(value("a.b"), Json::parse(R"({"c":42})"));
  EXPECT_EQ(value("a.list[0]"), Json(10));
  EXPECT_EQ(value("a.list[1].deep"), Json("yes"));
  EXPECT_EQ(value("a.list[2][1]"), Json(2));
  EXPECT_EQ(value("tags[1]"), Json("y"));
  EXPECT_EQ(value("`odd-key`.`x y`"), Json("spaced"));
  // Missing members, indexes out of range and steps into scalars are null.
  EXPECT_EQ(value("missing"), Json());
  EXPECT_EQ(value("a.b.missing"), Json());
  EXPECT_EQ(value("a.list[3]"), Json());
  EXPECT_EQ(value("id.x"), Json());
  EXPECT_EQ(value("id[0]"), Json());
  EXPECT_EQ(value("a[0]"), Json());
  EXPECT_EQ(value("tags.x"), Json());
  // Copied exactly, even a number beyond int64.
  EXPECT_EQ(select("select big")->dump(), R"({"big":18446744073709551557})");
  // In an expression it is a double.
  EXPECT_EQ(value("big + 0"), Json(18446744073709551557.0));
}

TEST(SqlEvalTest, StarCopiesEveryKeyAndLaterItemsOverwrite) {
  const char* p = R"({"b":1,"a":{"x":[1,2]},"qos":9})";
  EXPECT_EQ(select("select *", p)->dump(), R"({"b":1,"a":{"x":[1,2]},"qos":9})");
  EXPECT_EQ(select("select qos() as qos, *", p)->dump(), R"({"qos":9,"b":1,"a":{"x":[1,2]}})");
  EXPECT_EQ(select("select *, qos() as qos", p)->dump(), R"({"b":1,"a":{"x":[1,2]},"qos":1})");
  EXPECT_EQ(select("select *, *", p)->dump(), R"({"b":1,"a":{"x":[1,2]},"qos":9})");
  EXPECT_EQ(select("select b as c, *, b + 1 as b", p)->dump(),
            R"({"c":1,"b":2,"a":{"x":[1,2]},"qos":9})");
  EXPECT_EQ(select("select *", "{}")->dump(), "{}");
  // A missing field is selected as null.
  EXPECT_EQ(select("select nope, b", p)->dump(), R"({"nope":null,"b":1})");
  // On a payload that is not an object, fields are null and `*` copies nothing.
  EXPECT_EQ(select("select *, id", "[1,2]")->dump(), R"({"id":null})");
}

TEST(SqlEvalTest, Arithmetic) {
  EXPECT_EQ(value("1 + 2"), Json(3));
  EXPECT_EQ(value("id - 10"), Json(-3));
  EXPECT_EQ(value("id * 3"), Json(21));
  EXPECT_EQ(value("id / 7"), Json(1));
  EXPECT_EQ(value("id / 2"), Json(3.5));  // exact division stays an integer, otherwise a double
  EXPECT_EQ(value("id % 4"), Json(3));
  EXPECT_EQ(value("neg % 2"), Json(-1));
  EXPECT_EQ(value("temp + 1"), Json(22.5));
  EXPECT_EQ(value("temp * 2"), Json(43.0));
  EXPECT_EQ(value("temp % 2"), Json(1.5));
  EXPECT_EQ(value("temp / 0.5"), Json(43.0));
  EXPECT_EQ(value("1 + 2 * 3 - 4 / 2"), Json(5));
  EXPECT_EQ(value("(1 + 2) * 3"), Json(9));
  EXPECT_EQ(value("10 - 4 - 3"), Json(3));
  EXPECT_EQ(value("-id"), Json(-7));
  EXPECT_EQ(value("-temp"), Json(-21.5));
  EXPECT_EQ(value("- -id"), Json(7));
  EXPECT_EQ(value("9223372036854775807 + 1"), Json(9223372036854775808.0));  // overflow: double
  EXPECT_EQ(value("-9223372036854775807 - 1 - 1"), Json(-9223372036854775809.0));
  // Division by zero, and arithmetic on anything but numbers, is null.
  EXPECT_EQ(value("id / 0"), Json());
  EXPECT_EQ(value("id % 0"), Json());
  EXPECT_EQ(value("temp / 0"), Json());
  EXPECT_EQ(value("name + 1"), Json());
  EXPECT_EQ(value("on + 1"), Json());
  EXPECT_EQ(value("missing + 1"), Json());
  EXPECT_EQ(value("-name"), Json());
  // || joins text; numbers and booleans as JSON.
  EXPECT_EQ(value("name || '-' || id || on"), Json("Sensor-A-7true"));
  EXPECT_EQ(value("name || missing"), Json());
}

TEST(SqlEvalTest, Comparisons) {
  EXPECT_TRUE(where("id = 7"));
  EXPECT_TRUE(where("id == 7"));
  EXPECT_TRUE(where("id = 7.0"));
  EXPECT_FALSE(where("id = 8"));
  EXPECT_TRUE(where("id != 8"));
  EXPECT_TRUE(where("id <> 8"));
  EXPECT_FALSE(where("id <> 7"));
  EXPECT_TRUE(where("id < 7.5"));
  EXPECT_FALSE(where("id < 7"));
  EXPECT_TRUE(where("id <= 7"));
  EXPECT_TRUE(where("temp > 21"));
  EXPECT_FALSE(where("temp > 21.5"));
  EXPECT_TRUE(where("temp >= 21.5"));
  EXPECT_TRUE(where("name = 'Sensor-A'"));
  EXPECT_TRUE(where("name < 'Sensor-B'"));
  EXPECT_TRUE(where("name > 'S'"));
  EXPECT_TRUE(where("on = true"));
  EXPECT_TRUE(where("off != true"));
  EXPECT_FALSE(where("on > off"));  // booleans are only equal or not
  EXPECT_TRUE(where("a.b = a.b"));  // objects and arrays compare as JSON
  EXPECT_TRUE(where("tags != a.list"));
  // Different types are unequal and unordered.
  EXPECT_FALSE(where("id = '7'"));
  EXPECT_TRUE(where("id != '7'"));
  EXPECT_FALSE(where("id < '8'"));
  EXPECT_FALSE(where("id >= '1'"));
}

TEST(SqlEvalTest, NullHandling) {
  // Any comparison with null (a null value or a missing field) is false, != included.
  for (const char* op : {"=", "!=", "<>", "<", "<=", ">", ">="}) {
    EXPECT_FALSE(where(std::string("nothing ") + op + " 1")) << op;
    EXPECT_FALSE(where(std::string("missing ") + op + " 1")) << op;
    EXPECT_FALSE(where(std::string("null ") + op + " null")) << op;
  }
  EXPECT_TRUE(where("nothing is null"));
  EXPECT_TRUE(where("missing is null"));
  EXPECT_TRUE(where("a.b.x is null"));
  EXPECT_FALSE(where("id is null"));
  EXPECT_TRUE(where("id is not null"));
  EXPECT_FALSE(where("nothing is not null"));
  EXPECT_TRUE(where("empty is not null"));
  // NOT negates the truth value: NOT (null = 1) is true.
  EXPECT_TRUE(where("not missing = 1"));
  // ... but the negated predicates are false when their operand is null.
  EXPECT_FALSE(where("missing not in (1, 2)"));
  EXPECT_FALSE(where("missing not like '%'"));
  EXPECT_FALSE(where("missing not between 1 and 2"));
  EXPECT_FALSE(where("id not between missing and 10"));
}

TEST(SqlEvalTest, Logic) {
  EXPECT_TRUE(where("id = 7 and name = 'Sensor-A'"));
  EXPECT_FALSE(where("id = 7 and name = 'x'"));
  EXPECT_TRUE(where("id = 1 or name = 'Sensor-A'"));
  EXPECT_FALSE(where("id = 1 or name = 'x'"));
  EXPECT_TRUE(where("not id = 1"));
  EXPECT_FALSE(where("not (id = 7)"));
  EXPECT_TRUE(where("NOT NOT id = 7"));
  // AND binds tighter than OR; NOT tighter than AND.
  EXPECT_TRUE(where("id = 1 and id = 2 or id = 7"));
  EXPECT_FALSE(where("id = 1 and (id = 2 or id = 7)"));
  EXPECT_TRUE(where("not id = 1 and id = 7"));
  EXPECT_EQ(value("id = 7 and on"), Json(true));
  EXPECT_EQ(value("id = 7 or missing"), Json(true));
  // Truth of plain values: null, false, 0, '' and empty arrays/objects are false.
  EXPECT_TRUE(where("on"));
  EXPECT_FALSE(where("off"));
  EXPECT_FALSE(where("nothing"));
  EXPECT_FALSE(where("missing"));
  EXPECT_TRUE(where("id"));
  EXPECT_FALSE(where("id - 7"));
  EXPECT_TRUE(where("name"));
  EXPECT_FALSE(where("empty"));
  EXPECT_TRUE(where("tags"));
  EXPECT_FALSE(where("x", R"({"x":[]})"));
  EXPECT_FALSE(where("x", R"({"x":{}})"));
}

TEST(SqlEvalTest, In) {
  EXPECT_TRUE(where("id in (1, 7, 9)"));
  EXPECT_FALSE(where("id in (1, 2)"));
  EXPECT_TRUE(where("id in (7.0)"));
  EXPECT_TRUE(where("name in ('x', 'Sensor-A')"));
  EXPECT_FALSE(where("id in ('7')"));
  EXPECT_TRUE(where("id in (1, id)"));
  EXPECT_TRUE(where("id in (2 + 5)"));
  EXPECT_TRUE(where("id not in (1, 2)"));
  EXPECT_FALSE(where("id not in (7)"));
  EXPECT_FALSE(where("nothing in (null)"));
  EXPECT_TRUE(where("id not in (null, 1)"));
  EXPECT_TRUE(where("tags in (a.list, tags)"));
}

TEST(SqlEvalTest, Like) {
  EXPECT_TRUE(where("name like 'Sensor-A'"));
  EXPECT_FALSE(where("name like 'sensor-a'"));  // case-sensitive
  EXPECT_TRUE(where("name like 'Sensor%'"));
  EXPECT_TRUE(where("name like '%-A'"));
  EXPECT_TRUE(where("name like '%nso%'"));
  EXPECT_TRUE(where("name like '%'"));
  EXPECT_TRUE(where("name like 'S_nsor-_'"));
  EXPECT_FALSE(where("name like 'S_nsor-'"));
  EXPECT_TRUE(where("name like '%%A'"));
  EXPECT_TRUE(where("name like 'S%o%-%A'"));
  EXPECT_FALSE(where("name like 'S%x%'"));
  EXPECT_TRUE(where("uni like 'h_llo'"));  // _ is one character, even several bytes
  EXPECT_TRUE(where("uni like '%é%'"));
  EXPECT_TRUE(where("empty like ''"));
  EXPECT_TRUE(where("empty like '%'"));
  EXPECT_FALSE(where("empty like '_'"));
  EXPECT_TRUE(where("name not like 'x%'"));
  EXPECT_FALSE(where("name not like 'S%'"));
  EXPECT_FALSE(where("id like '7'"));  // only strings match
  EXPECT_FALSE(where("id not like 'x'"));
  EXPECT_TRUE(where("name like concat('Sen', '%')"));
}

TEST(SqlEvalTest, Between) {
  EXPECT_TRUE(where("id between 1 and 10"));
  EXPECT_TRUE(where("id between 7 and 7"));
  EXPECT_FALSE(where("id between 8 and 10"));
  EXPECT_TRUE(where("temp between 21 and 22"));
  EXPECT_TRUE(where("name between 'A' and 'T'"));
  EXPECT_FALSE(where("name between 1 and 10"));
  EXPECT_TRUE(where("id not between 8 and 10"));
  EXPECT_FALSE(where("id not between 1 and 10"));
  EXPECT_TRUE(where("id between 1 and 10 and name = 'Sensor-A'"));
  EXPECT_TRUE(where("id + 1 between 2 * 4 and 9"));
}

TEST(SqlEvalTest, MessageFunctions) {
  EXPECT_EQ(value("qos()"), Json(1));
  EXPECT_EQ(value("topic()"), Json("site/line-4/temperature"));
  EXPECT_EQ(value("topic(1)"), Json("site"));
  EXPECT_EQ(value("topic(3)"), Json("temperature"));
  EXPECT_EQ(value("topic(4)"), Json());
  EXPECT_EQ(value("topic(0)"), Json());
  EXPECT_EQ(value("timestamp()"), Json(1795635033));
  EXPECT_EQ(value("function_name()"), Json("filter"));
  EXPECT_EQ(value("invoke_id()"), Json("6f1c3a52"));
  EXPECT_EQ(value("QOS()"), Json(1));  // function names are case-insensitive
  EXPECT_TRUE(where("topic() like 'site/%' and qos() = 1"));
}

TEST(SqlEvalTest, StringFunctions) {
  EXPECT_EQ(value("lower(name)"), Json("sensor-a"));
  EXPECT_EQ(value("upper(name)"), Json("SENSOR-A"));
  EXPECT_EQ(value("length(name)"), Json(8));
  EXPECT_EQ(value("length(uni)"), Json(5));
  EXPECT_EQ(value("length(tags)"), Json(2));
  EXPECT_EQ(value("length(obj)"), Json(1));
  EXPECT_EQ(value("length(id)"), Json());
  EXPECT_EQ(value("concat(name, '/', id, '/', temp, on, missing)"), Json("Sensor-A/7/21.5true"));
  EXPECT_EQ(value("concat(tags)"), Json(R"(["x","y"])"));
  EXPECT_EQ(value("substring(name, 1, 6)"), Json("Sensor"));
  EXPECT_EQ(value("substring(name, 8)"), Json("A"));
  EXPECT_EQ(value("substr(uni, 2, 3)"), Json("éll"));
  EXPECT_EQ(value("substring(name, 0, 2)"), Json("Se"));
  EXPECT_EQ(value("substring(name, 20)"), Json(""));
  EXPECT_EQ(value("substring(name, 1, -1)"), Json());
  EXPECT_EQ(value("substring(id, 1)"), Json());
  EXPECT_EQ(value("trim(pad)"), Json("x y"));
  EXPECT_EQ(value("ltrim(pad)"), Json("x y  "));
  EXPECT_EQ(value("rtrim(pad)"), Json("  x y"));
  EXPECT_EQ(value("replace(name, 'Sensor', 'Probe')"), Json("Probe-A"));
  EXPECT_EQ(value("replace('aaa', 'a', 'bb')"), Json("bbbbbb"));
  EXPECT_EQ(value("replace('abc', '', 'x')"), Json("abc"));
  EXPECT_EQ(value("startswith(name, 'Sen')"), Json(true));
  EXPECT_EQ(value("endswith(name, 'B')"), Json(false));
  EXPECT_EQ(value("tostring(id)"), Json("7"));
  EXPECT_EQ(value("tostring(a.b)"), Json(R"({"c":42})"));
  EXPECT_EQ(value("tonumber('42')"), Json(42));
  EXPECT_EQ(value("tonumber(' 2.5 ')"), Json(2.5));
  EXPECT_EQ(value("tonumber('x')"), Json());
  EXPECT_EQ(value("tonumber(temp)"), Json(21.5));
  EXPECT_EQ(value("coalesce(missing, nothing, name)"), Json("Sensor-A"));
  EXPECT_EQ(value("coalesce(missing)"), Json());
  for (const char* f : {"lower", "upper", "length", "trim", "ltrim", "rtrim", "abs", "floor",
                        "ceil", "sqrt", "round", "tostring", "tonumber"}) {
    EXPECT_EQ(value(std::string(f) + "(missing)"), Json()) << f;
  }
}

TEST(SqlEvalTest, MathFunctions) {
  EXPECT_EQ(value("abs(neg)"), Json(3));
  EXPECT_EQ(value("abs(-2.5)"), Json(2.5));
  EXPECT_EQ(value("abs(name)"), Json());
  EXPECT_EQ(value("round(temp)"), Json(22));
  EXPECT_EQ(value("round(-2.5)"), Json(-3));
  EXPECT_EQ(value("round(id)"), Json(7));
  EXPECT_EQ(value("round(3.14159, 2)"), Json(3.14));
  EXPECT_EQ(value("round(1234, -2)"), Json(1200.0));
  EXPECT_EQ(value("floor(temp)"), Json(21));
  EXPECT_EQ(value("floor(-0.5)"), Json(-1));
  EXPECT_EQ(value("ceil(temp)"), Json(22));
  EXPECT_EQ(value("ceil(id)"), Json(7));
  EXPECT_EQ(value("sqrt(16)"), Json(4.0));
  EXPECT_EQ(value("sqrt(-1)"), Json());
  EXPECT_EQ(value("power(2, 10)"), Json(1024));
  EXPECT_EQ(value("power(2, -1)"), Json(0.5));
  EXPECT_EQ(value("power(2.5, 2)"), Json(6.25));
}

TEST(SqlEvalTest, FromIsIgnored) {
  EXPECT_EQ(select("select id from anything/at/all where id = 7")->dump(), R"({"id":7})");
  EXPECT_FALSE(select("select id from t where id = 8"));
}

TEST(SqlEvalTest, RunChecksThePayload) {
  auto query = Query::parse("select *");
  EXPECT_EQ(query.run(R"({"a":[1,{"b":null}],"c":"é"})", {}), R"({"a":[1,{"b":null}],"c":"é"})");
  try {
    query.run("not json", {});
    FAIL() << "accepted";
  } catch (const PayloadError& e) {
    EXPECT_TRUE(std::string(e.what()).starts_with("payload is not valid JSON: parse error"))
        << e.what();
  }
  try {
    query.run("", {});
    FAIL() << "accepted";
  } catch (const PayloadError& e) {
    EXPECT_TRUE(std::string(e.what()).starts_with("payload is not valid JSON")) << e.what();
  }
  // A number beyond the range of a double is refused as the payload's fault, like a syntax error
  // (found by sql_fuzzer: it escaped as nlohmann's out_of_range).
  for (const char* payload : {R"({"a":1e400})", R"({"a":-4611281e308})", R"({"a":[1,2e999]})"}) {
    try {
      query.run(payload, {});
      FAIL() << "accepted " << payload;
    } catch (const PayloadError& e) {
      EXPECT_TRUE(
          std::string(e.what()).starts_with("payload is not valid JSON: number overflow "
                                            "parsing '"))
          << e.what();
    }
  }
  const std::pair<const char*, const char*> not_objects[] = {{"[1]", "an array"},
                                                             {"1", "a number"},
                                                             {"\"s\"", "a string"},
                                                             {"null", "a null"},
                                                             {"true", "a boolean"}};
  for (auto [payload, kind] : not_objects) {
    try {
      query.run(payload, {});
      FAIL() << payload;
    } catch (const PayloadError& e) {
      EXPECT_EQ(std::string(e.what()), std::string("payload is JSON but not an object (it is ") +
                                           kind + "); the query needs a JSON object");
    }
  }
}

std::string nested(std::size_t depth) {
  return R"({"a":)" + std::string(depth - 1, '[') + std::string(depth - 1, ']') + "}";
}

// Copying, comparing and printing JSON recurse once per level: a payload of '[' nested a few
// ten thousand levels deep overflowed the stack of the runtime (found while fuzzing).
TEST(SqlEvalTest, RunRefusesPayloadsNestedTooDeeply) {
  auto query = Query::parse("select a, * where a = a");
  const std::string deepest = nested(kMaxPayloadDepth);  // the object and 999 arrays
  const std::string a = deepest.substr(5, deepest.size() - 6);
  EXPECT_EQ(query.run(deepest, {}), R"({"a":)" + a + "}");
  const std::string expected =
      "payload is nested too deeply (more than 1000 levels of arrays "
      "and objects)";
  for (std::size_t depth : {kMaxPayloadDepth + 1, std::size_t{100000}}) {
    try {
      query.run(nested(depth), {});
      FAIL() << "accepted a payload " << depth << " levels deep";
    } catch (const PayloadError& e) {
      EXPECT_EQ(e.what(), expected);
    }
  }
  // The limit counts open levels, not all of them.
  std::string wide = R"({"a":[)";
  for (int i = 0; i < 3000; ++i) wide += i ? ",[{}]" : "[{}]";
  EXPECT_NE(query.run(wide + "]}", {}), "");
  // Malformed JSON is still reported as such.
  try {
    query.run(R"({"a":[[[)", {});
    FAIL() << "accepted";
  } catch (const PayloadError& e) {
    EXPECT_TRUE(std::string(e.what()).starts_with("payload is not valid JSON: parse error"))
        << e.what();
  }
}

TEST(SqlEvalTest, TheDeepestQueriesEvaluate) {
  std::string sum = "a";
  for (std::size_t i = 1; i < kMaxQueryDepth; ++i) sum += " + a";
  EXPECT_EQ(value(sum, R"({"a":1})"), Json(static_cast<std::int64_t>(kMaxQueryDepth)));
  std::string parens =
      std::string(kMaxQueryDepth - 1, '(') + "a" + std::string(kMaxQueryDepth - 1, ')');
  EXPECT_EQ(value(parens, R"({"a":1})"), Json(1));
}

}  // namespace
}  // namespace baetyl::sql
