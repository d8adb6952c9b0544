// ABI 1.0 kept for good: a plugin built from the frozen 1.0 header, and
// plugins built from a "future" 1.2 header whose growable structs each
// gained a field, loaded and run by this host (tests/sdk/abi/).
#include <gtest/gtest.h>

#include <string>

#include "daemon/core/dead_letter.h"
#include "daemon/plugins/plugin_loader.h"
#include "tests/core/test_daemon.h"

namespace foxworker::testing {
namespace {

std::string Yaml(const std::string& plugin_path) {
  return "daemon:\n  worker_threads: 2\n  shutdown_timeout: 5s\n"
         "plugins:\n  probe:\n    path: " + plugin_path +
         "\n    config:\n      greeting: hi\n      tags: [red, blue]\n"
         "backends:\n  mem:\n    type: memory\n"
         "retry_policies:\n  twice:\n    max_attempts: 2\n    backoff: fixed\n"
         "    initial: 10ms\n    jitter: 0\n"
         "queues:\n"
         "  jobs:\n    backend: mem\n    plugin: probe\n    retry_policy: twice\n"
         "    concurrency: 2\n"
         "  batches:\n    backend: mem\n    plugin: probe\n    handler: batch\n"
         "    batch_size: 4\n    flush_interval: 20ms\n"
         "  out:\n    backend: mem\n    plugin: probe\n";
}

class AbiCompatTest : public ::testing::TestWithParam<const char*> {
 protected:
  MemoryBackend* Mem(Supervisor& s) { return static_cast<MemoryBackend*>(s.FindBackend("mem")); }
  static std::string ReasonOf(const Message& m) {
    const std::string* r = m.FindHeader(kHeaderFailureReason);
    return r != nullptr ? *r : "";
  }
};

// Every verdict, deferred completion, publish, a batch handler, a config
// schema with its defaults and the typed config reads, through the real
// daemon core.
TEST_P(AbiCompatTest, LoadsAndRunsEverything) {
  auto d = StartDaemon(Yaml(GetParam()));
  ASSERT_TRUE(d);
  MemoryBackend* mem = Mem(*d);
  for (const char* type : {"ack", "defer", "publish", "retry", "reject"})
    ASSERT_TRUE(mem->Enqueue("jobs", TypedMessage(type, type), {}).ok());
  for (const char* payload : {"good", "bad", "good"})
    ASSERT_TRUE(mem->Enqueue("batches", TypedMessage("", payload), {}).ok());

  Consumer* jobs = d->FindConsumer("jobs");
  Consumer* batches = d->FindConsumer("batches");
  Consumer* out = d->FindConsumer("out");
  ASSERT_TRUE(WaitFor([&] {
    return jobs->Stats().acked == 3 && mem->ReadyCount("jobs-dlq") == 2 &&
           batches->Stats().acked == 2 && mem->ReadyCount("batches-dlq") == 1 &&
           out->Stats().acked == 1;  // the published follow-up, handled by "ack"
  })) << "acked " << jobs->Stats().acked << ", dead " << mem->ReadyCount("jobs-dlq")
      << ", follow-ups acked " << out->Stats().acked;
  EXPECT_EQ(jobs->Stats().retried, 1u);  // "retry": two attempts, then dead-lettered

  std::map<std::string, std::string> reasons;
  for (const Message& m : mem->Peek("jobs-dlq")) reasons[m.payload] = ReasonOf(m);
  EXPECT_NE(reasons["retry"].find("try again later"), std::string::npos) << reasons["retry"];
  EXPECT_NE(reasons["reject"].find("permanently bad"), std::string::npos) << reasons["reject"];
  auto dead_batch = mem->Peek("batches-dlq");
  ASSERT_EQ(dead_batch.size(), 1u);
  EXPECT_EQ(dead_batch[0].payload, "bad");
  EXPECT_NE(ReasonOf(dead_batch[0]).find("bad item in a batch"), std::string::npos);
  EXPECT_TRUE(d->Shutdown());
}

INSTANTIATE_TEST_SUITE_P(Plugins, AbiCompatTest,
                         ::testing::Values(ABI_PROBE_1_0_PATH, ABI_PROBE_FUTURE_1_0_PATH),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.index == 0 ? "BuiltFromTheFrozen10Header"
                                                              : "BuiltFromA12HeaderTargeting10");
                         });

TEST(AbiCompatRefusalTest, APluginThatNeedsANewerMinorIsRefusedClearly) {
  PluginConfig p;
  p.name = "probe";
  p.path = ABI_PROBE_FUTURE_1_2_PATH;
  p.config_json = "{}";
  auto loaded = LoadedPlugin::Load(p);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().message(),
            "plugin " + p.path +
                ": needs plugin ABI 1.2 (built with SDK 1.2), newer than this foxworkerd's 1.1; "
                "upgrade foxworker, or rebuild the plugin with FOXW_TARGET_ABI_MINOR=1 if it "
                "uses nothing newer");
}

// The frozen sizes every host checks against, on the LP64 machines we build
// for. They never change; a layout change that moved them fails here.
TEST(AbiCompatSizesTest, TheFrozen10SizesHold) {
  static_assert(sizeof(void*) == 8, "the figures below are for LP64");
  EXPECT_EQ(FOXW_OUTCOME_SIZE_1_0, 40u);
  EXPECT_EQ(FOXW_PUBLISH_SIZE_1_0, 120u);
  EXPECT_EQ(FOXW_HOST_API_SIZE_1_0, 240u);
  EXPECT_EQ(FOXW_CONFIG_KEY_SIZE_1_0, 40u);
  EXPECT_EQ(FOXW_PLUGIN_INFO_SIZE_1_0, 72u);
  EXPECT_EQ(FOXW_HANDLER_DEF_SIZE_1_0, 40u);
  EXPECT_EQ(FOXW_PLUGIN_V1_SIZE_1_0, 64u);
}

}  // namespace
}  // namespace foxworker::testing
