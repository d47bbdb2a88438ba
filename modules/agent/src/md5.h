#pragma once
#include <filesystem>
#include <string>

namespace baetyl::agent {

// The base64 of the MD5 digest of the file's content, as the cloud gives a volume's md5 (not
// hex). Throws std::runtime_error naming the file when it cannot be read.
std::string file_md5_base64(const std::filesystem::path& file);

}  // namespace baetyl::agent
