#include "baetyl/mqtt/topic.h"

#include <cstdint>
#include <cstring>

namespace baetyl::mqtt {
namespace {

enum class TopicKind { Name, Filter };

// Length, encoding and level-count checks shared by names and filters; wildcard placement is
// checked in the same pass over the bytes.
std::string check_topic(std::string_view topic, const TopicLimits& limits, TopicKind kind) {
  const std::string_view what = kind == TopicKind::Name ? "topic name" : "topic filter";
  auto fail = [&](std::string_view why) {
    std::string message(what);
    message += ' ';
    message += why;
    return message;
  };
  if (topic.empty()) return fail("must not be empty");
  if (topic.size() > limits.max_length) {
    return fail("is too long (" + std::to_string(topic.size()) + " > " +
                std::to_string(limits.max_length) + " bytes)");
  }
  if (!is_valid_utf8(topic)) return fail("is not valid UTF-8");

  std::size_t levels = 1;
  const std::size_t n = topic.size();
  for (std::size_t i = 0; i < n; ++i) {
    const char c = topic[i];
    if (c == '/') {
      ++levels;
    } else if (c == '\0') {
      return fail("must not contain the null character U+0000");
    } else if (c == '+' || c == '#') {
      if (kind == TopicKind::Name) return fail("must not contain wildcards ('+' or '#')");
      const bool starts_level = i == 0 || topic[i - 1] == '/';
      if (c == '+') {
        if (!starts_level || (i + 1 < n && topic[i + 1] != '/')) {
          return fail("wildcard '+' must occupy an entire level");
        }
      } else if (!starts_level || i + 1 != n) {
        return fail("wildcard '#' must occupy an entire level and be the last level");
      }
    }
  }
  if (limits.max_levels != 0 && levels > limits.max_levels) {
    return fail("has too many levels (" + std::to_string(levels) + " > " +
                std::to_string(limits.max_levels) + ")");
  }
  return {};
}

}  // namespace

std::string check_topic_name(std::string_view topic, const TopicLimits& limits) {
  return check_topic(topic, limits, TopicKind::Name);
}

std::string check_topic_filter(std::string_view filter, const TopicLimits& limits) {
  return check_topic(filter, limits, TopicKind::Filter);
}

bool topic_matches(std::string_view filter, std::string_view topic) {
  // [MQTT-4.7.2-1]: a filter starting with a wildcard does not match a topic starting with '$'.
  if (!topic.empty() && topic.front() == '$' && !filter.empty() &&
      (filter.front() == '+' || filter.front() == '#')) {
    return false;
  }
  const std::size_t fn = filter.size();
  const std::size_t tn = topic.size();
  std::size_t fi = 0;  // start of the current filter level
  std::size_t ti = 0;  // start of the current topic level
  while (true) {
    std::size_t fe = filter.find('/', fi);
    if (fe == std::string_view::npos) fe = fn;
    std::size_t te = topic.find('/', ti);
    if (te == std::string_view::npos) te = tn;

    const std::size_t flen = fe - fi;
    if (flen == 1 && filter[fi] == '#') return true;
    if (!(flen == 1 && filter[fi] == '+')) {
      const std::size_t tlen = te - ti;
      if (flen != tlen || std::memcmp(filter.data() + fi, topic.data() + ti, flen) != 0) {
        return false;
      }
    }
    const bool filter_done = fe == fn;
    const bool topic_done = te == tn;
    if (topic_done) {
      // Either both end here, or the rest of the filter is exactly "/#" (the parent level rule).
      return filter_done || (fn - fe == 2 && filter[fe + 1] == '#');
    }
    if (filter_done) return false;
    fi = fe + 1;
    ti = te + 1;
  }
}

bool has_wildcards(std::string_view filter) {
  return filter.find_first_of("+#") != std::string_view::npos;
}

bool is_valid_utf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* const end = p + text.size();
  while (p != end) {
    // ASCII fast path, eight bytes at a time.
    while (end - p >= 8) {
      std::uint64_t word;
      std::memcpy(&word, p, sizeof word);
      if (word & 0x8080808080808080ULL) break;
      p += 8;
    }
    if (p == end) break;
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    // Lead byte: number of continuation bytes and the allowed range of the first one, which
    // excludes overlong forms (E0, F0), surrogates (ED) and code points above U+10FFFF (F4).
    std::size_t extra = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (c < 0xC2) {
      return false;  // stray continuation byte, or an overlong two-byte form (C0, C1)
    } else if (c < 0xE0) {
      extra = 1;
    } else if (c < 0xF0) {
      extra = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c < 0xF5) {
      extra = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (static_cast<std::size_t>(end - p) <= extra) return false;
    if (p[1] < lo || p[1] > hi) return false;
    for (std::size_t i = 2; i <= extra; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
    }
    p += extra + 1;
  }
  return true;
}

}  // namespace baetyl::mqtt
