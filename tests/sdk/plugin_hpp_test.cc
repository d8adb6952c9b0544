// The C++ wrapper (plugin.hpp) seen from the host: a probe plugin built with
// it, and the two example plugins the plugin guide includes. The host table
// is the real one except complete(), which records completions here instead
// of settling them through a consumer.
#include <glog/logging.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/core/metrics.h"
#include "tests/plugins/plugin_harness.h"

namespace foxworker::testing {
namespace {

using std::chrono::milliseconds;

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE((haystack).find(needle), std::string::npos) << "in: " << (haystack)

struct Completed {
  const foxw_message* msg;
  foxw_verdict verdict;
  std::string reason;
  uint64_t retry_delay_ms;
};

// complete() calls, from any thread. The first for a message wins; later
// ones return -1, as the daemon's do.
class CompletionLog {
 public:
  static CompletionLog& Get() {
    static CompletionLog log;
    return log;
  }
  int32_t Record(const foxw_message* msg, foxw_verdict verdict, const char* reason, size_t len,
                 uint64_t delay) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& c : completed_) {
      if (c.msg == msg) return -1;
    }
    completed_.push_back({msg, verdict, std::string(reason, len), delay});
    changed_.notify_all();
    return 0;
  }
  // Waits up to two seconds for `msg`'s completion.
  bool WaitFor(const foxw_message* msg, Completed* out) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, std::chrono::seconds(2), [&] {
      for (const auto& c : completed_) {
        if (c.msg == msg) {
          *out = c;
          return true;
        }
      }
      return false;
    });
  }
  // Deliveries are keyed by address, which the allocator reuses: each test
  // starts with an empty log.
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    completed_.clear();
  }
  size_t CountFor(const foxw_message* msg) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const auto& c : completed_) n += c.msg == msg;
    return n;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<Completed> completed_;
};

int32_t RecordComplete(const foxw_message* msg, foxw_verdict verdict, const char* reason,
                       size_t len, uint64_t delay) {
  return CompletionLog::Get().Record(msg, verdict, reason, len, delay);
}

const foxw_host_api* RecordingHost() {
  static const foxw_host_api host = [] {
    foxw_host_api h = *HostApi();
    h.complete = &RecordComplete;
    return h;
  }();
  return &host;
}

class SdkTest : public ::testing::Test {
 protected:
  SdkTest() { CompletionLog::Get().Clear(); }
  void Load(const char* path, const char* name) {
    auto loaded = PluginHarness::Load(path, name, RecordingHost());
    ASSERT_TRUE(loaded.ok()) << loaded.status().message();
    plugin_ = std::move(loaded.value());
  }
  void TearDown() override {
    for (void* instance : instances_) plugin_->Destroy(instance);
  }
  void* Create(const std::string& config) {
    auto instance = plugin_->Create(config, /*as_converted=*/true);
    EXPECT_TRUE(instance.ok()) << instance.status().message();
    if (!instance.ok()) return nullptr;
    instances_.push_back(*instance);
    return *instance;
  }
  HandlerRun Run(void* instance, const char* handler, Delivery& d) {
    return plugin_->Handle(instance, handler, d);
  }

  std::unique_ptr<PluginHarness> plugin_;
  std::vector<void*> instances_;
};

class ProbeTest : public SdkTest {
 protected:
  void SetUp() override {
    Load(SDK_PROBE_PLUGIN_PATH, "sdk_probe");
    if (plugin_ != nullptr) instance_ = Create("{}");
  }
  HandlerRun Run(const char* handler, Delivery& d) { return SdkTest::Run(instance_, handler, d); }
  void* instance_ = nullptr;
};

TEST_F(ProbeTest, MagicBlockComesFromTheMacroAndTheClass) {
  const foxw_plugin_info& info = plugin_->info();
  EXPECT_EQ(info.struct_size, sizeof(foxw_plugin_info));
  EXPECT_EQ(info.abi_major, FOXW_ABI_MAJOR);
  EXPECT_EQ(info.abi_minor, FOXW_ABI_MINOR);
  EXPECT_STREQ(info.name, "sdk_probe");
  EXPECT_STREQ(info.version, "0.0.1");
  EXPECT_STREQ(info.description, "SDK probe");
  ASSERT_EQ(info.config_key_count, 2u);
  EXPECT_STREQ(info.config_schema[0].name, "refuse");
  EXPECT_EQ(info.config_schema[1].type, FOXW_CONFIG_BOOL);
  EXPECT_STREQ(info.config_schema[1].default_value, "false");
  EXPECT_EQ(plugin_->def().struct_size, sizeof(foxw_plugin_v1));
  EXPECT_EQ(plugin_->def().instance_model, static_cast<uint32_t>(FOXW_INSTANCE_PER_SLOT));
  EXPECT_EQ(plugin_->def().flags, 0u);
  EXPECT_EQ(plugin_->def().handler_count, 18u);
  for (size_t i = 0; i < plugin_->def().handler_count; ++i) {
    const foxw_handler_def& h = plugin_->def().handlers[i];
    EXPECT_EQ(h.struct_size, sizeof(foxw_handler_def));
    EXPECT_EQ(h.flags, 0u);
    // FOXWORKER_HANDLER sets handle only, FOXWORKER_BATCH_HANDLER handle_batch only.
    bool batch = std::string_view(h.name).substr(0, 5) == "batch";
    EXPECT_EQ(h.handle == nullptr, batch) << h.name;
    EXPECT_EQ(h.handle_batch != nullptr, batch) << h.name;
  }
}

TEST_F(ProbeTest, VerdictsAndTheirReasons) {
  auto d = MakeDelivery("x");
  HandlerRun ack = Run("ack", *d);
  EXPECT_EQ(ack.verdict, FOXW_ACK);
  EXPECT_EQ(ack.reason, "");
  HandlerRun retry = Run("retry", *d);
  EXPECT_EQ(retry.verdict, FOXW_RETRY);
  EXPECT_EQ(retry.reason, "later");
  EXPECT_EQ(retry.retry_delay_ms, 1500u);
  HandlerRun reject = Run("reject", *d);
  EXPECT_EQ(reject.verdict, FOXW_REJECT);
  EXPECT_EQ(reject.reason, "bad input");
}

TEST_F(ProbeTest, ExceptionsBecomeRetries) {
  auto d = MakeDelivery("x");
  HandlerRun run = Run("throw", *d);
  EXPECT_EQ(run.verdict, FOXW_RETRY);
  EXPECT_EQ(run.reason, "unhandled exception: boom");
  run = Run("throw_int", *d);
  EXPECT_EQ(run.verdict, FOXW_RETRY);
  EXPECT_EQ(run.reason, "unhandled exception: unknown exception (not derived from std::exception)");
}

TEST_F(ProbeTest, PendingWithoutDeferIsARetry) {
  auto d = MakeDelivery("x");
  HandlerRun run = Run("pending_without_defer", *d);
  EXPECT_EQ(run.verdict, FOXW_RETRY);
  EXPECT_EQ(run.reason, "handler returned Verdict::Pending() without calling Message::Defer()");
}

TEST_F(ProbeTest, DeferredMessagesCompleteOnceFromAnotherThread) {
  auto d = MakeDelivery("job-9");
  HandlerRun run = Run("defer", *d);
  EXPECT_EQ(run.verdict, FOXW_PENDING);
  Completed c{};
  ASSERT_TRUE(CompletionLog::Get().WaitFor(AsForeign(d.get()), &c));
  EXPECT_EQ(c.verdict, FOXW_RETRY);
  EXPECT_EQ(c.reason, "async job-9");
  EXPECT_EQ(c.retry_delay_ms, 250u);
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(CompletionLog::Get().CountFor(AsForeign(d.get())), 1u);
}

TEST_F(ProbeTest, ADroppedCompletionCompletesAsARetry) {
  auto d = MakeDelivery("x");
  EXPECT_EQ(Run("defer_and_drop", *d).verdict, FOXW_PENDING);
  Completed c{};
  ASSERT_TRUE(CompletionLog::Get().WaitFor(AsForeign(d.get()), &c));
  EXPECT_EQ(c.verdict, FOXW_RETRY);
  EXPECT_EQ(c.reason, "deferred message dropped: its Completion was destroyed without a verdict");
}

// Once a handler deferred, its Completion owns the message: what the handler
// does afterwards (throw, return a final verdict) must not let the daemon
// settle and free the message while a Completion may still use it.
TEST_F(ProbeTest, AThrowAfterDeferLeavesTheMessageToItsCompletion) {
  LogCapture capture;
  auto d = MakeDelivery("x");
  HandlerRun run = Run("defer_twice", *d);
  EXPECT_EQ(run.verdict, FOXW_PENDING);
  Completed c{};
  ASSERT_TRUE(CompletionLog::Get().WaitFor(AsForeign(d.get()), &c));
  EXPECT_EQ(c.verdict, FOXW_RETRY);  // the first Completion, dropped while unwinding
  EXPECT_EQ(c.reason, "deferred message dropped: its Completion was destroyed without a verdict");
  EXPECT_EQ(capture
                .Matching("a handler threw after Message::Defer(): Message::Defer() called twice "
                          "for one message; the message is completed by its Completion")
                .size(),
            1u);
}

TEST_F(ProbeTest, AFinalVerdictAfterDeferLeavesTheMessageToItsCompletion) {
  LogCapture capture;
  auto d = MakeDelivery("x");
  HandlerRun run = Run("defer_then_ack", *d);
  EXPECT_EQ(run.verdict, FOXW_PENDING);
  Completed c{};
  ASSERT_TRUE(CompletionLog::Get().WaitFor(AsForeign(d.get()), &c));
  EXPECT_EQ(c.verdict, FOXW_REJECT);
  EXPECT_EQ(c.reason, "completed by the worker");
  EXPECT_EQ(capture.Matching("then returned a final verdict (1: ); the message waits").size(), 1u);
}

TEST_F(ProbeTest, MessageAccessors) {
  auto d = MakeDelivery("body", "t.1", "id-1");
  d->msg.props.content_type = "text/plain";
  d->msg.props.correlation_id = "c-1";
  d->msg.props.priority = 5;
  d->msg.props.timestamp_ms = 11;
  d->msg.enqueued_at_ms = 22;
  d->msg.attempt = 3;
  d->msg.headers = {{"x", "1"}, {"y", "2"}};
  HandlerRun run = Run("echo", *d);
  EXPECT_EQ(run.reason,
            "id-1|jobs|body|t.1|text/plain|c-1|5|3|11|22|1|<none>|x=1,y=2,|2|no-deadline|live|" +
                std::to_string(PluginHarness::kReasonCap - 1));
  d->deadline_ns = 1;  // long past
  EXPECT_CONTAINS(Run("echo", *d).reason, "|deadline|cancelled|");
}

TEST_F(ProbeTest, LoggingGoesThroughTheHostWithTheLevelCheck) {
  int saved_v = FLAGS_v;
  FLAGS_v = 0;
  LogCapture capture;
  auto d = MakeDelivery("p");
  d->msg.attempt = 2;
  EXPECT_EQ(Run("log", *d).verdict, FOXW_ACK);
  auto lines = capture.Matching("[plugin sdk_probe]");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "[plugin sdk_probe] payload=p attempt=2 pi=3.5");
  FLAGS_v = saved_v;
}

TEST_F(ProbeTest, PublishReportsTheHostsError) {
  auto d = MakeDelivery("p");
  HandlerRun run = Run("publish", *d);
  EXPECT_EQ(run.verdict, FOXW_REJECT);
  EXPECT_EQ(run.reason, "publish failed: publishing is not available");
}

TEST_F(ProbeTest, PublishPassesTheMessageAndItsParent) {
  std::string queue, payload, header;
  const Delivery* parent = nullptr;
  plugin_->ctx().publish = [&](const foxw_publish& p, const Delivery* from) {
    queue.assign(p.queue.ptr, p.queue.len);
    payload.assign(p.payload.ptr, p.payload.len);
    if (p.header_count == 1) {
      header = std::string(p.headers[0].name.ptr, p.headers[0].name.len) + "=" +
               std::string(p.headers[0].value.ptr, p.headers[0].value.len);
    }
    parent = from;
    return Status::Ok();
  };
  auto d = MakeDelivery("hello");
  EXPECT_EQ(Run("publish", *d).verdict, FOXW_ACK);
  EXPECT_EQ(queue, "follow-up");
  EXPECT_EQ(payload, "hello");
  EXPECT_EQ(header, "origin=probe");
  EXPECT_EQ(parent, d.get());
  plugin_->ctx().publish = nullptr;
}

TEST_F(ProbeTest, ConstructorExceptionsRefuseCreation) {
  auto refused = plugin_->Create("{\"refuse\": \"missing licence key\"}", true);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(), "missing licence key");
  refused = plugin_->Create("{\"throw_int\": 1}", true);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(), "instance creation failed: unknown exception");
  refused = plugin_->Create("{\"bad_metric\": true}", true);
  ASSERT_FALSE(refused.ok());
  EXPECT_CONTAINS(refused.status().message(),
                  "invalid metric name \"foxworker_plugin_sdk_probe_not a metric name\"");
}

TEST_F(ProbeTest, MetricsAreSharedByInstances) {
  void* second = Create("{}");
  ASSERT_NE(second, nullptr);
  auto d = MakeDelivery("x");
  std::string before = MetricsRegistry::Default().RenderPrometheus();
  Run("ack", *d);
  SdkTest::Run(second, "ack", *d);
  std::string after = MetricsRegistry::Default().RenderPrometheus();
  EXPECT_CONTAINS(after, "# TYPE foxworker_plugin_sdk_probe_handled_total counter");
  auto value = [](const std::string& text) {
    const std::string key = "foxworker_plugin_sdk_probe_handled_total ";
    size_t at = text.find("\n" + key);
    return at == std::string::npos ? -1.0 : std::stod(text.substr(at + 1 + key.size()));
  };
  EXPECT_EQ(value(after) - value(before), 2.0);
}

TEST(SdkInitTest, RefusesAHostOfAnotherMajor) {
  foxw_host_api other = *HostApi();
  other.abi_major = 2;
  auto loaded = PluginHarness::Load(SDK_PROBE_PLUGIN_PATH, "sdk_probe", &other);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().message(),
            "init refused: the host's services table is not plugin ABI major 1");
  foxw_host_api small = *HostApi();
  small.struct_size = offsetof(foxw_host_api, complete);
  loaded = PluginHarness::Load(SDK_PROBE_PLUGIN_PATH, "sdk_probe", &small);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().message(),
            "init refused: the host's services table is smaller than plugin ABI 1.0 requires");
  // Leave the probe initialised with a usable host for the tests that follow.
  ASSERT_TRUE(PluginHarness::Load(SDK_PROBE_PLUGIN_PATH, "sdk_probe", RecordingHost()).ok());
}

// ---- batch handlers (FOXWORKER_BATCH_HANDLER) ------------------------------

class BatchTest : public ProbeTest {
 protected:
  // One batch handler call as the consumer makes it, over the host's arrays;
  // they start with stale contents that the wrapper must overwrite.
  std::vector<HandlerRun> RunBatch(const char* handler,
                                   const std::vector<std::unique_ptr<Delivery>>& batch) {
    const foxw_handler_def* h = plugin_->FindHandler(handler);
    EXPECT_NE(h, nullptr) << handler;
    if (h == nullptr || h->handle_batch == nullptr) return {};
    size_t n = batch.size();
    std::vector<const foxw_message*> msgs;
    std::vector<foxw_verdict> verdicts(n, 99);
    std::vector<std::vector<char>> reasons(n, std::vector<char>(PluginHarness::kReasonCap));
    std::vector<foxw_outcome> outs;
    outs.reserve(n);
    std::vector<foxw_outcome*> out_ptrs;
    for (size_t i = 0; i < n; ++i) {
      msgs.push_back(AsForeign(batch[i].get()));
      std::strcpy(reasons[i].data(), "stale");
      outs.push_back(foxw_outcome{sizeof(foxw_outcome), reasons[i].data(),
                                  PluginHarness::kReasonCap, 5, 12345});
      out_ptrs.push_back(&outs.back());
    }
    h->handle_batch(instance_, msgs.data(), n, verdicts.data(), out_ptrs.data());
    std::vector<HandlerRun> runs;
    for (size_t i = 0; i < n; ++i) {
      runs.push_back(HandlerRun{verdicts[i], std::string(reasons[i].data(), outs[i].reason_len),
                                outs[i].retry_delay_ms});
    }
    return runs;
  }
  static std::vector<std::unique_ptr<Delivery>> Batch3(const char* a, const char* b,
                                                        const char* c) {
    std::vector<std::unique_ptr<Delivery>> batch;
    batch.push_back(MakeDelivery(a, "batch", "m-1"));
    batch.push_back(MakeDelivery(b, "batch", "m-2"));
    batch.push_back(MakeDelivery(c, "batch", "m-3"));
    return batch;
  }
};

TEST_F(BatchTest, OneVerdictPerMessage) {
  auto batch = Batch3("ack", "retry", "reject");
  std::vector<HandlerRun> runs = RunBatch("batch", batch);
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].verdict, FOXW_ACK);
  EXPECT_EQ(runs[0].reason, "");  // the replaced retry's reason is gone
  EXPECT_EQ(runs[0].retry_delay_ms, 0u);
  EXPECT_EQ(runs[1].verdict, FOXW_RETRY);
  EXPECT_EQ(runs[1].reason, "later 1/m-2");
  EXPECT_EQ(runs[1].retry_delay_ms, 700u);
  EXPECT_EQ(runs[2].verdict, FOXW_REJECT);
  EXPECT_EQ(runs[2].reason,
            "bad 2/m-3 cap=" + std::to_string(PluginHarness::kReasonCap - 1));
  EXPECT_EQ(runs[2].retry_delay_ms, 0u);
}

TEST_F(BatchTest, MissingAndPendingVerdictsBecomeRetries) {
  LogCapture capture;
  auto batch = Batch3("skip", "pending", "ack");
  std::vector<HandlerRun> runs = RunBatch("batch", batch);
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].verdict, FOXW_RETRY);
  EXPECT_EQ(runs[0].reason, "no verdict set by the batch handler");
  EXPECT_EQ(runs[0].retry_delay_ms, 0u);  // the stale hint is cleared
  EXPECT_EQ(runs[1].verdict, FOXW_RETRY);
  EXPECT_EQ(runs[1].reason, "Verdict::Pending() is not allowed in a batch handler");
  EXPECT_EQ(runs[2].verdict, FOXW_ACK);
  EXPECT_EQ(capture
                .Matching("[plugin sdk_probe] a batch handler set no verdict for 1 of 3 "
                          "messages; they are retried")
                .size(),
            1u);
}

TEST_F(BatchTest, AnExceptionRetriesTheWholeBatch) {
  auto batch = Batch3("ack", "ack", "ack");
  for (const char* handler : {"batch_throw", "batch_throw_int", "batch_defer",
                              "batch_out_of_range"}) {
    std::vector<HandlerRun> runs = RunBatch(handler, batch);
    ASSERT_EQ(runs.size(), 3u) << handler;
    for (const HandlerRun& run : runs) {
      EXPECT_EQ(run.verdict, FOXW_RETRY) << handler;
      EXPECT_EQ(run.retry_delay_ms, 0u) << handler;
      EXPECT_EQ(run.reason, runs[0].reason) << handler;
    }
  }
  EXPECT_EQ(RunBatch("batch_throw", batch)[0].reason, "unhandled exception: bulk insert failed");
  EXPECT_EQ(RunBatch("batch_throw_int", batch)[2].reason,
            "unhandled exception: unknown exception (not derived from std::exception)");
  EXPECT_EQ(RunBatch("batch_defer", batch)[1].reason,
            "unhandled exception: Message::Defer() is not available in a batch handler: set "
            "the verdict with Batch::Set()");
  EXPECT_EQ(RunBatch("batch_out_of_range", batch)[0].reason,
            "unhandled exception: Batch index 3 out of range (size 3)");
  // No completion was ever attempted for a batch message.
  for (const auto& d : batch) EXPECT_EQ(CompletionLog::Get().CountFor(AsForeign(d.get())), 0u);
}

TEST_F(BatchTest, ABatchOfOne) {
  std::vector<std::unique_ptr<Delivery>> batch;
  batch.push_back(MakeDelivery("retry", "batch", "solo"));
  std::vector<HandlerRun> runs = RunBatch("batch", batch);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].verdict, FOXW_RETRY);
  EXPECT_EQ(runs[0].reason, "later 0/solo");
}

// ---- the examples the plugin guide includes ---------------------------------

TEST_F(SdkTest, HelloCGreetsAndRejectsEmptyNames) {
  Load(HELLO_C_PLUGIN_PATH, "hello_c");
  EXPECT_STREQ(plugin_->info().name, "hello_c");
  EXPECT_EQ(plugin_->def().instance_model, static_cast<uint32_t>(FOXW_INSTANCE_SHARED));
  void* instance = Create("{}");
  LogCapture capture;
  auto d = MakeDelivery("Ada", "greet");
  EXPECT_EQ(Run(instance, "greet", *d).verdict, FOXW_ACK);
  EXPECT_EQ(capture.Matching("[plugin hello_c] hello, Ada! (attempt 1)").size(), 1u);
  auto empty = MakeDelivery("", "greet");
  HandlerRun run = Run(instance, "greet", *empty);
  EXPECT_EQ(run.verdict, FOXW_REJECT);
  EXPECT_EQ(run.reason, "empty payload: expected a name");
  // The typed config read sees the config the latest create() received.
  void* morning = Create("{\"greeting\": \"good morning\"}");
  auto again = MakeDelivery("Grace", "greet");
  again->msg.attempt = 2;
  EXPECT_EQ(Run(morning, "greet", *again).verdict, FOXW_ACK);
  EXPECT_EQ(capture.Matching("[plugin hello_c] good morning, Grace! (attempt 2)").size(), 1u);
}

TEST_F(SdkTest, HelloCppGreetsNowAndLater) {
  Load(HELLO_CPP_PLUGIN_PATH, "hello_cpp");
  EXPECT_STREQ(plugin_->info().description, "Greets people (C++ example)");
  EXPECT_EQ(plugin_->info().config_key_count, 2u);
  // What the loader hands over after applying the schema: defaults filled
  // in, durations in milliseconds.
  void* instance = Create("{\"greeting\": \"hi\", \"delay\": 20}");
  ASSERT_NE(instance, nullptr);
  LogCapture capture;
  auto now = MakeDelivery("Grace", "greet");
  EXPECT_EQ(Run(instance, "greet", *now).verdict, FOXW_ACK);
  EXPECT_EQ(capture.Matching("[plugin hello_cpp] hi, Grace! (attempt 1)").size(), 1u);

  auto later = MakeDelivery("Linus", "greet.later");
  EXPECT_EQ(Run(instance, "greet.later", *later).verdict, FOXW_PENDING);
  Completed c{};
  ASSERT_TRUE(CompletionLog::Get().WaitFor(AsForeign(later.get()), &c));
  EXPECT_EQ(c.verdict, FOXW_ACK) << c.reason;
  EXPECT_EQ(capture.Matching("[plugin hello_cpp] hi, Linus! (deferred)").size(), 1u);

  auto refused = plugin_->Create("{\"greeting\": 5}", true);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(), "greeting: must be a string");
}

TEST_F(SdkTest, HelloCppCompletesPendingGreetingsWhenDestroyed) {
  Load(HELLO_CPP_PLUGIN_PATH, "hello_cpp");
  auto instance = plugin_->Create("{\"delay\": 60000}", true);
  ASSERT_TRUE(instance.ok());
  auto later = MakeDelivery("Barbara", "greet.later");
  EXPECT_EQ(Run(*instance, "greet.later", *later).verdict, FOXW_PENDING);
  plugin_->Destroy(*instance);
  Completed c{};
  ASSERT_TRUE(CompletionLog::Get().WaitFor(AsForeign(later.get()), &c));
  EXPECT_EQ(c.verdict, FOXW_RETRY);
  EXPECT_EQ(c.reason, "hello_cpp is shutting down");
}

// docs/plugin-guide.md quotes the examples; they must not drift apart.
std::string SourceFile(const std::string& relative) {
  std::ifstream in(std::string(FOXWORKER_SOURCE_DIR) + "/" + relative);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(PluginGuideTest, QuotesTheExamplesVerbatim) {
  std::string guide = SourceFile("docs/plugin-guide.md");
  ASSERT_FALSE(guide.empty());
  for (const auto& [lang, file] :
       {std::pair<std::string, std::string>{"c", "plugins/examples/hello_c/hello.c"},
        {"cpp", "plugins/examples/hello_cpp/hello.cpp"}}) {
    std::string source = SourceFile(file);
    ASSERT_FALSE(source.empty()) << file;
    EXPECT_NE(guide.find("```" + lang + "\n" + source + "```\n"), std::string::npos)
        << "docs/plugin-guide.md no longer quotes " << file << " verbatim; paste it again";
  }
}

}  // namespace
}  // namespace foxworker::testing
