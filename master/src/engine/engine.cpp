#include "engine/engine.h"

#include <string.h>

namespace baetyl::master {

std::string ExitStatus::describe() const {
  if (signal != 0) {
    const char* description = ::sigdescr_np(signal);
    return "killed by signal " + std::to_string(signal) + " (" +
           (description ? description : "unknown signal") + ")";
  }
  if (code < 0) return "exit status unknown";
  return "exit code " + std::to_string(code);
}

}  // namespace baetyl::master
