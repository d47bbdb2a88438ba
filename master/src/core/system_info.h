#pragma once
// Facts about this build and this host for `baetyl version`, inspect and the instances' env.
#include <string>

namespace baetyl::master {

struct BuildInfo {
  std::string version;       // 1.0.0
  std::string git_revision;  // short hash
  std::string compiler;      // g++ 12.2.0
  std::string platform;      // linux/amd64
};

BuildInfo build_info();
// Go-style names, as the original reported them: linux; amd64, arm64, arm, 386...
std::string host_os();
std::string host_arch();
// /etc/machine-id (or dbus's copy), else the host name: stable across reboots.
std::string host_id();
// 32 hex characters from the kernel's random source.
std::string random_token();
// Compares in time independent of where the strings differ.
bool equal_tokens(const std::string& a, const std::string& b);

}  // namespace baetyl::master
