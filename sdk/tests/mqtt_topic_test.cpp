#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "baetyl/mqtt/topic.h"

namespace baetyl::mqtt {
namespace {

using namespace std::string_literals;
using ::testing::HasSubstr;

// ----------------------------------------------------------------------------------------------
// topic_matches

struct MatchCase {
  std::string_view filter;
  std::string_view topic;
  bool matches;
};

void PrintTo(const MatchCase& c, std::ostream* os) {
  *os << "'" << c.filter << "' " << (c.matches ? "matches" : "does not match") << " '" << c.topic
      << "'";
}

class TopicMatchTable : public ::testing::TestWithParam<MatchCase> {};

TEST_P(TopicMatchTable, MatchesLikeTheSpecification) {
  const auto& c = GetParam();
  ASSERT_EQ(check_topic_filter(c.filter), "") << c.filter;
  ASSERT_EQ(check_topic_name(c.topic), "") << c.topic;
  EXPECT_EQ(topic_matches(c.filter, c.topic), c.matches)
      << "filter '" << c.filter << "' topic '" << c.topic << "'";
}

INSTANTIATE_TEST_SUITE_P(
    Spec, TopicMatchTable,
    ::testing::Values(
        // 4.7.1.2 multi-level wildcard
        MatchCase{"sport/tennis/player1/#", "sport/tennis/player1", true},
        MatchCase{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
        MatchCase{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
        MatchCase{"sport/tennis/player1/#", "sport/tennis/player2", false},
        MatchCase{"sport/tennis/player1/#", "sport/tennis", false},
        MatchCase{"sport/#", "sport", true}, MatchCase{"sport/#", "sport/", true},
        MatchCase{"sport/#", "sports", false}, MatchCase{"sport/#", "spor", false},
        MatchCase{"#", "sport", true}, MatchCase{"#", "sport/tennis/player1", true},
        MatchCase{"#", "/", true}, MatchCase{"#", "/finance", true},
        // 4.7.1.3 single-level wildcard
        MatchCase{"sport/tennis/+", "sport/tennis/player1", true},
        MatchCase{"sport/tennis/+", "sport/tennis/player2", true},
        MatchCase{"sport/tennis/+", "sport/tennis/player1/ranking", false},
        MatchCase{"sport/+", "sport", false}, MatchCase{"sport/+", "sport/", true},
        MatchCase{"+", "sport", true}, MatchCase{"+", "sport/", false},
        MatchCase{"+/+", "/finance", true}, MatchCase{"/+", "/finance", true},
        MatchCase{"+", "/finance", false}, MatchCase{"+/tennis/#", "sport/tennis", true},
        MatchCase{"+/tennis/#", "sport/tennis/player1", true},
        MatchCase{"+/tennis/#", "sport/golf", false},
        MatchCase{"sport/+/player1", "sport/tennis/player1", true},
        MatchCase{"sport/+/player1", "sport//player1", true},
        MatchCase{"sport/+/player1", "sport/tennis/player2", false}, MatchCase{"+/+", "/", true},
        MatchCase{"+/#", "sport", true}, MatchCase{"+/+/#", "sport", false},
        MatchCase{"a/+/+", "a/b", false}, MatchCase{"a/+/", "a/b/", true},
        MatchCase{"a/+/", "a/b", false},
        // 4.7.2 topics beginning with $
        MatchCase{"#", "$SYS", false}, MatchCase{"#", "$SYS/monitor/Clients", false},
        MatchCase{"+/monitor/Clients", "$SYS/monitor/Clients", false},
        MatchCase{"+", "$SYS", false}, MatchCase{"+/#", "$SYS/x", false},
        MatchCase{"$SYS/#", "$SYS/monitor/Clients", true}, MatchCase{"$SYS/#", "$SYS", true},
        MatchCase{"$SYS/monitor/+", "$SYS/monitor/Clients", true}, MatchCase{"$SYS", "$SYS", true},
        MatchCase{"a/+", "a/$SYS", true}, MatchCase{"a/#", "a/$SYS/x", true},
        // 4.7.3 plain topics: case-sensitive, spaces allowed, leading '/' significant
        MatchCase{"ACCOUNTS", "Accounts", false}, MatchCase{"Accounts", "Accounts", true},
        MatchCase{"Accounts payable", "Accounts payable", true},
        MatchCase{"/finance", "finance", false}, MatchCase{"finance", "/finance", false},
        MatchCase{"/finance", "/finance", true}, MatchCase{"a/b", "a/b/c", false},
        MatchCase{"a/b/c", "a/b", false}, MatchCase{"a/b/", "a/b", false},
        MatchCase{"a/b", "a/b/", false}, MatchCase{"a//b", "a//b", true},
        MatchCase{"a/bc", "a/b", false}, MatchCase{"a/b", "a/bc", false}, MatchCase{"/", "/", true},
        MatchCase{"//", "/", false}, MatchCase{"température/+", "température/salon", true},
        MatchCase{"température/#", "temperature/salon", false}));

// A straightforward reference: split both on '/' and compare level by level.
std::vector<std::string_view> split_levels(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    auto slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}

bool reference_matches(std::string_view filter, std::string_view topic) {
  if (!topic.empty() && topic[0] == '$' && (filter[0] == '+' || filter[0] == '#')) return false;
  auto f = split_levels(filter);
  auto t = split_levels(topic);
  for (std::size_t i = 0; i < f.size(); ++i) {
    if (f[i] == "#") return true;
    if (i == t.size()) return false;
    if (f[i] != "+" && f[i] != t[i]) return false;
  }
  return f.size() == t.size();
}

TEST(TopicMatches, AgreesWithReferenceOnRandomTopics) {
  std::mt19937 rng(20240611);
  const std::vector<std::string> filter_levels = {"a", "b", "", "+", "ab", "$x"};
  const std::vector<std::string> topic_levels = {"a", "b", "", "ab", "$x"};
  auto build = [&](const std::vector<std::string>& alphabet, bool filter) {
    std::uniform_int_distribution<std::size_t> count(1, 5);
    std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
    std::string out;
    const std::size_t n = count(rng);
    for (std::size_t i = 0; i < n; ++i) {
      if (i > 0) out += '/';
      out += alphabet[pick(rng)];
    }
    if (filter && rng() % 3 == 0) out += out.empty() ? "#" : "/#";
    return out;
  };
  int matched = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::string filter = build(filter_levels, true);
    const std::string topic = build(topic_levels, false);
    if (!check_topic_filter(filter).empty() || !check_topic_name(topic).empty()) continue;
    const bool expected = reference_matches(filter, topic);
    matched += expected ? 1 : 0;
    ASSERT_EQ(topic_matches(filter, topic), expected)
        << "filter '" << filter << "' topic '" << topic << "'";
  }
  EXPECT_GT(matched, 100);  // the generator produces both outcomes
}

TEST(TopicMatches, ExactTopicMatchesItselfAsFilter) {
  for (std::string_view t : {"a", "/", "a/b/c", "$SYS/broker", "//", "x y/z"}) {
    EXPECT_TRUE(topic_matches(t, t)) << t;
  }
}

TEST(HasWildcards, DetectsPlusAndHash) {
  EXPECT_FALSE(has_wildcards("a/b/c"));
  EXPECT_FALSE(has_wildcards("$SYS/x"));
  EXPECT_TRUE(has_wildcards("a/+/c"));
  EXPECT_TRUE(has_wildcards("a/#"));
  EXPECT_TRUE(has_wildcards("#"));
}

// ----------------------------------------------------------------------------------------------
// check_topic_filter / check_topic_name

TEST(CheckTopicFilter, AcceptsValidFilters) {
  for (std::string_view f :
       {"#", "+", "/", "sport/tennis/player1/#", "sport/+/player1", "+/+", "/+", "+/tennis/#",
        "$SYS/#", "a//b", "a/+/", "+/#", "Accounts payable", "température/#", "€/𝄞"}) {
    EXPECT_EQ(check_topic_filter(f), "") << f;
  }
}

TEST(CheckTopicFilter, RejectsMisplacedWildcards) {
  for (std::string_view f :
       {"sport/tennis#", "sport/tennis/#/ranking", "#/a", "a#", "##", "#/", "a/#/", "a/b#"}) {
    EXPECT_THAT(check_topic_filter(f), HasSubstr("'#'")) << f;
  }
  for (std::string_view f : {"sport+", "sport/+x", "x+/y", "++", "a/b+", "+a", "a/++/b"}) {
    EXPECT_THAT(check_topic_filter(f), HasSubstr("'+'")) << f;
  }
  EXPECT_EQ(check_topic_filter("sport+"), "topic filter wildcard '+' must occupy an entire level");
}

TEST(CheckTopicFilter, RejectsEmptyNullAndBadUtf8) {
  EXPECT_EQ(check_topic_filter(""), "topic filter must not be empty");
  EXPECT_THAT(check_topic_filter("a/\0/b"s), HasSubstr("U+0000"));
  EXPECT_THAT(check_topic_filter("a/\xff"), HasSubstr("UTF-8"));
  EXPECT_THAT(check_topic_filter("\xed\xa0\x80/#"), HasSubstr("UTF-8"));
}

TEST(CheckTopicName, AcceptsValidNames) {
  for (std::string_view t : {"a", "/", "//", "sport/tennis/player1", "$SYS/monitor/Clients",
                             "Accounts payable", "/finance", "température", "a\x01z"}) {
    EXPECT_EQ(check_topic_name(t), "") << t;
  }
}

TEST(CheckTopicName, RejectsWildcardsAnywhere) {
  for (std::string_view t : {"+", "#", "a/+", "a/#", "a+b", "a#b", "sport/+/player1"}) {
    EXPECT_EQ(check_topic_name(t), "topic name must not contain wildcards ('+' or '#')") << t;
  }
}

TEST(CheckTopicName, RejectsEmptyNullAndBadUtf8) {
  EXPECT_EQ(check_topic_name(""), "topic name must not be empty");
  EXPECT_EQ(check_topic_name("a\0b"s), "topic name must not contain the null character U+0000");
  EXPECT_EQ(check_topic_name("\xc0\x80"), "topic name is not valid UTF-8");  // overlong U+0000
  EXPECT_EQ(check_topic_name("a/\x80"), "topic name is not valid UTF-8");
}

TEST(TopicLimits, LengthLimit) {
  const TopicLimits hub{255, 9};
  EXPECT_EQ(check_topic_name(std::string(255, 'a'), hub), "");
  EXPECT_EQ(check_topic_name(std::string(256, 'a'), hub),
            "topic name is too long (256 > 255 bytes)");
  EXPECT_EQ(check_topic_filter(std::string(254, 'a') + "#", hub),
            "topic filter wildcard '#' must occupy an entire level and be the last level");
  EXPECT_EQ(check_topic_filter(std::string(253, 'a') + "/#", hub), "");
  EXPECT_EQ(check_topic_filter(std::string(254, 'a') + "/#", hub),
            "topic filter is too long (256 > 255 bytes)");
  // The limit counts bytes, not characters: 128 two-byte characters are 256 bytes.
  std::string wide;
  for (int i = 0; i < 128; ++i) wide += "é";
  EXPECT_THAT(check_topic_name(wide, hub), HasSubstr("too long (256 > 255 bytes)"));
}

TEST(TopicLimits, DefaultLengthIsTheProtocolMaximum) {
  EXPECT_EQ(check_topic_name(std::string(65535, 'a')), "");
  EXPECT_EQ(check_topic_name(std::string(65536, 'a')),
            "topic name is too long (65536 > 65535 bytes)");
  EXPECT_EQ(check_topic_filter(std::string(65536, 'a')),
            "topic filter is too long (65536 > 65535 bytes)");
}

TEST(TopicLimits, LevelLimit) {
  const TopicLimits hub{255, 9};
  EXPECT_EQ(check_topic_name("a/b/c/d/e/f/g/h/i", hub), "");
  EXPECT_EQ(check_topic_name("a/b/c/d/e/f/g/h/i/j", hub),
            "topic name has too many levels (10 > 9)");
  EXPECT_EQ(check_topic_name("////////", hub), "");  // 8 '/' = 9 empty levels
  EXPECT_THAT(check_topic_name("/////////", hub), HasSubstr("too many levels (10 > 9)"));
  EXPECT_EQ(check_topic_filter("+/+/+/+/+/+/+/+/#", hub), "");
  EXPECT_EQ(check_topic_filter("+/+/+/+/+/+/+/+/+/#", hub),
            "topic filter has too many levels (10 > 9)");

  std::string deep = "a";
  for (int i = 0; i < 1000; ++i) deep += "/a";
  EXPECT_EQ(check_topic_name(deep), "");  // max_levels 0: unlimited
  EXPECT_EQ(check_topic_name(deep, TopicLimits{65535, 1001}), "");
  EXPECT_THAT(check_topic_name(deep, TopicLimits{65535, 1000}), HasSubstr("1001 > 1000"));
}

// ----------------------------------------------------------------------------------------------
// is_valid_utf8

TEST(Utf8, AcceptsWellFormedText) {
  const std::vector<std::string> valid = {
      "",
      "plain ascii",
      "\0"s,               // U+0000 is well-formed (MQTT strings forbid it separately)
      "\x7f",              // U+007F
      "\xc2\x80",          // U+0080, smallest two-byte
      "\xc3\xa9",          // é
      "\xdf\xbf",          // U+07FF, largest two-byte
      "\xe0\xa0\x80",      // U+0800, smallest three-byte
      "\xe2\x82\xac",      // €
      "\xed\x9f\xbf",      // U+D7FF, just below the surrogates
      "\xee\x80\x80",      // U+E000, just above the surrogates
      "\xef\xbb\xbf",      // U+FEFF (BOM) is a character like any other
      "\xef\xbf\xbf",      // U+FFFF non-character: well-formed
      "\xf0\x90\x80\x80",  // U+10000, smallest four-byte
      "\xf0\x9d\x84\x9e",  // 𝄞
      "\xf4\x8f\xbf\xbf",  // U+10FFFF, the largest code point
      "mixé€𝄞 text 0123456789 with a long ascii tail to exercise the fast path",
  };
  for (const auto& s : valid) EXPECT_TRUE(is_valid_utf8(s)) << ::testing::PrintToString(s);
}

TEST(Utf8, RejectsMalformedText) {
  const std::vector<std::string> invalid = {
      "\x80",                      // lone continuation byte
      "\xbf",                      // lone continuation byte
      "\xc0\x80",                  // overlong U+0000
      "\xc1\xbf",                  // overlong U+007F
      "\xe0\x80\x80",              // overlong U+0000 in three bytes
      "\xe0\x9f\xbf",              // overlong U+07FF
      "\xf0\x80\x80\x80",          // overlong in four bytes
      "\xf0\x8f\xbf\xbf",          // overlong U+FFFF
      "\xed\xa0\x80",              // U+D800, high surrogate
      "\xed\xbf\xbf",              // U+DFFF, low surrogate
      "\xed\xa0\xbd\xed\xb2\xa9",  // CESU-8 surrogate pair
      "\xf4\x90\x80\x80",          // U+110000
      "\xf5\x80\x80\x80",          // lead byte beyond Unicode
      "\xf8\x88\x80\x80\x80",      // five-byte form
      "\xfe",
      "\xff",
      "\xc3",          // truncated two-byte
      "\xe2\x82",      // truncated three-byte
      "\xf0\x9d\x84",  // truncated four-byte
      "\xc3\x28",      // bad continuation
      "\xe2\x28\xa1",
      "\xe2\x82\x28",
      "\xf0\x28\x8c\xbc",
      "\xf0\x90\x28\xbc",
      "\xf0\x90\x8c\x28",
      "\xc3\xa9\xa9",  // extra continuation byte
  };
  for (const auto& s : invalid) EXPECT_FALSE(is_valid_utf8(s)) << ::testing::PrintToString(s);
}

TEST(Utf8, DetectsBadBytesAtEveryOffsetOfALongString) {
  // Covers the eight-byte ASCII fast path and the tail after it.
  for (std::size_t length = 1; length <= 40; ++length) {
    for (std::size_t at = 0; at < length; ++at) {
      std::string s(length, 'a');
      s[at] = '\xff';
      EXPECT_FALSE(is_valid_utf8(s)) << length << "/" << at;
      s[at] = '\x80';
      EXPECT_FALSE(is_valid_utf8(s)) << length << "/" << at;
      if (at + 1 < length) {
        s[at] = '\xc3';
        s[at + 1] = '\xa9';
        EXPECT_TRUE(is_valid_utf8(s)) << length << "/" << at;
        s[at + 1] = 'a';  // lead byte without its continuation
        EXPECT_FALSE(is_valid_utf8(s)) << length << "/" << at;
      }
    }
    std::string tail(length, 'a');
    tail.back() = '\xe2';  // truncated sequence at the very end
    EXPECT_FALSE(is_valid_utf8(tail)) << length;
  }
}

std::string encode_code_point(std::uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

TEST(Utf8, EveryCodePointExceptSurrogatesIsAccepted) {
  int accepted = 0;
  for (std::uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    const bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
    const bool ok = is_valid_utf8(encode_code_point(cp));
    if (ok != !surrogate) {
      ADD_FAILURE() << "code point " << cp;
      break;
    }
    accepted += ok ? 1 : 0;
  }
  EXPECT_EQ(accepted, 0x110000 - 0x800);
}

// Reference check: a sequence is well-formed when it decodes, by the bare bit patterns, into
// code points whose shortest encoding reproduces it exactly and none of which is a surrogate.
bool reference_utf8(std::string_view s) {
  std::size_t i = 0;
  std::string reencoded;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      n = 0, cp = c;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated sequence
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = cp << 6 | (cc & 0x3F);
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    reencoded += encode_code_point(cp);
    i += n + 1;
  }
  return reencoded == s;
}

TEST(Utf8, AgreesWithReferenceOnAllShortSequences) {
  std::string s;
  for (int a = 0; a < 256; ++a) {
    s.assign(1, static_cast<char>(a));
    ASSERT_EQ(is_valid_utf8(s), reference_utf8(s)) << a;
    for (int b = 0; b < 256; ++b) {
      s.assign({static_cast<char>(a), static_cast<char>(b)});
      ASSERT_EQ(is_valid_utf8(s), reference_utf8(s)) << a << " " << b;
    }
  }
  // Three-byte sequences for every lead of a three- or four-byte form (and the invalid leads),
  // four-byte ones with the third and fourth bytes sampled at the edges of their ranges.
  const int edges[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF};
  for (int a = 0xE0; a < 0x100; ++a) {
    for (int b = 0; b < 256; ++b) {
      for (int c = 0; c < 256; ++c) {
        s.assign({static_cast<char>(a), static_cast<char>(b), static_cast<char>(c)});
        ASSERT_EQ(is_valid_utf8(s), reference_utf8(s)) << a << " " << b << " " << c;
      }
      if (a < 0xF0) continue;
      for (int c : edges) {
        for (int d : edges) {
          s.assign({static_cast<char>(a), static_cast<char>(b), static_cast<char>(c),
                    static_cast<char>(d)});
          ASSERT_EQ(is_valid_utf8(s), reference_utf8(s)) << a << " " << b << " " << c << " " << d;
        }
      }
    }
  }
}

}  // namespace
}  // namespace baetyl::mqtt
