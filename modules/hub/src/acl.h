#pragma once
// Authentication of clients against `principals` and their publish/subscribe permissions.
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"

namespace baetyl::hub {

// True when every topic matched by `filter` is matched by `permit` (both valid topic filters).
bool filter_covers(std::string_view permit, std::string_view filter);

// True when some topic name is matched by both filters.
bool filters_overlap(std::string_view a, std::string_view b);

// The permissions of one principal.
class Authorizer {
 public:
  explicit Authorizer(const std::vector<Permission>& permissions);

  // A topic name may be published when a `pub` permit matches it and no `pub` deny does.
  bool can_publish(std::string_view topic) const;
  // A topic filter may be subscribed when a `sub` permit covers it and no `sub` deny overlaps it.
  bool can_subscribe(std::string_view filter) const;

 private:
  std::vector<std::string> pub_permit_, pub_deny_, sub_permit_, sub_deny_;
};

class Auth {
 public:
  explicit Auth(const std::vector<Principal>& principals);

  // The principal with this username and (non-empty) password, or null.
  std::shared_ptr<const Authorizer> authenticate(std::string_view username,
                                                 std::string_view password) const;
  // For clients with a verified certificate: the principal with this username and no password.
  std::shared_ptr<const Authorizer> authenticate_certificate(std::string_view username) const;

 private:
  struct Account {
    std::string password;
    std::shared_ptr<const Authorizer> authorizer;
  };
  std::map<std::string, Account, std::less<>> accounts_;
};

}  // namespace baetyl::hub
