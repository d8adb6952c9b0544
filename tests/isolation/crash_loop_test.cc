// isolation: process, crash loops: a queue whose handler children crash
// `crash_loop.crashes` times within its window is paused for `pause`,
// shown in /readyz, /api/v1/queues and /metrics; it resumes by itself or on
// an operator's resume, and loses or double-charges no message meanwhile.
// Another queue of the same daemon keeps consuming.
#include <glog/logging.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <thread>

#include "daemon/app/admin/admin_render.h"
#include "daemon/backends/local/local_store.h"
#include "daemon/core/dead_letter.h"
#include "tests/core/test_daemon.h"
#include "tests/isolation/isolation_fixture.h"
#include "tests/support/log_capture.h"

namespace foxworker::testing {
namespace {

using std::chrono::seconds;

class CrashLoopTest : public IsolationFixture {
 protected:
  // Queue `jobs` (isolation: process, two children, the given crash_loop
  // block) and queue `other` (isolation: process too, its own children).
  void Start(const std::string& crash_loop) {
    StartYaml("  jobs:\n    backend: b\n    plugin: test\n    retry_policy: quick\n"
              "    concurrency: 2\n    isolation: process\n"
              "    process:\n      crash_loop: " + crash_loop + "\n"
              "  other:\n    backend: b\n    plugin: test\n    concurrency: 1\n"
              "    isolation: process\n");
  }

  void Enqueue(const std::string& queue, const std::string& type, int n) {
    for (int i = 0; i < n; ++i)
      ASSERT_TRUE(
          daemon_->FindBackend("b")->Enqueue(queue, TypedMessage(type), Duration{0}).ok());
  }

  Consumer& Jobs() { return *daemon_->FindConsumer("jobs"); }
  Consumer& Other() { return *daemon_->FindConsumer("other"); }

  // The attempt count of each dead-lettered message of `jobs`.
  std::vector<uint32_t> DeadAttempts() {
    std::vector<uint32_t> out;
    for (const DeadLetter& d : DeadLetters()) out.push_back(d.attempt);
    return out;
  }

  uint64_t Pauses() { return Jobs().Children().crash_loop_pauses; }

  std::string Readiness() {
    std::string all;
    for (const std::string& r : ReadinessReasons(*daemon_)) all += r + "\n";
    return all;
  }

  // Every message of `jobs` is accounted for: `ok` acked, each crasher
  // dead-lettered after exactly its three attempts (two retries each: no
  // attempt charged twice, none charged for a message handed back).
  void ExpectAllSettled(uint64_t oks, uint64_t crashers) {
    const ConsumerStats s = Jobs().Stats();
    EXPECT_EQ(s.acked, oks);
    EXPECT_EQ(s.dead_lettered, crashers);
    EXPECT_EQ(s.retried, 2 * crashers);
    EXPECT_EQ(s.in_flight, 0);
    // The consumer counts a dead letter once the backend took it; the local
    // backend commits it on its own thread a moment later.
    EXPECT_TRUE(WaitFor([&] { return DeadAttempts().size() >= crashers; }, seconds(30)));
    const std::vector<uint32_t> dead = DeadAttempts();
    EXPECT_EQ(dead.size(), crashers);
    for (uint32_t a : dead) EXPECT_EQ(a, 3u);
    if (!Local()) {
      auto* mem = static_cast<MemoryBackend*>(daemon_->FindBackend("b"));
      EXPECT_TRUE(mem->Peek("jobs").empty()) << "messages left behind";
    }
  }

};

TEST_P(CrashLoopTest, ACrashLoopPausesTheQueueUntilAnOperatorResumes) {
  LogCapture log;
  // A pause far longer than the test: only the operator ends it.
  Start("{crashes: 4, window: 1m, pause: 10m}");
  Enqueue("jobs", "abort", 3);  // 9 crashes in all: three attempts each
  Enqueue("jobs", "ok", 10);
  ASSERT_TRUE(WaitFor([&] { return Jobs().held(); }, seconds(60)));
  EXPECT_FALSE(Jobs().paused()) << "the operator's pause is another thing";
  EXPECT_EQ(Pauses(), 1u);

  // What an operator sees: one ERROR line, /readyz, the queue JSON, /metrics.
  ASSERT_TRUE(log.WaitFor(google::GLOG_ERROR, "queue jobs paused:"));
  const std::string line = log.First(google::GLOG_ERROR, "queue jobs paused:");
  EXPECT_NE(line.find("handler children crashed 4 times within 1m (last: SIGABRT in plugin test, "
                      "handler abort, child pid "),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("resumes in 10m or with POST /api/v1/queues/jobs/resume"),
            std::string::npos)
      << line;
  const std::string ready = Readiness();
  EXPECT_NE(ready.find("queue jobs is paused: crash loop: handler children crashed 4 times "
                       "within 1m (last: SIGABRT in plugin test, handler abort"),
            std::string::npos)
      << ready;
  EXPECT_NE(ready.find("or when an operator resumes it"), std::string::npos) << ready;
  EXPECT_EQ(ready.find("queue other"), std::string::npos) << ready;
  const std::string json = RenderQueueJson(*daemon_, Jobs());
  EXPECT_NE(json.find("\"paused\":false,\"pause_reasons\":[\"crash loop: handler children "
                      "crashed 4 times"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"crash_loop_paused\":true"), std::string::npos) << json;
  EXPECT_NE(json.find("\"crash_loop_pauses\":1"), std::string::npos) << json;
  const std::string metrics = RenderMetrics(*daemon_, std::chrono::system_clock::now());
  EXPECT_NE(metrics.find("foxworker_queue_crash_loop_paused{queue=\"jobs\"} 1\n"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("foxworker_queue_crash_loop_paused{queue=\"other\"} 0\n"),
            std::string::npos);
  EXPECT_NE(metrics.find("foxworker_queue_crash_loop_pauses_total{queue=\"jobs\"} 1\n"),
            std::string::npos);
  EXPECT_NE(metrics.find("foxworker_queue_paused{queue=\"jobs\"} 0\n"), std::string::npos);

  // The other queue keeps consuming while this one is paused (for 10 min).
  Enqueue("other", "ok", 20);
  ASSERT_TRUE(WaitFor([&] { return Other().Stats().acked == 20; }, seconds(60)));
  EXPECT_TRUE(Jobs().held());
  // While held, nothing of `jobs` runs or stays fetched: the crashes
  // counted so far are charged once each, the rest waits in the backend.
  ASSERT_TRUE(WaitFor([&] { return Jobs().Stats().in_flight == 0; }, seconds(60)))
      << Jobs().Stats().in_flight;
  {
    const ConsumerStats s = Jobs().Stats();
    EXPECT_EQ(s.retried + s.dead_lettered, 4u) << "one charge per crash";
  }

  // The operator resumes (what POST /api/v1/queues/jobs/resume does), at
  // once and with the count reset: the next pause needs four new crashes.
  // Nine crashes in all pause the queue twice; resume each time.
  Jobs().SetPaused(false);
  EXPECT_FALSE(Jobs().held());
  EXPECT_TRUE(Readiness().find("queue jobs") == std::string::npos) << Readiness();
  ASSERT_TRUE(WaitFor(
      [&] {
        if (Jobs().held()) Jobs().SetPaused(false);
        const ConsumerStats s = Jobs().Stats();
        return s.acked == 10 && s.dead_lettered == 3 && s.in_flight == 0;
      },
      seconds(120)))
      << Jobs().Stats().acked << " acked, " << Jobs().Stats().dead_lettered << " dead";
  EXPECT_EQ(Pauses(), 2u);  // after crashes 4 and 8; the ninth starts a new count
  ExpectAllSettled(10, 3);
  EXPECT_TRUE(log.Has("crash-loop pause ended by an operator's resume"));
}

TEST_P(CrashLoopTest, ACrashLoopPauseEndsByItselfButAnOperatorsPauseStays) {
  LogCapture log;
  Start("{crashes: 2, window: 1m, pause: 2s}");
  Enqueue("jobs", "abort", 2);  // 6 crashes: three pauses of 2 s, each ending by itself
  Enqueue("jobs", "ok", 10);
  ASSERT_TRUE(WaitFor([&] { return Jobs().held(); }, seconds(60)));
  // An operator pauses the queue during the crash-loop pause: the end of
  // the crash-loop pause must not resume it.
  Jobs().SetPaused(true);
  ASSERT_TRUE(Jobs().held()) << "the 2 s pause ended before the test paused (machine too slow?)";
  ASSERT_TRUE(WaitFor([&] { return !Jobs().held(); }, seconds(60)));
  EXPECT_TRUE(Jobs().paused());
  EXPECT_TRUE(log.Has("crash-loop pause over; starting its handler children again"));
  std::string ready = Readiness();
  EXPECT_NE(ready.find("queue jobs is paused\n"), std::string::npos) << ready;
  EXPECT_EQ(ready.find("crash loop"), std::string::npos) << ready;
  const uint64_t received = Jobs().Stats().received;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(Jobs().Stats().received, received) << "a paused queue fetched";

  // The operator resumes; the remaining crashes pause it twice more, and
  // each pause ends by itself.
  Jobs().SetPaused(false);
  ASSERT_TRUE(WaitFor(
      [&] {
        const ConsumerStats s = Jobs().Stats();
        return s.acked == 10 && s.dead_lettered == 2 && s.in_flight == 0;
      },
      seconds(120)))
      << Jobs().Stats().acked << " acked, " << Jobs().Stats().dead_lettered << " dead";
  EXPECT_EQ(Pauses(), 3u);
  ExpectAllSettled(10, 2);
  // Children run again after the last pause.
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const HandlerChild& h : Jobs().Children().children)
          if (h.pid == 0) return false;
        return true;
      },
      seconds(60)));
  EXPECT_FALSE(Jobs().held());
}

TEST_P(CrashLoopTest, CrashesZeroNeverPauses) {
  Start("{crashes: 0}");
  Enqueue("jobs", "abort", 2);
  Enqueue("jobs", "ok", 5);
  ASSERT_TRUE(WaitFor(
      [&] {
        const ConsumerStats s = Jobs().Stats();
        return s.acked == 5 && s.dead_lettered == 2 && s.in_flight == 0;
      },
      seconds(120)));
  EXPECT_EQ(Pauses(), 0u);
  ExpectAllSettled(5, 2);
}

INSTANTIATE_TEST_SUITE_P(Backends, CrashLoopTest, ::testing::Values("memory", "local"),
                         [](const auto& info) { return info.param; });

TEST(CrashLoopConfigTest, KeysAreParsedCheckedAndPrinted) {
  const std::string base = "plugins:\n  test:\n    path: /p.so\nbackends:\n  b:\n    type: memory\n"
                           "queues:\n  jobs:\n    backend: b\n    plugin: test\n"
                           "    isolation: process\n    process:\n      crash_loop:\n";
  auto c = ParseConfigString(base + "        crashes: 3\n        window: 30s\n        pause: 2m\n",
                             "t.yaml", "/tmp");
  ASSERT_TRUE(c.ok()) << c.status().message();
  const CrashLoopConfig& cl = c->queues[0].process.crash_loop;
  EXPECT_EQ(cl.crashes, 3);
  EXPECT_EQ(cl.window, Duration(30000));
  EXPECT_EQ(cl.pause, Duration(120000));
  const std::string text = FormatConfig(*c);
  EXPECT_NE(text.find("      crash_loop:\n        crashes: 3\n        window: 30s\n"
                      "        pause: 2m\n"),
            std::string::npos)
      << text;
  auto again = ParseConfigString(text, "printed.yaml", "/tmp");
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->queues[0].process.crash_loop, cl);

  // The defaults.
  c = ParseConfigString(base + "        {}\n", "t.yaml", "/tmp");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->queues[0].process.crash_loop, CrashLoopConfig{});
  EXPECT_EQ(CrashLoopConfig{}.crashes, 10);
  EXPECT_EQ(CrashLoopConfig{}.window, Duration(60000));
  EXPECT_EQ(CrashLoopConfig{}.pause, Duration(300000));

  struct Bad {
    std::string yaml;
    std::string error;
  };
  const Bad bad[] = {
      {"        crashes: -1\n", "t.yaml:14:18: queues.jobs.process.crash_loop.crashes: "},
      {"        crashes: many\n", "queues.jobs.process.crash_loop.crashes: "},
      {"        window: 0s\n", "t.yaml:14:17: queues.jobs.process.crash_loop.window: must be "
                               "greater than zero"},
      {"        pause: 0s\n", "queues.jobs.process.crash_loop.pause: must be greater than zero"},
      {"        pause: 25h\n", "queues.jobs.process.crash_loop.pause: must be at most "},
      {"        crashs: 3\n", "queues.jobs.process.crash_loop.crashs"},
  };
  for (const Bad& b : bad) {
    c = ParseConfigString(base + b.yaml, "t.yaml", "/tmp");
    ASSERT_FALSE(c.ok()) << b.yaml;
    EXPECT_NE(c.status().message().find(b.error), std::string::npos)
        << b.yaml << ": " << c.status().message();
  }
}

}  // namespace
}  // namespace foxworker::testing
