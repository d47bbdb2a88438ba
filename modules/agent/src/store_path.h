#pragma once
// Volume paths as the cloud names them (relative to the master's work directory) and where the
// agent finds them: a volume the agent downloads lies strictly inside var/db/baetyl, which the
// agent sees at kStoreDir.
#include <optional>
#include <string>
#include <vector>

namespace baetyl::agent {

// The part of `path` below var/db/baetyl ("app/v2" for "var/db/baetyl/app/v2/"), with empty and
// "." components dropped; nullopt with `problem` set when the path is absolute, has a ".."
// component, is not strictly inside var/db/baetyl, has a component starting with "." (the
// agent's temporary files), or names one of the master's own files there (application.yml,
// ota.log, ...) or the agent's record.
std::optional<std::string> store_relative(const std::string& path, std::string* problem);

// The components of a '/'-separated path, empty and "." ones dropped ("a//./b/" gives a, b);
// ".." is kept, for the caller to judge.
std::vector<std::string> path_components(const std::string& path);

// Whether one of the two relative paths ("a/b") is the other or lies inside it.
bool paths_overlap(const std::string& a, const std::string& b);

}  // namespace baetyl::agent
