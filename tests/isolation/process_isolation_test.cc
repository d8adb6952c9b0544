// isolation: process end to end: the daemon core on the memory backend and
// on a real SQLite file, the test plugin's handlers in foxworker-child
// processes. A crash, an abort or a hang costs the message that caused it,
// never the others, and never the daemon.
#include <glog/logging.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <mutex>

#include "daemon/app/admin/admin_render.h"
#include "daemon/backends/local/local_store.h"
#include "daemon/core/dead_letter.h"
#include "daemon/config/config_parser.h"
#include "daemon/isolation/process_handlers.h"
#include "tests/core/test_daemon.h"
#include "tests/isolation/isolation_fixture.h"
#include "tests/support/log_capture.h"

namespace foxworker::testing {
namespace {


class ProcessIsolationTest : public IsolationFixture {
 protected:
  void Start(const std::string& queue_extra) {
    StartYaml("  jobs:\n    backend: b\n    plugin: test\n"
              "    retry_policy: quick\n    isolation: process\n" + queue_extra);
  }

  void Enqueue(const std::string& type, const std::string& payload = "", int n = 1) {
    for (int i = 0; i < n; ++i)
      ASSERT_TRUE(
          daemon_->FindBackend("b")->Enqueue("jobs", TypedMessage(type, payload), Duration{0}).ok());
  }

  Consumer& C() { return *daemon_->FindConsumer("jobs"); }


};

TEST_P(ProcessIsolationTest, GoodMessagesRunInChildrenAndAreAcked) {
  Start("    concurrency: 4\n");
  Enqueue("ok", "", 50);
  Enqueue("defer", "", 10);  // completed later from another thread of the child
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 60; })) << C().Stats().acked;
  EXPECT_EQ(C().Stats().retried, 0u);
  EXPECT_TRUE(DeadLetters().empty());
}

TEST_P(ProcessIsolationTest, ASegfaultChargesOnlyTheGuiltyMessage) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The sanitizers keep SIGSEGV from a wild access in the child (which
  // installs no handler of its own) for their report, then exit with a
  // status: the child ends, but not by the signal this test names. The
  // normal pass checks it; AbortIsContainedToo runs here.
  GTEST_SKIP() << "the sanitizer owns SIGSEGV from a bad access";
#endif
  Start("    concurrency: 4\n");
  Enqueue("sleep", "50", 20);
  Enqueue("crash", "0");
  Enqueue("sleep", "50", 20);
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 40 && DeadLetters().size() == 1; },
                      std::chrono::seconds(30)))
      << C().Stats().acked << " acked, " << DeadLetters().size() << " dead";
  const auto dead = DeadLetters();
  EXPECT_EQ(dead[0].attempt, 3u);
  EXPECT_NE(dead[0].reason.find("handler crashed: SIGSEGV in plugin test, handler crash (child pid "),
            std::string::npos)
      << dead[0].reason;
  // Three attempts of the crasher, each its own charge; nothing else retried.
  EXPECT_EQ(C().Stats().retried, 2u);
}

TEST_P(ProcessIsolationTest, AbortIsContainedToo) {
  Start("    concurrency: 2\n");
  Enqueue("abort");
  Enqueue("ok", "", 10);
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 10 && DeadLetters().size() == 1; },
                      std::chrono::seconds(30)));
  EXPECT_NE(DeadLetters()[0].reason.find("handler crashed: SIGABRT in plugin test, handler abort"),
            std::string::npos)
      << DeadLetters()[0].reason;
}

TEST_P(ProcessIsolationTest, AHandlerPastItsTimeoutAndGraceIsKilledAndRetried) {
  Start("    concurrency: 2\n    timeout: 200ms\n    process:\n      timeout_grace: 100ms\n");
  Enqueue("hang", "600000");  // ten minutes
  Enqueue("ok", "", 10);
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 10 && DeadLetters().size() == 1; },
                      std::chrono::seconds(30)))
      << C().Stats().acked << " acked";
  EXPECT_EQ(DeadLetters()[0].attempt, 3u);
  EXPECT_NE(DeadLetters()[0].reason.find("killed after timeout 0.2s"), std::string::npos)
      << DeadLetters()[0].reason;
}

// A batch handler's call runs in one child: a crash in it charges every
// message of the call, and no other.
TEST_P(ProcessIsolationTest, ACrashInABatchCallChargesEveryMessageOfTheCall) {
  Start("    concurrency: 1\n    prefetch: 16\n    handler: batch\n    batch_size: 4\n"
        "    flush_interval: 300ms\n");
  // One batch of four (the flush interval gathers them), one of which aborts.
  Enqueue("any", "good", 3);
  Enqueue("any", "abort");
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked + DeadLetters().size() == 4; },
                      std::chrono::seconds(30)));
  Enqueue("any", "good", 5);
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked >= 5; }, std::chrono::seconds(30)));
  const auto dead = DeadLetters();
  ASSERT_GE(dead.size(), 1u);
  for (const auto& l : dead)
    EXPECT_NE(l.reason.find("handler crashed: SIGABRT in plugin test, handler batch"),
              std::string::npos)
        << l.reason;
  // Every message dead-lettered was in a call with the abort (its retries
  // may meet it again); nothing enqueued after it was dead is charged.
  EXPECT_LE(dead.size(), 4u);
  EXPECT_EQ(C().Stats().acked + dead.size(), 9u);
}

// A batch call past its timeout and grace: the child is killed, and every
// message of the call is retried with the kill's reason.
TEST_P(ProcessIsolationTest, ABatchCallPastItsTimeoutIsKilledWithEveryMessageCharged) {
  Start("    concurrency: 1\n    prefetch: 16\n    handler: batch\n    batch_size: 4\n"
        "    flush_interval: 300ms\n    timeout: 200ms\n"
        "    process:\n      timeout_grace: 100ms\n");
  Enqueue("any", "good", 2);
  Enqueue("any", "hang_hard");
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked + DeadLetters().size() == 3; },
                      std::chrono::seconds(30)));
  Enqueue("any", "good", 3);
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked >= 3; }, std::chrono::seconds(30)));
  const auto dead = DeadLetters();
  for (const auto& l : dead)
    EXPECT_NE(l.reason.find("killed after timeout 0.2s"), std::string::npos) << l.reason;
  EXPECT_LE(dead.size(), 3u);
  EXPECT_EQ(C().Stats().acked + dead.size(), 6u);
}

TEST_P(ProcessIsolationTest, HandlersThatBlockRunInParallelChildren) {
  Start("    concurrency: 4\n");
  const auto t0 = std::chrono::steady_clock::now();
  Enqueue("sleep", "300", 8);
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 8; }, std::chrono::seconds(20)));
  // 8 × 300 ms on 4 children: about 600 ms, far from 2.4 s one at a time.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(2000));
}

// The consumer hands messages to the children from one drain task
// (Consumer::Limit), not one per slot, and every slot still runs at once.
TEST_P(ProcessIsolationTest, OneDrainTaskFeedsEverySlotOfTheChildren) {
  Start("    concurrency: 8\n    process:\n      processes: 2\n");
  const auto t0 = std::chrono::steady_clock::now();
  Enqueue("sleep", "300", 16);
  int64_t most_tasks = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        const ConsumerStats st = C().Stats();
        most_tasks = std::max(most_tasks, st.running);
        return st.acked == 16;
      },
      std::chrono::seconds(20)));
  EXPECT_LE(most_tasks, 1);
  // 16 × 300 ms on 8 slots: about 600 ms; one at a time would be 4.8 s.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(2500));
}

// A child that is stopped (SIGSTOP, a debugger) holds up only what was
// sent to it: the writes to it that its full socket would block are left
// to the channel's own thread (Channel's write_behind), and the one drain
// task goes on feeding the other child.
TEST_P(ProcessIsolationTest, AStoppedChildHoldsUpOnlyItsOwnMessages) {
  Start("    concurrency: 2\n    process:\n      processes: 2\n");
  ASSERT_TRUE(WaitFor([&] {
    const HandlerChildren ch = C().Children();
    return ch.children.size() == 2 && ch.children[0].pid != 0 && ch.children[1].pid != 0;
  }));
  const pid_t stopped = C().Children().children[0].pid;
  ASSERT_EQ(kill(stopped, SIGSTOP), 0);
  // Each message is larger than the socket takes at once (about 200 KB),
  // so the first frame to the stopped child cannot be written whole.
  const std::string big(1 << 20, 'x');
  Enqueue("ok", big, 12);
  // The stopped child holds at most its one slot's message.
  const bool others_ran = WaitFor([&] { return C().Stats().acked >= 11; },
                                  std::chrono::seconds(20));
  const uint64_t acked_while_stopped = C().Stats().acked;
  ASSERT_EQ(kill(stopped, SIGCONT), 0);
  EXPECT_TRUE(others_ran) << acked_while_stopped << " acked while one child was stopped";
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 12; }, std::chrono::seconds(20)))
      << C().Stats().acked;
  EXPECT_EQ(C().Stats().retried, 0u);
  EXPECT_TRUE(DeadLetters().empty());
}

// A stopped child does not hold its messages past their timeout: SIGKILL
// ends a stopped process too, and the message runs again on its new child.
TEST_P(ProcessIsolationTest, AChildStoppedPastATimeoutIsKilledAndItsMessageRunsAgain) {
  LogCapture log;
  Start("    concurrency: 1\n    timeout: 300ms\n    process:\n      timeout_grace: 100ms\n");
  ASSERT_TRUE(WaitFor([&] {
    const HandlerChildren ch = C().Children();
    return ch.children.size() == 1 && ch.children[0].pid != 0;
  }));
  const pid_t stopped = C().Children().children[0].pid;
  ASSERT_EQ(kill(stopped, SIGSTOP), 0);
  Enqueue("ok", std::string(1 << 20, 'x'));
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 1; }, std::chrono::seconds(20)))
      << C().Stats().acked;
  EXPECT_EQ(C().Stats().retried, 1u);
  EXPECT_NE(C().Children().children[0].pid, stopped);
  EXPECT_TRUE(log.Has("handler child " + std::to_string(stopped) + " of plugin test ended (SIGKILL)"));
  EXPECT_TRUE(DeadLetters().empty());
}

TEST_P(ProcessIsolationTest, APauseHandsBackWhatWaitsForAChildAndStartsNothingMore) {
  // One child: a message runs, the rest wait in the set for it.
  Start("    concurrency: 1\n    prefetch: 4\n");
  Enqueue("sleep", "400", 4);
  ASSERT_TRUE(WaitFor([&] { return C().Stats().in_flight == 4; })) << C().Stats().in_flight;
  C().SetPaused(true);
  // The three that wait go back at once, uncharged; the running one ends.
  ASSERT_TRUE(WaitFor([&] { return C().Stats().released == 3; })) << C().Stats().released;
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 1 && C().Stats().in_flight == 0; }));
  C().SetPaused(false);
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 4; }, std::chrono::seconds(20)))
      << C().Stats().acked;
  EXPECT_EQ(C().Stats().retried, 0u);
}

// Many pauses and resumes in a row while messages arrive: every message
// still runs. (One race this covers in Consumer::EndTask: the queue's one
// drain task on its way out after stopping for the pause when the resume
// comes, whose wake-up sees that task and starts none. Its window is a few
// instructions; this test does not reproduce it on demand, and passed
// with that check taken out too.)
TEST_P(ProcessIsolationTest, PausesAndResumesInARowNeverLeaveMessagesWaiting) {
  Start("    concurrency: 4\n");
  for (int i = 0; i < 40; ++i) {
    Enqueue("ok", "", 5);
    C().SetPaused(true);
    std::this_thread::sleep_for(std::chrono::microseconds(200 * (i % 5)));
    C().SetPaused(false);
  }
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 200; }, std::chrono::seconds(20)))
      << C().Stats().acked;
  EXPECT_EQ(C().Stats().retried, 0u);
}

TEST_P(ProcessIsolationTest, ThePluginsLogAndOutputReachTheDaemonsLogTagged) {
  LogCapture log;
  Start("    concurrency: 1\n");
  Enqueue("print", "hello from the child");
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 1; }));
  ASSERT_TRUE(WaitFor([&] { return log.Has("output] stderr: hello from the child"); }));
  EXPECT_TRUE(log.Has("[queue jobs child "));
  EXPECT_TRUE(log.Has("[plugin test] hello from the child")) << "log() through the channel";
  EXPECT_TRUE(log.Has("output] stdout: hello from the child"));
}

TEST_P(ProcessIsolationTest, AFloodOfOutputIsRateLimited) {
  LogCapture log;
  Start("    concurrency: 1\n");
  Enqueue("print", "flood", 500);
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 500; }, std::chrono::seconds(30)));
  ASSERT_TRUE(WaitFor([&] { return log.Has("line(s) of output left out"); }));
  // 1,000 lines printed; at most 50 a second are logged.
  EXPECT_LT(log.Count("output] std"), 200u);
}

TEST_P(ProcessIsolationTest, AChildIsRecycledAfterMaxTasksWithoutLosingOrRepeatingWork) {
  LogCapture log;
  Start("    concurrency: 2\n    process:\n      max_tasks: 5\n");
  Enqueue("ok", "", 40);
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 40; }, std::chrono::seconds(30)));
  EXPECT_EQ(C().Stats().retried, 0u);
  EXPECT_EQ(C().Stats().received, 40u);
  EXPECT_TRUE(DeadLetters().empty());
  EXPECT_GE(log.Count("recycled after 5 messages (max_tasks)"), 6u);
}

TEST_P(ProcessIsolationTest, ALeakingChildIsRecycledByMaxMemory) {
  LogCapture log;
  Start("    concurrency: 1\n    process:\n      max_memory: 96MiB\n");
  // Each message leaks 32 MiB: without recycling the child would hold 384.
  // (Under ThreadSanitizer a child starts near 80 MiB and is replaced after
  // nearly every message, each replacement taking about half a second.)
  Enqueue("leak", "32", 12);
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 12; }, std::chrono::seconds(90)));
  EXPECT_EQ(C().Stats().retried, 0u);
  EXPECT_GE(log.Count("(max_memory)"), 2u);
}

TEST_P(ProcessIsolationTest, ChildrenAreShownInTheQueueJsonAndTheMetrics) {
  Start("    concurrency: 2\n");
  Enqueue("ok", "", 10);
  Enqueue("crash", "0");
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 10 && DeadLetters().size() == 1; },
                      std::chrono::seconds(30)));
  ASSERT_TRUE(WaitFor([&] {
    for (const HandlerChild& h : C().Children().children)
      if (h.pid == 0) return false;  // wait for the restarts
    return true;
  }));
  const HandlerChildren children = C().Children();
  ASSERT_TRUE(children.isolated);
  ASSERT_EQ(children.children.size(), 2u);
  uint64_t crashes = 0, restarts = 0;
  for (const HandlerChild& h : children.children) {
    crashes += h.crashes;
    restarts += h.restarts;
    EXPECT_GT(h.rss_bytes, 0u);
    EXPECT_GT(h.uptime_s, 0);
  }
  EXPECT_EQ(crashes, 3u);  // three attempts of the crasher
  EXPECT_EQ(restarts, 3u);
  const std::string json = RenderQueueJson(*daemon_, C());
  EXPECT_NE(json.find("\"isolation\":\"process\",\"children\":[{\"index\":0,\"pid\":"),
            std::string::npos)
      << json;
  const std::string metrics = RenderMetrics(*daemon_, std::chrono::system_clock::now());
  EXPECT_NE(metrics.find("foxworker_handler_child_crashes_total{queue=\"jobs\",child=\"0\"}"),
            std::string::npos);
  EXPECT_NE(metrics.find("foxworker_handler_child_resident_memory_bytes{queue=\"jobs\",child=\"1\"}"),
            std::string::npos);
}

TEST_P(ProcessIsolationTest, APublishFromAChildIsPerformedByTheDaemon) {
  Start("    concurrency: 2\n"
        "  out:\n    backend: b\n    source: out-source\n    plugin: test\n    handler: ok\n");
  Consumer& out = *daemon_->FindConsumer("out");
  Enqueue("publish", "out", 5);
  // The published messages may be acked before their publishers: wait for both.
  ASSERT_TRUE(WaitFor([&] { return out.Stats().acked == 5; }, std::chrono::seconds(30)))
      << out.Stats().acked;
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 5; }, std::chrono::seconds(30)));
  // An unknown queue is the handler's error, in the words of the daemon's
  // publisher: the handler retries with it until the message is dead.
  Enqueue("publish", "nowhere");
  ASSERT_TRUE(WaitFor([&] { return DeadLetters().size() == 1; }, std::chrono::seconds(30)));
  EXPECT_NE(DeadLetters()[0].reason.find(
                "publish to \"nowhere\": no queue named \"nowhere\" in the config"),
            std::string::npos)
      << DeadLetters()[0].reason;
  EXPECT_EQ(out.Stats().acked, 5u);
  EXPECT_EQ(C().Stats().acked, 5u);
}

// The value of `series` (a name with its labels) in Prometheus text; -1
// when absent.
double SeriesValue(const std::string& text, const std::string& series) {
  const std::string key = "\n" + series + " ";
  const size_t at = text.find(key);
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + key.size()));
}

TEST_P(ProcessIsolationTest, APluginsMetricsInChildrenAreTheDaemonsAndSurviveARestart) {
  Start("    concurrency: 2\n");
  auto metrics = [&] { return RenderMetrics(*daemon_, std::chrono::system_clock::now()); };
  const std::string total = "foxworker_plugin_test_count_total";
  const std::string observed = "foxworker_plugin_test_count_seconds_count";
  const std::string last = "foxworker_plugin_test_count_last";
  // The registry is the test process's: the other backend's run counted
  // into the same series before.
  const double total0 = std::max(0.0, SeriesValue(metrics(), total));
  const double observed0 = std::max(0.0, SeriesValue(metrics(), observed));
  Enqueue("count", "7", 20);
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 20; }, std::chrono::seconds(30)));
  // Both children counted; each reports every 200 ms.
  ASSERT_TRUE(WaitFor([&] { return SeriesValue(metrics(), total) == total0 + 20; },
                      std::chrono::seconds(30)))
      << metrics();
  ASSERT_TRUE(WaitFor([&] { return SeriesValue(metrics(), observed) == observed0 + 20; },
                      std::chrono::seconds(30)));
  std::string text = metrics();
  EXPECT_NE(text.find("# HELP " + total + " Messages the count handler handled.\n# TYPE " + total +
                      " counter\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE " + last + " gauge\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE foxworker_plugin_test_count_seconds histogram\n"), std::string::npos);
  EXPECT_EQ(SeriesValue(text, last), 7);

  // A crash replaces a child (three times: the crasher's attempts); the new
  // ones count on from the total, never from zero.
  Enqueue("crash", "0");
  ASSERT_TRUE(WaitFor([&] { return DeadLetters().size() == 1; }, std::chrono::seconds(30)));
  EXPECT_GE(SeriesValue(metrics(), total), total0 + 20);
  Enqueue("count", "9", 10);
  ASSERT_TRUE(WaitFor([&] { return C().Stats().acked == 30; }, std::chrono::seconds(30)));
  ASSERT_TRUE(WaitFor([&] { return SeriesValue(metrics(), total) == total0 + 30; },
                      std::chrono::seconds(30)))
      << metrics();
  ASSERT_TRUE(WaitFor([&] { return SeriesValue(metrics(), last) == 9; }, std::chrono::seconds(30)));
  uint64_t restarts = 0;
  for (const HandlerChild& h : C().Children().children) restarts += h.restarts;
  EXPECT_GE(restarts, 1u);
}

INSTANTIATE_TEST_SUITE_P(Backends, ProcessIsolationTest, ::testing::Values("memory", "local"),
                         [](const auto& info) { return info.param; });

TEST(ProcessIsolationConfigTest, KeysThatNeedProcessIsolationAreRefusedWithout) {
  const std::string base = "plugins:\n  test:\n    path: /p.so\nbackends:\n  b:\n    type: memory\n"
                           "queues:\n  jobs:\n    backend: b\n    plugin: test\n";
  auto c = ParseConfigString(base + "    process:\n      processes: 2\n", "t.yaml", "/tmp");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("queues.jobs.process: applies only with isolation: process"),
            std::string::npos)
      << c.status().message();
  c = ParseConfigString(base + "    isolation: process\n    retry_stuck: at_once\n", "t.yaml", "/tmp");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("at_once does not apply with isolation: process"),
            std::string::npos)
      << c.status().message();
  c = ParseConfigString(base + "    isolation: sandbox\n", "t.yaml", "/tmp");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("t.yaml:11:16: queues.jobs.isolation: must be in_process"),
            std::string::npos)
      << c.status().message();
  c = ParseConfigString(
      base + "    isolation: process\n    concurrency: 2\n    process:\n      processes: 3\n",
      "t.yaml", "/tmp");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("must be at most concurrency (2), got 3"), std::string::npos)
      << c.status().message();
  c = ParseConfigString(base + "    isolation: process\n    concurrency: 4\n    process:\n"
                               "      processes: 2\n      max_memory: 512MiB\n"
                               "      cpu_time: 1500ms\n",
                        "t.yaml", "/tmp");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("queues.jobs.process.cpu_time: must be whole seconds"),
            std::string::npos)
      << c.status().message();
  c = ParseConfigString(base + "    isolation: process\n    concurrency: 4\n    process:\n"
                               "      processes: 2\n      max_memory: 512MiB\n"
                               "      max_tasks: 1000\n      max_lifetime: 1h\n"
                               "      address_space: 2GiB\n      cpu_time: 10m\n"
                               "      open_files: 256\n      max_processes: 64\n"
                               "      no_new_privs: false\n      user: nobody\n",
                        "t.yaml", "/tmp");
  ASSERT_TRUE(c.ok()) << c.status().message();
  const ProcessIsolationConfig& p = c->queues[0].process;
  EXPECT_TRUE(c->queues[0].process_isolation);
  EXPECT_EQ(p.processes, 2);
  EXPECT_EQ(p.max_memory, 512u << 20);
  EXPECT_EQ(p.max_tasks, 1000);
  EXPECT_EQ(p.max_lifetime, Duration(3600000));
  EXPECT_EQ(p.address_space, 2ull << 30);
  EXPECT_EQ(p.cpu_time, Duration(600000));
  EXPECT_EQ(p.open_files, 256);
  EXPECT_EQ(p.max_processes, 64);
  EXPECT_FALSE(p.no_new_privs);
  EXPECT_EQ(p.user, "nobody");
  // --check-config prints it, and what it prints loads back the same.
  const std::string text = FormatConfig(*c);
  EXPECT_NE(text.find("    process:\n      processes: 2\n      timeout_grace: 5s\n"
                      "      max_tasks: 1000\n      max_memory: 512MiB\n"),
            std::string::npos)
      << text;
  auto again = ParseConfigString(text, "printed.yaml", "/tmp");
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->queues[0].process, p);
}

TEST(ProcessIsolationConfigTest, ChildExitsAreDescribed) {
  EXPECT_EQ(isolation::DescribeChildExit(SIGSEGV), "SIGSEGV");  // a wait status of a signal
  EXPECT_EQ(isolation::DescribeChildExit(1 << 8), "exit status 1");
}

}  // namespace
}  // namespace foxworker::testing
