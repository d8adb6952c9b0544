// Supervisor::Reload in-process: memory backend, real plugin, real consumers.
// (The daemon-level reload, SIGHUP and the notify protocol are tested in
// tests/service/notify_test.cc against the real binary.)
#include <dlfcn.h>
#include <gtest/gtest.h>

#include "daemon/core/running_job.h"
#include "tests/core/test_daemon.h"

namespace foxworker::testing {
namespace {

std::string Yaml(const std::string& queues, const std::string& plugin_extra = "") {
  return "daemon:\n  worker_threads: 4\n  shutdown_timeout: 5s\n"
         "plugins:\n  test:\n    path: " + TestPluginPath() + "\n" + plugin_extra +
         "backends:\n  mem:\n    type: memory\n"
         "queues:\n" + queues;
}

const char kJobs[] = "  jobs:\n    backend: mem\n    plugin: test\n    concurrency: 2\n";

Config Parse(const std::string& yaml) {
  auto c = ParseConfigString(yaml, "test.yaml", "/tmp");
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? std::move(*c) : Config();
}

// Polls like the control loop until no hand-over is left.
bool Settle(Supervisor& s) {
  return WaitFor([&] {
    s.Poll();
    return s.Transition().empty();
  });
}

class ReloadTest : public ::testing::Test {
 protected:
  void SetUp() override { ResetTestPlugin(); }
  MemoryBackend* Mem(Supervisor& s) { return static_cast<MemoryBackend*>(s.FindBackend("mem")); }
};

TEST_F(ReloadTest, PluginConfigChangeSwapsInstancesAfterInFlightMessagesFinish) {
  auto d = StartDaemon(Yaml(kJobs));
  ASSERT_TRUE(d);
  EXPECT_EQ(ReadTestPluginStats().instances, 2);  // one per slot
  for (int i = 0; i < 2; ++i)
    ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("sleep", "300"), {}).ok());
  Consumer* old = d->FindConsumer("jobs");
  // Both handlers running (a fetched message not yet started would be handed
  // back by the reload, not finished on the old consumer).
  ASSERT_TRUE(WaitFor([&] { return RunningJobs("jobs").size() == 2; }));
  ASSERT_EQ(old->Stats().in_flight, 2);

  auto report = d->Reload(Parse(Yaml(kJobs, "    config:\n      generation: 2\n")));
  ASSERT_TRUE(report.ok()) << report.status().message();
  ASSERT_EQ(report->changes.size(), 2u);
  EXPECT_EQ(report->changes[0], "plugin test config");
  EXPECT_EQ(report->changes[1], "queue jobs changed (plugin test changed)");
  // The new instances exist; the old ones still run the two messages.
  EXPECT_EQ(ReadTestPluginStats().instances, 4);
  EXPECT_EQ(d->FindConsumer("jobs"), nullptr) << "the new consumer waits for the old to drain";
  EXPECT_NE(d->Transition().find("jobs (2 in flight)"), std::string::npos) << d->Transition();
  // A message that arrives meanwhile waits for the new consumer.
  ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("ok"), {}).ok());

  ASSERT_TRUE(Settle(*d));
  EXPECT_EQ(ReadTestPluginStats().instances, 2) << "the old instances are destroyed";
  Consumer* now = d->FindConsumer("jobs");
  ASSERT_NE(now, nullptr);
  ASSERT_TRUE(WaitFor([&] { return now->Stats().acked == 1; }));
  EXPECT_EQ(ReadTestPluginStats().handled, 3);
  EXPECT_TRUE(d->Shutdown());
  EXPECT_EQ(ReadTestPluginStats().instances, 0);
}

// An empty or half-written file (no queues section) is refused while queues
// run; `queues: {}` says it on purpose.
TEST_F(ReloadTest, AFileWithoutAQueuesSectionIsRefusedWhileQueuesRun) {
  auto d = StartDaemon(Yaml(kJobs));
  ASSERT_TRUE(d);
  for (const std::string& yaml : {std::string(""), std::string("daemon:\n  worker_threads: 4\n")}) {
    auto report = d->Reload(Parse(yaml));
    ASSERT_FALSE(report.ok()) << yaml;
    EXPECT_EQ(report.status().message(),
              "test.yaml has no queues section (an empty or half-written file?), which would "
              "remove every queue; the 1 running queue(s) stay. To remove them all, write "
              "\"queues: {}\"");
    EXPECT_NE(d->FindConsumer("jobs"), nullptr);
  }
  std::string none = Yaml("");
  none.replace(none.rfind("queues:\n"), std::string::npos, "queues: {}\n");
  auto report = d->Reload(Parse(none));
  ASSERT_TRUE(report.ok()) << report.status().message();
  ASSERT_EQ(report->changes.size(), 1u);
  EXPECT_EQ(report->changes[0], "queue jobs removed");
  EXPECT_TRUE(Settle(*d));
  EXPECT_EQ(d->FindConsumer("jobs"), nullptr);
  // With no queue running, an empty file is a valid config again.
  EXPECT_TRUE(d->Reload(Parse("")).ok());
  EXPECT_TRUE(d->Shutdown());
}

TEST_F(ReloadTest, UnchangedQueuesKeepTheirConsumer) {
  auto d = StartDaemon(Yaml(kJobs));
  ASSERT_TRUE(d);
  Consumer* jobs = d->FindConsumer("jobs");
  auto report = d->Reload(Parse(Yaml(std::string(kJobs) + "  mail:\n    backend: mem\n    plugin: test\n")));
  ASSERT_TRUE(report.ok()) << report.status().message();
  ASSERT_EQ(report->changes.size(), 1u);
  EXPECT_EQ(report->changes[0], "queue mail added");
  EXPECT_EQ(d->FindConsumer("jobs"), jobs);
  ASSERT_NE(d->FindConsumer("mail"), nullptr);
  EXPECT_EQ(d->consumers().size(), 2u);
  EXPECT_TRUE(d->Transition().empty());

  report = d->Reload(Parse(Yaml(std::string(kJobs) + "  mail:\n    backend: mem\n    plugin: test\n")));
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->changes.empty());
  EXPECT_EQ(d->FindConsumer("jobs"), jobs);
  EXPECT_TRUE(d->Shutdown());
}

TEST_F(ReloadTest, AFailedReloadChangesNothing) {
  auto d = StartDaemon(Yaml(kJobs));
  ASSERT_TRUE(d);
  Consumer* jobs = d->FindConsumer("jobs");
  // The new queue is fine, the changed one names a handler the plugin lacks:
  // neither applies.
  // (mail comes first, so its instances are built before jobs fails.)
  auto report = d->Reload(Parse(Yaml(
      "  mail:\n    backend: mem\n    plugin: test\n"
      "  jobs:\n    backend: mem\n    plugin: test\n    concurrency: 4\n    handler: nope\n")));
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.status().message().find("has no handler \"nope\""), std::string::npos)
      << report.status().message();
  EXPECT_EQ(d->FindConsumer("jobs"), jobs);
  EXPECT_EQ(d->FindConsumer("mail"), nullptr);
  EXPECT_EQ(d->config().queues.size(), 1u);
  EXPECT_EQ(d->config().FindQueue("jobs")->concurrency, 2);
  EXPECT_EQ(ReadTestPluginStats().instances, 2) << "instances built for the reload are gone";
  EXPECT_TRUE(d->Transition().empty());
  // And it still works.
  ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("ok"), {}).ok());
  ASSERT_TRUE(WaitFor([&] { return jobs->Stats().acked == 1; }));
  EXPECT_TRUE(d->Shutdown());
}

TEST_F(ReloadTest, ARemovedQueueLeavesItsMessagesInTheBackend) {
  auto d = StartDaemon(Yaml(std::string(kJobs) + "  mail:\n    backend: mem\n    plugin: test\n"));
  ASSERT_TRUE(d);
  auto report = d->Reload(Parse(Yaml(kJobs)));
  ASSERT_TRUE(report.ok()) << report.status().message();
  ASSERT_TRUE(Settle(*d));
  EXPECT_EQ(d->FindConsumer("mail"), nullptr);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Mem(*d)->Enqueue("mail", TypedMessage("ok"), {}).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(ReadTestPluginStats().handled, 0);
  // Back again: the messages that waited are handled, once.
  report = d->Reload(Parse(Yaml(std::string(kJobs) + "  mail:\n    backend: mem\n    plugin: test\n")));
  ASSERT_TRUE(report.ok()) << report.status().message();
  Consumer* mail = d->FindConsumer("mail");
  ASSERT_NE(mail, nullptr);
  ASSERT_TRUE(WaitFor([&] { return mail->Stats().acked == 5; }));
  EXPECT_EQ(ReadTestPluginStats().handled, 5);
  EXPECT_TRUE(d->Shutdown());
}

TEST_F(ReloadTest, APausedQueueStaysPausedAcrossAHandOver) {
  auto d = StartDaemon(Yaml(kJobs));
  ASSERT_TRUE(d);
  d->FindConsumer("jobs")->SetPaused(true);
  auto report = d->Reload(Parse(Yaml("  jobs:\n    backend: mem\n    plugin: test\n    concurrency: 3\n")));
  ASSERT_TRUE(report.ok()) << report.status().message();
  ASSERT_TRUE(Settle(*d));
  Consumer* now = d->FindConsumer("jobs");
  ASSERT_NE(now, nullptr);
  EXPECT_EQ(now->config().concurrency, 3);
  EXPECT_TRUE(now->paused());
  ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("ok"), {}).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(now->Stats().received, 0u);
  now->SetPaused(false);
  ASSERT_TRUE(WaitFor([&] { return now->Stats().acked == 1; }));
  EXPECT_TRUE(d->Shutdown());
}

TEST_F(ReloadTest, ShutdownDuringAHandOverDrainsTheRetiredConsumerToo) {
  auto d = StartDaemon(Yaml(kJobs));
  ASSERT_TRUE(d);
  ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("sleep", "200"), {}).ok());
  Consumer* old = d->FindConsumer("jobs");
  ASSERT_TRUE(WaitFor([&] { return old->Stats().in_flight == 1; }));
  auto report = d->Reload(Parse(Yaml("  jobs:\n    backend: mem\n    plugin: test\n    concurrency: 3\n")));
  ASSERT_TRUE(report.ok()) << report.status().message();
  EXPECT_FALSE(d->Transition().empty());
  EXPECT_TRUE(d->Shutdown());
  EXPECT_EQ(ReadTestPluginStats().handled, 1);
  EXPECT_EQ(ReadTestPluginStats().instances, 0);
}

// ---- Limits changed in place (concurrency, timeouts).

// The jobs queue with an explicit prefetch, so a concurrency change leaves
// the prefetch (a hand-over setting) alone.
std::string Jobs(int concurrency, const std::string& extra = "") {
  return "  jobs:\n    backend: mem\n    plugin: test\n    concurrency: " +
         std::to_string(concurrency) + "\n    prefetch: 8\n" + extra;
}

// Calls an export of the test plugin that takes an int (or nothing).
void CallTestPlugin(const char* fn, int arg) {
  void* h = dlopen(TestPluginPath().c_str(), RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(h, nullptr);
  void* sym = dlsym(h, fn);
  ASSERT_NE(sym, nullptr) << fn;
  reinterpret_cast<void (*)(int)>(sym)(arg);
  dlclose(h);
}

// Enqueues `n` messages one at a time, each once the previous one runs, so
// that every drain task holds exactly one.
void StartOneByOne(Supervisor& d, MemoryBackend* mem, int n, const std::string& sleep_ms) {
  const int base = ReadTestPluginStats().max_running;
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(mem->Enqueue("jobs", TypedMessage("sleep", sleep_ms), {}).ok());
    ASSERT_TRUE(WaitFor([&] { return ReadTestPluginStats().max_running >= base + i + 1; }))
        << "message " << i << " did not start";
  }
  (void)d;
}

TEST_F(ReloadTest, RaisingConcurrencyInPlaceStartsMoreHandlersAtOnce) {
  auto d = StartDaemon(Yaml(Jobs(2)));
  ASSERT_TRUE(d);
  Consumer* jobs = d->FindConsumer("jobs");
  StartOneByOne(*d, Mem(*d), 2, "2000");
  EXPECT_EQ(ReadTestPluginStats().instances, 2);
  // These wait in the backend: both slots are busy for 2 s.
  for (int i = 0; i < 4; ++i)
    ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("sleep", "300"), {}).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(jobs->Stats().received, 2u);

  const auto t0 = std::chrono::steady_clock::now();
  auto report = d->Reload(Parse(Yaml(Jobs(4))));
  ASSERT_TRUE(report.ok()) << report.status().message();
  ASSERT_EQ(report->changes.size(), 1u);
  EXPECT_EQ(report->changes[0], "queue jobs changed in place (concurrency 2 -> 4)");
  EXPECT_EQ(d->FindConsumer("jobs"), jobs) << "no hand-over";
  EXPECT_TRUE(d->Transition().empty()) << d->Transition();
  EXPECT_EQ(jobs->config().concurrency, 4);
  EXPECT_EQ(d->config().FindQueue("jobs")->concurrency, 4);
  EXPECT_EQ(ReadTestPluginStats().instances, 4) << "the new slots' instances exist at commit";

  // Two more start while the first two still run (2 s): no pause.
  ASSERT_TRUE(WaitFor([&] { return ReadTestPluginStats().max_running == 4; },
                      std::chrono::milliseconds(1500)));
  const auto started_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - t0)
                              .count();
  RecordProperty("reload_to_four_running_ms", static_cast<int>(started_ms));
  EXPECT_LT(started_ms, 200) << "the higher limit waited for the running handlers";
  EXPECT_EQ(ReadTestPluginStats().handled, 0) << "the 2 s handlers are still running";
  // More than the limit is never running, and every message runs once.
  for (int i = 0; i < 12; ++i)
    ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("sleep", "20"), {}).ok());
  ASSERT_TRUE(WaitFor([&] { return jobs->Stats().acked == 18; }));
  const TestPluginStats st = ReadTestPluginStats();
  EXPECT_EQ(st.max_running, 4);
  EXPECT_EQ(st.overlaps, 0) << "two handlers shared a per-slot instance";
  EXPECT_EQ(st.handled, 18);
  EXPECT_EQ(jobs->Stats().received, 18u);
  EXPECT_EQ(jobs->Stats().retried, 0u);
  EXPECT_TRUE(d->Shutdown());
  EXPECT_EQ(ReadTestPluginStats().instances, 0);
}

TEST_F(ReloadTest, LoweringConcurrencyInPlaceLetsRunningHandlersFinishThenKeepsTheLimit) {
  auto d = StartDaemon(Yaml(Jobs(4)));
  ASSERT_TRUE(d);
  Consumer* jobs = d->FindConsumer("jobs");
  StartOneByOne(*d, Mem(*d), 4, "400");
  // These wait in the backend: every slot is busy.
  for (int i = 0; i < 8; ++i)
    ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("sleep", "30"), {}).ok());

  auto report = d->Reload(Parse(Yaml(Jobs(1))));
  ASSERT_TRUE(report.ok()) << report.status().message();
  ASSERT_EQ(report->changes.size(), 1u);
  EXPECT_EQ(report->changes[0], "queue jobs changed in place (concurrency 4 -> 1)");
  EXPECT_EQ(d->FindConsumer("jobs"), jobs);
  EXPECT_EQ(jobs->config().concurrency, 1);

  // The four running handlers finish; only then does the next one start,
  // and from then on one at a time.
  ASSERT_TRUE(WaitFor([&] { return ReadTestPluginStats().handled >= 4; }));
  CallTestPlugin("test_plugin_reset_max_running", 0);
  ASSERT_TRUE(WaitFor([&] { return jobs->Stats().acked == 12; }));
  const TestPluginStats st = ReadTestPluginStats();
  EXPECT_EQ(st.max_running, 1);
  EXPECT_EQ(st.handled, 12);
  EXPECT_EQ(jobs->Stats().retried, 0u);
  // The instances of the slots that went are destroyed once idle.
  d->Poll();
  EXPECT_EQ(ReadTestPluginStats().instances, 1);
  EXPECT_TRUE(d->Shutdown());
  EXPECT_EQ(ReadTestPluginStats().instances, 0);
}

TEST_F(ReloadTest, LoweringConcurrencyStartsNoMoreThanTheNewLimit) {
  // Fetched messages wait in the queue's buffer; lowered below the number
  // of running tasks, the task over the limit starts none of them and the
  // one within the limit takes them all.
  auto d = StartDaemon(Yaml(Jobs(2)));
  ASSERT_TRUE(d);
  Consumer* jobs = d->FindConsumer("jobs");
  ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("sleep", "800"), {}).ok());
  ASSERT_TRUE(WaitFor([&] { return ReadTestPluginStats().max_running == 1; }));
  // The second task takes these four at once (paused while they arrive).
  jobs->SetPaused(true);
  for (int i = 0; i < 4; ++i)
    ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("sleep", "300"), {}).ok());
  jobs->SetPaused(false);
  ASSERT_TRUE(WaitFor([&] { return ReadTestPluginStats().max_running == 2; }));
  ASSERT_TRUE(WaitFor([&] { return jobs->Stats().received == 5; }));
  auto report = d->Reload(Parse(Yaml(Jobs(1))));
  ASSERT_TRUE(report.ok()) << report.status().message();
  // The second task's handler returns while the 800 ms one runs: it starts
  // nothing more.
  ASSERT_TRUE(WaitFor([&] { return ReadTestPluginStats().handled >= 1; }));
  CallTestPlugin("test_plugin_reset_max_running", 0);
  ASSERT_TRUE(WaitFor([&] { return jobs->Stats().acked == 5; }));
  EXPECT_EQ(ReadTestPluginStats().max_running, 1);
  EXPECT_EQ(ReadTestPluginStats().handled, 5);
  EXPECT_EQ(jobs->Stats().released, 0u) << "they waited in the buffer, not the backend";
  EXPECT_TRUE(d->Shutdown());
}

TEST_F(ReloadTest, ATimeoutChangedInPlaceAppliesToHandlersThatStartAfterIt) {
  auto d = StartDaemon(Yaml(Jobs(2, "    timeout: 5s\n")));
  ASSERT_TRUE(d);
  Consumer* jobs = d->FindConsumer("jobs");
  ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("sleep", "600"), {}).ok());
  ASSERT_TRUE(WaitFor([&] { return ReadTestPluginStats().max_running == 1; }));

  auto report = d->Reload(Parse(Yaml(Jobs(2, "    timeout: 200ms\n"))));
  ASSERT_TRUE(report.ok()) << report.status().message();
  ASSERT_EQ(report->changes.size(), 1u);
  EXPECT_EQ(report->changes[0], "queue jobs changed in place (timeout 5000 -> 200)");
  EXPECT_EQ(d->FindConsumer("jobs"), jobs);
  EXPECT_EQ(jobs->config().timeout, Duration(200));

  // The running handler keeps its 5 s deadline...
  ASSERT_TRUE(WaitFor([&] { return jobs->Stats().acked == 1; }));
  EXPECT_EQ(jobs->Stats().timed_out, 0u);
  // ...the next one gets 200 ms.
  ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("sleep", "600"), {}).ok());
  ASSERT_TRUE(WaitFor([&] { return jobs->Stats().timed_out >= 1; }));
  // (Counted once the backend took the retry.)
  ASSERT_TRUE(WaitFor([&] { return jobs->Stats().retried == 1; }));
  EXPECT_EQ(jobs->Stats().acked, 1u);

  // A per-handler timeout in place: "sleep" gets 5 s again. The message that
  // timed out comes back after the retry delay (about 1 s), so its second
  // attempt starts after this reload and gets the new deadline too.
  report = d->Reload(Parse(Yaml(Jobs(2, "    timeout: 200ms\n    handler_timeouts:\n      sleep: 5s\n"))));
  ASSERT_TRUE(report.ok()) << report.status().message();
  ASSERT_EQ(report->changes.size(), 1u);
  EXPECT_EQ(report->changes[0], "queue jobs changed in place (handler_timeouts)");
  ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("sleep", "400"), {}).ok());
  ASSERT_TRUE(WaitFor([&] { return jobs->Stats().acked == 3; }));
  EXPECT_EQ(jobs->Stats().timed_out, 1u);
  EXPECT_EQ(jobs->Stats().retried, 1u);
  EXPECT_TRUE(d->Shutdown());
}

TEST_F(ReloadTest, CountersAndMetricsSurviveAnInPlaceChange) {
  auto d = StartDaemon(Yaml(Jobs(2)));
  ASSERT_TRUE(d);
  Consumer* jobs = d->FindConsumer("jobs");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("ok"), {}).ok());
  ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("reject"), {}).ok());
  ASSERT_TRUE(WaitFor([&] { return jobs->Stats().acked == 3 && jobs->Stats().dead_lettered == 1; }));

  auto report = d->Reload(Parse(Yaml(Jobs(3))));
  ASSERT_TRUE(report.ok()) << report.status().message();
  EXPECT_EQ(d->FindConsumer("jobs"), jobs);
  EXPECT_EQ(jobs->Stats().acked, 3u);
  EXPECT_EQ(jobs->Stats().dead_lettered, 1u);
  EXPECT_EQ(jobs->Stats().received, 4u);
  uint64_t observed = 0;
  for (const auto& m : jobs->handler_metrics()) observed += m->duration.Take().count;
  EXPECT_EQ(observed, 4u);
  ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("ok"), {}).ok());
  ASSERT_TRUE(WaitFor([&] { return jobs->Stats().acked == 4; }));

  // The stored config is the new one: the same file again changes nothing,
  // and going back is another in-place change.
  report = d->Reload(Parse(Yaml(Jobs(3))));
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->changes.empty());
  report = d->Reload(Parse(Yaml(Jobs(2))));
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->changes.size(), 1u);
  EXPECT_EQ(report->changes[0], "queue jobs changed in place (concurrency 3 -> 2)");
  EXPECT_EQ(jobs->Stats().acked, 4u);
  EXPECT_TRUE(d->Shutdown());
}

TEST_F(ReloadTest, OtherChangesStillHandOver) {
  // A hand-over shows as a new consumer whose counters start from zero (the
  // old one's address may be reused, so the pointer proves nothing).
  auto d = StartDaemon(Yaml(Jobs(2)));
  ASSERT_TRUE(d);
  auto handle_one = [&](const std::string& source) {
    Consumer* c = d->FindConsumer("jobs");
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(Mem(*d)->Enqueue(source, TypedMessage("ok"), {}).ok());
    ASSERT_TRUE(WaitFor([&] { return c->Stats().acked == 1; }));
  };
  auto reload = [&](const std::string& queue, const std::string& expected) {
    auto report = d->Reload(Parse(Yaml(queue)));
    ASSERT_TRUE(report.ok()) << report.status().message();
    ASSERT_EQ(report->changes.size(), 1u);
    EXPECT_EQ(report->changes[0], expected);
    ASSERT_TRUE(Settle(*d));
    ASSERT_NE(d->FindConsumer("jobs"), nullptr);
    EXPECT_EQ(d->FindConsumer("jobs")->Stats().received, 0u) << expected;
  };
  const std::string base = "  jobs:\n    backend: mem\n    plugin: test\n    concurrency: 4\n";
  handle_one("jobs");
  // prefetch (the backend sizes its window from it), with concurrency.
  reload(base + "    prefetch: 16\n",
         "queue jobs changed (concurrency 2 -> 4, prefetch 8 -> 16)");
  EXPECT_EQ(d->FindConsumer("jobs")->config().prefetch, 16);
  handle_one("jobs");
  // The source.
  reload(base + "    prefetch: 16\n    source: other\n",
         "queue jobs changed (source \"jobs\" -> \"other\")");
  handle_one("other");
  // A first timeout: the consumer started without a watchdog.
  reload(base + "    prefetch: 16\n    source: other\n    timeout: 1s\n",
         "queue jobs changed (timeout 0 -> 1000)");
  handle_one("other");
  // Concurrency with a prefetch left to its default (2 x concurrency).
  reload(base + "    source: other\n    timeout: 1s\n",
         "queue jobs changed (prefetch 16 -> 8)");
  handle_one("other");
  reload("  jobs:\n    backend: mem\n    plugin: test\n    concurrency: 2\n    source: other\n"
         "    timeout: 1s\n",
         "queue jobs changed (concurrency 4 -> 2, prefetch 8 -> 4)");
  handle_one("other");
  EXPECT_TRUE(d->Shutdown());
}

// Two queues share one rate limit; changing its rate must hand both over
// to one new bucket, not only the first queue that meets it.
TEST_F(ReloadTest, AChangedSharedRateLimitHandsOverEveryQueueThatUsesIt) {
  auto yaml = [](const std::string& rate) {
    const std::string mw = "    middleware:\n      - rate_limit: {shared: api}\n";
    return "daemon:\n  worker_threads: 4\n  shutdown_timeout: 5s\n"
           "plugins:\n  test:\n    path: " + TestPluginPath() + "\n"
           "backends:\n  mem:\n    type: memory\n"
           "rate_limits:\n  api: {rate: " + rate + ", burst: 5}\n"
           "queues:\n  a:\n    backend: mem\n    plugin: test\n" + mw +
           "  b:\n    backend: mem\n    plugin: test\n" + mw;
  };
  auto d = StartDaemon(yaml("100/s"));
  ASSERT_TRUE(d);
  auto report = d->Reload(Parse(yaml("200/s")));
  ASSERT_TRUE(report.ok()) << report.status().message();
  ASSERT_EQ(report->changes.size(), 2u);
  EXPECT_EQ(report->changes[0], "queue a changed (shared rate limit changed)");
  EXPECT_EQ(report->changes[1], "queue b changed (shared rate limit changed)");
  ASSERT_TRUE(Settle(*d));
  ASSERT_NE(d->FindConsumer("a"), nullptr);
  ASSERT_NE(d->FindConsumer("b"), nullptr);
  EXPECT_TRUE(d->Shutdown());
}

// Readers that took a snapshot before a reload (a publish in progress) keep
// its config and objects: the reload retires them from the daemon, but
// destroys them only once nothing holds the snapshot.
TEST_F(ReloadTest, ASnapshotKeepsWhatItListsAcrossAReload) {
  auto yaml = [](bool side) {
    return "daemon:\n  worker_threads: 2\n  shutdown_timeout: 5s\n"
           "plugins:\n  test:\n    path: " + TestPluginPath() + "\n"
           "backends:\n  mem:\n    type: memory\n" +
           std::string(side ? "  spare:\n    type: memory\n" : "") + "queues:\n" + kJobs +
           (side ? "  side:\n    backend: spare\n    plugin: test\n" : "");
  };
  auto d = StartDaemon(yaml(true));
  ASSERT_TRUE(d);
  std::shared_ptr<const RuntimeSnapshot> before = d->snapshot();
  auto report = d->Reload(Parse(yaml(false)));
  ASSERT_TRUE(report.ok()) << report.status().message();
  ASSERT_TRUE(Settle(*d));
  EXPECT_EQ(d->FindBackend("spare"), nullptr);
  EXPECT_EQ(d->FindConsumer("side"), nullptr);
  EXPECT_EQ(d->snapshot()->config->FindQueue("side"), nullptr);
  EXPECT_EQ(d->FindConsumer("jobs"), before->FindConsumer("jobs"));  // kept
  // The old snapshot is as it was, and what it lists is alive (stopped).
  ASSERT_NE(before->config->FindQueue("side"), nullptr);
  ASSERT_NE(before->FindBackend("spare"), nullptr);
  EXPECT_EQ(before->FindBackend("spare")->name(), "spare");
  ASSERT_NE(before->FindConsumer("side"), nullptr);
  EXPECT_EQ(before->FindConsumer("side")->Stats().in_flight, 0);
  before.reset();
  d->Poll();  // now they go
  EXPECT_TRUE(d->Shutdown());
}

TEST_F(ReloadTest, AnInPlaceChangeThatCannotCreateInstancesFailsTheReload) {
  auto d = StartDaemon(Yaml(Jobs(2)));
  ASSERT_TRUE(d);
  Consumer* jobs = d->FindConsumer("jobs");
  CallTestPlugin("test_plugin_refuse_create", 1);
  auto report = d->Reload(Parse(Yaml(Jobs(4))));
  CallTestPlugin("test_plugin_refuse_create", 0);
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.status().message().find("queue jobs: "), std::string::npos)
      << report.status().message();
  EXPECT_NE(report.status().message().find("refused by test_plugin_refuse_create"),
            std::string::npos)
      << report.status().message();
  EXPECT_EQ(d->FindConsumer("jobs"), jobs);
  EXPECT_EQ(jobs->config().concurrency, 2);
  EXPECT_EQ(d->config().FindQueue("jobs")->concurrency, 2);
  EXPECT_EQ(ReadTestPluginStats().instances, 2);
  // Still at 2: two long handlers, a third waits.
  StartOneByOne(*d, Mem(*d), 2, "200");
  ASSERT_TRUE(Mem(*d)->Enqueue("jobs", TypedMessage("sleep", "10"), {}).ok());
  ASSERT_TRUE(WaitFor([&] { return jobs->Stats().acked == 3; }));
  EXPECT_EQ(ReadTestPluginStats().max_running, 2);
  EXPECT_TRUE(d->Shutdown());
}

}  // namespace
}  // namespace foxworker::testing
