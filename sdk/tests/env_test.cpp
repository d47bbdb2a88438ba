#include "baetyl/env.h"

#include <cstdlib>
#include <map>
#include <set>
#include <string>

#include <gtest/gtest.h>

namespace baetyl::env {
namespace {

// Clears every variable of the contract for one test and restores the previous values after it.
class EnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const auto& variable : kAllVariables) {
      for (auto name : {variable.name, variable.legacy}) {
        std::string key(name);
        if (const char* value = std::getenv(key.c_str())) saved_[key] = value;
        ::unsetenv(key.c_str());
      }
    }
  }

  void TearDown() override {
    for (const auto& variable : kAllVariables) {
      for (auto name : {variable.name, variable.legacy}) ::unsetenv(std::string(name).c_str());
    }
    for (const auto& [key, value] : saved_) ::setenv(key.c_str(), value.c_str(), 1);
  }

  static void set(std::string_view name, const std::string& value) {
    ::setenv(std::string(name).c_str(), value.c_str(), 1);
  }

 private:
  std::map<std::string, std::string> saved_;
};

TEST_F(EnvTest, NamesFollowTheDocs) {
  EXPECT_EQ(kMasterApiAddress.name, "BAETYL_MASTER_API_ADDRESS");
  EXPECT_EQ(kMasterApiAddress.legacy, "OPENEDGE_MASTER_API");
  EXPECT_EQ(kServiceMode.legacy, "OPENEDGE_RUNNING_MODE");
  std::set<std::string_view> names;
  for (const auto& variable : kAllVariables) {
    EXPECT_TRUE(variable.name.starts_with("BAETYL_")) << variable.name;
    EXPECT_TRUE(variable.legacy.starts_with("OPENEDGE_")) << variable.legacy;
    names.insert(variable.name);
    names.insert(variable.legacy);
  }
  EXPECT_EQ(names.size(), 2 * kAllVariables.size());
}

TEST_F(EnvTest, UnsetGivesNothing) {
  EXPECT_EQ(get(kServiceName), std::nullopt);
  EXPECT_EQ(get_or(kServiceName, "fallback"), "fallback");
}

TEST_F(EnvTest, BaetylNameWinsOverLegacy) {
  set(kServiceName.name, "new");
  set(kServiceName.legacy, "old");
  EXPECT_EQ(get(kServiceName), "new");
  EXPECT_EQ(get_or(kServiceName, "fallback"), "new");
}

TEST_F(EnvTest, LegacyNameAlone) {
  set(kMasterApiAddress.legacy, "tcp://127.0.0.1:50050");
  EXPECT_EQ(get(kMasterApiAddress), "tcp://127.0.0.1:50050");
}

TEST_F(EnvTest, EmptyValueCountsAsUnset) {
  set(kServiceToken.name, "");
  set(kServiceToken.legacy, "token");
  EXPECT_EQ(get(kServiceToken), "token");
  set(kServiceToken.legacy, "");
  EXPECT_EQ(get(kServiceToken), std::nullopt);
  EXPECT_EQ(get_or(kServiceToken, "none"), "none");
}

TEST_F(EnvTest, VariablesAreIndependent) {
  set(kHostOs.name, "linux");
  EXPECT_EQ(get(kHostOs), "linux");
  EXPECT_EQ(get(kHostId), std::nullopt);
}

TEST_F(EnvTest, ExportBothNames) {
  auto exported = export_both_names({{kServiceName, "timer"}, {kMasterApiVersion, "v1"}});
  std::vector<std::pair<std::string, std::string>> expected{
      {"BAETYL_SERVICE_NAME", "timer"},
      {"OPENEDGE_SERVICE_NAME", "timer"},
      {"BAETYL_MASTER_API_VERSION", "v1"},
      {"OPENEDGE_MASTER_API_VERSION", "v1"},
  };
  EXPECT_EQ(exported, expected);
  EXPECT_TRUE(export_both_names({}).empty());
}

TEST_F(EnvTest, ExportedValuesReadBack) {
  std::vector<std::pair<Variable, std::string>> values;
  for (const auto& variable : kAllVariables) {
    values.emplace_back(variable, "value of " + std::string(variable.name));
  }
  auto exported = export_both_names(values);
  ASSERT_EQ(exported.size(), 2 * kAllVariables.size());
  // A module that only knows the legacy names sees the same values.
  for (const auto& [name, value] : exported) {
    if (name.starts_with("OPENEDGE_")) set(name, value);
  }
  for (const auto& variable : kAllVariables) {
    EXPECT_EQ(get(variable), "value of " + std::string(variable.name));
  }
}

TEST_F(EnvTest, Defaults) {
  EXPECT_EQ(kDefaultApiVersion, "v1");
#if defined(__linux__)
  EXPECT_EQ(default_master_api_address(), "unix:///var/run/baetyl.sock");
#else
  EXPECT_EQ(default_master_api_address(), "tcp://127.0.0.1:50050");
#endif
  EXPECT_EQ(get_or(kMasterApiAddress, default_master_api_address()),
            default_master_api_address());
  EXPECT_EQ(get_or(kMasterApiVersion, std::string(kDefaultApiVersion)), "v1");
}

}  // namespace
}  // namespace baetyl::env
