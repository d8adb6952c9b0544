// Supervisor::Reload in-process: memory backend, real plugin, real consumers.
// (The daemon-level reload, SIGHUP and the notify protocol are tested in
// tests/service/notify_test.cc against the real binary.)
#include <gtest/gtest.h>

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
  ASSERT_TRUE(WaitFor([&] { return old->Stats().in_flight == 2; }));

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

}  // namespace
}  // namespace foxworker::testing
