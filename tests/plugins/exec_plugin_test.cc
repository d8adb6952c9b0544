// The exec plugin, loaded from its .so and driven through the real host
// services table. Commands are /bin/sh -c scripts.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/plugins/plugin_harness.h"

namespace foxworker::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE((haystack).find(needle), std::string::npos) << "in: " << (haystack)

std::string Json(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// True when `pid` is gone or a zombie waiting for its reaper.
bool ProcessIsDead(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  std::string line;
  std::getline(stat, line);
  size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
}

class ExecPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = PluginHarness::Load(EXEC_PLUGIN_PATH, "exec");
    ASSERT_TRUE(loaded.ok()) << loaded.status().message();
    plugin_ = std::move(loaded.value());
    std::string pattern = (std::filesystem::temp_directory_path() / "foxworker_exec_XXXXXX");
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    out_ = dir_ + "/out";
  }
  void TearDown() override {
    for (void* instance : instances_) plugin_->Destroy(instance);
    std::filesystem::remove_all(dir_);
  }

  // A config running `script` under /bin/sh -c, with $OUT naming a scratch file.
  std::string Script(const std::string& script, const std::string& extra = "") {
    return "{\"command\": [\"/bin/sh\", \"-c\", " + Json(script) +
           "], \"env\": {\"OUT\": " + Json(out_) + "}" + (extra.empty() ? "" : ", " + extra) + "}";
  }

  void* Create(const std::string& config) {
    auto instance = plugin_->Create(config, /*as_converted=*/true);
    EXPECT_TRUE(instance.ok()) << instance.status().message();
    if (!instance.ok()) return nullptr;
    instances_.push_back(*instance);
    return *instance;
  }

  std::string Refusal(const std::string& config) {
    auto instance = plugin_->Create(config, /*as_converted=*/true);
    EXPECT_FALSE(instance.ok());
    if (instance.ok()) {
      instances_.push_back(*instance);
      return "";
    }
    return instance.status().message();
  }

  HandlerRun Run(const std::string& config, std::string payload = "") {
    void* instance = Create(config);
    if (instance == nullptr) return {};
    auto d = MakeDelivery(std::move(payload));
    return plugin_->Handle(instance, "*", *d);
  }

  std::unique_ptr<PluginHarness> plugin_;
  std::vector<void*> instances_;
  std::string dir_;
  std::string out_;
};

TEST_F(ExecPluginTest, DeclaresItselfAndItsSchema) {
  EXPECT_STREQ(plugin_->info().name, "exec");
  EXPECT_EQ(plugin_->def().instance_model, static_cast<uint32_t>(FOXW_INSTANCE_SHARED));
  ASSERT_EQ(plugin_->def().handler_count, 1u);
  EXPECT_STREQ(plugin_->def().handlers[0].name, "*");
  std::map<std::string, int32_t> keys;
  for (size_t i = 0; i < plugin_->info().config_key_count; ++i) {
    keys[plugin_->info().config_schema[i].name] = plugin_->info().config_schema[i].type;
  }
  EXPECT_EQ(keys["command"], FOXW_CONFIG_STRING_LIST);
  EXPECT_EQ(keys["timeout"], FOXW_CONFIG_DURATION);
  EXPECT_EQ(keys["env"], FOXW_CONFIG_MAP);
  EXPECT_EQ(keys["working_dir"], FOXW_CONFIG_STRING);
  EXPECT_EQ(keys["max_output_bytes"], FOXW_CONFIG_INT);
  EXPECT_EQ(keys["retry_exit_codes"], FOXW_CONFIG_STRING_LIST);
}

TEST_F(ExecPluginTest, AcksOnExitZeroWithThePayloadOnStdin) {
  std::string payload = "line one\nline two\n\x01\xff binary";
  HandlerRun run = Run(Script("cat > \"$OUT\""), payload);
  EXPECT_EQ(run.verdict, FOXW_ACK) << run.reason;
  EXPECT_EQ(ReadFile(out_), payload);
}

TEST_F(ExecPluginTest, EmptyPayloadGivesEmptyStdin) {
  HandlerRun run = Run(Script("cat > \"$OUT\""), "");
  EXPECT_EQ(run.verdict, FOXW_ACK) << run.reason;
  EXPECT_EQ(ReadFile(out_), "");
}

TEST_F(ExecPluginTest, MessagePropertiesAndHeadersAreInTheEnvironment) {
  void* instance = Create(Script(
      "env > \"$OUT\"", "\"env\": {\"OUT\": " + Json(out_) + ", \"EXTRA\": \"from config\"}"));
  ASSERT_NE(instance, nullptr);
  auto d = MakeDelivery("{}", "image.resize", "msg-42");
  d->msg.attempt = 3;
  d->msg.props.correlation_id = "corr-7";
  d->msg.props.content_type = "application/json";
  d->msg.headers = {{"X-Request-Id", "req-1"}, {"tenant.name", "acme"}, {"nul", {"a\0b", 3}}};
  HandlerRun run = plugin_->Handle(instance, "*", *d);
  ASSERT_EQ(run.verdict, FOXW_ACK) << run.reason;

  std::map<std::string, std::string> env;
  std::istringstream lines(ReadFile(out_));
  for (std::string line; std::getline(lines, line);) {
    size_t eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  EXPECT_EQ(env["FOXWORKER_MESSAGE_ID"], "msg-42");
  EXPECT_EQ(env["FOXWORKER_QUEUE"], "jobs");
  EXPECT_EQ(env["FOXWORKER_MESSAGE_TYPE"], "image.resize");
  EXPECT_EQ(env["FOXWORKER_ATTEMPT"], "3");
  EXPECT_EQ(env["FOXWORKER_CORRELATION_ID"], "corr-7");
  EXPECT_EQ(env["FOXWORKER_CONTENT_TYPE"], "application/json");
  EXPECT_EQ(env["FOXWORKER_HEADER_X_REQUEST_ID"], "req-1");
  EXPECT_EQ(env["FOXWORKER_HEADER_TENANT_NAME"], "acme");
  EXPECT_EQ(env.count("FOXWORKER_HEADER_NUL"), 0u);  // a NUL cannot be passed
  EXPECT_EQ(env["EXTRA"], "from config");
  EXPECT_EQ(env.count("PATH"), 1u);  // the daemon's environment is inherited
}

// The environment a command got, parsed from `env -0` output.
std::map<std::string, std::string> ParseEnv0(const std::string& text) {
  std::map<std::string, std::string> env;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\0', start);
    if (end == std::string::npos) end = text.size();
    std::string entry = text.substr(start, end - start);
    if (size_t eq = entry.find('='); eq != std::string::npos) {
      env[entry.substr(0, eq)] = entry.substr(eq + 1);
    }
    start = end + 1;
  }
  return env;
}

class ExecEnvironmentTest : public ExecPluginTest {
 protected:
  // Runs `env -0` for `d` and returns what the command saw.
  std::map<std::string, std::string> EnvironmentFor(Delivery& d, const std::string& extra = "") {
    void* instance = Create(Script("env -0 > \"$OUT\"", extra));
    if (instance == nullptr) return {};
    HandlerRun run = plugin_->Handle(instance, "*", d);
    EXPECT_EQ(run.verdict, FOXW_ACK) << run.reason;
    return ParseEnv0(ReadFile(out_));
  }
};

// Issue 16, bug 9: `x-trace`, `x_trace` and `X-Trace` all mapped to
// FOXWORKER_HEADER_X_TRACE and only the last one survived.
TEST_F(ExecEnvironmentTest, HeadersDifferingOnlyInCaseOrPunctuationAllArrive) {
  auto d = MakeDelivery("");
  d->msg.headers = {
      {"x-trace", "dash"}, {"x_trace", "underscore"}, {"X-Trace", "upper"}, {"tenant", "acme"}};
  auto env = EnvironmentFor(*d);
  EXPECT_EQ(env["FOXWORKER_HEADERS_COUNT"], "4");
  EXPECT_EQ(env["FOXWORKER_HEADERS_NAME_1"], "x-trace");
  EXPECT_EQ(env["FOXWORKER_HEADERS_VALUE_1"], "dash");
  EXPECT_EQ(env["FOXWORKER_HEADERS_NAME_2"], "x_trace");
  EXPECT_EQ(env["FOXWORKER_HEADERS_VALUE_2"], "underscore");
  EXPECT_EQ(env["FOXWORKER_HEADERS_NAME_3"], "X-Trace");
  EXPECT_EQ(env["FOXWORKER_HEADERS_VALUE_3"], "upper");
  EXPECT_EQ(env["FOXWORKER_HEADERS_NAME_4"], "tenant");
  EXPECT_EQ(env["FOXWORKER_HEADERS_VALUE_4"], "acme");
  // None of the colliding names gets the readable variable; a unique one does.
  EXPECT_EQ(env.count("FOXWORKER_HEADER_X_TRACE"), 0u);
  EXPECT_EQ(env["FOXWORKER_HEADER_TENANT"], "acme");
  EXPECT_EQ(env.count("FOXWORKER_HEADERS_NAME_5"), 0u);
}

TEST_F(ExecEnvironmentTest, TheSameNameTwiceKeepsBothAndNoReadableVariable) {
  auto d = MakeDelivery("");
  d->msg.headers = {{"tag", "one"}, {"tag", "two"}};
  auto env = EnvironmentFor(*d);
  EXPECT_EQ(env["FOXWORKER_HEADERS_COUNT"], "2");
  EXPECT_EQ(env["FOXWORKER_HEADERS_VALUE_1"], "one");
  EXPECT_EQ(env["FOXWORKER_HEADERS_VALUE_2"], "two");
  EXPECT_EQ(env.count("FOXWORKER_HEADER_TAG"), 0u);
}

// Issue 16, bug 9: `clé` became FOXWORKER_HEADER_CL__ and its name was lost.
TEST_F(ExecEnvironmentTest, AUtf8HeaderNameArrives) {
  auto d = MakeDelivery("");
  d->msg.headers = {{"cl\xC3\xA9", "valeur \xE2\x82\xAC"}, {"caf\xC3\xA9-au-lait", "oui"}};
  auto env = EnvironmentFor(*d);
  EXPECT_EQ(env["FOXWORKER_HEADERS_COUNT"], "2");
  EXPECT_EQ(env["FOXWORKER_HEADERS_NAME_1"], "cl\xC3\xA9");
  EXPECT_EQ(env["FOXWORKER_HEADERS_VALUE_1"], "valeur \xE2\x82\xAC");
  EXPECT_EQ(env["FOXWORKER_HEADER_CL_C3A9"], "valeur \xE2\x82\xAC");
  EXPECT_EQ(env["FOXWORKER_HEADER_CAF_C3A9_AU_LAIT"], "oui");
  EXPECT_EQ(env.count("FOXWORKER_HEADER_CL__"), 0u);
}

TEST_F(ExecEnvironmentTest, NulBytesArriveHexEncoded) {
  auto d = MakeDelivery("");
  d->msg.headers = {{"bin", {"a\0b", 3}}, {{"n\0m", 3}, "v"}, {"", "empty name"}};
  auto env = EnvironmentFor(*d);
  EXPECT_EQ(env["FOXWORKER_HEADERS_COUNT"], "3");
  EXPECT_EQ(env["FOXWORKER_HEADERS_NAME_1"], "bin");
  EXPECT_EQ(env.count("FOXWORKER_HEADERS_VALUE_1"), 0u);
  EXPECT_EQ(env["FOXWORKER_HEADERS_VALUE_HEX_1"], "610062");
  EXPECT_EQ(env.count("FOXWORKER_HEADER_BIN"), 0u);
  EXPECT_EQ(env.count("FOXWORKER_HEADERS_NAME_2"), 0u);
  EXPECT_EQ(env["FOXWORKER_HEADERS_NAME_HEX_2"], "6e006d");
  EXPECT_EQ(env["FOXWORKER_HEADERS_VALUE_2"], "v");
  EXPECT_EQ(env.count("FOXWORKER_HEADERS_NAME_3"), 1u);
  EXPECT_EQ(env["FOXWORKER_HEADERS_NAME_3"], "");
  EXPECT_EQ(env["FOXWORKER_HEADERS_VALUE_3"], "empty name");
  EXPECT_EQ(env.count("FOXWORKER_HEADER_"), 0u);
}

// Issue 16, bug 9: content_encoding, reply_to, app_id, user_id, expiration,
// priority and timestamp were not passed.
TEST_F(ExecEnvironmentTest, EveryPropertyArrives) {
  auto d = MakeDelivery("", "image.resize", "backend-id-1");
  d->msg.attempt = 2;
  d->msg.props.content_type = "application/json";
  d->msg.props.content_encoding = "gzip";
  d->msg.props.correlation_id = "corr-7";
  d->msg.props.reply_to = "replies";
  d->msg.props.app_id = "billing";
  d->msg.props.user_id = "guest";
  d->msg.props.expiration = "60000";
  d->msg.props.message_id = "producer-id-9";
  d->msg.props.priority = 7;
  d->msg.props.timestamp_ms = 1700000000123;
  d->msg.props.cluster_id = "c9";
  d->msg.props.delivery_mode = 2;
  d->msg.enqueued_at_ms = 1700000000456;
  auto env = EnvironmentFor(*d);
  EXPECT_EQ(env["FOXWORKER_CLUSTER_ID"], "c9");
  EXPECT_EQ(env["FOXWORKER_DELIVERY_MODE"], "2");
  EXPECT_EQ(env["FOXWORKER_MESSAGE_ID"], "backend-id-1");
  EXPECT_EQ(env["FOXWORKER_QUEUE"], "jobs");
  EXPECT_EQ(env["FOXWORKER_MESSAGE_TYPE"], "image.resize");
  EXPECT_EQ(env["FOXWORKER_ATTEMPT"], "2");
  EXPECT_EQ(env["FOXWORKER_CONTENT_TYPE"], "application/json");
  EXPECT_EQ(env["FOXWORKER_CONTENT_ENCODING"], "gzip");
  EXPECT_EQ(env["FOXWORKER_CORRELATION_ID"], "corr-7");
  EXPECT_EQ(env["FOXWORKER_REPLY_TO"], "replies");
  EXPECT_EQ(env["FOXWORKER_APP_ID"], "billing");
  EXPECT_EQ(env["FOXWORKER_USER_ID"], "guest");
  EXPECT_EQ(env["FOXWORKER_EXPIRATION"], "60000");
  EXPECT_EQ(env["FOXWORKER_PRODUCER_MESSAGE_ID"], "producer-id-9");
  EXPECT_EQ(env["FOXWORKER_PRIORITY"], "7");
  EXPECT_EQ(env["FOXWORKER_TIMESTAMP_MS"], "1700000000123");
  EXPECT_EQ(env["FOXWORKER_ENQUEUED_AT_MS"], "1700000000456");
  EXPECT_EQ(env["FOXWORKER_HEADERS_COUNT"], "0");
}

TEST_F(ExecEnvironmentTest, AbsentPropertiesAreSetAndEmpty) {
  auto d = MakeDelivery("");
  auto env = EnvironmentFor(*d);
  for (const char* name :
       {"FOXWORKER_CONTENT_ENCODING", "FOXWORKER_REPLY_TO", "FOXWORKER_APP_ID", "FOXWORKER_USER_ID",
        "FOXWORKER_EXPIRATION", "FOXWORKER_PRODUCER_MESSAGE_ID", "FOXWORKER_TIMESTAMP_MS",
        "FOXWORKER_ENQUEUED_AT_MS", "FOXWORKER_CLUSTER_ID", "FOXWORKER_DELIVERY_MODE"}) {
    ASSERT_EQ(env.count(name), 1u) << name;
    EXPECT_EQ(env[name], "") << name;
  }
  EXPECT_EQ(env["FOXWORKER_PRIORITY"], "0");
}

// A producer's timestamp of 0 is a timestamp; a null header is typed so.
TEST_F(ExecEnvironmentTest, WhatTheProducerSetIsTellable) {
  auto d = MakeDelivery("");
  d->msg.props.timestamp_set = true;
  d->msg.headers = {{"e", ""}, {"n", ""}, {"d", "-3.14"}};
  d->msg.header_types = {HeaderType::kString, HeaderType::kNull, HeaderType::kDecimal};
  auto env = EnvironmentFor(*d);
  EXPECT_EQ(env["FOXWORKER_TIMESTAMP_MS"], "0");
  EXPECT_EQ(env["FOXWORKER_HEADERS_TYPE_1"], "string");
  EXPECT_EQ(env["FOXWORKER_HEADERS_TYPE_2"], "null");
  EXPECT_EQ(env["FOXWORKER_HEADERS_TYPE_3"], "decimal");
  EXPECT_EQ(env["FOXWORKER_HEADERS_VALUE_2"], "");
}

// The header variables belong to the message: one set in `env` (or the
// daemon's environment) does not pose as a header the message lacks.
TEST_F(ExecEnvironmentTest, HeaderVariablesFromConfigDoNotLeakIn) {
  auto d = MakeDelivery("");
  d->msg.headers = {{"a", "1"}, {"A", "2"}};
  auto env = EnvironmentFor(
      *d, "\"env\": {\"OUT\": " + Json(out_) +
              ", \"FOXWORKER_HEADER_A\": \"stale\", \"FOXWORKER_HEADERS_NAME_9\": \"stale\"}");
  EXPECT_EQ(env.count("FOXWORKER_HEADER_A"), 0u);
  EXPECT_EQ(env.count("FOXWORKER_HEADERS_NAME_9"), 0u);
  EXPECT_EQ(env["FOXWORKER_HEADERS_COUNT"], "2");
}

// The loop the README shows, run as written.
TEST_F(ExecEnvironmentTest, TheReadmeShellLoopSeesEveryHeader) {
  void* instance = Create(
      Script("i=1\n"
             "while [ \"$i\" -le \"$FOXWORKER_HEADERS_COUNT\" ]; do\n"
             "  eval \"name=\\$FOXWORKER_HEADERS_NAME_$i value=\\$FOXWORKER_HEADERS_VALUE_$i\"\n"
             "  printf '%s=%s\\n' \"$name\" \"$value\" >> \"$OUT\"\n"
             "  i=$((i + 1))\n"
             "done\n"));
  ASSERT_NE(instance, nullptr);
  auto d = MakeDelivery("");
  d->msg.headers = {{"x-trace", "a b"}, {"X-Trace", "$(c)"}, {"cl\xC3\xA9", "d'e"}};
  HandlerRun run = plugin_->Handle(instance, "*", *d);
  ASSERT_EQ(run.verdict, FOXW_ACK) << run.reason;
  EXPECT_EQ(ReadFile(out_), "x-trace=a b\nX-Trace=$(c)\ncl\xC3\xA9=d'e\n");
}

TEST_F(ExecPluginTest, ExitStatus75IsARetry) {
  HandlerRun run = Run(Script("echo try again later; exit 75"));
  EXPECT_EQ(run.verdict, FOXW_RETRY);
  EXPECT_EQ(run.reason, "exit status 75: try again later");
}

TEST_F(ExecPluginTest, RetryExitCodesAreConfigurable) {
  std::string codes = "\"retry_exit_codes\": [3, \"4\"]";
  EXPECT_EQ(Run(Script("exit 3", codes)).verdict, FOXW_RETRY);
  EXPECT_EQ(Run(Script("exit 4", codes)).verdict, FOXW_RETRY);
  EXPECT_EQ(Run(Script("exit 75", codes)).verdict, FOXW_REJECT);
}

TEST_F(ExecPluginTest, OtherExitStatusesRejectWithTheOutput) {
  HandlerRun run = Run(Script("echo first; echo to stderr >&2; exit 2"));
  EXPECT_EQ(run.verdict, FOXW_REJECT);
  EXPECT_EQ(run.reason, "exit status 2: first\nto stderr");
}

TEST_F(ExecPluginTest, LongOutputKeepsTheLastLinesWithinTheReasonBuffer) {
  HandlerRun run =
      Run(Script("i=0; while [ $i -lt 3000 ]; do echo \"line $i\"; i=$((i+1)); done; exit 1"));
  EXPECT_EQ(run.verdict, FOXW_REJECT);
  EXPECT_LT(run.reason.size(), PluginHarness::kReasonCap);
  EXPECT_EQ(run.reason.rfind("exit status 1: [...] line ", 0), 0u) << run.reason.substr(0, 80);
  EXPECT_EQ(run.reason.substr(run.reason.size() - 10), "\nline 2999");
}

TEST_F(ExecPluginTest, MaxOutputBytesLimitsWhatIsKept) {
  HandlerRun run =
      Run(Script("echo aaaaaaaaaa; echo bbbbbbbbbb; exit 1", "\"max_output_bytes\": 14"));
  EXPECT_EQ(run.verdict, FOXW_REJECT);
  EXPECT_EQ(run.reason, "exit status 1: [...] bbbbbbbbbb");
}

TEST_F(ExecPluginTest, DeathBySignalIsARetry) {
  HandlerRun run = Run(Script("echo dying; kill -KILL $$"));
  EXPECT_EQ(run.verdict, FOXW_RETRY);
  EXPECT_EQ(run.reason, "killed by signal 9 (SIGKILL): dying");
}

TEST_F(ExecPluginTest, TimeoutKillsTheWholeProcessGroupQuickly) {
  auto start = steady_clock::now();
  HandlerRun run = Run(Script("sleep 30 & echo $! > \"$OUT\"; sleep 30", "\"timeout\": 300"));
  auto took = steady_clock::now() - start;
  EXPECT_EQ(run.verdict, FOXW_RETRY);
  EXPECT_EQ(run.reason, "timeout after 0.3s");
  EXPECT_LT(took, milliseconds(1500));
  pid_t background = static_cast<pid_t>(std::stol(ReadFile(out_)));
  for (int i = 0; i < 100 && !ProcessIsDead(background); ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_TRUE(ProcessIsDead(background)) << "the background sleep outlived the timeout";
}

TEST_F(ExecPluginTest, TimeoutAcceptsDurationText) {
  HandlerRun run = Run(Script("sleep 30", "\"timeout\": \"1s\""));
  EXPECT_EQ(run.reason, "timeout after 1s");
}

TEST_F(ExecPluginTest, ACommandIgnoringSigtermGetsSigkillAfterTheGrace) {
  auto start = steady_clock::now();
  HandlerRun run = Run(Script("trap '' TERM; echo stubborn; sleep 30", "\"timeout\": 200"));
  auto took = steady_clock::now() - start;
  EXPECT_EQ(run.verdict, FOXW_RETRY);
  EXPECT_EQ(run.reason, "timeout after 0.2s: stubborn");
  EXPECT_GE(took, milliseconds(2000));
  EXPECT_LT(took, milliseconds(4000));
}

TEST_F(ExecPluginTest, BackgroundLeftoversDoNotHoldTheRunOpen) {
  auto start = steady_clock::now();
  HandlerRun run = Run(Script("sleep 30 & echo $! > \"$OUT\"; echo done"));
  EXPECT_EQ(run.verdict, FOXW_ACK) << run.reason;
  EXPECT_LT(steady_clock::now() - start, milliseconds(1500));
  pid_t background = static_cast<pid_t>(std::stol(ReadFile(out_)));
  for (int i = 0; i < 100 && !ProcessIsDead(background); ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_TRUE(ProcessIsDead(background));
}

TEST_F(ExecPluginTest, CancellationEndsTheRun) {
  void* instance = Create(Script("sleep 30"));
  ASSERT_NE(instance, nullptr);
  auto d = MakeDelivery("");
  std::thread canceller([&d] {
    std::this_thread::sleep_for(milliseconds(200));
    d->cancelled.store(true);
  });
  auto start = steady_clock::now();
  HandlerRun run = plugin_->Handle(instance, "*", *d);
  canceller.join();
  EXPECT_EQ(run.verdict, FOXW_RETRY);
  EXPECT_EQ(run.reason.rfind("cancelled after 0.", 0), 0u) << run.reason;
  EXPECT_LT(steady_clock::now() - start, milliseconds(1500));
}

TEST_F(ExecPluginTest, TheMessageDeadlineEndsTheRun) {
  void* instance = Create(Script("sleep 30"));
  ASSERT_NE(instance, nullptr);
  auto d = MakeDelivery("");
  d->deadline_ns = MonotonicNs() + 300'000'000;
  HandlerRun run = plugin_->Handle(instance, "*", *d);
  EXPECT_EQ(run.verdict, FOXW_RETRY);
  EXPECT_EQ(run.reason.rfind("timeout after 0.", 0), 0u) << run.reason;
  EXPECT_CONTAINS(run.reason, "(the message's deadline)");
}

TEST_F(ExecPluginTest, LargePayloadEchoedBackDoesNotDeadlock) {
  std::string payload(1 << 20, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);
  auto start = steady_clock::now();
  HandlerRun run = Run(Script("tee \"$OUT\"", "\"timeout\": \"20s\""), payload);
  EXPECT_EQ(run.verdict, FOXW_ACK) << run.reason;
  EXPECT_LT(steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(ReadFile(out_), payload);
}

TEST_F(ExecPluginTest, ACommandThatIgnoresItsStdinDoesNotBreakTheDaemon) {
  // Writing the rest of the payload fails with EPIPE; SIGPIPE must not kill us.
  HandlerRun run = Run(Script("exit 0"), std::string(1 << 20, 'x'));
  EXPECT_EQ(run.verdict, FOXW_ACK) << run.reason;
}

TEST_F(ExecPluginTest, RunsInTheWorkingDirectory) {
  HandlerRun run = Run(Script("pwd > \"$OUT\"", "\"working_dir\": " + Json(dir_)));
  EXPECT_EQ(run.verdict, FOXW_ACK) << run.reason;
  EXPECT_EQ(ReadFile(out_), std::filesystem::canonical(dir_).string() + "\n");
}

TEST_F(ExecPluginTest, RelativeCommandsResolveAgainstTheWorkingDirectory) {
  std::string script = dir_ + "/job.sh";
  std::ofstream(script) << "#!/bin/sh\necho relative > \"$OUT\"\n";
  chmod(script.c_str(), 0755);
  HandlerRun run = Run("{\"command\": [\"./job.sh\"], \"working_dir\": " + Json(dir_) +
                       ", \"env\": {\"OUT\": " + Json(out_) + "}}");
  EXPECT_EQ(run.verdict, FOXW_ACK) << run.reason;
  EXPECT_EQ(ReadFile(out_), "relative\n");
}

TEST_F(ExecPluginTest, BareProgramNamesAreLookedUpInPath) {
  HandlerRun run = Run("{\"command\": [\"sh\", \"-c\", \"exit 0\"]}");
  EXPECT_EQ(run.verdict, FOXW_ACK) << run.reason;
}

TEST_F(ExecPluginTest, OneInstanceServesConcurrentMessages) {
  void* instance = Create(Script("cat; exit 1"));
  ASSERT_NE(instance, nullptr);
  std::vector<std::thread> threads;
  std::atomic<int> right{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto d = MakeDelivery("payload " + std::to_string(t));
      HandlerRun run = plugin_->Handle(instance, "*", *d);
      if (run.verdict == FOXW_REJECT && run.reason == "exit status 1: payload " + std::to_string(t))
        right.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(right.load(), 8);
}

// Regression: with SIGCHLD ignored the kernel reaps children itself, and a
// failed waitpid() used to read as "exit status 0", acking a failed job.
TEST_F(ExecPluginTest, ALostExitStatusIsARetryNotAnAck) {
  struct sigaction ignore = {}, saved = {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGCHLD, &ignore, &saved);
  HandlerRun run = Run(Script("exit 3"));
  sigaction(SIGCHLD, &saved, nullptr);
  EXPECT_EQ(run.verdict, FOXW_RETRY);
  EXPECT_CONTAINS(run.reason, "was lost (No child processes)");
}

TEST_F(ExecPluginTest, RefusesAMissingCommand) {
  EXPECT_CONTAINS(Refusal("{}"), "config key \"command\": is required");
}

TEST_F(ExecPluginTest, RefusesAnEmptyCommand) {
  EXPECT_CONTAINS(Refusal("{\"command\": []}"), "config key \"command\": must not be empty");
  EXPECT_CONTAINS(Refusal("{\"command\": [\"\"]}"), "the program name is empty");
  EXPECT_CONTAINS(Refusal("{\"command\": \"/bin/true\"}"), "must be a list of strings");
}

TEST_F(ExecPluginTest, RefusesACommandNotInPath) {
  std::string e = Refusal("{\"command\": [\"no-such-program-foxworker\"]}");
  EXPECT_CONTAINS(e, "\"no-such-program-foxworker\" was not found in PATH (");
}

TEST_F(ExecPluginTest, RefusesACommandThatIsNotExecutable) {
  std::string file = dir_ + "/not_executable";
  std::ofstream(file) << "#!/bin/sh\n";
  chmod(file.c_str(), 0644);
  // No execute bit at all: refused even for root.
  EXPECT_CONTAINS(Refusal("{\"command\": [" + Json(file) + "]}"),
                  "\"" + file + "\" is not executable: Permission denied");
  EXPECT_CONTAINS(Refusal("{\"command\": [" + Json(dir_) + "]}"),
                  "is not executable: not a regular file");
  EXPECT_CONTAINS(Refusal("{\"command\": [\"/nonexistent/prog\"]}"),
                  "\"/nonexistent/prog\" is not executable: No such file or directory");
}

TEST_F(ExecPluginTest, RefusesBadKeysAndValues) {
  EXPECT_CONTAINS(Refusal("{\"command\": [\"/bin/true\"], \"comand\": 1}"),
                  "unknown config key \"comand\"");
  EXPECT_CONTAINS(Refusal("{\"command\": [\"/bin/true\""), "config is not valid JSON");
  EXPECT_CONTAINS(Refusal("[]"), "config must be a JSON object");
  EXPECT_CONTAINS(Refusal("{\"command\": [\"/bin/true\"], \"timeout\": 0}"),
                  "config key \"timeout\"");
  EXPECT_CONTAINS(Refusal("{\"command\": [\"/bin/true\"], \"timeout\": \"soon\"}"),
                  "config key \"timeout\"");
  EXPECT_CONTAINS(Refusal("{\"command\": [\"/bin/true\"], \"retry_exit_codes\": [0]}"),
                  "config key \"retry_exit_codes\": element 0");
  EXPECT_CONTAINS(Refusal("{\"command\": [\"/bin/true\"], \"env\": {\"A=B\": \"x\"}}"),
                  "config key \"env\": invalid variable name \"A=B\"");
  EXPECT_CONTAINS(Refusal("{\"command\": [\"/bin/true\"], \"max_output_bytes\": -1}"),
                  "config key \"max_output_bytes\"");
  EXPECT_CONTAINS(Refusal("{\"command\": [\"/bin/true\"], \"working_dir\": \"/nonexistent\"}"),
                  "config key \"working_dir\": \"/nonexistent\": No such file or directory");
}

}  // namespace
}  // namespace foxworker::testing
