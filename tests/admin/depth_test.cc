// Queue depth under a running daemon: the DepthPoller's readings in /metrics
// and the queue JSON, on a real redis-server and a real SQLite file; a
// Redis that stops keeps the last reading with the error; a dead letter
// retried through the backend's inspector runs its handler again.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>

#include "daemon/app/admin/admin_render.h"
#include "daemon/app/depth_poller.h"
#include "tests/backends/local_test_util.h"
#include "tests/backends/redis_test_util.h"
#include "tests/core/test_daemon.h"

namespace foxworker::testing {
namespace {

using std::chrono::seconds;

// The value of `name{queue="QUEUE"}` in a metrics text; nullopt when absent.
std::optional<double> Metric(const std::string& text, const std::string& name,
                             const std::string& queue) {
  const std::string prefix = name + "{queue=\"" + queue + "\"} ";
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) return std::strtod(line.c_str() + prefix.size(), nullptr);
  }
  return std::nullopt;
}

std::string WithAdmin(std::string yaml) {
  const std::string admin = "daemon:\n  admin:\n    listen: 127.0.0.1:0\n    depth_interval: 100ms\n";
  yaml.replace(0, std::string("daemon:\n").size(), admin);
  return yaml;
}

class DepthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ResetTestPlugin();
    started_ = std::chrono::system_clock::now();
  }
  std::string Metrics(const Supervisor& d) const { return RenderMetrics(d, started_); }
  std::chrono::system_clock::time_point started_;
};

TEST_F(DepthTest, MetricsShowBacklogAndDeadLettersAndAStoppedRedisKeepsTheLastReading) {
  RedisServer& redis = SharedRedis();
  const std::string stream = "depth-" + std::to_string(getpid());
  redis.Command({"XADD", stream, "*", "data", "x", "type", "fail"});
  redis.Command({"XADD", stream, "*", "data", "y", "type", "fail"});
  auto d = StartDaemon(WithAdmin(RedisDaemonYaml(redis, stream, "c1", "", "    prefetch: 1\n")));
  ASSERT_TRUE(d);
  ASSERT_NE(d->depth_poller(), nullptr);
  std::string text;
  ASSERT_TRUE(WaitFor(
      [&] {
        text = Metrics(*d);
        return Metric(text, "foxworker_queue_dead_letters", "q") == 2.0;
      },
      seconds(30)))
      << text;
  EXPECT_EQ(Metric(text, "foxworker_queue_depth_read_ok", "q"), 1.0);
  EXPECT_EQ(Metric(text, "foxworker_queue_scheduled", "q"), 0.0);

  // Paused, with prefetch 1: of five new entries, at most one is read.
  d->FindConsumer("q")->SetPaused(true);
  for (int i = 0; i < 5; ++i) redis.Command({"XADD", stream, "*", "data", "z", "type", "ok"});
  double backlog = -1;
  ASSERT_TRUE(WaitFor(
      [&] {
        text = Metrics(*d);
        backlog = Metric(text, "foxworker_queue_backlog", "q").value_or(-1);
        return backlog >= 4 && backlog <= 5;
      },
      seconds(30)))
      << text;
  EXPECT_TRUE(Metric(text, "foxworker_queue_oldest_age_seconds", "q").has_value()) << text;
  const std::string json = RenderQueuesJson(*d);
  EXPECT_NE(json.find("\"dead_letters\":2"), std::string::npos) << json;
  EXPECT_NE(json.find("\"depth\":{\"backlog\":"), std::string::npos) << json;

  // Redis stops: the reading keeps the last values and says why it failed.
  const DepthReading before = d->depth_poller()->Reading("q");
  redis.Stop();
  DepthReading r;
  ASSERT_TRUE(WaitFor(
      [&] {
        r = d->depth_poller()->Reading("q");
        return !r.ok && !r.error.empty();
      },
      seconds(30)));
  EXPECT_EQ(r.depth.dead_letters, 2);
  EXPECT_EQ(r.depth.backlog, before.depth.backlog);
  EXPECT_GT(r.read_at_ms, 0);  // the time of the last successful reading
  text = Metrics(*d);
  EXPECT_EQ(Metric(text, "foxworker_queue_depth_read_ok", "q"), 0.0) << text;
  EXPECT_EQ(Metric(text, "foxworker_queue_dead_letters", "q"), 2.0) << text;
  const std::string failed = RenderQueuesJson(*d);
  EXPECT_NE(failed.find("\"ok\":false"), std::string::npos) << failed;

  ASSERT_TRUE(redis.Restart().ok());
  EXPECT_TRUE(WaitFor([&] { return d->depth_poller()->Reading("q").ok; }, seconds(30)));
  d->FindConsumer("q")->SetPaused(false);
  EXPECT_TRUE(d->Shutdown());
}

TEST_F(DepthTest, RetryingADeadLetterThroughTheInspectorRunsItsHandlerAgain) {
  TempDir dir;
  const std::string yaml =
      "daemon:\n  worker_threads: 2\n  shutdown_timeout: 5s\n  state_dir: " + dir.path() +
      "\n  admin:\n    listen: 127.0.0.1:0\n    depth_interval: 100ms\n"
      "plugins:\n  test:\n    path: " + TestPluginPath() +
      "\nbackends:\n  l:\n    type: local\n    path: " + dir.File("jobs.db") +
      "\n    poll_interval: 20ms\n"
      "retry_policies:\n  quick:\n    max_attempts: 2\n    backoff: fixed\n    initial: 20ms\n"
      "    jitter: 0\n"
      "queues:\n  q:\n    backend: l\n    source: work\n    plugin: test\n    retry_policy: quick\n";
  auto d = StartDaemon(yaml);
  ASSERT_TRUE(d);
  Backend* backend = d->FindBackend("l");
  ASSERT_NE(backend, nullptr);
  ASSERT_TRUE(backend->Enqueue("work", TypedMessage("fail", "p"), Duration(0)).ok());
  Consumer* c = d->FindConsumer("q");
  ASSERT_TRUE(WaitFor([&] { return c->Stats().dead_lettered == 1; }, seconds(30)));
  std::string text;
  ASSERT_TRUE(WaitFor(
      [&] {
        text = Metrics(*d);
        return Metric(text, "foxworker_queue_dead_letters", "q") == 1.0;
      },
      seconds(30)))
      << text;
  const int handled = ReadTestPluginStats().handled;
  EXPECT_EQ(handled, 2);

  auto inspector = backend->OpenInspector(InspectorOptions{});
  ASSERT_TRUE(inspector.ok()) << inspector.status().message();
  const Config& config = d->config();
  SourceOptions so = QueueSourceOptions(config, *config.FindQueue("q"));
  auto n = (*inspector)->RetryMatching(so, DeadLetterFilter{});
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(*n, 1u);
  // It runs again from attempt 1 (two more runs), and is dead again.
  EXPECT_TRUE(WaitFor([&] { return c->Stats().dead_lettered == 2; }, seconds(30)));
  EXPECT_EQ(ReadTestPluginStats().handled, handled + 2);
  EXPECT_TRUE(WaitFor(
      [&] { return Metric(Metrics(*d), "foxworker_queue_dead_letters", "q") == 1.0; }, seconds(30)));
  EXPECT_TRUE(d->Shutdown());
}

}  // namespace
}  // namespace foxworker::testing
