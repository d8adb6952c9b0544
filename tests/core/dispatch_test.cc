// Dispatch through the real core: memory backend, executor, consumers and a
// real plugin loaded with dlopen. Every test runs twice: with the handlers
// in the daemon ("inprocess") and in foxworker-child processes ("process":
// the queues get `isolation: process`). One suite, so that both modes are
// held to the same behaviour.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "daemon/core/dead_letter.h"
#include "tests/core/test_daemon.h"
#include "tests/support/log_capture.h"

namespace foxworker::testing {
namespace {

// The test plugin's counters (ReadTestPluginStats) in files that every
// process loading it shares: in process mode the handlers count in the
// children, which inherit $FOXWORKER_TEST_STATS_DIR. Set before main, so
// before any test of this binary loads the plugin (a copy counts where it
// first looked).
class SharedTestPluginStats {
 public:
  SharedTestPluginStats() {
    std::string dir = (std::filesystem::temp_directory_path() / "foxworker_stats_XXXXXX").string();
    if (mkdtemp(dir.data()) == nullptr) return;  // the plugin then counts privately
    dir_ = dir;
    setenv("FOXWORKER_TEST_STATS_DIR", dir_.c_str(), 1);
  }
  ~SharedTestPluginStats() {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

 private:
  std::string dir_;
};
const SharedTestPluginStats shared_stats;

// The counters live in the loaded plugin; with no plugin loaded there is
// nothing to read, and returning zeros would let "handled == 0" pass.
TEST(TestPluginStatsTest, ReadingAPluginThatIsNotLoadedFails) {
  EXPECT_NONFATAL_FAILURE(ReadTestPluginStats("no_such_variant"), "is not loaded");
}

// The parameter: "inprocess" or "process".
class DispatchTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { ResetTestPlugin(); }
  MemoryBackend* Mem(Supervisor& s) { return static_cast<MemoryBackend*>(s.FindBackend("mem")); }
  bool Process() const { return GetParam() == "process"; }

  // The keys that put a queue in this test's mode; `process_block` (the
  // lines of a `process:` block) applies in process mode only.
  std::string Isolation(const std::string& process_block = "") const {
    if (!Process()) return "";
    return "    isolation: process\n" +
           (process_block.empty() ? "" : "    process:\n" + process_block);
  }

  // Queue `jobs` with `queue_extra` after its keys (more queues there call
  // Isolation() themselves).
  std::string Yaml(const std::string& queue_extra, const std::string& variant = "test_plugin",
                   const std::string& daemon_extra = "",
                   const std::string& process_block = "") const {
    return "daemon:\n  worker_threads: 4\n" +
           (daemon_extra.empty() ? std::string("  shutdown_timeout: 5s\n") : daemon_extra) +
           "plugins:\n  test:\n    path: " + TestPluginPath(variant) +
           "\nbackends:\n  mem:\n    type: memory\n"
           "retry_policies:\n  quick:\n    max_attempts: 3\n    backoff: fixed\n"
           "    initial: 10ms\n    jitter: 0\n"
           "queues:\n  jobs:\n    backend: mem\n    plugin: test\n    retry_policy: quick\n" +
           Isolation(process_block) + queue_extra;
  }

  // StartDaemon, and a check that the test's queues run their handlers
  // where this variant says.
  std::unique_ptr<Supervisor> Start(const std::string& yaml) {
    auto d = StartDaemon(yaml);
    if (d == nullptr) return d;
    for (const char* queue : {"jobs", "out", "other"}) {
      Consumer* c = d->FindConsumer(queue);
      if (c != nullptr) {
        EXPECT_EQ(c->Children().isolated, Process()) << "queue " << queue;
      }
    }
    return d;
  }
};

// Tests that mean something only with the handlers in the daemon.
class DispatchInProcessTest : public DispatchTest {};

TEST_P(DispatchTest, RoutesByMessageTypeAndAcks) {
  auto d = Start(Yaml("    concurrency: 2\n"));
  ASSERT_TRUE(d);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("ok"), {}).ok());
  Consumer* c = d->FindConsumer("jobs");
  ASSERT_TRUE(WaitFor([&] { return c->Stats().acked == 100; }));
  EXPECT_EQ(c->Stats().dead_lettered, 0u);
  EXPECT_TRUE(d->Shutdown());
}

TEST_P(DispatchTest, UnknownMessageTypeIsDeadLetteredWithReason) {
  auto d = Start(Yaml("    concurrency: 1\n"));
  ASSERT_TRUE(d);
  ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("no.such.type"), {}).ok());
  ASSERT_TRUE(WaitFor([&] { return Mem(*d)->ReadyCount("jobs-dlq") == 1; }));
  auto dead = Mem(*d)->Peek("jobs-dlq");
  const std::string* reason = dead[0].FindHeader(kHeaderFailureReason);
  ASSERT_NE(reason, nullptr);
  EXPECT_NE(reason->find("unknown message type \"no.such.type\""), std::string::npos) << *reason;
  EXPECT_NE(reason->find("ok, fail, reject, sleep"), std::string::npos) << *reason;
  EXPECT_EQ(*dead[0].FindHeader(kHeaderOriginalQueue), "jobs");
  EXPECT_TRUE(d->Shutdown());
}

TEST_P(DispatchTest, PinnedHandlerIgnoresMessageType) {
  auto d = Start(Yaml("    handler: ok\n"));
  ASSERT_TRUE(d);
  ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("reject"), {}).ok());
  ASSERT_TRUE(WaitFor([&] { return d->FindConsumer("jobs")->Stats().acked == 1; }));
  EXPECT_TRUE(d->Shutdown());
}

// A handler publishes through the host API to a queue of the config: it
// lands on that queue's backend source; an unknown queue is an error the
// handler sees (and retries on).
TEST_P(DispatchTest, APluginPublishesToAConfiguredQueue) {
  auto d = Start(Yaml("    handler: publish\n    concurrency: 1\n"
                            "  out:\n    backend: mem\n    source: out-source\n    plugin: test\n"
                            "    handler: ok\n" + Isolation()));
  ASSERT_TRUE(d);
  ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("", "out"), {}).ok());
  // The published message may be handled and acked before the publisher's
  // own ack is counted: wait for both.
  ASSERT_TRUE(WaitFor([&] { return d->FindConsumer("out")->Stats().acked == 1; }));
  ASSERT_TRUE(WaitFor([&] { return d->FindConsumer("jobs")->Stats().acked == 1; }));
  ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("", "nowhere"), {}).ok());
  ASSERT_TRUE(WaitFor([&] { return d->FindConsumer("jobs")->Stats().retried >= 1; }));
  EXPECT_TRUE(d->Shutdown());
}

TEST_P(DispatchTest, PinnedHandlerMustExist) {
  auto config = ParseConfigString(Yaml("    handler: nope\n"), "test.yaml", "/tmp");
  ASSERT_TRUE(config.ok()) << config.status().message();
  Supervisor s(std::move(*config));
  Status st = s.Start();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("has no handler \"nope\""), std::string::npos) << st.message();
  s.Shutdown();
}

TEST_P(DispatchTest, RetriesThenDeadLettersWithAttemptCount) {
  // Retries are logged at debug (VLOG 1), dead letters at warning.
  const int v = FLAGS_v;
  FLAGS_v = 1;
  LogCapture log;
  auto d = Start(Yaml("    concurrency: 1\n"));
  ASSERT_TRUE(d);
  ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("fail"), {}).ok());
  Consumer* c = d->FindConsumer("jobs");
  // The counters rise after the backend holds the settlement, so wait on them.
  ASSERT_TRUE(WaitFor([&] { return c->Stats().dead_lettered == 1; }));
  EXPECT_EQ(Mem(*d)->ReadyCount("jobs-dlq"), 1u);
  EXPECT_EQ(c->Stats().retried, 2u);
  EXPECT_EQ(c->Stats().dead_lettered, 1u);
  auto dead = Mem(*d)->Peek("jobs-dlq");
  EXPECT_EQ(*dead[0].FindHeader(kHeaderFinalAttempt), "3");
  EXPECT_NE(dead[0].FindHeader(kHeaderFailureReason)->find("asked to fail"), std::string::npos);
  EXPECT_NE(dead[0].FindHeader(kHeaderFailedAt), nullptr);
  EXPECT_TRUE(d->Shutdown());
  FLAGS_v = v;
  EXPECT_EQ(log.Matching(google::GLOG_INFO, " retried after attempt 1 in ").size(), 1u);
  EXPECT_EQ(log.Matching(google::GLOG_INFO, " retried after attempt 2 in ").size(), 1u);
  auto retried = log.Matching(google::GLOG_INFO, " retried after attempt 1 in ");
  ASSERT_FALSE(retried.empty());
  EXPECT_NE(retried[0].find("asked to fail"), std::string::npos) << retried[0];
  EXPECT_EQ(log.Matching(google::GLOG_WARNING, " dead-lettered after attempt 3: ").size(), 1u);
}

TEST_P(DispatchTest, RetryHonoursHandlerDelayHint) {
  auto d = Start(Yaml("    concurrency: 1\n"));
  ASSERT_TRUE(d);
  Message m = TypedMessage("fail");
  m.headers.emplace_back("delay_ms", "300");
  ASSERT_TRUE(Mem(*d)->Enqueue("jobs", std::move(m), {}).ok());
  ASSERT_TRUE(WaitFor([&] { return Mem(*d)->DelayedCount("jobs") == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(d->FindConsumer("jobs")->Stats().received, 1u);  // still waiting
  ASSERT_TRUE(WaitFor([&] { return d->FindConsumer("jobs")->Stats().received >= 2; }));
  d->Shutdown();
}

TEST_P(DispatchTest, RejectDeadLettersAtOnce) {
  auto d = Start(Yaml(""));
  ASSERT_TRUE(d);
  ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("reject"), {}).ok());
  ASSERT_TRUE(WaitFor([&] { return d->FindConsumer("jobs")->Stats().dead_lettered == 1; }));
  EXPECT_EQ(Mem(*d)->ReadyCount("jobs-dlq"), 1u);
  EXPECT_EQ(d->FindConsumer("jobs")->Stats().retried, 0u);
  EXPECT_EQ(*Mem(*d)->Peek("jobs-dlq")[0].FindHeader(kHeaderFailureReason), "bad input");
  d->Shutdown();
}

// A batch handler gets its messages in one call, up to batch_size (in
// process mode: the whole batch in one RUN_BATCH frame to one child), and
// each message its own verdict.
TEST_P(DispatchTest, ABatchHandlerGetsWholeBatchesWithAVerdictEach) {
  auto d = Start(Yaml("    concurrency: 1\n    prefetch: 32\n    handler: batch\n"
                      "    batch_size: 10\n    flush_interval: 200ms\n"));
  ASSERT_TRUE(d);
  for (int i = 0; i < 25; ++i) {
    Message m = TypedMessage("any");
    m.payload = i == 7 ? "bad" : "good";
    ASSERT_TRUE(Mem(*d)->Enqueue("jobs", std::move(m), {}).ok());
  }
  Consumer* c = d->FindConsumer("jobs");
  ASSERT_TRUE(WaitFor([&] { return c->Stats().acked + c->Stats().dead_lettered == 25; }));
  EXPECT_EQ(c->Stats().acked, 24u);
  EXPECT_EQ(c->Stats().dead_lettered, 1u);
  const TestPluginBatchStats stats = ReadTestPluginBatchStats();
  EXPECT_GT(stats.max_batch, 1);
  EXPECT_LE(stats.max_batch, 10);
  EXPECT_LT(stats.calls, 25);
  EXPECT_EQ(ReadTestPluginStats().handled, 25);
  auto dead = Mem(*d)->Peek("jobs-dlq");
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(*dead[0].FindHeader(kHeaderFailureReason), "bad item");
  EXPECT_EQ(c->Stats().in_flight, 0);
  EXPECT_TRUE(d->Shutdown());
}

TEST_P(DispatchTest, UnknownVerdictIsTreatedAsRetry) {
  auto d = Start(Yaml(""));
  ASSERT_TRUE(d);
  ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("bogus"), {}).ok());
  Consumer* c = d->FindConsumer("jobs");
  ASSERT_TRUE(WaitFor([&] { return c->Stats().dead_lettered == 1; }));
  EXPECT_EQ(c->Stats().unknown_verdicts, 3u);
  EXPECT_EQ(c->Stats().retried, 2u);
  d->Shutdown();
}

TEST_P(DispatchTest, DeferredCompletionFromAnotherThread) {
  auto d = Start(Yaml("    concurrency: 2\n"));
  ASSERT_TRUE(d);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("defer"), {}).ok());
    ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("defer_now"), {}).ok());
  }
  Consumer* c = d->FindConsumer("jobs");
  ASSERT_TRUE(WaitFor([&] { return c->Stats().acked == 100; }));
  EXPECT_EQ(c->Stats().in_flight, 0);
  EXPECT_TRUE(d->Shutdown());
}

TEST_P(DispatchTest, QueueNeverExceedsItsConcurrencyAndInstancesNeverOverlap) {
  auto d = Start(Yaml("    concurrency: 3\n    prefetch: 20\n"));
  ASSERT_TRUE(d);
  for (int i = 0; i < 60; ++i)
    ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("sleep", "3"), {}).ok());
  Consumer* c = d->FindConsumer("jobs");
  ASSERT_TRUE(WaitFor([&] { return c->Stats().acked == 60; }));
  TestPluginStats s = ReadTestPluginStats();
  EXPECT_EQ(s.max_running, 3);  // reached, never exceeded (4 threads available)
  EXPECT_EQ(s.overlaps, 0);
  EXPECT_TRUE(d->Shutdown());
}

TEST_P(DispatchTest, ConcurrencyOneRunsSerially) {
  auto d = Start(Yaml("    concurrency: 1\n    prefetch: 10\n"));
  ASSERT_TRUE(d);
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("sleep", "2"), {}).ok());
  ASSERT_TRUE(WaitFor([&] { return d->FindConsumer("jobs")->Stats().acked == 20; }));
  EXPECT_EQ(ReadTestPluginStats().max_running, 1);
  d->Shutdown();
}

// In process mode one child runs all four slots: one instance is one per
// process.
TEST_P(DispatchTest, SharedInstanceModelRunsConcurrentlyOnOneInstance) {
  ResetTestPlugin("test_plugin_shared");
  auto d = Start(Yaml("    concurrency: 4\n    prefetch: 8\n", "test_plugin_shared", "",
                            "      processes: 1\n"));
  ASSERT_TRUE(d);
  EXPECT_EQ(ReadTestPluginStats("test_plugin_shared").instances, 1);
  for (int i = 0; i < 40; ++i)
    ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("sleep", "3"), {}).ok());
  ASSERT_TRUE(WaitFor([&] { return d->FindConsumer("jobs")->Stats().acked == 40; }));
  EXPECT_GT(ReadTestPluginStats("test_plugin_shared").max_running, 1);
  EXPECT_TRUE(d->Shutdown());
  EXPECT_EQ(ReadTestPluginStats("test_plugin_shared").instances, 0);
}

TEST_P(DispatchTest, PerSlotModelCreatesOneInstancePerSlotAndDestroysThem) {
  auto d = Start(Yaml("    concurrency: 3\n"));
  ASSERT_TRUE(d);
  EXPECT_EQ(ReadTestPluginStats().instances, 3);
  EXPECT_TRUE(d->Shutdown());
  EXPECT_EQ(ReadTestPluginStats().instances, 0);
}

TEST_P(DispatchTest, PerThreadModelCreatesOneInstancePerThreadOfTheQueue) {
  ResetTestPlugin("test_plugin_per_thread");
  auto d = Start(Yaml("    concurrency: 2\n", "test_plugin_per_thread"));
  ASSERT_TRUE(d);
  EXPECT_EQ(ReadTestPluginStats("test_plugin_per_thread").instances, 2);
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("ok"), {}).ok());
  ASSERT_TRUE(WaitFor([&] { return d->FindConsumer("jobs")->Stats().acked == 20; }));
  EXPECT_TRUE(d->Shutdown());
}

// `pool: cpu`: the queue shares the daemon's worker_threads (4 here). With
// isolation: process those threads only hand messages to the children,
// which run them on threads of their own: no plugin instance is made per
// pool thread.
TEST_P(DispatchInProcessTest, PerThreadModelOnTheCpuPoolCreatesOneInstancePerPoolThread) {
  ResetTestPlugin("test_plugin_per_thread");
  auto d = Start(Yaml("    concurrency: 2\n    pool: cpu\n", "test_plugin_per_thread"));
  ASSERT_TRUE(d);
  EXPECT_EQ(ReadTestPluginStats("test_plugin_per_thread").instances, 4);
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("ok"), {}).ok());
  ASSERT_TRUE(WaitFor([&] { return d->FindConsumer("jobs")->Stats().acked == 20; }));
  EXPECT_TRUE(d->Shutdown());
}

TEST_P(DispatchTest, GracefulDrainFinishesInFlightWork) {
  auto d = Start(Yaml("    concurrency: 4\n    prefetch: 4\n"));
  ASSERT_TRUE(d);
  for (int i = 0; i < 4; ++i)
    ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("sleep", "300"), {}).ok());
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("sleep", "300"), {}).ok());
  Consumer* c = d->FindConsumer("jobs");
  ASSERT_TRUE(WaitFor([&] { return ReadTestPluginStats().max_running == 4; }));
  EXPECT_TRUE(d->Shutdown());  // waits for the four running ones
  EXPECT_EQ(c->Stats().acked, 4u);
  EXPECT_EQ(c->Stats().in_flight, 0);
  EXPECT_EQ(ReadTestPluginStats().handled, 4);
  EXPECT_EQ(Mem(*d)->ReadyCount("jobs"), 10u);  // never started, still queued
}

TEST_P(DispatchTest, ShutdownTimeoutCancelsPollingHandlersAndDoesNotAck) {
  auto d = Start(Yaml("    concurrency: 1\n", "test_plugin", "  shutdown_timeout: 200ms\n"));
  ASSERT_TRUE(d);
  ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("cancel"), {}).ok());
  ASSERT_TRUE(WaitFor([&] { return d->FindConsumer("jobs")->Stats().received == 1; }));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(d->Shutdown());  // the handler saw cancellation and returned
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_EQ(d->FindConsumer("jobs")->Stats().acked, 0u);
  EXPECT_EQ(Mem(*d)->ReadyCount("jobs") + Mem(*d)->DelayedCount("jobs"), 1u);  // retried
}

TEST_P(DispatchTest, PausedQueueFetchesNothingUntilResumed) {
  auto d = Start(Yaml(""));
  ASSERT_TRUE(d);
  Consumer* c = d->FindConsumer("jobs");
  c->SetPaused(true);
  ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("ok"), {}).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(c->Stats().received, 0u);
  c->SetPaused(false);
  ASSERT_TRUE(WaitFor([&] { return c->Stats().acked == 1; }));
  d->Shutdown();
}

// ---- handlers that block ----------------------------------------------------

// concurrency: N means N handlers running, whatever the CPU count and the
// daemon's worker_threads (4 here).
TEST_P(DispatchTest, FiftySleepingHandlersRunAtOnce) {
  auto d = Start(Yaml("    concurrency: 50\n    prefetch: 100\n"));
  ASSERT_TRUE(d);
  for (int i = 0; i < 50; ++i)
    ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("sleep", "1000"), {}).ok());
  EXPECT_TRUE(WaitFor([&] { return ReadTestPluginStats().max_running == 50; }))
      << "at most " << ReadTestPluginStats().max_running << " ran at once";
  Consumer* c = d->FindConsumer("jobs");
  ASSERT_TRUE(WaitFor([&] { return c->Stats().acked == 50; }));
  EXPECT_EQ(ReadTestPluginStats().overlaps, 0);
  EXPECT_TRUE(d->Shutdown());
}

// A large prefetch gives no slot a private batch: eight jobs at concurrency
// 4 run four at a time, not one slot running all eight in turn.
TEST_P(DispatchTest, ALargePrefetchStillRunsEverySlot) {
  auto d = Start(Yaml("    concurrency: 4\n    prefetch: 64\n"));
  ASSERT_TRUE(d);
  for (int i = 0; i < 8; ++i)
    ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("sleep", "400"), {}).ok());
  EXPECT_TRUE(WaitFor([&] { return ReadTestPluginStats().max_running == 4; }))
      << "at most " << ReadTestPluginStats().max_running << " ran at once";
  Consumer* c = d->FindConsumer("jobs");
  ASSERT_TRUE(WaitFor([&] { return c->Stats().acked == 8; }));
  EXPECT_EQ(ReadTestPluginStats().max_running, 4);
  EXPECT_TRUE(d->Shutdown());
}

// A queue whose handlers all hang holds only its own threads.
TEST_P(DispatchTest, HungHandlersDoNotStallAnotherQueue) {
  auto d = Start(Yaml("    concurrency: 2\n"
                            "  other:\n    backend: mem\n    plugin: test\n    concurrency: 1\n" +
                            Isolation()));
  ASSERT_TRUE(d);
  for (int i = 0; i < 4; ++i)
    ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("sleep", "3000"), {}).ok());
  ASSERT_TRUE(WaitFor([&] { return ReadTestPluginStats().max_running == 2; }));
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(Mem(*d)->Enqueue("other", TypedMessage("ok"), {}).ok());
  Consumer* other = d->FindConsumer("other");
  EXPECT_TRUE(WaitFor([&] { return other->Stats().acked == 20; }, std::chrono::seconds(2)))
      << other->Stats().acked << " of 20 handled while the other queue's handlers hang";
  EXPECT_EQ(d->FindConsumer("jobs")->Stats().acked, 0u);
  d->Shutdown();
}

// Each outcome is settled as its handler returns, not when the rest of
// what was fetched with it is done.
TEST_P(DispatchTest, AnAckIsSettledWhenItsHandlerReturns) {
  auto d = Start(Yaml("    concurrency: 1\n    prefetch: 8\n"));
  ASSERT_TRUE(d);
  ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("sleep", "10"), {}).ok());
  ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("sleep", "4000"), {}).ok());
  Consumer* c = d->FindConsumer("jobs");
  ASSERT_TRUE(WaitFor([&] { return c->Stats().received == 2; }));
  EXPECT_TRUE(WaitFor([&] { return c->Stats().acked == 1; }, std::chrono::milliseconds(2500)))
      << "the first ack waited for the second handler";
  d->Shutdown();
}

// Pause: the running handler finishes; what was fetched and not started
// goes back to the backend at once, uncharged, counted as released.
TEST_P(DispatchTest, PauseHandsBackWhatWasFetchedAndNotStarted) {
  auto d = Start(Yaml("    concurrency: 1\n    prefetch: 10\n"));
  ASSERT_TRUE(d);
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("sleep", "500"), {}).ok());
  Consumer* c = d->FindConsumer("jobs");
  ASSERT_TRUE(WaitFor([&] { return c->Stats().received == 10 && ReadTestPluginStats().handled < 10; }));
  // One runs now; those that finished before are acked or about to be.
  const uint64_t done = static_cast<uint64_t>(ReadTestPluginStats().handled);
  c->SetPaused(true);
  EXPECT_EQ(c->Stats().released, 10 - done - 1);
  ASSERT_TRUE(WaitFor([&] { return c->Stats().acked == done + 1; }));
  EXPECT_EQ(Mem(*d)->ReadyCount("jobs"), 10 - done - 1);
  for (const Message& m : Mem(*d)->Peek("jobs")) EXPECT_EQ(m.attempt, 1u) << m.id;
  c->SetPaused(false);
  ASSERT_TRUE(WaitFor([&] { return c->Stats().acked == 10; }));
  EXPECT_EQ(c->Stats().retried, 0u);
  d->Shutdown();
}

// Shutdown: likewise; the running handler finishes within the timeout.
TEST_P(DispatchTest, ShutdownHandsBackWhatWasFetchedAndNotStarted) {
  auto d = Start(Yaml("    concurrency: 1\n    prefetch: 10\n"));
  ASSERT_TRUE(d);
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("sleep", "500"), {}).ok());
  Consumer* c = d->FindConsumer("jobs");
  ASSERT_TRUE(WaitFor([&] { return c->Stats().received == 10 && ReadTestPluginStats().handled < 10; }));
  const uint64_t done = static_cast<uint64_t>(ReadTestPluginStats().handled);
  EXPECT_TRUE(d->Shutdown());
  EXPECT_EQ(c->Stats().acked, done + 1);
  EXPECT_EQ(c->Stats().released, 10 - done - 1);
  EXPECT_EQ(static_cast<uint64_t>(ReadTestPluginStats().handled), done + 1);
  EXPECT_EQ(Mem(*d)->ReadyCount("jobs"), 10 - done - 1);
  for (const Message& m : Mem(*d)->Peek("jobs")) EXPECT_EQ(m.attempt, 1u) << m.id;
}

INSTANTIATE_TEST_SUITE_P(Modes, DispatchTest, ::testing::Values("inprocess", "process"),
                         [](const auto& info) { return info.param; });
INSTANTIATE_TEST_SUITE_P(Modes, DispatchInProcessTest, ::testing::Values("inprocess"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace foxworker::testing
