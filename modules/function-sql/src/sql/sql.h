#pragma once
// The SQL dialect of baetyl-function-sql: a query over the JSON payload of one message.
//
//   auto query = sql::Query::parse("select qos() as qos, topic() as topic, * where id < 10");
//   std::string out = query.run(R"({"id":1})", {.qos = 1, .topic = "t"});
//   // out == R"({"qos":1,"topic":"t","id":1})"; "" when WHERE rejects the message
//
// The grammar, NULL semantics and functions are described in modules/function-sql/README.md.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace baetyl::sql {

// Objects keep the order of their keys, so `*` copies the payload's keys in the order they came.
using Json = nlohmann::ordered_json;

// A query that does not parse. what() is "sql: <line>:<column>: <message>" (both 1-based, the
// column counted in characters).
class SqlError : public std::runtime_error {
 public:
  SqlError(std::string message, std::size_t offset, std::size_t line, std::size_t column);
  const std::string& message() const { return message_; }
  std::size_t offset() const { return offset_; }  // in bytes from the start of the query
  std::size_t line() const { return line_; }
  std::size_t column() const { return column_; }

 private:
  std::string message_;
  std::size_t offset_;
  std::size_t line_;
  std::size_t column_;
};

// Parsing, evaluating, copying and printing recurse once per level of nesting, so both are bounded
// well within a thread's stack. An expression nests (parentheses, function calls, NOT, signs) and
// chains operators (`a + b + c` is three levels) at most kMaxQueryDepth levels deep: parse()
// refuses deeper ones. The arrays and objects of a payload nest at most kMaxPayloadDepth levels
// deep: run() refuses deeper ones.
inline constexpr std::size_t kMaxQueryDepth = 256;
inline constexpr std::size_t kMaxPayloadDepth = 1000;

// A payload the query cannot run on: not JSON, JSON nested too deeply, or JSON but not an object.
class PayloadError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What the query's functions can see of the message besides its payload.
struct Message {
  std::uint32_t qos = 0;
  std::string_view topic;
  std::int64_t timestamp = 0;  // unix seconds
  std::string_view function_name;
  std::string_view invoke_id;
};

struct QueryPlan;

class Query {
 public:
  // Throws SqlError naming the position of the first problem.
  static Query parse(std::string_view text);

  Query(Query&&) noexcept;
  Query& operator=(Query&&) noexcept;
  ~Query();

  // The selected object, or nullopt when WHERE rejects the message. `payload` is normally an
  // object; for anything else fields are null and `*` copies nothing.
  std::optional<Json> evaluate(const Json& payload, const Message& message) const;

  // Parses the payload (which must be a JSON object nested at most kMaxPayloadDepth levels deep,
  // else PayloadError), evaluates and returns the result as compact JSON text, or "" when WHERE
  // rejects the message.
  std::string run(std::string_view payload, const Message& message) const;

  const std::string& text() const;

 private:
  explicit Query(std::unique_ptr<QueryPlan> plan);
  std::unique_ptr<QueryPlan> plan_;
};

}  // namespace baetyl::sql
