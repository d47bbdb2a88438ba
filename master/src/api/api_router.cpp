#include "api/api_router.h"

#include <algorithm>
#include <exception>
#include <map>
#include <stdexcept>
#include <vector>

#include <nlohmann/json.hpp>

namespace baetyl::master {
namespace {

using nlohmann::json;

// Deeper documents are refused: the backend keeps reports and serialises them recursively.
constexpr std::size_t kMaxJsonDepth = 64;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> percent_decode(std::string_view segment) {
  std::string out;
  out.reserve(segment.size());
  for (std::size_t i = 0; i < segment.size(); ++i) {
    if (segment[i] != '%') {
      out += segment[i];
      continue;
    }
    if (i + 2 >= segment.size()) return std::nullopt;
    const int high = hex_value(segment[i + 1]);
    const int low = hex_value(segment[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    const char decoded = static_cast<char>(high * 16 + low);
    if (decoded == '\0') return std::nullopt;
    out += decoded;
    i += 2;
  }
  return out;
}

RouteMatch status_only(unsigned status, std::string allow = {}) {
  RouteMatch match;
  match.status = status;
  match.allow = std::move(allow);
  return match;
}

RouteMatch matched(std::string_view method, const char* wanted, ApiRoute route) {
  if (method != wanted) return status_only(405, wanted);
  RouteMatch match;
  match.route = route;
  return match;
}

ApiReply text_reply(unsigned status, std::string text) {
  ApiReply reply;
  reply.status = status;
  reply.body = std::move(text);
  reply.content_type = "text/plain; charset=utf-8";
  return reply;
}

ApiReply json_reply(const json& document) {
  ApiReply reply;
  reply.body = document.dump(-1, ' ', false, json::error_handler_t::replace);
  reply.content_type = "application/json";
  return reply;
}

// Parses a request body; an empty body yields a null document when allow_empty is set.
json parse_body(const std::string& body, bool allow_empty) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) {
    if (allow_empty) return json();
    throw std::invalid_argument("empty request body, expected a JSON object");
  }
  if (json_nesting_depth(body) > kMaxJsonDepth) {
    throw std::invalid_argument("request body nested too deeply");
  }
  try {
    return json::parse(body);
  } catch (const json::exception& e) {
    throw std::invalid_argument(std::string("invalid JSON body: ") + e.what());
  }
}

std::map<std::string, std::string> parse_env(const std::string& body) {
  const json document = parse_body(body, true);
  std::map<std::string, std::string> env;
  if (document.is_null()) return env;
  if (!document.is_object()) {
    throw std::invalid_argument("start body must be a JSON object of strings");
  }
  for (const auto& [key, value] : document.items()) {
    if (!value.is_string()) {
      throw std::invalid_argument("start body: the value of \"" + key + "\" must be a string");
    }
    env.emplace(key, value.get<std::string>());
  }
  return env;
}

api::UpdateRequest parse_update(const std::string& body) {
  const json document = parse_body(body, false);
  if (!document.is_object()) throw std::invalid_argument("update body must be a JSON object");
  try {
    return document.get<api::UpdateRequest>();
  } catch (const json::exception& e) {
    throw std::invalid_argument(std::string("invalid update request: ") + e.what());
  }
}

ApiReply call_backend(ApiBackend& backend, const RouteMatch& match, const std::string& caller,
                      const std::string& body) {
  switch (match.route) {
    case ApiRoute::inspect:
      return json_reply(backend.inspect());
    case ApiRoute::update:
      backend.update(caller, parse_update(body));
      return {};
    case ApiRoute::available_port:
      return json_reply(json{{"port", backend.available_port()}});
    case ApiRoute::start:
      backend.start_instance(caller, match.service, match.instance, parse_env(body));
      return {};
    case ApiRoute::stop:
      backend.stop_instance(caller, match.service, match.instance);
      return {};
    case ApiRoute::restart_service:
      return json_reply(backend.restart_service(caller, match.service));
    case ApiRoute::stop_master:
      backend.stop_master(caller);
      return {};
    case ApiRoute::report: {
      const json report = parse_body(body, false);
      if (!report.is_object()) throw std::invalid_argument("report body must be a JSON object");
      backend.report_instance(caller, match.service, match.instance, report);
      return {};
    }
  }
  return text_reply(500, "unhandled route");
}

}  // namespace

nlohmann::json ApiBackend::restart_service(const std::string&, const std::string& service) {
  throw std::runtime_error("this master cannot restart service '" + service + "'");
}

void ApiBackend::stop_master(const std::string&) {
  throw std::runtime_error("this master cannot be stopped through its API");
}

RouteMatch match_route(std::string_view method, std::string_view target) {
  if (const auto query = target.find_first_of("?#"); query != std::string_view::npos) {
    target = target.substr(0, query);
  }
  if (target.empty() || target.front() != '/') return status_only(404);

  std::vector<std::string> segments;
  std::size_t begin = 1;
  for (;;) {
    const auto end = target.find('/', begin);
    const auto raw = target.substr(begin, end == std::string_view::npos ? end : end - begin);
    if (raw.empty()) return status_only(404);
    auto decoded = percent_decode(raw);
    if (!decoded) return status_only(400);
    segments.push_back(std::move(*decoded));
    if (end == std::string_view::npos) break;
    begin = end + 1;
  }
  std::size_t first = 0;
  if (segments.front() == "v1") first = 1;
  const std::size_t count = segments.size() - first;
  const auto at = [&](std::size_t i) -> const std::string& { return segments[first + i]; };

  if (count == 2 && at(0) == "system" && at(1) == "inspect") {
    return matched(method, "GET", ApiRoute::inspect);
  }
  if (count == 2 && at(0) == "system" && at(1) == "update") {
    return matched(method, "PUT", ApiRoute::update);
  }
  if (count == 2 && at(0) == "system" && at(1) == "stop") {
    return matched(method, "PUT", ApiRoute::stop_master);
  }
  if (count == 3 && at(0) == "services" && at(2) == "restart") {
    RouteMatch match = matched(method, "PUT", ApiRoute::restart_service);
    if (match.status == 200) match.service = at(1);
    return match;
  }
  if (count == 2 && at(0) == "ports" && at(1) == "available") {
    return matched(method, "GET", ApiRoute::available_port);
  }
  if (count == 5 && at(0) == "services" && at(2) == "instances") {
    static const std::map<std::string, ApiRoute, std::less<>> actions{
        {"start", ApiRoute::start}, {"stop", ApiRoute::stop}, {"report", ApiRoute::report}};
    const auto action = actions.find(at(4));
    if (action == actions.end()) return status_only(404);
    RouteMatch match = matched(method, "PUT", action->second);
    if (match.status == 200) {
      match.service = at(1);
      match.instance = at(3);
    }
    return match;
  }
  return status_only(404);
}

ApiReply handle_api_request(ApiBackend& backend, const ApiRequest& request) {
  const RouteMatch match = match_route(request.method, request.target);
  switch (match.status) {
    case 200:
      break;
    case 405: {
      ApiReply reply = text_reply(405, "method not allowed");
      reply.allow = match.allow;
      return reply;
    }
    case 400:
      return text_reply(400, "invalid escape in request path");
    default:
      return text_reply(404, "not found");
  }
  try {
    if (!request.username || request.username->empty() ||
        !backend.authenticate(*request.username, request.password)) {
      return text_reply(401, "account unauthorized");
    }
    return call_backend(backend, match, *request.username, request.body);
  } catch (const ApiForbidden& e) {
    return text_reply(403, e.what());
  } catch (const std::exception& e) {
    return text_reply(400, e.what());
  } catch (...) {
    return text_reply(500, "unknown error");
  }
}

std::size_t json_nesting_depth(std::string_view text) {
  std::size_t depth = 0;
  std::size_t deepest = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

}  // namespace baetyl::master
