#include "acl.h"

#include <openssl/crypto.h>

#include "baetyl/mqtt/topic.h"

namespace baetyl::hub {
namespace {

// Splits off the next level of `s` at `pos`; `pos` becomes npos after the last level.
std::string_view next_level(std::string_view s, std::size_t& pos) {
  std::size_t end = s.find('/', pos);
  std::string_view level;
  if (end == std::string_view::npos) {
    level = s.substr(pos);
    pos = std::string_view::npos;
  } else {
    level = s.substr(pos, end - pos);
    pos = end + 1;
  }
  return level;
}

std::vector<std::string_view> split_levels(std::string_view s) {
  std::vector<std::string_view> levels;
  std::size_t pos = 0;
  while (pos != std::string_view::npos) levels.push_back(next_level(s, pos));
  return levels;
}

bool is_wildcard(std::string_view level) { return level == "+" || level == "#"; }

// How far a permission filter has matched the levels of a topic seen so far.
struct Cursor {
  const std::vector<std::string_view>* levels;
  std::size_t next;  // index of its next level; levels->size() when it ended with the topic
  bool ended() const { return next == levels->size(); }
  std::string_view level() const { return (*levels)[next]; }
};

bool any_at_hash(const std::vector<Cursor>& cursors) {
  for (const auto& c : cursors) {
    if (!c.ended() && c.level() == "#") return true;
  }
  return false;
}

bool any_ended(const std::vector<Cursor>& cursors) {
  for (const auto& c : cursors) {
    if (c.ended()) return true;
  }
  return false;
}

// The cursors that match one more topic level of value `level`, advanced past it. For a level
// that can take any value (a '+' of the subscription), it is a value no permission names: if
// those are covered, every named value is as well (more permissions match it).
std::vector<Cursor> advance(const std::vector<Cursor>& cursors,
                            std::optional<std::string_view> level) {
  std::vector<Cursor> next;
  for (const auto& c : cursors) {
    if (c.ended()) continue;
    if (c.level() == "+" || (level && c.level() == *level)) next.push_back({c.levels, c.next + 1});
  }
  return next;
}

// True when every topic whose levels from `i` on are matched by `filter[i..]` (and whose earlier
// levels the cursors matched) is matched by one of the cursors' filters. Each step advances every
// cursor, so the recursion ends within the length of the longest permission filter.
bool covered(const std::vector<std::string_view>& filter, std::size_t i,
             const std::vector<Cursor>& cursors) {
  if (cursors.empty()) return false;
  if (any_at_hash(cursors)) return true;
  if (i == filter.size()) return any_ended(cursors);
  const std::string_view level = filter[i];
  if (level == "#") {
    // The parent level itself (a topic has at least one level), then one level more of any
    // value followed by '#' again.
    if (i > 0 && !any_ended(cursors)) return false;
    static const std::vector<std::string_view> kOneMoreLevel{"+", "#"};
    return covered(kOneMoreLevel, 0, cursors);
  }
  return covered(filter, i + 1,
                 advance(cursors, level == "+" ? std::nullopt : std::optional(level)));
}

}  // namespace

bool filter_covers(std::string_view permit, std::string_view filter) {
  std::size_t pp = 0;
  std::size_t fp = 0;
  while (true) {
    if (pp == std::string_view::npos) return fp == std::string_view::npos;
    std::string_view p = next_level(permit, pp);
    if (p == "#") return true;
    if (fp == std::string_view::npos) return false;
    std::string_view f = next_level(filter, fp);
    if (f == "#") return false;
    if (p == "+") continue;
    if (f == "+" || p != f) return false;
  }
}

std::optional<std::string> filter_intersection(std::string_view filter,
                                               std::string_view permission) {
  const auto f = split_levels(filter);
  const auto p = split_levels(permission);
  std::vector<std::string_view> levels;
  std::size_t i = 0;
  std::size_t j = 0;
  while (true) {
    const bool f_end = i == f.size();
    const bool p_end = j == p.size();
    if (!f_end && f[i] == "#") {
      // The rest of the permission; when it ended here, the parent level '#' also matches.
      levels.insert(levels.end(), p.begin() + static_cast<std::ptrdiff_t>(j), p.end());
      break;
    }
    if (!p_end && p[j] == "#") {
      levels.insert(levels.end(), f.begin() + static_cast<std::ptrdiff_t>(i), f.end());
      break;
    }
    if (f_end && p_end) break;
    if (f_end || p_end) return std::nullopt;
    if (f[i] == "+") {
      levels.push_back(p[j]);
    } else if (p[j] == "+" || p[j] == f[i]) {
      levels.push_back(f[i]);
    } else {
      return std::nullopt;
    }
    ++i;
    ++j;
  }
  if (levels.empty()) return std::nullopt;
  // A subscription starting with a wildcard matches no topic starting with '$'.
  if (is_wildcard(f.front()) && !levels.front().empty() && levels.front().front() == '$') {
    return std::nullopt;
  }
  std::string out;
  for (std::size_t k = 0; k < levels.size(); ++k) {
    if (k > 0) out += '/';
    out += levels[k];
  }
  return out;
}

bool filters_cover(const std::vector<std::string>& permissions, std::string_view filter) {
  std::vector<std::vector<std::string_view>> split;
  split.reserve(permissions.size());
  for (const auto& p : permissions) split.push_back(split_levels(p));
  std::vector<Cursor> cursors;
  for (const auto& levels : split) cursors.push_back({&levels, 0});
  return covered(split_levels(filter), 0, cursors);
}

Authorizer::Authorizer(const std::vector<Permission>& permissions, std::string principal)
    : principal_(std::move(principal)) {
  for (const auto& p : permissions) {
    auto& permit = p.action == "pub" ? pub_permit_ : sub_permit_;
    auto& deny = p.action == "pub" ? pub_deny_ : sub_deny_;
    permit.insert(permit.end(), p.permit.begin(), p.permit.end());
    deny.insert(deny.end(), p.deny.begin(), p.deny.end());
  }
}

bool Authorizer::can_publish(std::string_view topic) const {
  bool permitted = false;
  for (const auto& p : pub_permit_) {
    if (filter_covers(p, topic)) {
      permitted = true;
      break;
    }
  }
  if (!permitted) return false;
  for (const auto& d : pub_deny_) {
    if (filter_covers(d, topic)) return false;
  }
  return true;
}

SubscribeGrant Authorizer::check_subscribe(std::string_view filter) const {
  // Granted when the topics of some permit, narrowed to the subscription, are not all denied.
  bool granted = false;
  for (const auto& p : sub_permit_) {
    auto permitted = filter_intersection(filter, p);
    if (permitted && !filters_cover(sub_deny_, *permitted)) {
      granted = true;
      break;
    }
  }
  if (!granted) return SubscribeGrant::Refused;
  for (const auto& d : sub_deny_) {
    if (filter_intersection(filter, d)) return SubscribeGrant::Filtered;
  }
  return filters_cover(sub_permit_, filter) ? SubscribeGrant::Granted : SubscribeGrant::Filtered;
}

bool Authorizer::may_receive(std::string_view topic) const {
  bool permitted = false;
  for (const auto& p : sub_permit_) {
    if (filter_covers(p, topic)) {
      permitted = true;
      break;
    }
  }
  if (!permitted) return false;
  for (const auto& d : sub_deny_) {
    if (filter_covers(d, topic)) return false;
  }
  return true;
}

Auth::Auth(const std::vector<Principal>& principals) {
  for (const auto& p : principals) {
    accounts_[p.username] =
        Account{p.password, std::make_shared<Authorizer>(p.permissions, p.username)};
  }
}

std::shared_ptr<const Authorizer> Auth::find(std::string_view username) const {
  auto it = accounts_.find(username);
  return it == accounts_.end() ? nullptr : it->second.authorizer;
}

std::shared_ptr<const Authorizer> Auth::authenticate(std::string_view username,
                                                     std::string_view password) const {
  auto it = accounts_.find(username);
  if (it == accounts_.end() || password.empty() || it->second.password.empty()) return nullptr;
  const auto& expected = it->second.password;
  if (expected.size() != password.size() ||
      CRYPTO_memcmp(expected.data(), password.data(), password.size()) != 0) {
    return nullptr;
  }
  return it->second.authorizer;
}

std::shared_ptr<const Authorizer> Auth::authenticate_certificate(std::string_view username) const {
  auto it = accounts_.find(username);
  if (it == accounts_.end() || !it->second.password.empty()) return nullptr;
  return it->second.authorizer;
}

}  // namespace baetyl::hub
