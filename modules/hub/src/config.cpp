#include "config.h"

#include <functional>
#include <set>
#include <stdexcept>

#include "baetyl/mqtt/codec.h"
#include "baetyl/mqtt/topic.h"

namespace baetyl::hub {
namespace {

const mqtt::TopicLimits kLimits{kMaxTopicLength, kMaxTopicLevels};

void check_filters(config::Reader& r, std::string_view key, const std::vector<std::string>& list) {
  for (std::size_t i = 0; i < list.size(); ++i) {
    std::string problem = mqtt::check_topic_filter(list[i], kLimits);
    r.check(problem.empty(), std::string(key) + "[" + std::to_string(i) + "]",
            "'" + list[i] + "': " + problem);
  }
}

}  // namespace

ListenAddress parse_listen_address(const std::string& url) {
  ListenAddress a;
  a.url = url;
  auto sep = url.find("://");
  if (sep == std::string::npos)
    throw std::invalid_argument("missing scheme (tcp://, ssl://, ws://, wss://)");
  a.scheme = url.substr(0, sep);
  if (a.scheme != "tcp" && a.scheme != "ssl" && a.scheme != "ws" && a.scheme != "wss") {
    throw std::invalid_argument("unknown scheme '" + a.scheme + "' (tcp, ssl, ws or wss)");
  }
  std::string rest = url.substr(sep + 3);
  auto slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  if (slash != std::string::npos) {
    a.path = rest.substr(slash);
    if (!a.websocket()) throw std::invalid_argument("a path is only allowed for ws:// and wss://");
  } else {
    a.path = "/";
  }
  std::string port;
  if (!hostport.empty() && hostport.front() == '[') {
    auto close = hostport.find(']');
    if (close == std::string::npos) throw std::invalid_argument("unterminated '[' in the host");
    a.host = hostport.substr(1, close - 1);
    if (close + 1 >= hostport.size() || hostport[close + 1] != ':') {
      throw std::invalid_argument("missing port");
    }
    port = hostport.substr(close + 2);
  } else {
    auto colon = hostport.rfind(':');
    if (colon == std::string::npos) throw std::invalid_argument("missing port");
    a.host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) > 65535) {
    throw std::invalid_argument("invalid port '" + port + "'");
  }
  a.port = static_cast<std::uint16_t>(std::stoul(port));
  return a;
}

void describe(config::Reader& r, Certificate& c) {
  r.field("ca", c.ca);
  r.field("key", c.key);
  r.field("cert", c.cert);
  r.field("useUsernameAsIdentity", c.use_username_as_identity);
  r.check(c.cert.empty() == c.key.empty(), c.cert.empty() ? "cert" : "key",
          "cert and key must be given together");
}

void describe(config::Reader& r, Permission& p) {
  r.field("action", p.action).required().one_of({"pub", "sub"});
  r.field("permit", p.permit);
  r.field("deny", p.deny);
  check_filters(r, "permit", p.permit);
  check_filters(r, "deny", p.deny);
}

void describe(config::Reader& r, Principal& p) {
  r.field("username", p.username).required().not_empty();
  r.field("password", p.password);
  r.field("permissions", p.permissions);
}

void describe(config::Reader& r, RouteEnd& e) {
  r.field("topic", e.topic).required().not_empty();
  r.field("qos", e.qos).min(0).max(2);
}

void describe(config::Reader& r, Route& route) {
  r.field("source", route.source).required();
  r.field("target", route.target).required();
  if (!route.source.topic.empty()) {
    std::string problem = mqtt::check_topic_filter(route.source.topic, kLimits);
    r.check(problem.empty(), "source.topic", "'" + route.source.topic + "': " + problem);
  }
  if (!route.target.topic.empty()) {
    std::string problem = mqtt::check_topic_name(route.target.topic, kLimits);
    if (problem.empty() && is_reserved_topic(route.target.topic)) {
      problem = "$SYS topics are reserved for the hub";
    }
    r.check(problem.empty(), "target.topic", "'" + route.target.topic + "': " + problem);
  }
}

void describe(config::Reader& r, HubConfig& c) {
  r.field("listen", c.listen).required().not_empty();
  std::set<std::string> seen;
  for (std::size_t i = 0; i < c.listen.size(); ++i) {
    const std::string key = "listen[" + std::to_string(i) + "]";
    try {
      c.listeners.push_back(parse_listen_address(c.listen[i]));
      const auto& a = c.listeners.back();
      if (!seen.insert(a.host + "|" + std::to_string(a.port)).second) {
        r.error(key, "'" + c.listen[i] + "': address and port listed twice");
      }
    } catch (const std::invalid_argument& e) {
      r.error(key, "'" + c.listen[i] + "': " + e.what());
    }
  }
  r.field("certificate", c.certificate);
  for (const auto& a : c.listeners) {
    if (a.tls() && (c.certificate.cert.empty() || c.certificate.key.empty())) {
      r.error("certificate", "cert and key are required by the listener '" + a.url + "'");
      break;
    }
  }

  r.field("principals", c.principals);
  std::set<std::string> names;
  for (std::size_t i = 0; i < c.principals.size(); ++i) {
    if (!names.insert(c.principals[i].username).second) {
      r.error("principals[" + std::to_string(i) + "].username",
              "'" + c.principals[i].username + "' is listed twice");
    }
  }

  r.field("subscriptions", c.subscriptions)
      .check([](const std::vector<Route>& routes) { return check_routes(routes).empty(); },
             check_routes(c.subscriptions));

  r.section("message", [&](config::Reader& m) {
    m.section("length", [&](config::Reader& l) {
      l.field("max", c.message.length_max)
          .min(config::ByteSize{1})
          .max(config::ByteSize{mqtt::kMaxRemainingLength});
    });
    m.section("ingress", [&](config::Reader& in) {
      in.section("qos0", [&](config::Reader& q) {
        q.section("buffer", [&](config::Reader& b) {
          b.field("size", c.message.ingress.qos0_buffer_size).min(1);
        });
      });
      in.section("qos1", [&](config::Reader& q) {
        q.section("buffer", [&](config::Reader& b) {
          b.field("size", c.message.ingress.qos1_buffer_size).min(1);
        });
        q.section("batch", [&](config::Reader& b) {
          b.field("max", c.message.ingress.qos1_batch_max).min(1);
        });
        q.section("cleanup", [&](config::Reader& b) {
          b.field("retention", c.message.ingress.qos1_cleanup_retention)
              .min(std::chrono::milliseconds(1));
          b.field("interval", c.message.ingress.qos1_cleanup_interval)
              .min(std::chrono::milliseconds(1));
        });
      });
    });
    m.section("egress", [&](config::Reader& out) {
      out.section("qos0", [&](config::Reader& q) {
        q.section("buffer", [&](config::Reader& b) {
          b.field("size", c.message.egress.qos0_buffer_size).min(1);
          b.field("bytes", c.message.egress.qos0_buffer_bytes).min(config::ByteSize{1});
        });
      });
      out.section("qos1", [&](config::Reader& q) {
        q.section("buffer", [&](config::Reader& b) {
          b.field("size", c.message.egress.qos1_buffer_size).min(1).max(65535);
        });
        q.section("queue", [&](config::Reader& b) {
          b.field("size", c.message.egress.qos1_queue_size).min(1);
          b.field("bytes", c.message.egress.qos1_queue_bytes).min(config::ByteSize{1});
        });
        q.section("batch", [&](config::Reader& b) {
          b.field("max", c.message.egress.qos1_batch_max).min(1);
        });
        q.section("retry", [&](config::Reader& b) {
          b.field("interval", c.message.egress.qos1_retry_interval)
              .min(std::chrono::milliseconds(1));
        });
      });
    });
    m.section("offset", [&](config::Reader& o) {
      o.section("buffer",
                [&](config::Reader& b) { b.field("size", c.message.offset.buffer_size).min(1); });
      o.section("batch",
                [&](config::Reader& b) { b.field("max", c.message.offset.batch_max).min(1); });
    });
  });

  r.section("status", [&](config::Reader& s) {
    s.section("logging", [&](config::Reader& l) {
      l.field("enable", c.status.logging_enable);
      l.field("interval", c.status.logging_interval).min(std::chrono::milliseconds(1));
    });
  });
  r.section("sys", [&](config::Reader& s) {
    s.field("interval", c.sys.interval).min(std::chrono::milliseconds(0));
  });
  r.section("report", [&](config::Reader& s) {
    s.field("interval", c.report.interval).min(std::chrono::milliseconds(100));
  });
  r.section("storage", [&](config::Reader& s) { s.field("dir", c.storage_dir).not_empty(); });
  r.section("shutdown", [&](config::Reader& s) {
    s.field("timeout", c.shutdown_timeout).min(std::chrono::milliseconds(1));
  });
  r.field("logger", c.logger);
}

bool is_reserved_topic(std::string_view topic) {
  return topic == "$SYS" || topic.starts_with("$SYS/");
}

std::string check_routes(const std::vector<Route>& routes) {
  for (std::size_t i = 0; i < routes.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (routes[i].source.topic == routes[j].source.topic &&
          routes[i].target.topic == routes[j].target.topic) {
        return "routes [" + std::to_string(j) + "] and [" + std::to_string(i) +
               "] are duplicates ('" + routes[i].source.topic + "' -> '" + routes[i].target.topic +
               "')";
      }
    }
  }
  // Route j follows route i when i's target topic matches j's source filter; a cycle in that
  // graph would republish a message forever.
  const std::size_t n = routes.size();
  std::vector<int> state(n, 0);  // 0 unvisited, 1 on the current path, 2 done
  std::vector<std::size_t> path;
  std::function<std::string(std::size_t)> visit = [&](std::size_t i) -> std::string {
    state[i] = 1;
    path.push_back(i);
    for (std::size_t j = 0; j < n; ++j) {
      if (routes[i].target.topic.empty() || routes[j].source.topic.empty()) continue;
      if (!mqtt::topic_matches(routes[j].source.topic, routes[i].target.topic)) continue;
      if (state[j] == 1) {
        std::string cycle;
        bool on = false;
        for (auto k : path) {
          if (k == j) on = true;
          if (on) cycle += "'" + routes[k].source.topic + "' -> ";
        }
        return "routes form a cycle: " + cycle + "'" + routes[j].source.topic + "'";
      }
      if (state[j] == 0) {
        if (auto e = visit(j); !e.empty()) return e;
      }
    }
    path.pop_back();
    state[i] = 2;
    return {};
  };
  for (std::size_t i = 0; i < n; ++i) {
    if (state[i] == 0) {
      if (auto e = visit(i); !e.empty()) return e;
    }
  }
  return {};
}

}  // namespace baetyl::hub
