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

bool filters_overlap(std::string_view a, std::string_view b) {
  auto dollar_vs_wildcard = [](std::string_view x, std::string_view y) {
    return !x.empty() && x.front() == '$' && !y.empty() && (y.front() == '+' || y.front() == '#');
  };
  if (dollar_vs_wildcard(a, b) || dollar_vs_wildcard(b, a)) return false;
  std::size_t ap = 0;
  std::size_t bp = 0;
  while (true) {
    if (ap == std::string_view::npos && bp == std::string_view::npos) return true;
    if (ap == std::string_view::npos) return b.substr(bp) == "#";
    if (bp == std::string_view::npos) return a.substr(ap) == "#";
    std::string_view x = next_level(a, ap);
    std::string_view y = next_level(b, bp);
    if (x == "#" || y == "#") return true;
    if (x == "+" || y == "+" || x == y) continue;
    return false;
  }
}

Authorizer::Authorizer(const std::vector<Permission>& permissions) {
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
    // Permissions are about names, so '#' also permits topics starting with '$'.
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

bool Authorizer::can_subscribe(std::string_view filter) const {
  bool permitted = false;
  for (const auto& p : sub_permit_) {
    if (filter_covers(p, filter)) {
      permitted = true;
      break;
    }
  }
  if (!permitted) return false;
  for (const auto& d : sub_deny_) {
    if (filters_overlap(d, filter) || filter_covers(d, filter)) return false;
  }
  return true;
}

Auth::Auth(const std::vector<Principal>& principals) {
  for (const auto& p : principals) {
    accounts_[p.username] = Account{p.password, std::make_shared<Authorizer>(p.permissions)};
  }
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
