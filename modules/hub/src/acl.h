#pragma once
// Authentication of clients against `principals` and their publish/subscribe permissions.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"

namespace baetyl::hub {

// True when every topic matched by `filter` is matched by `permit` (both valid topic filters).
bool filter_covers(std::string_view permit, std::string_view filter);

// Permissions are about names: a permit or deny filter starting with a wildcard matches topics
// starting with '$' too, while a subscription's filter does not [MQTT-4.7.2-1].

// The topics both the subscription filter `filter` and the permission filter `permission` match,
// as one filter, or nullopt when there is none.
std::optional<std::string> filter_intersection(std::string_view filter,
                                               std::string_view permission);

// True when every topic the subscription filter `filter` matches is matched by at least one of
// the permission filters `permissions` (together, not necessarily by one alone).
bool filters_cover(const std::vector<std::string>& permissions, std::string_view filter);

// What a principal's `sub` permissions make of a subscription.
enum class SubscribeGrant {
  Refused,   // no topic it matches is permitted and not denied
  Granted,   // every topic it matches is permitted and none is denied
  Filtered,  // granted, but some topics it matches must not be delivered (see may_receive)
};

// The permissions of one principal (shared by all its connections and sessions).
class Authorizer {
 public:
  explicit Authorizer(const std::vector<Permission>& permissions, std::string principal = {});

  // The username of the principal.
  const std::string& principal() const { return principal_; }

  // A topic name may be published when a `pub` permit matches it and no `pub` deny does.
  bool can_publish(std::string_view topic) const;
  // A subscription is granted when some topic it matches is permitted by a `sub` permit and not
  // denied by a `sub` deny; Filtered when it also matches topics that are not.
  SubscribeGrant check_subscribe(std::string_view filter) const;
  bool can_subscribe(std::string_view filter) const {
    return check_subscribe(filter) != SubscribeGrant::Refused;
  }
  // A message on the topic name `topic` may be delivered to the principal's subscriptions: a `sub`
  // permit matches it and no `sub` deny does.
  bool may_receive(std::string_view topic) const;

 private:
  std::string principal_;
  std::vector<std::string> pub_permit_, pub_deny_, sub_permit_, sub_deny_;
};

class Auth {
 public:
  explicit Auth(const std::vector<Principal>& principals);

  // The permissions of the principal named `username`, or null when there is none.
  std::shared_ptr<const Authorizer> find(std::string_view username) const;
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
