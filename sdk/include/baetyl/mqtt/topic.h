#pragma once
// MQTT 3.1.1 topic names and topic filters (section 4.7): validation, matching and the UTF-8 rules
// of section 1.5.3.
#include <cstddef>
#include <string>
#include <string_view>

namespace baetyl::mqtt {

struct TopicLimits {
  std::size_t max_length = 65535;  // bytes of UTF-8
  std::size_t max_levels = 0;      // 0 = unlimited; "a/b/c" has 3 levels
};

// Returns "" when `topic` is a valid topic name (what PUBLISH carries): non-empty, well-formed
// UTF-8 without U+0000, no wildcard characters, within `limits`. Otherwise a message starting with
// "topic name", e.g. "topic name must not contain wildcards ('+' or '#')".
std::string check_topic_name(std::string_view topic, const TopicLimits& limits = {});

// Returns "" when `filter` is a valid topic filter (what SUBSCRIBE carries): as a topic name, but
// '+' may occupy a whole level and '#' the whole last level. Otherwise a message starting with
// "topic filter".
std::string check_topic_filter(std::string_view filter, const TopicLimits& limits = {});

// True when the topic name `topic` matches the topic filter `filter` (section 4.7): '+' matches
// exactly one level (possibly empty), '#' matches its parent level and any number of child levels
// ("sport/#" matches "sport"), and topics starting with '$' are not matched by filters starting
// with a wildcard. Both arguments are assumed valid (see the checks above). Never allocates.
bool topic_matches(std::string_view filter, std::string_view topic);

// True when `filter` contains a wildcard character ('+' or '#').
bool has_wildcards(std::string_view filter);

// True when `text` is well-formed UTF-8 (RFC 3629 as required by MQTT 1.5.3): no overlong forms,
// no surrogates (U+D800..U+DFFF), nothing above U+10FFFF. U+0000 is well-formed and accepted here;
// MQTT strings additionally forbid it, which the topic checks and the codec test separately.
bool is_valid_utf8(std::string_view text);

}  // namespace baetyl::mqtt
