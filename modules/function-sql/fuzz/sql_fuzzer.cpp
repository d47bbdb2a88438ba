// libFuzzer target: the SQL dialect of baetyl-function-sql. The input is a query, optionally
// followed by a NUL byte and a JSON payload.
//
// Parsing either gives a query or throws SqlError with a position inside the text. A query is
// evaluated over a fixed payload with every kind of value, and over the fuzzed payload when there
// is one: run() either throws PayloadError or returns "" (WHERE rejected the message) or the JSON
// text of an object, as the runtime replies.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_support.h"
#include "sql/sql.h"

namespace baetyl::sql {
namespace {

const Message kMessage{.qos = 1,
                       .topic = "site/line-4/temperature",
                       .timestamp = 1795635033,
                       .function_name = "filter",
                       .invoke_id = "6f1c3a52"};

const Json& sample_payload() {
  static const Json payload = Json::parse(R"({
    "id": 7, "name": "Sensor-A", "temp": 21.5, "neg": -3, "on": true, "off": false,
    "nothing": null, "empty": "", "pad": "  x y  ", "uni": "h\u00e9llo \ud83d\ude00",
    "big": 18446744073709551557, "min": -9223372036854775808, "max": 9223372036854775807,
    "tiny": 5e-324, "huge": 1.7976931348623157e308,
    "a": {"b": {"c": 42}, "list": [10, {"deep": "yes"}, [1, 2]]},
    "tags": ["x", "y"], "obj": {"k": 1}, "odd-key": {"x y": "spaced"}
  })");
  return payload;
}

std::optional<Query> parse(std::string_view text) {
  try {
    return Query::parse(text);
  } catch (const SqlError& e) {
    FUZZ_CHECK(e.offset() <= text.size(), e.what());
    FUZZ_CHECK(e.line() >= 1 && e.column() >= 1, e.what());
    FUZZ_CHECK(std::string_view(e.what()).starts_with("sql: "), e.what());
    FUZZ_CHECK(!e.message().empty(), e.what());
    return std::nullopt;
  }
}

void check_run(const Query& query, std::string_view payload) {
  std::string out;
  try {
    out = query.run(payload, kMessage);
  } catch (const PayloadError& e) {
    FUZZ_CHECK(std::string_view(e.what()).starts_with("payload is "), e.what());
    return;
  }
  if (out.empty()) return;
  // The reply is published as it is: it must be the JSON text of an object.
  const Json reply = Json::parse(out, nullptr, false);
  FUZZ_CHECK(!reply.is_discarded() && reply.is_object(), out);
}

}  // namespace
}  // namespace baetyl::sql

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace baetyl::sql;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t nul = input.find('\0');
  const std::string_view text = input.substr(0, nul);

  const std::optional<Query> query = parse(text);
  if (!query) return 0;
  FUZZ_CHECK(query->text() == text, query->text());

  const std::optional<Json> result = query->evaluate(sample_payload(), kMessage);
  if (result) {
    FUZZ_CHECK(result->is_object(), result->dump());
    (void)result->dump(-1, ' ', false, Json::error_handler_t::replace);
  }
  if (nul != std::string_view::npos) check_run(*query, input.substr(nul + 1));
  return 0;
}
