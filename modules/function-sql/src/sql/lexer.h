#pragma once
// Internal: splits a query into tokens on demand.
#include <cstddef>
#include <string>
#include <string_view>

namespace baetyl::sql {

enum class TokenKind {
  kEnd,
  kIdentifier,  // a name; `text` holds it as written (backquotes removed)
  kKeyword,     // a reserved word; `text` holds it in lower case
  kNumber,      // `text` as written
  kString,      // `text` holds the value, quotes and escapes resolved
  kSymbol,      // ( ) , . [ ] * + - / % = != <> < <= > >= || ;
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  std::string text;
  std::size_t offset = 0;  // bytes from the start of the query
  std::size_t length = 0;  // bytes of source text
  bool quoted = false;     // an identifier written in backquotes
};

// Throws SqlError at `offset` of `query`, with its line and column.
[[noreturn]] void fail_at(std::string_view query, std::size_t offset, std::string message);

class Lexer {
 public:
  explicit Lexer(std::string_view text) : text_(text) {}

  Token next();
  // Skips the raw text of a FROM source: everything up to the keyword WHERE or a final ';' (or
  // the end), quoted parts included. Returns false when there was nothing but blanks.
  bool skip_source();
  std::string_view text() const { return text_; }
  std::size_t position() const { return pos_; }

 private:
  void skip_blanks();
  Token quoted(char quote, TokenKind kind);
  Token number();

  std::string_view text_;
  std::size_t pos_ = 0;
};

bool is_keyword(std::string_view lower);

}  // namespace baetyl::sql
