#include "core/system_info.h"

#include <sys/random.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <array>
#include <fstream>
#include <stdexcept>

namespace baetyl::master {

BuildInfo build_info() {
  BuildInfo info;
  info.version = BAETYL_VERSION;
  info.git_revision = BAETYL_GIT_REVISION;
#if defined(__clang__)
  info.compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
  info.compiler = "g++ " __VERSION__;
#else
  info.compiler = "unknown";
#endif
  info.platform = host_os() + "/" + host_arch();
  return info;
}

std::string host_os() {
  struct utsname name {};
  if (::uname(&name) != 0) return "linux";
  std::string os = name.sysname;
  for (auto& c : os) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return os;
}

std::string host_arch() {
  struct utsname name {};
  if (::uname(&name) != 0) return "unknown";
  std::string machine = name.machine;
  if (machine == "x86_64") return "amd64";
  if (machine == "aarch64" || machine == "arm64") return "arm64";
  if (machine.rfind("armv", 0) == 0) return "arm";
  if (machine == "i386" || machine == "i686") return "386";
  return machine;
}

std::string host_id() {
  for (const char* path : {"/etc/machine-id", "/var/lib/dbus/machine-id"}) {
    std::ifstream in(path);
    std::string id;
    if (in && std::getline(in, id) && !id.empty()) return id;
  }
  std::array<char, 256> name{};
  if (::gethostname(name.data(), name.size() - 1) == 0) return name.data();
  return "unknown";
}

std::string random_token() {
  std::array<unsigned char, 16> bytes{};
  std::size_t filled = 0;
  while (filled < bytes.size()) {
    ssize_t n = ::getrandom(bytes.data() + filled, bytes.size() - filled, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("cannot read random bytes for a service token");
    }
    filled += static_cast<std::size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string token;
  for (auto byte : bytes) {
    token += kHex[byte >> 4];
    token += kHex[byte & 0xf];
  }
  return token;
}

bool equal_tokens(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

}  // namespace baetyl::master
