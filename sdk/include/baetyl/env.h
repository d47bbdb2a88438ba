#pragma once
// The environment contract between the master and the service instances it starts.
//
// The master sets every variable under its BAETYL_* name and under the legacy OPENEDGE_* name of
// Baetyl's predecessor, so modules written for either keep working. Modules read the BAETYL_*
// name first, then the legacy one.
#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace baetyl::env {

struct Variable {
  std::string_view name;    // BAETYL_*
  std::string_view legacy;  // OPENEDGE_*
};

inline constexpr Variable kHostOs{"BAETYL_HOST_OS", "OPENEDGE_HOST_OS"};
inline constexpr Variable kHostId{"BAETYL_HOST_ID", "OPENEDGE_HOST_ID"};
inline constexpr Variable kMasterApiAddress{"BAETYL_MASTER_API_ADDRESS", "OPENEDGE_MASTER_API"};
inline constexpr Variable kMasterApiVersion{"BAETYL_MASTER_API_VERSION",
                                            "OPENEDGE_MASTER_API_VERSION"};
// "docker" or "native".
inline constexpr Variable kServiceMode{"BAETYL_SERVICE_MODE", "OPENEDGE_RUNNING_MODE"};
inline constexpr Variable kServiceName{"BAETYL_SERVICE_NAME", "OPENEDGE_SERVICE_NAME"};
inline constexpr Variable kServiceToken{"BAETYL_SERVICE_TOKEN", "OPENEDGE_SERVICE_TOKEN"};
inline constexpr Variable kServiceInstanceName{"BAETYL_SERVICE_INSTANCE_NAME",
                                               "OPENEDGE_SERVICE_INSTANCE_NAME"};
inline constexpr Variable kServiceInstanceAddress{"BAETYL_SERVICE_INSTANCE_ADDRESS",
                                                  "OPENEDGE_SERVICE_INSTANCE_ADDRESS"};

inline constexpr std::array<Variable, 9> kAllVariables{
    kHostOs,      kHostId,      kMasterApiAddress,    kMasterApiVersion,      kServiceMode,
    kServiceName, kServiceToken, kServiceInstanceName, kServiceInstanceAddress};

// The master API version when BAETYL_MASTER_API_VERSION is unset.
inline constexpr std::string_view kDefaultApiVersion = "v1";

// The value under the BAETYL_* name, else under the legacy name; an empty value counts as unset.
std::optional<std::string> get(const Variable& variable);
std::string get_or(const Variable& variable, std::string fallback);

// For the master, which sets these for every instance: each value under both names, BAETYL_*
// first, in the order given.
std::vector<std::pair<std::string, std::string>> export_both_names(
    const std::vector<std::pair<Variable, std::string>>& values);

// The master API address when BAETYL_MASTER_API_ADDRESS is unset: unix:///var/run/baetyl.sock on
// Linux, tcp://127.0.0.1:50050 elsewhere.
std::string default_master_api_address();

}  // namespace baetyl::env
