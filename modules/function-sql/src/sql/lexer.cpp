#include "lexer.h"

#include <array>
#include <cctype>

#include "sql.h"

namespace baetyl::sql {
namespace {

constexpr std::array<std::string_view, 14> kKeywords = {
    "select", "from", "where",   "as", "and",  "or",   "not",
    "in",     "like", "between", "is", "null", "true", "false"};

bool is_name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

bool is_keyword(std::string_view lower_word) {
  for (auto k : kKeywords) {
    if (k == lower_word) return true;
  }
  return false;
}

void fail_at(std::string_view query, std::size_t offset, std::string message) {
  std::size_t line = 1;
  std::size_t column = 1;
  for (std::size_t i = 0; i < offset && i < query.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(query[i]);
    if (c == '\n') {
      ++line;
      column = 1;
    } else if ((c & 0xC0) != 0x80) {  // not a UTF-8 continuation byte
      ++column;
    }
  }
  throw SqlError(std::move(message), offset, line, column);
}

void Lexer::skip_blanks() {
  while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
}

Token Lexer::next() {
  skip_blanks();
  Token t;
  t.offset = pos_;
  if (pos_ >= text_.size()) return t;
  char c = text_[pos_];
  if (is_name_start(c)) {
    std::size_t start = pos_;
    while (pos_ < text_.size() && is_name_char(text_[pos_])) ++pos_;
    std::string_view word = text_.substr(start, pos_ - start);
    std::string low = lower(word);
    if (is_keyword(low)) {
      t.kind = TokenKind::kKeyword;
      t.text = std::move(low);
    } else {
      t.kind = TokenKind::kIdentifier;
      t.text = std::string(word);
    }
    t.length = pos_ - start;
    return t;
  }
  // `.5` is a number, but in `a.1` the dot belongs to a path.
  bool after_operand = pos_ > 0 && (is_name_char(text_[pos_ - 1]) || text_[pos_ - 1] == ')' ||
                                    text_[pos_ - 1] == ']' || text_[pos_ - 1] == '`');
  if (is_digit(c) ||
      (c == '.' && !after_operand && pos_ + 1 < text_.size() && is_digit(text_[pos_ + 1]))) {
    return number();
  }
  if (c == '\'' || c == '"') return quoted(c, TokenKind::kString);
  if (c == '`') {
    Token id = quoted('`', TokenKind::kIdentifier);
    if (id.text.empty()) fail_at(text_, id.offset, "empty quoted name");
    id.quoted = true;
    return id;
  }
  static constexpr std::array<std::string_view, 6> kTwoChar = {"!=", "<>", "<=", ">=", "||", "=="};
  for (auto op : kTwoChar) {
    if (text_.substr(pos_, 2) == op) {
      t.kind = TokenKind::kSymbol;
      t.text = op == "==" ? "=" : std::string(op);
      t.length = 2;
      pos_ += 2;
      return t;
    }
  }
  if (std::string_view("(),.[]*+-/%=<>;").find(c) != std::string_view::npos) {
    t.kind = TokenKind::kSymbol;
    t.text = std::string(1, c);
    t.length = 1;
    ++pos_;
    return t;
  }
  std::size_t end = pos_ + 1;
  while (end < text_.size() && (static_cast<unsigned char>(text_[end]) & 0xC0) == 0x80) ++end;
  fail_at(text_, pos_,
          "unexpected character '" + std::string(text_.substr(pos_, end - pos_)) + "'");
}

Token Lexer::number() {
  Token t;
  t.kind = TokenKind::kNumber;
  t.offset = pos_;
  while (pos_ < text_.size() && is_digit(text_[pos_])) ++pos_;
  if (pos_ < text_.size() && text_[pos_] == '.') {
    ++pos_;
    while (pos_ < text_.size() && is_digit(text_[pos_])) ++pos_;
  }
  if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
    std::size_t e = pos_ + 1;
    if (e < text_.size() && (text_[e] == '+' || text_[e] == '-')) ++e;
    if (e >= text_.size() || !is_digit(text_[e])) {
      fail_at(text_, t.offset,
              "invalid number '" + std::string(text_.substr(t.offset, e - t.offset)) +
                  "': expected digits in the exponent");
    }
    pos_ = e;
    while (pos_ < text_.size() && is_digit(text_[pos_])) ++pos_;
  }
  if (pos_ < text_.size() && is_name_char(text_[pos_])) {
    std::size_t end = pos_;
    while (end < text_.size() && is_name_char(text_[end])) ++end;
    fail_at(text_, t.offset,
            "invalid number '" + std::string(text_.substr(t.offset, end - t.offset)) + "'");
  }
  t.text = std::string(text_.substr(t.offset, pos_ - t.offset));
  t.length = pos_ - t.offset;
  return t;
}

// Quotes inside are doubled ('it''s') or escaped with a backslash (\' \" \\ \n \t \r).
Token Lexer::quoted(char quote, TokenKind kind) {
  Token t;
  t.kind = kind;
  t.offset = pos_;
  ++pos_;
  while (true) {
    if (pos_ >= text_.size()) {
      fail_at(text_, t.offset,
              kind == TokenKind::kString ? "unterminated string" : "unterminated quoted name");
    }
    char c = text_[pos_];
    if (c == quote) {
      if (pos_ + 1 < text_.size() && text_[pos_ + 1] == quote) {
        t.text += quote;
        pos_ += 2;
        continue;
      }
      ++pos_;
      break;
    }
    if (c == '\\' && pos_ + 1 < text_.size()) {
      char e = text_[pos_ + 1];
      switch (e) {
        case '\\':
        case '\'':
        case '"':
        case '`':
          t.text += e;
          break;
        case 'n':
          t.text += '\n';
          break;
        case 't':
          t.text += '\t';
          break;
        case 'r':
          t.text += '\r';
          break;
        default:
          fail_at(text_, pos_, std::string("unknown escape '\\") + e + "'");
      }
      pos_ += 2;
      continue;
    }
    t.text += c;
    ++pos_;
  }
  t.length = pos_ - t.offset;
  return t;
}

bool Lexer::skip_source() {
  skip_blanks();
  std::size_t start = pos_;
  while (pos_ < text_.size()) {
    char c = text_[pos_];
    if (c == '\'' || c == '"' || c == '`') {
      quoted(c, TokenKind::kString);
      continue;
    }
    if (c == ';') break;
    if (is_name_start(c)) {
      std::size_t word_start = pos_;
      while (pos_ < text_.size() && is_name_char(text_[pos_])) ++pos_;
      bool at_boundary = word_start == 0 || !is_name_char(text_[word_start - 1]);
      if (at_boundary && lower(text_.substr(word_start, pos_ - word_start)) == "where") {
        pos_ = word_start;
        break;
      }
      continue;
    }
    ++pos_;
  }
  bool any = pos_ > start;
  return any;
}

}  // namespace baetyl::sql
