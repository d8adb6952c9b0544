// Retries, dead letters and middleware end to end through the daemon core,
// on the memory backend and on a real SQLite file (the local backend).
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "daemon/backends/local/local_store.h"
#include "daemon/core/dead_letter.h"
#include "daemon/middleware/circuit_breaker/circuit_breaker.h"
#include "tests/core/test_daemon.h"

namespace foxworker::testing {
namespace {

// The flag lives in the loaded plugin; before its first load it is 0.
void SetDownstreamDown(bool down) {
  void* h = dlopen(TestPluginPath().c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (h == nullptr) {
    ASSERT_FALSE(down) << "load the plugin first";
    return;
  }
  auto fn = reinterpret_cast<void (*)(int)>(dlsym(h, "test_plugin_set_down"));
  ASSERT_NE(fn, nullptr);
  fn(down ? 1 : 0);
  dlclose(h);
}

struct DeadLetter {
  std::string reason;
  uint32_t attempt = 0;
  std::string original_queue, message_type, failed_at, first_seen_at;
};

class MiddlewareDaemonTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ResetTestPlugin();
    SetDownstreamDown(false);
    dir_ = std::filesystem::temp_directory_path() /
           ("foxworker_mw_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (daemon_) daemon_->Shutdown();
    daemon_.reset();
    std::filesystem::remove_all(dir_);
  }
  bool Local() const { return GetParam() == "local"; }
  std::string Db() const { return (dir_ / "jobs.db").string(); }

  Supervisor& Start(const std::string& queue_extra, const std::string& top_extra = "") {
    std::string backend = Local() ? "  b:\n    type: local\n    path: " + Db() +
                                        "\n    durability: normal\n    lease: 2s\n"
                                  : "  b:\n    type: memory\n";
    std::string yaml = "daemon:\n  worker_threads: 4\n  shutdown_timeout: 5s\n"
                       "plugins:\n  test:\n    path: " + TestPluginPath() +
                       "\nbackends:\n" + backend + top_extra +
                       "retry_policies:\n  quick:\n    max_attempts: 3\n    backoff: fixed\n"
                       "    initial: 20ms\n    jitter: 0\n"
                       "queues:\n  jobs:\n    backend: b\n    plugin: test\n"
                       "    retry_policy: quick\n" + queue_extra;
    daemon_ = StartDaemon(yaml);
    EXPECT_TRUE(daemon_);
    return *daemon_;
  }

  void Enqueue(const std::string& type, const std::string& payload = "", int n = 1,
               const std::string& content_type = "") {
    for (int i = 0; i < n; ++i) {
      Message m = TypedMessage(type, payload);
      m.props.content_type = content_type;
      ASSERT_TRUE(daemon_->FindBackend("b")->Enqueue("jobs", std::move(m), Duration{0}).ok());
    }
  }

  Consumer& C() { return *daemon_->FindConsumer("jobs"); }

  std::vector<DeadLetter> DeadLetters() {
    std::vector<DeadLetter> out;
    if (Local()) {
      LocalStoreOptions o;
      o.path = Db();
      auto store = LocalStore::Open(o);
      EXPECT_TRUE(store.ok());
      auto dead = (*store)->ListDead("jobs", 1000);
      EXPECT_TRUE(dead.ok());
      for (const auto& j : *dead)
        out.push_back({j.last_error, j.attempts, j.queue, j.props.message_type,
                       j.failed_at_ms ? "set" : "", j.first_attempt_at_ms ? "set" : ""});
      return out;
    }
    auto* mem = static_cast<MemoryBackend*>(daemon_->FindBackend("b"));
    for (const auto& m : mem->Peek("jobs-dlq")) {
      auto h = [&](const char* name) {
        const std::string* v = m.FindHeader(name);
        return v ? *v : std::string();
      };
      out.push_back({h(kHeaderFailureReason),
                     static_cast<uint32_t>(std::stoul(h(kHeaderFinalAttempt))),
                     h(kHeaderOriginalQueue), h(kHeaderMessageType), h(kHeaderFailedAt),
                     h(kHeaderFirstSeenAt)});
    }
    return out;
  }

  std::filesystem::path dir_;
  std::unique_ptr<Supervisor> daemon_;
};

TEST_P(MiddlewareDaemonTest, FailingTwiceThenSucceedingIsAckedOnAttemptThree) {
  Start("    concurrency: 1\n");
  Enqueue("fail_until", "3");
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 1; }));
  EXPECT_EQ(C().Stats().retried, 2u);
  EXPECT_EQ(C().Stats().received, 3u);
  EXPECT_TRUE(DeadLetters().empty());
}

TEST_P(MiddlewareDaemonTest, AlwaysFailingIsDeadLetteredAfterExactlyMaxAttempts) {
  Start("    concurrency: 1\n");
  Enqueue("fail");
  ASSERT_TRUE(WaitFor([&] { return C().Stats().dead_lettered == 1; }));
  EXPECT_EQ(C().Stats().received, 3u);
  std::vector<DeadLetter> dead;
  ASSERT_TRUE(WaitFor([&] { return (dead = DeadLetters()).size() == 1; }));
  EXPECT_EQ(dead[0].attempt, 3u);
  EXPECT_NE(dead[0].reason.find("retries exhausted after 3 attempts: asked to fail"),
            std::string::npos)
      << dead[0].reason;
  EXPECT_EQ(dead[0].original_queue, "jobs");
  EXPECT_EQ(dead[0].message_type, "fail");
  EXPECT_FALSE(dead[0].failed_at.empty());
  EXPECT_FALSE(dead[0].first_seen_at.empty());
}

TEST_P(MiddlewareDaemonTest, RejectedIsDeadLetteredOnAttemptOne) {
  Start("    concurrency: 1\n");
  Enqueue("reject");
  std::vector<DeadLetter> dead;
  ASSERT_TRUE(WaitFor([&] { return (dead = DeadLetters()).size() == 1; }));
  EXPECT_EQ(dead[0].attempt, 1u);
  EXPECT_EQ(dead[0].reason, "bad input");
  EXPECT_EQ(C().Stats().retried, 0u);
}

TEST_P(MiddlewareDaemonTest, MalformedJsonPayloadIsDeadLetteredAtOnceWithTheParseError) {
  Start("    concurrency: 1\n");
  Enqueue("ok", "{\"broken\": ", 1, "application/json");
  std::vector<DeadLetter> dead;
  ASSERT_TRUE(WaitFor([&] { return (dead = DeadLetters()).size() == 1; }));
  EXPECT_EQ(dead[0].attempt, 1u);
  EXPECT_NE(dead[0].reason.find("payload is not valid JSON"), std::string::npos) << dead[0].reason;
  EXPECT_EQ(ReadTestPluginStats().handled, 0);
}

TEST_P(MiddlewareDaemonTest, OpenBreakerStopsFetchingAndRecoveryClosesIt) {
  Start("    concurrency: 1\n    prefetch: 1\n    middleware:\n"
        "      - circuit_breaker: {failure_threshold: 3, window: 10s, reset_timeout: 300ms,"
        " half_open_trials: 1}\n");
  SetDownstreamDown(true);
  Enqueue("downstream", "", 20);
  auto* breaker = static_cast<CircuitBreaker*>(C().middleware()[0].get());
  ASSERT_TRUE(WaitFor([&] { return breaker->phase() == CircuitBreaker::Phase::kOpen; }));
  // While open (and between half-open trials that fail) almost nothing is
  // fetched: the messages wait without burning attempts.
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  uint64_t received_while_down = C().Stats().received;
  EXPECT_LE(received_while_down, 3u + 4u) << "fetching should stop while the breaker is open";
  EXPECT_GT(C().Stats().admission_waits, 0u);
  SetDownstreamDown(false);
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 20; }, std::chrono::seconds(20)));
  EXPECT_EQ(breaker->phase(), CircuitBreaker::Phase::kClosed);
  EXPECT_EQ(C().Stats().dead_lettered, 0u);
}

TEST_P(MiddlewareDaemonTest, RateLimitOfFiftyPerSecondOverThreeSeconds) {
  Start("    concurrency: 4\n    prefetch: 16\n    middleware:\n"
        "      - rate_limit: {rate: 50/s, burst: 1}\n");
  // Consuming starts with the first enqueue, which on a slow backend (the
  // local one under a sanitizer) comes well before the last: the window is
  // measured from before the first.
  const auto t0 = std::chrono::steady_clock::now();
  Enqueue("ok", "", 400);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  uint64_t acked = C().Stats().acked;
  const double window_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // The ceiling is the limit over the window plus the burst and 10% slack
  // (150 in an exact 3 s window, at most 166). The floor is looser: with
  // burst 1, a waiter that a loaded machine (or a sanitizer build) wakes
  // late loses that time, so the floor only rules out a limiter running at
  // half its rate.
  EXPECT_GE(acked, 100u);
  EXPECT_LE(static_cast<double>(acked), (50 * window_s + 1) * 1.1) << "window " << window_s << " s";
  EXPECT_EQ(C().Stats().dead_lettered, 0u);  // waiting, never failing
  EXPECT_EQ(C().Stats().retried, 0u);
}

TEST_P(MiddlewareDaemonTest, SharedRateLimitSpansQueues) {
  Start("    concurrency: 2\n    middleware:\n      - rate_limit: {shared: api}\n",
        "rate_limits:\n  api: {rate: 20/s, burst: 1}\n");
  Enqueue("ok", "", 100);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  uint64_t acked = C().Stats().acked;
  EXPECT_GE(acked, 27u);  // two thirds of 40, as above
  EXPECT_LE(acked, 46u);
}

TEST_P(MiddlewareDaemonTest, HungHandlerTimesOutAndIsRetried) {
  Start("    concurrency: 1\n    timeout: 100ms\n");
  Enqueue("sleep", "400");
  ASSERT_TRUE(WaitFor([&] { return C().Stats().timed_out >= 1; }));
  ASSERT_TRUE(WaitFor([&] { return C().Stats().retried >= 1; }));
  // The stuck handler keeps its slot: nothing else ran while it slept.
  ASSERT_TRUE(WaitFor([&] { return C().Stats().dead_lettered == 1; }, std::chrono::seconds(10)));
  std::vector<DeadLetter> dead;
  ASSERT_TRUE(WaitFor([&] { return (dead = DeadLetters()).size() == 1; }));
  EXPECT_NE(dead[0].reason.find("timeout after 0.1s"), std::string::npos) << dead[0].reason;
  EXPECT_EQ(ReadTestPluginStats().max_running, 1);
}

// Stuck calls' slots are replaced (by default up to the concurrency), each
// with a plugin instance of its own: never two calls on one instance.
TEST_P(MiddlewareDaemonTest, NonThreadSafePluginWithTimeoutNeverOverlaps) {
  Start("    concurrency: 2\n    prefetch: 4\n    timeout: 30ms\n");
  Enqueue("sleep", "60", 12);
  ASSERT_TRUE(WaitFor([&] { return C().Stats().dead_lettered == 12; }, std::chrono::seconds(30)));
  TestPluginStats s = ReadTestPluginStats();
  EXPECT_EQ(s.overlaps, 0);
  EXPECT_LE(s.max_running, 4);
  EXPECT_GE(C().Stats().timed_out, 12u);
}

TEST_P(MiddlewareDaemonTest, WithoutReplacementStuckCallsKeepTheirSlots) {
  Start("    concurrency: 2\n    prefetch: 4\n    timeout: 30ms\n    replace_stuck: 0\n");
  Enqueue("sleep", "60", 6);
  ASSERT_TRUE(WaitFor([&] { return C().Stats().dead_lettered == 6; }, std::chrono::seconds(30)));
  TestPluginStats s = ReadTestPluginStats();
  EXPECT_EQ(s.overlaps, 0);
  EXPECT_LE(s.max_running, 2);
}

TEST_P(MiddlewareDaemonTest, HandlerTimeoutOverridesTheQueueTimeout) {
  Start("    concurrency: 1\n    timeout: 50ms\n    handler_timeouts: {sleep: 2s}\n");
  Enqueue("sleep", "150");
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 1; }));
  EXPECT_EQ(C().Stats().timed_out, 0u);
}

TEST_P(MiddlewareDaemonTest, DedupSkipsARepeatedKey) {
  Start("    concurrency: 1\n    middleware:\n      - dedup: {key: \"header:idem\", ttl: 1h}\n");
  for (int i = 0; i < 3; ++i) {
    Message m = TypedMessage("ok");
    m.headers.emplace_back("idem", "order-7");
    ASSERT_TRUE(daemon_->FindBackend("b")->Enqueue("jobs", std::move(m), Duration{0}).ok());
    ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == static_cast<uint64_t>(i + 1); }));
  }
  EXPECT_EQ(ReadTestPluginStats().handled, 1);
}

INSTANTIATE_TEST_SUITE_P(Backends, MiddlewareDaemonTest, ::testing::Values("memory", "local"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace foxworker::testing

namespace foxworker::testing {
namespace {

void ReadBatchStats(int* max_batch, int* calls) {
  void* h = dlopen(TestPluginPath().c_str(), RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(h, nullptr);
  auto fn = reinterpret_cast<void (*)(int*, int*)>(dlsym(h, "test_plugin_batch_stats"));
  ASSERT_NE(fn, nullptr);
  fn(max_batch, calls);
  dlclose(h);
}

TEST_P(MiddlewareDaemonTest, BatchHandlerGetsUpToBatchSizeWithOneVerdictEach) {
  Start("    concurrency: 1\n    prefetch: 32\n    handler: batch\n    batch_size: 10\n"
        "    flush_interval: 200ms\n");
  for (int i = 0; i < 25; ++i) Enqueue("any", i == 7 ? "bad" : "good");
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked + C().Stats().dead_lettered == 25; }));
  EXPECT_EQ(C().Stats().dead_lettered, 1u);
  int max_batch = 0, calls = 0;
  ReadBatchStats(&max_batch, &calls);
  EXPECT_EQ(max_batch, 10);
  EXPECT_GE(calls, 3);
  std::vector<DeadLetter> dead;
  ASSERT_TRUE(WaitFor([&] { return (dead = DeadLetters()).size() == 1; }));
  EXPECT_EQ(dead[0].reason, "bad item");
}

TEST_P(MiddlewareDaemonTest, BatchHandlerFlushesAPartialBatchAfterTheInterval) {
  Start("    concurrency: 1\n    prefetch: 32\n    handler: batch\n    batch_size: 10\n"
        "    flush_interval: 100ms\n");
  Enqueue("any", "good", 3);
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 3; }, std::chrono::seconds(5)));
  int max_batch = 0, calls = 0;
  ReadBatchStats(&max_batch, &calls);
  EXPECT_LE(max_batch, 3);
}

}  // namespace
}  // namespace foxworker::testing
