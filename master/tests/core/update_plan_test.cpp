#include "core/update_plan.h"

#include <gtest/gtest.h>

namespace baetyl::master {
namespace {

ServiceInfo service(const std::string& name, const std::string& image = "img",
                    std::vector<std::string> volumes = {}) {
  ServiceInfo info;
  info.name = name;
  info.image = image;
  info.replica = 1;
  for (const auto& volume : volumes) info.mounts.push_back({volume, "etc/" + volume, false});
  return info;
}

RunningService running(const ServiceInfo& info, std::vector<VolumeInfo> volumes = {}) {
  return {info, std::move(volumes)};
}

std::vector<std::string> names(const std::vector<ServiceInfo>& services) {
  std::vector<std::string> result;
  for (const auto& s : services) result.push_back(s.name);
  return result;
}

TEST(UpdatePlan, KeepsUnchangedStopsRemovedAndChangedStartsNewAndChanged) {
  AppConfig target;
  target.services = {service("added"), service("same"), service("changed", "img:v2")};
  auto plan = plan_update(
      {running(service("same")), running(service("changed")), running(service("removed"))},
      target);
  EXPECT_EQ(plan.keep, (std::vector<std::string>{"same"}));
  EXPECT_EQ(plan.stop, (std::vector<std::string>{"changed", "removed"}));
  EXPECT_EQ(names(plan.start), (std::vector<std::string>{"added", "changed"}));
}

TEST(UpdatePlan, AChangedVolumePathRestartsTheServiceThatMountsIt) {
  AppConfig target;
  target.services = {service("a", "img", {"conf"}), service("b", "img", {"data"})};
  target.volumes = {{"conf", "var/db/baetyl/conf-v2"}, {"data", "var/db/baetyl/data"}};
  auto plan = plan_update({running(service("a", "img", {"conf"}), {{"conf", "var/db/baetyl/conf"}}),
                           running(service("b", "img", {"data"}), {{"data", "var/db/baetyl/data"}})},
                          target);
  EXPECT_EQ(plan.keep, (std::vector<std::string>{"b"}));
  EXPECT_EQ(plan.stop, (std::vector<std::string>{"a"}));
  EXPECT_EQ(names(plan.start), (std::vector<std::string>{"a"}));
}

TEST(UpdatePlan, AChangedVolumeMetaRestartsTheServiceThatMountsIt) {
  AppConfig target;
  target.services = {service("a", "img", {"conf"})};
  VolumeInfo v2{"conf", "var/db/baetyl/conf", {"https://cloud/conf-v2.zip", "md5-2", "v2"}};
  target.volumes = {v2};
  VolumeInfo v1 = v2;
  v1.meta = {"https://cloud/conf-v1.zip", "md5-1", "v1"};
  auto plan = plan_update({running(service("a", "img", {"conf"}), {v1})}, target);
  EXPECT_EQ(plan.stop, (std::vector<std::string>{"a"}));
  plan = plan_update({running(service("a", "img", {"conf"}), {v2})}, target);
  EXPECT_EQ(plan.keep, (std::vector<std::string>{"a"}));
}

TEST(UpdatePlan, AnyDefinitionChangeCounts) {
  ServiceInfo before = service("s");
  ServiceInfo after = before;
  after.restart.backoff.factor = 3;
  AppConfig target;
  target.services = {after};
  EXPECT_EQ(plan_update({running(before)}, target).stop, (std::vector<std::string>{"s"}));
  target.services = {before};
  EXPECT_EQ(plan_update({running(before)}, target).keep, (std::vector<std::string>{"s"}));
}

TEST(UpdatePlan, EmptyTargetStopsEverything) {
  auto plan = plan_update({running(service("a")), running(service("b"))}, AppConfig{});
  EXPECT_EQ(plan.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(plan.start.empty());
}

}  // namespace
}  // namespace baetyl::master
