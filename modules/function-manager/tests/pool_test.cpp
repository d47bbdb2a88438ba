// InstancePool against real baetyl-function-sql processes.
#include "pool.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <csignal>
#include <future>
#include <thread>

#include "sql_launcher.h"

namespace baetyl::function {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::shared_ptr<spdlog::logger> test_logger() {
  static auto logger = spdlog::stderr_color_mt("pool-test");
  return logger;
}

FunctionConfig sql_function(int min, int max, std::chrono::milliseconds idle = 10min,
                            std::chrono::milliseconds evict = 1min, int calls = 16) {
  FunctionConfig f;
  f.name = "sql-filter";
  f.service = "function-sql";
  f.instance.min = min;
  f.instance.max = max;
  f.instance.idle_time = idle;
  f.instance.evict_time = evict;
  f.instance.calls = calls;
  f.timeout = 5s;
  return f;
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 10s) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return condition();
}

baetyl::FunctionMessage message(const std::string& payload,
                                const std::string& function = "sql-filter") {
  baetyl::FunctionMessage m;
  m.set_qos(1);
  m.set_topic("t");
  m.set_payload(payload);
  m.set_functionname(function);
  return m;
}

TEST(InstancePool, StartsOnDemandCallsAndReuses) {
  testing::SqlLauncher launcher;
  InstancePool pool(sql_function(0, 1), launcher, test_logger());
  pool.start();
  EXPECT_EQ(pool.size(), 0);
  auto started = Clock::now();
  auto instance = pool.acquire(Clock::now() + 5s);
  // Readiness is waited for actively, not with gRPC's one-second reconnect backoff.
  EXPECT_LT(Clock::now() - started, 900ms);
  ASSERT_TRUE(instance);
  EXPECT_EQ(instance->name, "function-sql.sql-filter.1");
  baetyl::FunctionMessage reply;
  auto status = pool.call(*instance, message(R"({"id":1})"), reply);
  ASSERT_TRUE(status.ok()) << status.error_message();
  auto out = nlohmann::json::parse(reply.payload());
  EXPECT_EQ(out["id"], 1);
  EXPECT_EQ(out["topic"], "t");
  EXPECT_EQ(out["qos"], 1);
  status = pool.call(*instance, message(R"({"id":20})"), reply);
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(reply.payload().empty());
  pool.release(instance, true);
  auto again = pool.acquire(Clock::now() + 5s);
  EXPECT_EQ(again, instance);
  EXPECT_EQ(launcher.starts(), 1);
  pool.release(again, true);
  pool.close();
  EXPECT_EQ(launcher.running(), 0);
}

TEST(InstancePool, ExhaustedWaitIsBoundedAndServedByRelease) {
  testing::SqlLauncher launcher;
  InstancePool pool(sql_function(0, 2, 10min, 1min, 1), launcher, test_logger());
  pool.start();
  auto a = pool.acquire(Clock::now() + 5s);
  auto b = pool.acquire(Clock::now() + 5s);
  EXPECT_NE(a->name, b->name);
  EXPECT_EQ(pool.size(), 2);
  auto started = Clock::now();
  EXPECT_THROW(pool.acquire(Clock::now() + 200ms), std::runtime_error);
  auto waited = Clock::now() - started;
  EXPECT_GE(waited, 200ms);
  EXPECT_LT(waited, 2s);
  auto waiter = std::async(std::launch::async, [&] { return pool.acquire(Clock::now() + 5s); });
  EXPECT_EQ(waiter.wait_for(50ms), std::future_status::timeout);
  pool.release(a, true);
  EXPECT_EQ(waiter.get(), a);
  EXPECT_EQ(launcher.starts(), 2);
  pool.release(a, true);
  pool.release(b, true);
}

TEST(InstancePool, SpreadsCallsOverNewInstancesThenSharesThemUpToTheBound) {
  testing::SqlLauncher launcher;
  InstancePool pool(sql_function(0, 2, 10min, 1min, 2), launcher, test_logger());
  pool.start();
  auto a = pool.acquire(Clock::now() + 5s);
  // The second call goes to `a` while a second instance starts in the background ...
  auto b = pool.acquire(Clock::now() + 5s);
  EXPECT_EQ(b, a);
  EXPECT_EQ(pool.size(), 2);
  // ... which takes the next call once ready.
  auto c = pool.acquire(Clock::now() + 5s);
  EXPECT_NE(c, a);
  auto d = pool.acquire(Clock::now() + 5s);
  EXPECT_EQ(d, c);
  EXPECT_THROW(pool.acquire(Clock::now() + 100ms), std::runtime_error);
  EXPECT_EQ(launcher.starts(), 2);
  for (auto& i : {a, b, c, d}) pool.release(i, true);
  EXPECT_EQ(pool.idle(), 2);
}

TEST(InstancePool, AsyncCallsInFlightOnOneInstance) {
  testing::SqlLauncher launcher;
  InstancePool pool(sql_function(0, 1, 10min, 1min, 8), launcher, test_logger());
  pool.start();
  struct Pending {
    std::unique_ptr<grpc::ClientContext> context;
    baetyl::FunctionMessage request, reply;
    std::promise<grpc::Status> done;
  };
  std::vector<std::unique_ptr<Pending>> calls;
  std::vector<std::shared_ptr<Instance>> slots;
  for (int i = 0; i < 8; ++i) {
    slots.push_back(pool.acquire(Clock::now() + 5s));
    auto call = std::make_unique<Pending>();
    call->request = message(R"({"id":)" + std::to_string(i) + "}");
    pool.call_async(*slots.back(), call->context, call->request, call->reply,
                    [p = call.get()](grpc::Status s) { p->done.set_value(s); });
    calls.push_back(std::move(call));
  }
  EXPECT_EQ(launcher.starts(), 1);
  for (int i = 0; i < 8; ++i) {
    auto status = calls[i]->done.get_future().get();
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(nlohmann::json::parse(calls[i]->reply.payload())["id"], i);
  }
  for (auto& s : slots) pool.release(s, true);
  EXPECT_EQ(pool.idle(), 1);
}

TEST(InstancePool, FailedInstanceTakesNoNewCallsAndStopsAfterItsLastCall) {
  testing::SqlLauncher launcher;
  InstancePool pool(sql_function(0, 1, 10min, 1min, 4), launcher, test_logger());
  pool.start();
  auto first = pool.acquire(Clock::now() + 5s);
  auto second = pool.acquire(Clock::now() + 5s);
  ASSERT_EQ(first, second);
  pool.release(first, false);
  // Still held by `second`: not stopped, and no new call goes to it.
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(launcher.running(first->name));
  EXPECT_THROW(pool.acquire(Clock::now() + 200ms), std::runtime_error);
  pool.release(second, false);  // a second failure report is harmless
  auto replacement = pool.acquire(Clock::now() + 5s);
  EXPECT_NE(replacement, first);
  EXPECT_EQ(replacement->name, "function-sql.sql-filter.1");
  EXPECT_EQ(launcher.starts(), 2);
  pool.release(replacement, true);
}

TEST(InstancePool, KeepsMinWarmAndEvictsIdleDownToMin) {
  testing::SqlLauncher launcher;
  InstancePool pool(sql_function(1, 3, 300ms, 50ms, 1), launcher, test_logger());
  pool.start();
  EXPECT_EQ(pool.size(), 1);
  EXPECT_EQ(launcher.running(), 1);
  std::vector<std::shared_ptr<Instance>> held;
  for (int i = 0; i < 3; ++i) held.push_back(pool.acquire(Clock::now() + 5s));
  EXPECT_EQ(pool.size(), 3);
  EXPECT_EQ(launcher.running(), 3);
  for (auto& i : held) pool.release(i, true);
  held.clear();
  EXPECT_TRUE(eventually([&] { return pool.size() == 1; }));
  EXPECT_EQ(launcher.running(), 1);
  // And stays at min.
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(pool.size(), 1);
}

TEST(InstancePool, FailedInstanceIsStoppedAndReplaced) {
  testing::SqlLauncher launcher;
  InstancePool pool(sql_function(0, 1), launcher, test_logger());
  pool.start();
  auto instance = pool.acquire(Clock::now() + 5s);
  launcher.kill(instance->name);
  baetyl::FunctionMessage reply;
  EXPECT_FALSE(pool.call(*instance, message(R"({"id":1})"), reply).ok());
  pool.release(instance, false);
  // The replacement takes the same id once the old one is stopped.
  auto replacement = pool.acquire(Clock::now() + 5s);
  EXPECT_EQ(replacement->name, "function-sql.sql-filter.1");
  EXPECT_NE(replacement, instance);
  EXPECT_TRUE(pool.call(*replacement, message(R"({"id":2})"), reply).ok());
  EXPECT_EQ(launcher.starts(), 2);
  pool.release(replacement, true);
}

// The SQL runtime serves CallStream: the calls of an instance share one stream. One that is not
// answered within the timeout fails with DEADLINE_EXCEEDED, and the others on the stream with it.
TEST(InstancePool, CallsOnAStreamFailAtTheDeadlineOfAHungInstance) {
  testing::SqlLauncher launcher;
  auto f = sql_function(0, 1, 10min, 1min, 4);
  f.timeout = 500ms;
  InstancePool pool(f, launcher, test_logger());
  pool.start();
  auto instance = pool.acquire(Clock::now() + 5s);
  struct Pending {
    std::unique_ptr<grpc::ClientContext> context;
    baetyl::FunctionMessage request, reply;
    std::promise<grpc::Status> done;
  };
  auto send = [&](int id) {
    auto call = std::make_unique<Pending>();
    call->request = message(R"({"id":)" + std::to_string(id) + "}");
    pool.call_async(*instance, call->context, call->request, call->reply,
                    [p = call.get()](grpc::Status s) { p->done.set_value(s); });
    return call;
  };
  auto first_call = send(0);  // the stream is opened once the first call ended
  ASSERT_TRUE(first_call->done.get_future().get().ok());
  EXPECT_NE(first_call->context, nullptr);
  ASSERT_TRUE(eventually([&] { return instance->stream() && instance->stream()->is_open(); }))
      << "the SQL runtime serves CallStream";
  auto answered = send(1);
  ASSERT_TRUE(answered->done.get_future().get().ok());
  EXPECT_EQ(answered->context, nullptr);  // on the stream, not a unary call
  EXPECT_EQ(nlohmann::json::parse(answered->reply.payload())["id"], 1);

  launcher.signal(instance->name, SIGSTOP);
  auto started = Clock::now();
  auto first = send(2);
  auto second = send(3);
  auto status = first->done.get_future().get();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_GE(Clock::now() - started, 450ms);
  EXPECT_LT(Clock::now() - started, 3s);
  EXPECT_NE(second->done.get_future().get().error_code(), grpc::StatusCode::OK);
  EXPECT_TRUE(instance->stream()->broken());
  launcher.signal(instance->name, SIGCONT);
  pool.release(instance, false);
  auto replacement = pool.acquire(Clock::now() + 5s);
  baetyl::FunctionMessage reply;
  EXPECT_TRUE(pool.call(*replacement, message(R"({"id":4})"), reply).ok());
  pool.release(replacement, true);
}

// One asynchronous call through `pool`, waited for; `on_stream` tells whether it went on the
// instance's call stream (no unary context was made).
grpc::Status call_through(InstancePool& pool, Instance& instance, const std::string& payload,
                          bool* on_stream = nullptr) {
  std::unique_ptr<grpc::ClientContext> context;
  baetyl::FunctionMessage request = message(payload), reply;
  std::promise<grpc::Status> done;
  pool.call_async(instance, context, request, reply, [&](grpc::Status s) { done.set_value(s); });
  auto status = done.get_future().get();
  if (on_stream != nullptr) *on_stream = context == nullptr;
  return status;
}

std::string padded_payload(std::size_t pad) {
  return R"({"id":1,"pad":")" + std::string(pad, 'x') + "\"}";
}

constexpr char kRuntimeBound1k[] = "server:\n  message:\n    length:\n      max: 1k\n";

// A pool of `function` on SQL runtimes with `runtime_config`, and its one instance, whose call
// stream open() opens (it is opened after a first call).
struct StreamingPool {
  StreamingPool(const FunctionConfig& function, const std::string& runtime_config)
      : launcher("select qos() as qos, topic() as topic, * where id < 10", runtime_config),
        pool(function, launcher, test_logger()) {
    pool.start();
    instance = pool.acquire(Clock::now() + 5s);
  }
  ~StreamingPool() { pool.release(instance, true); }
  bool open() {
    return call_through(pool, *instance, padded_payload(10)).ok() &&
           eventually([&] { return instance->stream() && instance->stream()->is_open(); });
  }
  grpc::Status call(const std::string& payload, bool& on_stream) {
    return call_through(pool, *instance, payload, &on_stream);
  }

  testing::SqlLauncher launcher;
  InstancePool pool;
  std::shared_ptr<Instance> instance;
};

// A call too large for the manager's bound fails alone with RESOURCE_EXHAUSTED, as a unary call
// would: the instance and its stream stay for the next calls.
TEST(InstancePool, CallsAboveTheManagersBoundOnAStreamInstanceFailAlone) {
  auto f = sql_function(0, 1, 10min, 1min, 4);
  f.message_length_max.bytes = 600;  // the manager's bound, below the runtime's
  StreamingPool sql(f, kRuntimeBound1k);
  ASSERT_TRUE(sql.open());
  bool on_stream = false;
  // Above the manager's bound as a request: a unary call, refused by the channel.
  auto status = sql.call(padded_payload(700), on_stream);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_FALSE(on_stream);
  // Fits as a request, but the reply (the query adds qos and topic) is above the manager's bound:
  // the runtime answers that call alone with the error.
  status = sql.call(padded_payload(540), on_stream);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_TRUE(on_stream);
  EXPECT_TRUE(sql.instance->stream()->is_open());
  status = sql.call(padded_payload(10), on_stream);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(on_stream);
}

// The runtime's bound below the manager's: a larger request goes as a unary call, which the
// runtime refuses alone; the stream stays.
TEST(InstancePool, CallsAboveTheRuntimesBoundOnAStreamInstanceFailAlone) {
  StreamingPool sql(sql_function(0, 1, 10min, 1min, 4), kRuntimeBound1k);
  ASSERT_TRUE(sql.open());
  bool on_stream = true;
  auto status = sql.call(padded_payload(2000), on_stream);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_FALSE(on_stream);
  EXPECT_TRUE(sql.call(padded_payload(10), on_stream).ok());
  EXPECT_TRUE(on_stream);
  EXPECT_TRUE(sql.instance->stream()->is_open());
}

// Calls on an open stream are cheap: such an instance takes calls up to instance.calls before an
// idle one is used.
TEST(InstancePool, StreamingInstanceTakesCallsUpToTheBoundFirst) {
  testing::SqlLauncher launcher;
  InstancePool pool(sql_function(2, 2, 10min, 1min, 3), launcher, test_logger());
  pool.start();
  ASSERT_TRUE(eventually([&] { return pool.idle() == 2; }));
  // One call on each instance opens its stream.
  auto a = pool.acquire(Clock::now() + 5s);
  auto b = pool.acquire(Clock::now() + 5s);
  ASSERT_NE(a, b);
  for (auto* instance : {a.get(), b.get()}) {
    std::unique_ptr<grpc::ClientContext> context;
    baetyl::FunctionMessage request = message(R"({"id":1})"), reply;
    std::promise<grpc::Status> done;
    pool.call_async(*instance, context, request, reply,
                    [&](grpc::Status s) { done.set_value(s); });
    ASSERT_TRUE(done.get_future().get().ok());
    ASSERT_TRUE(eventually([&] { return instance->stream() && instance->stream()->is_open(); }));
  }
  pool.release(b, true);  // a keeps its slot: it is the busiest streaming instance
  auto second = pool.acquire(Clock::now() + 5s);
  auto third = pool.acquire(Clock::now() + 5s);
  EXPECT_EQ(second, a);
  EXPECT_EQ(third, a);
  auto fourth = pool.acquire(Clock::now() + 5s);
  EXPECT_EQ(fourth, b);  // a is at instance.calls (3)
  EXPECT_EQ(launcher.starts(), 2);
  for (auto& slot : {a, second, third, fourth}) pool.release(slot, true);
}

// An instance killed with calls on its stream: they fail at once (not at the deadline) and the
// next call on that instance fails too, as a unary call, so the caller discards it.
TEST(InstancePool, KilledInstanceFailsTheCallsOnItsStream) {
  testing::SqlLauncher launcher;
  InstancePool pool(sql_function(0, 1, 10min, 1min, 4), launcher, test_logger());
  pool.start();
  auto instance = pool.acquire(Clock::now() + 5s);
  baetyl::FunctionMessage request = message(R"({"id":1})"), reply;
  std::unique_ptr<grpc::ClientContext> context;
  std::promise<grpc::Status> first;
  pool.call_async(*instance, context, request, reply,
                  [&](grpc::Status s) { first.set_value(s); });
  ASSERT_TRUE(first.get_future().get().ok());
  ASSERT_TRUE(eventually([&] { return instance->stream() && instance->stream()->is_open(); }));
  launcher.signal(instance->name, SIGSTOP);
  std::promise<grpc::Status> done;
  pool.call_async(*instance, context, request, reply,
                  [&](grpc::Status s) { done.set_value(s); });
  auto started = Clock::now();
  launcher.kill(instance->name);
  auto status = done.get_future().get();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_LT(Clock::now() - started, 2s);
  EXPECT_TRUE(eventually([&] { return instance->stream()->broken(); }));
  std::promise<grpc::Status> next;
  pool.call_async(*instance, context, request, reply,
                  [&](grpc::Status s) { next.set_value(s); });
  EXPECT_NE(context, nullptr);  // not taken by the broken stream: a unary call
  EXPECT_FALSE(next.get_future().get().ok());
  pool.release(instance, false);
}

// The Python runtime serving `pace`, whose calls sleep event["sleep"] seconds when given.
constexpr char kPaceServiceYml[] =
    "functions:\n  - {name: pace, handler: pace.handler, codedir: code}\n";
constexpr char kPacePy[] =
    "import time\n"
    "def handler(event, context):\n"
    "    time.sleep(event.get('sleep', 0))\n"
    "    return event\n";

// `n` calls of `pace` at once on `instance`, with ids from `first`, each sleeping `sleep`
// seconds: true when every one ended OK with its own event back (none lost or mixed up).
bool paced_calls_answered(InstancePool& pool, Instance& instance, int first, int n, double sleep) {
  struct Pending {
    std::unique_ptr<grpc::ClientContext> context;
    nlohmann::json event;
    baetyl::FunctionMessage request, reply;
    std::promise<grpc::Status> done;
  };
  std::vector<std::unique_ptr<Pending>> calls;
  for (int i = 0; i < n; ++i) {
    auto call = std::make_unique<Pending>();
    call->event = {{"id", first + i}};
    if (sleep > 0) call->event["sleep"] = sleep;
    call->request = message(call->event.dump(), "pace");
    pool.call_async(instance, call->context, call->request, call->reply,
                    [p = call.get()](grpc::Status s) { p->done.set_value(s); });
    calls.push_back(std::move(call));
  }
  bool all = true;
  for (auto& call : calls) {
    auto status = call->done.get_future().get();
    all = all && status.ok() &&
          nlohmann::json::parse(call->reply.payload(), nullptr, false) == call->event;
  }
  return all;
}

// The runtime tells on its stream when its function's calls turn slow and when they end fast
// again: the pool takes the instance off, then back on, the list of those it fills first; the
// calls in flight across each change all end with their own replies.
TEST(InstancePool, InstanceIsFilledFirstOnlyWhileItsRuntimeSaysItsCallsEndFast) {
  testing::RuntimeLauncher launcher(
      "baetyl-function-python",
      {{"etc/baetyl/service.yml", kPaceServiceYml}, {"code/pace.py", kPacePy}});
  auto f = sql_function(2, 2, 10min, 1min, 16);
  f.name = "pace";
  f.service = "function-python";
  InstancePool pool(f, launcher, test_logger());
  pool.start();
  ASSERT_TRUE(eventually([&] { return pool.idle() == 2; }));
  auto a = pool.acquire(Clock::now() + 5s);
  auto b = pool.acquire(Clock::now() + 5s);
  ASSERT_NE(a, b);
  int id = 0;
  // Rounds of 8 calls sleeping `sleep` on `instance` until its stream says `answers_inline`
  // (a first call slowed by a busy machine may have it say "slow" at first: it changes later).
  auto rounds_until = [&](Instance& instance, double sleep, bool answers_inline) {
    return eventually(
        [&] {
          EXPECT_TRUE(paced_calls_answered(pool, instance, id, 8, sleep));
          id += 8;
          return instance.stream() && instance.stream()->is_open() &&
                 instance.stream()->answers_inline() == answers_inline;
        },
        15s);
  };
  for (auto* instance : {a.get(), b.get()})
    ASSERT_TRUE(rounds_until(*instance, 0, true)) << "its calls end fast";
  pool.release(b, true);
  // `a` holds a slot: it is the busiest of the instances that answer inline.
  auto slot = pool.acquire(Clock::now() + 5s);
  EXPECT_EQ(slot, a);
  pool.release(slot, true);

  ASSERT_TRUE(rounds_until(*a, 0.005, false)) << "the runtime did not say its calls take time";
  EXPECT_TRUE(a->stream()->is_open());
  slot = pool.acquire(Clock::now() + 5s);
  EXPECT_EQ(slot, b) << "`a` takes time now: `b`, which answers inline, comes first";
  pool.release(slot, true);

  ASSERT_TRUE(rounds_until(*a, 0, true)) << "the runtime did not say its calls end fast again";
  slot = pool.acquire(Clock::now() + 5s);
  EXPECT_EQ(slot, a);
  pool.release(slot, true);
  pool.release(a, true);
  EXPECT_EQ(launcher.starts(), 2);
}

TEST(InstancePool, RuntimeThatNeverListensFailsWithinTimeout) {
  testing::SqlLauncher launcher;
  auto f = sql_function(0, 1);
  f.timeout = 300ms;
  InstancePool pool(f, launcher, test_logger());
  pool.start();
  launcher.break_next_start();
  auto started = Clock::now();
  EXPECT_THROW(pool.acquire(Clock::now() + 5s), std::runtime_error);
  EXPECT_LT(Clock::now() - started, 3s);
  EXPECT_EQ(pool.size(), 0);
  // The id is free again: the next start works.
  auto instance = pool.acquire(Clock::now() + 5s);
  EXPECT_EQ(instance->name, "function-sql.sql-filter.1");
  pool.release(instance, true);
}

}  // namespace
}  // namespace baetyl::function
