// The log plugin (plain C), loaded from its .so and driven through the real
// host services table.
#include <glog/logging.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "daemon/core/metrics.h"
#include "tests/plugins/plugin_harness.h"

namespace foxworker::testing {
namespace {

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE((haystack).find(needle), std::string::npos) << "in: " << (haystack)

class LogPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = PluginHarness::Load(LOG_PLUGIN_PATH, "log");
    ASSERT_TRUE(loaded.ok()) << loaded.status().message();
    plugin_ = std::move(loaded.value());
    saved_v_ = FLAGS_v;
    saved_minloglevel_ = FLAGS_minloglevel;
    FLAGS_v = 0;
    FLAGS_minloglevel = google::GLOG_INFO;
  }
  void TearDown() override {
    for (void* instance : instances_) plugin_->Destroy(instance);
    FLAGS_v = saved_v_;
    FLAGS_minloglevel = saved_minloglevel_;
  }

  void* Create(const std::string& config) {
    auto instance = plugin_->Create(config);
    EXPECT_TRUE(instance.ok()) << instance.status().message();
    if (!instance.ok()) return nullptr;
    instances_.push_back(*instance);
    return *instance;
  }

  std::string Refusal(const std::string& config) {
    auto instance = plugin_->Create(config);
    EXPECT_FALSE(instance.ok()) << config;
    if (instance.ok()) {
      instances_.push_back(*instance);
      return "";
    }
    return instance.status().message();
  }

  std::unique_ptr<PluginHarness> plugin_;
  std::vector<void*> instances_;
  int saved_v_ = 0;
  int saved_minloglevel_ = 0;
};

TEST_F(LogPluginTest, DeclaresItselfAndItsSchema) {
  EXPECT_STREQ(plugin_->info().name, "log");
  EXPECT_EQ(plugin_->def().instance_model, static_cast<uint32_t>(FOXW_INSTANCE_SHARED));
  ASSERT_EQ(plugin_->def().handler_count, 1u);
  EXPECT_STREQ(plugin_->def().handlers[0].name, "*");
  std::map<std::string, std::string> defaults;
  for (size_t i = 0; i < plugin_->info().config_key_count; ++i) {
    const foxw_config_key& key = plugin_->info().config_schema[i];
    EXPECT_EQ(key.struct_size, sizeof(foxw_config_key));
    defaults[key.name] = key.default_value;
  }
  EXPECT_EQ(defaults, (std::map<std::string, std::string>{{"level", "info"},
                                                          {"fail_every", "0"},
                                                          {"reject_every", "0"},
                                                          {"max_payload_bytes", "256"}}));
}

TEST_F(LogPluginTest, LogsEachMessageAndAcks) {
  void* instance = Create("{}");
  ASSERT_NE(instance, nullptr);
  auto d = MakeDelivery("hello", "greet", "m-7");
  d->msg.attempt = 2;
  LogCapture capture;
  HandlerRun run = plugin_->Handle(instance, "*", *d);
  EXPECT_EQ(run.verdict, FOXW_ACK);
  auto lines = capture.Matching("[plugin log]");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(
      lines[0],
      "[plugin log] message #1 id=m-7 queue=jobs type=greet attempt=2 payload=5 bytes: hello");
}

TEST_F(LogPluginTest, PayloadIsCutAndEscaped) {
  void* instance = Create("{\"max_payload_bytes\": 6}");
  ASSERT_NE(instance, nullptr);
  auto d = MakeDelivery(std::string("a\\b\n\0\xffzzzz", 10));
  LogCapture capture;
  plugin_->Handle(instance, "*", *d);
  auto lines = capture.Matching("[plugin log]");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_CONTAINS(lines[0], "payload=10 bytes: a\\\\b\\x0a\\x00\\xff...");
}

TEST_F(LogPluginTest, ZeroMaxPayloadBytesShowsNoPayload) {
  void* instance = Create("{\"max_payload_bytes\": 0}");
  ASSERT_NE(instance, nullptr);
  auto d = MakeDelivery("secret");
  LogCapture capture;
  plugin_->Handle(instance, "*", *d);
  auto lines = capture.Matching("[plugin log]");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].find("secret"), std::string::npos) << lines[0];
  EXPECT_CONTAINS(lines[0], "payload=6 bytes: ...");
}

TEST_F(LogPluginTest, ConfiguredLevelIsHonoured) {
  void* instance = Create("{\"level\": \"debug\"}");
  ASSERT_NE(instance, nullptr);
  auto d = MakeDelivery("x");
  {
    LogCapture capture;
    EXPECT_EQ(plugin_->Handle(instance, "*", *d).verdict, FOXW_ACK);
    EXPECT_TRUE(capture.Matching("[plugin log]").empty()) << "debug logged with FLAGS_v=0";
  }
  FLAGS_v = 1;
  {
    LogCapture capture;
    plugin_->Handle(instance, "*", *d);
    EXPECT_EQ(capture.Matching("[plugin log] message #2").size(), 1u);
  }
  void* warn = Create("{\"level\": \"warn\"}");
  ASSERT_NE(warn, nullptr);
  LogCapture capture;
  plugin_->Handle(warn, "*", *d);
  auto lines = capture.lines();
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back().first, google::GLOG_WARNING);
}

TEST_F(LogPluginTest, FailEveryAndRejectEverySimulateFailures) {
  void* instance = Create("{\"fail_every\": 3, \"reject_every\": \"4\", \"level\": \"error\"}");
  ASSERT_NE(instance, nullptr);
  std::vector<foxw_verdict> verdicts;
  std::vector<std::string> reasons;
  for (int i = 0; i < 12; ++i) {
    auto d = MakeDelivery("x");
    HandlerRun run = plugin_->Handle(instance, "*", *d);
    verdicts.push_back(run.verdict);
    reasons.push_back(run.reason);
  }
  const foxw_verdict A = FOXW_ACK, R = FOXW_RETRY, X = FOXW_REJECT;
  // Message 12 is picked by both: REJECT wins.
  EXPECT_EQ(verdicts, (std::vector<foxw_verdict>{A, A, R, X, A, R, A, X, R, A, A, X}));
  EXPECT_EQ(reasons[2], "log plugin: simulated transient failure (fail_every=3, message #3)");
  EXPECT_EQ(reasons[3], "log plugin: simulated permanent failure (reject_every=4, message #4)");
  EXPECT_EQ(reasons[0], "");
}

TEST_F(LogPluginTest, CountsMessagesExactlyAcrossThreads) {
  void* instance = Create("{\"fail_every\": 10, \"level\": \"trace\"}");
  ASSERT_NE(instance, nullptr);
  std::atomic<int> retries{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        auto d = MakeDelivery("x");
        if (plugin_->Handle(instance, "*", *d).verdict == FOXW_RETRY) retries.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(retries.load(), 400);
  EXPECT_CONTAINS(MetricsRegistry::Default().RenderPrometheus(),
                  "# TYPE foxworker_plugin_log_messages_total counter");
}

// The schema (checked by the host before create) refuses unknown keys and
// wrong types; the plugin refuses values outside its own rules.
TEST_F(LogPluginTest, RefusesBadConfigClearly) {
  EXPECT_EQ(Refusal("{\"level\": \"loud\"}"),
            "config key \"level\": must be one of trace, debug, info, warn, error (got \"loud\")");
  EXPECT_CONTAINS(Refusal("{\"levels\": \"info\"}"),
                  "plugins.log.config.levels: unknown key for plugin log (known: fail_every, "
                  "level, max_payload_bytes, reject_every)");
  EXPECT_EQ(Refusal("{\"fail_every\": -1}"),
            "config key \"fail_every\": must be a whole number from 0 to 18446744073709551615");
  EXPECT_CONTAINS(Refusal("{\"fail_every\": 1.5}"), "fail_every: must be an integer");
  EXPECT_CONTAINS(Refusal("{\"fail_every\": \"often\"}"), "fail_every: must be an integer");
  EXPECT_EQ(Refusal("{\"max_payload_bytes\": 2000000}"),
            "config key \"max_payload_bytes\": must be a whole number from 0 to 1048576");
  EXPECT_CONTAINS(Refusal("[1]"), "plugins.log.config: must be a mapping");
}

}  // namespace
}  // namespace foxworker::testing
