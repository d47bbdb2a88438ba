#pragma once
// The transport-free half of the API server: route matching, authentication and the calls into
// ApiBackend, from a parsed request to the reply. Runs on the server's worker threads.
#include <optional>
#include <string>
#include <string_view>

#include "api/api_server.h"

namespace baetyl::master {

enum class ApiRoute {
  inspect,
  update,
  available_port,
  start,
  stop,
  report,
  restart_service,
  stop_master
};

struct RouteMatch {
  unsigned status = 200;  // 200 when matched; 404, 405 (see allow) or 400 (bad escape)
  ApiRoute route = ApiRoute::inspect;
  std::string service;   // percent-decoded, for the instance routes
  std::string instance;  // percent-decoded
  std::string allow;     // the method the path takes, for 405
};

// Matches an origin-form target ("/v1/system/inspect?x" or without "/v1") and a method.
RouteMatch match_route(std::string_view method, std::string_view target);

struct ApiRequest {
  std::string method;
  std::string target;
  std::optional<std::string> username;  // x-openedge-username, else x-baetyl-username
  std::string password;                 // the password header of the same family
  std::string body;
};

struct ApiReply {
  unsigned status = 200;
  std::string body;
  std::string content_type;  // none when empty
  std::string allow;         // the Allow header of a 405
};

// Never throws: backend exceptions become 400 with their text.
ApiReply handle_api_request(ApiBackend& backend, const ApiRequest& request);

// Deepest nesting of arrays and objects in a JSON text (strings skipped), without parsing it.
std::size_t json_nesting_depth(std::string_view text);

}  // namespace baetyl::master
