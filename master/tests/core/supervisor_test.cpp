#include "core/supervisor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <thread>

#include <spdlog/sinks/null_sink.h>

namespace baetyl::master {
namespace {

using namespace std::chrono_literals;

TEST(Backoff, GrowsByTheFactorUpToMax) {
  Backoff backoff(BackoffPolicy{1s, 10s, 3});
  EXPECT_EQ(backoff.next(), 1s);
  EXPECT_EQ(backoff.next(), 3s);
  EXPECT_EQ(backoff.next(), 9s);
  EXPECT_EQ(backoff.next(), 10s);
  EXPECT_EQ(backoff.next(), 10s);
  backoff.reset();
  EXPECT_EQ(backoff.next(), 1s);
}

TEST(Backoff, FractionalFactorAndZeroMin) {
  Backoff fractional(BackoffPolicy{1000ms, 5000ms, 1.5});
  EXPECT_EQ(fractional.next(), 1000ms);
  EXPECT_EQ(fractional.next(), 1500ms);
  EXPECT_EQ(fractional.next(), 2250ms);
  Backoff immediate(BackoffPolicy{0ms, 1s, 2});
  EXPECT_EQ(immediate.next(), 0ms);
  EXPECT_EQ(immediate.next(), 0ms);
}

TEST(Backoff, HealthyAfterTenSecondsOrTheLongestWait) {
  EXPECT_EQ(Backoff(BackoffPolicy{1s, 5min, 2}).healthy_after(), 10s);
  EXPECT_EQ(Backoff(BackoffPolicy{100ms, 800ms, 2}).healthy_after(), 800ms);
}

TEST(ShouldRestart, FollowsThePolicy) {
  RestartPolicy always;
  ExitStatus ok{0, 0}, failed{1, 0}, killed{0, 9};
  EXPECT_TRUE(should_restart(always, ok, 100));
  EXPECT_TRUE(should_restart(always, killed, 0));

  RestartPolicy on_failure;
  on_failure.policy = "on-failure";
  EXPECT_FALSE(should_restart(on_failure, ok, 0));
  EXPECT_TRUE(should_restart(on_failure, failed, 0));
  EXPECT_TRUE(should_restart(on_failure, killed, 0));

  RestartPolicy never;
  never.policy = "no";
  EXPECT_FALSE(should_restart(never, failed, 0));

  RestartPolicy limited;
  limited.retry.max = 2;
  EXPECT_TRUE(should_restart(limited, failed, 1));
  EXPECT_FALSE(should_restart(limited, failed, 2));
  limited.retry.max = 0;
  EXPECT_FALSE(should_restart(limited, failed, 0));
}

// An instance that runs until stopped.
class RunningInstance final : public Instance {
 public:
  explicit RunningInstance(std::string name) : name_(std::move(name)) {}
  const std::string& name() const override { return name_; }
  nlohmann::json stats() override { return nlohmann::json::object(); }
  ExitStatus wait() override {
    std::unique_lock lock(mutex_);
    stopped_cv_.wait(lock, [&] { return stopped_; });
    return {0, 15};
  }
  void stop(std::chrono::milliseconds) override {
    std::lock_guard lock(mutex_);
    stopped_ = true;
    stopped_cv_.notify_all();
  }

 private:
  std::string name_;
  std::mutex mutex_;
  std::condition_variable stopped_cv_;
  bool stopped_ = false;
};

// Its first `unavailable` starts find what the instance runs missing.
class LateEngine final : public Engine {
 public:
  explicit LateEngine(int unavailable) : unavailable_(unavailable) {}
  std::string_view mode() const override { return "late"; }
  void clean_leftovers() override {}
  void prepare(const AppConfig&) override {}
  void setup_service(const ServiceInfo&, const std::vector<VolumeInfo>&) override {}
  void teardown_service(const std::string&) override {}
  std::unique_ptr<Instance> start(const InstanceSpec& spec) override {
    if (starts_++ < unavailable_) throw InstanceUnavailable("image 'x' is not there");
    return std::make_unique<RunningInstance>(spec.instance);
  }
  std::atomic<int> starts_{0};

 private:
  const int unavailable_;
};

InstanceSpec quick_spec() {
  InstanceSpec spec;
  spec.service = spec.instance = spec.info.name = "svc";
  spec.info.restart.backoff = BackoffPolicy{50ms, 100ms, 2};
  return spec;
}

std::shared_ptr<spdlog::logger> quiet() {
  return std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
}

bool eventually(const std::function<bool()>& condition) {
  for (int i = 0; i < 500 && !condition(); ++i) std::this_thread::sleep_for(10ms);
  return condition();
}

TEST(InstanceSupervisor, AnUnavailableInstanceIsReportedAndTriedAgainInsteadOfFailingTheStart) {
  LateEngine engine(2);
  InstanceSupervisor supervisor(engine, quick_spec(), quiet());
  ASSERT_NO_THROW(supervisor.start());
  auto entry = supervisor.inspect();
  EXPECT_EQ(entry["status"], "restarting");
  EXPECT_EQ(entry["error"], "image 'x' is not there");
  ASSERT_TRUE(
      eventually([&] { return supervisor.status() == InstanceSupervisor::Status::kRunning; }));
  EXPECT_EQ(engine.starts_, 3);
  EXPECT_EQ(supervisor.restarts(), 2);
  EXPECT_FALSE(supervisor.inspect().contains("error"));
  supervisor.stop(0ms);
  EXPECT_EQ(supervisor.status(), InstanceSupervisor::Status::kExited);
}

TEST(InstanceSupervisor, AnUnavailableInstanceFollowsTheRestartPolicy) {
  LateEngine engine(100);
  auto spec = quick_spec();
  spec.info.restart.policy = "no";
  InstanceSupervisor supervisor(engine, spec, quiet());
  ASSERT_NO_THROW(supervisor.start());
  ASSERT_TRUE(
      eventually([&] { return supervisor.status() == InstanceSupervisor::Status::kExited; }));
  EXPECT_EQ(engine.starts_, 1);
  EXPECT_THAT(supervisor.inspect().value("error", ""), ::testing::HasSubstr("not there"));
  supervisor.stop(0ms);
}

TEST(InstanceSupervisor, OtherStartFailuresStillFailTheStart) {
  class Failing final : public Engine {
   public:
    std::string_view mode() const override { return "failing"; }
    void clean_leftovers() override {}
    void prepare(const AppConfig&) override {}
    void setup_service(const ServiceInfo&, const std::vector<VolumeInfo>&) override {}
    void teardown_service(const std::string&) override {}
    std::unique_ptr<Instance> start(const InstanceSpec&) override {
      throw std::runtime_error("bad port");
    }
  } engine;
  InstanceSupervisor supervisor(engine, quick_spec(), quiet());
  EXPECT_THROW(supervisor.start(), std::runtime_error);
}

}  // namespace
}  // namespace baetyl::master
