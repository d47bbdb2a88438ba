#include "baetyl/api/master_client.h"

#include <string_view>

namespace baetyl::api {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxBodyInMessage = 512;

// Percent-encodes a path segment: everything but RFC 3986's unreserved characters, and the dots
// of "." and ".." so a name can never climb out of its place in the path.
std::string encode_segment(std::string_view segment) {
  static constexpr char hex[] = "0123456789ABCDEF";
  const bool dots_only = segment == "." || segment == "..";
  std::string out;
  out.reserve(segment.size());
  for (const char ch : segment) {
    const auto c = static_cast<unsigned char>(ch);
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '~' ||
                            (c == '.' && !dots_only);
    if (unreserved) {
      out += ch;
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 0x0f];
    }
  }
  return out;
}

// "/<version><rest>". Built by appending: GCC 12 warns (-Wrestrict, a false positive) on
// "/" + std::string&& once inlined.
std::string versioned_path(std::string_view version, std::string_view rest) {
  std::string path = "/";
  path += encode_segment(version);
  path += rest;
  return path;
}

std::string dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string describe_body(std::string_view body) {
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r' || body.back() == ' ')) {
    body.remove_suffix(1);
  }
  if (body.size() <= kMaxBodyInMessage) return std::string(body);
  return std::string(body.substr(0, kMaxBodyInMessage)) + "...";
}

http::ClientOptions http_options(const MasterClientOptions& options) {
  http::ClientOptions out;
  out.address = options.address;
  out.timeout = options.timeout;
  return out;
}

}  // namespace

MasterClient::MasterClient(MasterClientOptions options)
    : options_(std::move(options)), http_(http_options(options_)) {
  if (options_.version.empty()) options_.version = "v1";
}

http::Response MasterClient::call(const std::string& method, const std::string& path,
                                  std::string body) const {
  http::Request request;
  request.method = method;
  request.path = path;
  request.headers.emplace_back("Accept", "application/json");
  if (!options_.username.empty()) {
    request.headers.emplace_back("x-openedge-username", options_.username);
    request.headers.emplace_back("x-openedge-password", options_.password);
  }
  if (!body.empty()) request.headers.emplace_back("Content-Type", "application/json");
  request.body = std::move(body);

  http::Response response = http_.send(request);
  if (!response.ok()) {
    std::string message =
        "master API " + method + " " + path + " returned " + std::to_string(response.status);
    if (const std::string detail = describe_body(response.body); !detail.empty()) {
      message += ": " + detail;
    }
    throw ApiError(message, response.status, std::move(response.body));
  }
  return response;
}

json MasterClient::call_json(const std::string& method, const std::string& path,
                             long& status) const {
  http::Response response = call(method, path, {});
  status = response.status;
  try {
    return json::parse(response.body);
  } catch (const json::exception& e) {
    throw ApiError("master API " + method + " " + path + " returned malformed JSON: " + e.what(),
                   response.status, std::move(response.body));
  }
}

std::string MasterClient::instance_path(const std::string& service, const std::string& instance,
                                        const char* action) const {
  if (service.empty()) throw std::invalid_argument("master API: empty service name");
  if (instance.empty()) throw std::invalid_argument("master API: empty instance name");
  return versioned_path(options_.version, "/services/" + encode_segment(service) + "/instances/" +
                                              encode_segment(instance) + "/" + action);
}

Inspect MasterClient::inspect_system() const {
  const std::string path = versioned_path(options_.version, "/system/inspect");
  long status = 0;
  const json document = call_json("GET", path, status);
  try {
    return document.get<Inspect>();
  } catch (const json::exception& e) {
    throw ApiError("master API GET " + path + " returned an invalid inspect document: " + e.what(),
                   status, dump(document));
  }
}

nlohmann::json MasterClient::inspect_document() const {
  const std::string path = versioned_path(options_.version, "/system/inspect");
  long status = 0;
  json document = call_json("GET", path, status);
  if (!document.is_object()) {
    throw ApiError("master API GET " + path + " returned an inspect document that is not an object",
                   status, dump(document));
  }
  return document;
}

void MasterClient::update_system(const UpdateRequest& request) const {
  call("PUT", versioned_path(options_.version, "/system/update"), dump(json(request)));
}

std::string MasterClient::available_port() const {
  const std::string path = versioned_path(options_.version, "/ports/available");
  long status = 0;
  const json document = call_json("GET", path, status);
  if (document.is_object()) {
    if (const auto it = document.find("port"); it != document.end()) {
      if (it->is_string() && !it->get_ref<const std::string&>().empty()) {
        return it->get<std::string>();
      }
      if (it->is_number_unsigned()) return std::to_string(it->get<std::uint64_t>());
    }
  }
  throw ApiError("master API GET " + path + " returned no port: " + describe_body(dump(document)),
                 status, dump(document));
}

void MasterClient::start_instance(const std::string& service, const std::string& instance,
                                  const std::map<std::string, std::string>& env) const {
  call("PUT", instance_path(service, instance, "start"), dump(json(env)));
}

void MasterClient::stop_instance(const std::string& service, const std::string& instance) const {
  call("PUT", instance_path(service, instance, "stop"), {});
}

void MasterClient::report_instance(const std::string& service, const std::string& instance,
                                   const json& stats) const {
  if (!stats.is_object()) {
    throw std::invalid_argument("master API: an instance report must be a JSON object");
  }
  call("PUT", instance_path(service, instance, "report"), dump(stats));
}

}  // namespace baetyl::api
