// The Rust SDK (plugin-sdk/rust) through its example, hello_rust, built by
// cargo and loaded by the real core: memory backend, consumers, the plugin
// loader and the host services. Ack, retry (attempts, reason, delay),
// reject, a panic, and the typed config reads the example makes.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "daemon/core/dead_letter.h"
#include "tests/core/test_daemon.h"
#include "tests/plugins/plugin_harness.h"

namespace foxworker::testing {
namespace {

using std::chrono::milliseconds;

// Without cargo the plugin is not built (plugins/examples/hello_rust): that
// is a failure here, not a skip, so CI cannot pass without the Rust example.
bool PluginBuilt() {
  struct stat st;
  return stat(HELLO_RUST_PLUGIN_PATH, &st) == 0;
}

std::string Yaml(const std::string& plugin_config, const std::string& policy = "") {
  return "daemon:\n  worker_threads: 2\n  shutdown_timeout: 5s\n"
         "plugins:\n  hello:\n    path: " HELLO_RUST_PLUGIN_PATH "\n" +
         (plugin_config.empty() ? "" : "    config:\n" + plugin_config) +
         "backends:\n  mem:\n    type: memory\n"
         "retry_policies:\n  quick:\n    max_attempts: 3\n    backoff: fixed\n    initial: 10ms\n"
         "    jitter: 0\n" +
         policy +
         "queues:\n  jobs:\n    backend: mem\n    plugin: hello\n    retry_policy: quick\n"
         "    concurrency: 1\n";
}

class RustPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(PluginBuilt()) << HELLO_RUST_PLUGIN_PATH
                               << " was not built: install cargo (scripts/install-deps) and "
                                  "build the hello_rust target";
  }
  void Start(const std::string& yaml) {
    daemon_ = StartDaemon(yaml);
    ASSERT_TRUE(daemon_);
    mem_ = static_cast<MemoryBackend*>(daemon_->FindBackend("mem"));
    jobs_ = daemon_->FindConsumer("jobs");
    ASSERT_NE(jobs_, nullptr);
  }
  void TearDown() override {
    if (daemon_) {
      EXPECT_TRUE(daemon_->Shutdown());
    }
  }
  void Enqueue(const std::string& type, const std::string& payload) {
    ASSERT_TRUE(mem_->Enqueue("jobs", TypedMessage(type, payload), {}).ok());
  }
  // The one dead-lettered message's header.
  std::string DeadHeader(const char* name) {
    auto dead = mem_->Peek("jobs-dlq");
    if (dead.size() != 1) return "<" + std::to_string(dead.size()) + " dead letters>";
    const std::string* value = dead[0].FindHeader(name);
    return value == nullptr ? "<no header>" : *value;
  }

  std::unique_ptr<Supervisor> daemon_;
  MemoryBackend* mem_ = nullptr;
  Consumer* jobs_ = nullptr;
};

// The tables the Rust crate lays out by hand match the C header's.
TEST_F(RustPluginTest, ItsTablesHaveTheHeadersLayout) {
  auto loaded = PluginHarness::Load(HELLO_RUST_PLUGIN_PATH, "hello_rust");
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  const PluginHarness& plugin = **loaded;
  const foxw_plugin_info& info = plugin.info();
  EXPECT_EQ(info.struct_size, sizeof(foxw_plugin_info));
  EXPECT_EQ(info.struct_size, FOXW_PLUGIN_INFO_SIZE_1_0);
  EXPECT_EQ(info.abi_major, FOXW_ABI_MAJOR);
  EXPECT_EQ(info.abi_minor, 0);
  EXPECT_EQ(info.sdk_minor, FOXW_ABI_MINOR);
  EXPECT_STREQ(info.name, "hello_rust");
  EXPECT_STREQ(info.description, "Greets people (Rust example)");
  EXPECT_EQ(info.config_key_size, sizeof(foxw_config_key));
  ASSERT_EQ(info.config_key_count, 7u);
  EXPECT_STREQ(info.config_schema[0].name, "greeting");
  EXPECT_EQ(info.config_schema[0].type, FOXW_CONFIG_STRING);
  EXPECT_STREQ(info.config_schema[0].default_value, "hello");
  EXPECT_EQ(info.config_schema[3].type, FOXW_CONFIG_DURATION);
  EXPECT_STREQ(info.config_schema[3].default_value, "1s");
  EXPECT_EQ(info.config_schema[6].type, FOXW_CONFIG_MAP);
  EXPECT_EQ(info.config_schema[6].default_value, nullptr);
  EXPECT_FALSE(info.config_schema[6].required);

  const foxw_plugin_v1& def = plugin.def();
  EXPECT_EQ(def.struct_size, sizeof(foxw_plugin_v1));
  EXPECT_EQ(def.instance_model, static_cast<uint32_t>(FOXW_INSTANCE_PER_SLOT));
  EXPECT_EQ(def.handler_size, sizeof(foxw_handler_def));
  ASSERT_EQ(def.handler_count, 3u);
  EXPECT_STREQ(def.handlers[2].name, "panic");
  EXPECT_EQ(def.handlers[2].struct_size, FOXW_HANDLER_DEF_SIZE_1_0);
  EXPECT_EQ(def.handlers[2].handle_batch, nullptr);
}

// string, bool, double, list and map reads, with the schema's defaults for
// what the YAML leaves out.
TEST_F(RustPluginTest, GreetsWithItsTypedConfig) {
  Start(
      Yaml("      greeting: good morning\n      shout: yes\n      excitement: 3\n"
           "      friends: [Ada]\n      titles:\n        Ada: Countess\n"));
  LogCapture capture;
  Enqueue("greet", "Ada");
  Enqueue("greet", "Grace");
  ASSERT_TRUE(WaitFor([&] { return jobs_->Stats().acked == 2; }));
  EXPECT_EQ(
      capture.Matching("[plugin hello] GOOD MORNING, COUNTESS ADA!!! WELCOME BACK. (attempt 1)")
          .size(),
      1u);
  EXPECT_EQ(capture.Matching("[plugin hello] GOOD MORNING, GRACE!!! (attempt 1)").size(), 1u);
}

TEST_F(RustPluginTest, TheSchemasDefaultsReachRust) {
  Start(Yaml(""));
  LogCapture capture;
  Enqueue("greet", "Linus");
  ASSERT_TRUE(WaitFor([&] { return jobs_->Stats().acked == 1; }));
  EXPECT_EQ(capture.Matching("[plugin hello] hello, Linus! (attempt 1)").size(), 1u);
}

TEST_F(RustPluginTest, RejectIsDeadLetteredAtOnceWithTheReason) {
  Start(Yaml(""));
  Enqueue("greet", "");
  // The counters rise after the backend holds the settlement, so wait on them.
  ASSERT_TRUE(WaitFor([&] { return jobs_->Stats().dead_lettered == 1; }));
  EXPECT_EQ(mem_->ReadyCount("jobs-dlq"), 1u);
  EXPECT_EQ(jobs_->Stats().retried, 0u);
  EXPECT_EQ(jobs_->Stats().rejected, 1u);
  EXPECT_EQ(DeadHeader(kHeaderFailureReason), "empty payload: expected a name");
}

// duration and int reads: the retry asks for retry_delay (far above the
// policy's 10ms) and acks on attempt succeed_on.
TEST_F(RustPluginTest, RetriesWithItsDelayUntilTheAttemptItWants) {
  Start(Yaml("      retry_delay: 300ms\n      succeed_on: 3\n"));
  Enqueue("flaky", "");
  ASSERT_TRUE(WaitFor([&] { return mem_->DelayedCount("jobs") == 1; }));
  std::this_thread::sleep_for(milliseconds(150));
  EXPECT_EQ(jobs_->Stats().received, 1u) << "the 300ms the handler asked for was not honoured";
  ASSERT_TRUE(WaitFor([&] { return jobs_->Stats().acked == 1; }));
  EXPECT_EQ(jobs_->Stats().received, 3u);
  EXPECT_EQ(jobs_->Stats().retried, 2u);
  EXPECT_EQ(mem_->ReadyCount("jobs-dlq"), 0u);
}

TEST_F(RustPluginTest, RetriesCountAttemptsAndKeepTheReason) {
  Start(Yaml("      retry_delay: 5ms\n      succeed_on: 9\n"));
  Enqueue("flaky", "");
  // The counters rise after the backend holds the settlement, so wait on them.
  ASSERT_TRUE(WaitFor([&] { return jobs_->Stats().dead_lettered == 1; }));
  EXPECT_EQ(mem_->ReadyCount("jobs-dlq"), 1u);
  EXPECT_EQ(jobs_->Stats().retried, 2u);
  EXPECT_EQ(DeadHeader(kHeaderFinalAttempt), "3");
  EXPECT_EQ(DeadHeader(kHeaderFailureReason),
            "retries exhausted after 3 attempts: not yet: attempt 3 of 9");
}

TEST_F(RustPluginTest, APanicIsRetriedWithItsMessageAndTheDaemonGoesOn) {
  Start(Yaml(""));
  LogCapture capture;
  Enqueue("panic", "boom");
  // The counters rise after the backend holds the settlement, so wait on them.
  ASSERT_TRUE(WaitFor([&] { return jobs_->Stats().dead_lettered == 1; }));
  EXPECT_EQ(mem_->ReadyCount("jobs-dlq"), 1u);
  EXPECT_EQ(jobs_->Stats().retried, 2u);
  EXPECT_EQ(DeadHeader(kHeaderFinalAttempt), "3");
  EXPECT_EQ(DeadHeader(kHeaderFailureReason), "retries exhausted after 3 attempts: panic: boom");
  // The SDK's panic hook reports each panic, with its place, in the daemon's log.
  auto reports = capture.Matching("[plugin hello] panicked at");
  EXPECT_EQ(reports.size(), 3u);
  if (!reports.empty()) {
    EXPECT_NE(reports[0].find("boom"), std::string::npos) << reports[0];
  }
  // The same instance goes on handling messages.
  Enqueue("greet", "Barbara");
  ASSERT_TRUE(WaitFor([&] { return jobs_->Stats().acked == 1; }));
}

// docs/plugin-guide.md quotes the crate's documentation example, which
// `cargo test` compiles (rust_sdk_cargo_test): they must not drift apart.
TEST(RustPluginGuideTest, QuotesTheCratesCompiledExample) {
  auto read = [](const std::string& relative) {
    std::ifstream in(std::string(FOXWORKER_SOURCE_DIR) + "/" + relative);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  std::istringstream lib(read("plugin-sdk/rust/src/lib.rs"));
  std::string line, example;
  bool inside = false;
  while (std::getline(lib, line)) {
    if (line == "//! ```no_run") {
      inside = true;
    } else if (inside && line == "//! ```") {
      break;
    } else if (inside) {
      std::string text = line.size() > 4 ? line.substr(4) : "";  // "//! "
      if (text.rfind("# ", 0) != 0) example += text + "\n";      // rustdoc's hidden lines
    }
  }
  ASSERT_FALSE(example.empty()) << "no ```no_run example in plugin-sdk/rust/src/lib.rs";
  EXPECT_NE(read("docs/plugin-guide.md").find("```rust\n" + example + "```\n"), std::string::npos)
      << "docs/plugin-guide.md no longer quotes the example of plugin-sdk/rust/src/lib.rs:\n"
      << example;
}

}  // namespace
}  // namespace foxworker::testing
