#include "daemon/config/config_parser.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <thread>

namespace foxworker {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr char kFile[] = "/etc/foxworker/foxworker.yaml";
constexpr char kDir[] = "/etc/foxworker";

Result<Config> Parse(const std::string& yaml) { return ParseConfigString(yaml, kFile, kDir); }

Config ParseOk(const std::string& yaml) {
  Result<Config> config = Parse(yaml);
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  return config.ok() ? std::move(config).value() : Config{};
}

std::string ParseError(const std::string& yaml) {
  Result<Config> config = Parse(yaml);
  EXPECT_FALSE(config.ok()) << "parsed:\n" << yaml;
  return config.ok() ? "" : config.status().message();
}

// A minimal valid set of definitions for queues to refer to.
constexpr char kBase[] = R"(
plugins:
  exec:
    path: exec.so
backends:
  mem:
    type: memory
)";

// Sets an environment variable for the life of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { setenv(name, value, 1); }
  ~ScopedEnv() { unsetenv(name_); }

 private:
  const char* name_;
};

TEST(ParseConfigTest, EmptyFileGivesDefaults) {
  Config config = ParseOk("");
  EXPECT_EQ(config.file, kFile);
  EXPECT_EQ(config.daemon.log_level, LogLevel::kInfo);
  EXPECT_EQ(config.daemon.worker_threads,
            static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  EXPECT_EQ(config.daemon.shutdown_timeout, milliseconds(30000));
  EXPECT_EQ(config.daemon.state_dir, "/var/lib/foxworker");
  EXPECT_TRUE(config.plugins.empty());
  EXPECT_TRUE(config.backends.empty());
  EXPECT_TRUE(config.queues.empty());
  ASSERT_EQ(config.retry_policies.size(), 1u);
  const RetryPolicyConfig* policy = config.FindRetryPolicy("default");
  ASSERT_NE(policy, nullptr);
  EXPECT_EQ(policy->max_attempts, 5);
  EXPECT_EQ(policy->backoff, Backoff::kExponential);
  EXPECT_EQ(policy->initial, milliseconds(1000));
  EXPECT_EQ(policy->max, milliseconds(300000));
  EXPECT_DOUBLE_EQ(policy->multiplier, 2.0);
  EXPECT_DOUBLE_EQ(policy->jitter, 0.1);
  EXPECT_FALSE(policy->full_jitter);
}

constexpr char kFullExample[] = R"(daemon:
  log_level: debug
  worker_threads: 4
  shutdown_timeout: 45s
  plugin_dir: plugins
  state_dir: /srv/foxworker
plugins:
  exec:
    path: exec.so
    config:
      command: /usr/bin/convert
      args: [-resize, "50%"]
      max_output: 65536
      ratio: 0.75
      verbose: true
      env: {LANG: C, "TZ": UTC}
  log:
    path: /opt/plugins/log.so
backends:
  mem:
    type: memory
    capacity: 1000
  disk:
    type: local
    durability: normal
    lease: 1m
    poll_interval: 50ms
    retention: 1d
    batch_size: 64
  archive:
    type: local
    path: /mnt/archive.db
queues:
  thumbnails:
    backend: disk
    plugin: exec
    handler: thumbnail
    concurrency: 8
    timeout: 2m
    retry_policy: patient
  audit:
    backend: mem
    source: audit-log
    plugin: log
    concurrency: 2
    prefetch: 3
retry_policies:
  patient:
    max_attempts: 20
    backoff: linear
    initial: 500ms
    max: 1h
    multiplier: 1.5
    jitter: 0
    full_jitter: true
)";

TEST(ParseConfigTest, FullExample) {
  Config config = ParseOk(kFullExample);
  EXPECT_EQ(config.daemon.log_level, LogLevel::kDebug);
  EXPECT_EQ(config.daemon.worker_threads, 4);
  EXPECT_EQ(config.daemon.shutdown_timeout, milliseconds(45000));
  EXPECT_EQ(config.daemon.plugin_dir, "/etc/foxworker/plugins");
  EXPECT_EQ(config.daemon.state_dir, "/srv/foxworker");

  ASSERT_EQ(config.plugins.size(), 2u);
  const PluginConfig* exec = config.FindPlugin("exec");
  ASSERT_NE(exec, nullptr);
  EXPECT_EQ(exec->path, "/etc/foxworker/plugins/exec.so");
  EXPECT_EQ(exec->mark.ToString(), "/etc/foxworker/foxworker.yaml:8:3");
  EXPECT_EQ(exec->config_mark.ToString(), "/etc/foxworker/foxworker.yaml:11:7");
  EXPECT_EQ(exec->config_marks.at("ratio").ToString(), "/etc/foxworker/foxworker.yaml:14:7");
  EXPECT_EQ(exec->config_marks.size(), 6u);
  EXPECT_EQ(config.FindPlugin("log")->path, "/opt/plugins/log.so");
  EXPECT_EQ(config.FindPlugin("log")->config_json, "{}");
  EXPECT_EQ(config.FindPlugin("log")->config_mark.ToString(), "/etc/foxworker/foxworker.yaml:17:3");

  const BackendConfig* mem = config.FindBackend("mem");
  ASSERT_NE(mem, nullptr);
  EXPECT_EQ(mem->type, "memory");
  EXPECT_EQ(mem->memory.capacity, 1000u);
  const BackendConfig* disk = config.FindBackend("disk");
  ASSERT_NE(disk, nullptr);
  EXPECT_EQ(disk->type, "local");
  EXPECT_EQ(disk->local.path, "/srv/foxworker/foxworker.db");
  EXPECT_EQ(disk->local.durability, Durability::kNormal);
  EXPECT_EQ(disk->local.lease, milliseconds(60000));
  EXPECT_EQ(disk->local.poll_interval, milliseconds(50));
  EXPECT_EQ(disk->local.retention, milliseconds(86400000));
  EXPECT_EQ(disk->local.batch_size, 64);
  const BackendConfig* archive = config.FindBackend("archive");
  ASSERT_NE(archive, nullptr);
  EXPECT_EQ(archive->local.path, "/mnt/archive.db");
  EXPECT_EQ(archive->local.durability, Durability::kFull);
  EXPECT_EQ(archive->local.lease, milliseconds(30000));
  EXPECT_EQ(archive->local.poll_interval, milliseconds(200));
  EXPECT_EQ(archive->local.retention, milliseconds(0));
  EXPECT_EQ(archive->local.batch_size, 256);

  const QueueConfig* thumbnails = config.FindQueue("thumbnails");
  ASSERT_NE(thumbnails, nullptr);
  EXPECT_EQ(thumbnails->backend, "disk");
  EXPECT_EQ(thumbnails->source, "thumbnails");
  EXPECT_EQ(thumbnails->plugin, "exec");
  EXPECT_EQ(thumbnails->handler, "thumbnail");
  EXPECT_EQ(thumbnails->concurrency, 8);
  EXPECT_EQ(thumbnails->prefetch, 16);
  EXPECT_EQ(thumbnails->timeout, milliseconds(120000));
  EXPECT_EQ(thumbnails->retry_policy, "patient");
  EXPECT_EQ(thumbnails->mark.ToString(), "/etc/foxworker/foxworker.yaml:34:3");
  const QueueConfig* audit = config.FindQueue("audit");
  ASSERT_NE(audit, nullptr);
  EXPECT_EQ(audit->source, "audit-log");
  EXPECT_EQ(audit->handler, "");
  EXPECT_EQ(audit->prefetch, 3);
  EXPECT_EQ(audit->timeout, milliseconds(0));
  EXPECT_EQ(audit->retry_policy, "default");

  ASSERT_EQ(config.retry_policies.size(), 2u);
  EXPECT_EQ(config.retry_policies[0].name, "default");
  const RetryPolicyConfig* patient = config.FindRetryPolicy("patient");
  ASSERT_NE(patient, nullptr);
  EXPECT_EQ(patient->max_attempts, 20);
  EXPECT_EQ(patient->backoff, Backoff::kLinear);
  EXPECT_EQ(patient->initial, milliseconds(500));
  EXPECT_EQ(patient->max, milliseconds(3600000));
  EXPECT_DOUBLE_EQ(patient->multiplier, 1.5);
  EXPECT_DOUBLE_EQ(patient->jitter, 0.0);
  EXPECT_TRUE(patient->full_jitter);
}

TEST(ParseConfigTest, UnknownKeySuggestsTheClosest) {
  std::string yaml = std::string(kBase) + R"(queues:
  emails:
    backend: mem
    plugin: exec
    concurency: 4
)";
  // kBase is 7 lines (it starts with a newline), so "concurency" is on line 12.
  EXPECT_EQ(ParseError(yaml),
            "/etc/foxworker/foxworker.yaml:12:5: queues.emails.concurency: unknown key "
            "(did you mean \"concurrency\"?)");
}

TEST(ParseConfigTest, UnknownKeyWithoutCloseMatchListsTheKeys) {
  EXPECT_EQ(ParseError("daemon:\n  colour: blue\n"),
            "/etc/foxworker/foxworker.yaml:2:3: daemon.colour: unknown key (expected one of: "
            "log_level, worker_threads, shutdown_timeout, plugin_dir, include_dir, state_dir)");
  EXPECT_EQ(ParseError("middleware:\n  - auth\n"),
            "/etc/foxworker/foxworker.yaml:1:1: middleware: unknown key (expected one of: "
            "daemon, plugins, backends, queues, retry_policies)");
  EXPECT_EQ(ParseError("retry_polices:\n  default: {}\n"),
            "/etc/foxworker/foxworker.yaml:1:1: retry_polices: unknown key "
            "(did you mean \"retry_policies\"?)");
}

TEST(ParseConfigTest, BadDurationPointsAtTheValue) {
  EXPECT_EQ(ParseError("daemon:\n  log_level: info\n  shutdown_timeout: 30 sec\n"),
            "/etc/foxworker/foxworker.yaml:3:21: daemon.shutdown_timeout: invalid duration "
            "\"30 sec\": expected a number followed by ms, s, m, h or d");
  EXPECT_EQ(ParseError("daemon:\n  shutdown_timeout: 30\n"),
            "/etc/foxworker/foxworker.yaml:2:21: daemon.shutdown_timeout: invalid duration "
            "\"30\": a unit is required; expected a number followed by ms, s, m, h or d");
}

TEST(ParseConfigTest, MissingEnvironmentVariablePointsAtTheScalar) {
  unsetenv("FOXWORKER_TEST_UNSET");
  std::string yaml = std::string(kBase) + R"(queues:
  emails:
    backend: mem
    plugin: exec
    handler: "mail-${FOXWORKER_TEST_UNSET}"
)";
  EXPECT_EQ(ParseError(yaml),
            "/etc/foxworker/foxworker.yaml:12:14: queues.emails.handler: environment variable "
            "FOXWORKER_TEST_UNSET is not set");
}

TEST(ParseConfigTest, EnvironmentInterpolation) {
  ScopedEnv threads("FOXWORKER_TEST_THREADS", "3");
  ScopedEnv empty("FOXWORKER_TEST_EMPTY", "");
  unsetenv("FOXWORKER_TEST_UNSET");
  Config config = ParseOk(std::string(kBase) + R"(daemon:
  worker_threads: ${FOXWORKER_TEST_THREADS}
  state_dir: ${FOXWORKER_TEST_UNSET:-/var/lib/fw}
queues:
  emails:
    backend: mem
    plugin: exec
    handler: ${FOXWORKER_TEST_EMPTY:-fallback}
    source: "cost$$-${FOXWORKER_TEST_THREADS}x $5"
    concurrency: ${FOXWORKER_TEST_UNSET:-2}
)");
  EXPECT_EQ(config.daemon.worker_threads, 3);
  EXPECT_EQ(config.daemon.state_dir, "/var/lib/fw");
  const QueueConfig* queue = config.FindQueue("emails");
  ASSERT_NE(queue, nullptr);
  EXPECT_EQ(queue->handler, "fallback");
  EXPECT_EQ(queue->source, "cost$-3x $5");
  EXPECT_EQ(queue->concurrency, 2);
}

TEST(ParseConfigTest, InterpolationErrors) {
  EXPECT_EQ(ParseError("daemon:\n  state_dir: $HOME/fw\n"),
            "/etc/foxworker/foxworker.yaml:2:14: daemon.state_dir: \"$HOME\" is not expanded: "
            "write ${HOME} for the environment variable, or $$ for a literal \"$\"");
  EXPECT_EQ(ParseError("daemon:\n  state_dir: ${HOME\n"),
            "/etc/foxworker/foxworker.yaml:2:14: daemon.state_dir: unterminated \"${\": "
            "expected ${NAME} or ${NAME:-default}");
  EXPECT_EQ(ParseError("daemon:\n  state_dir: ${HOME:default}\n"),
            "/etc/foxworker/foxworker.yaml:2:14: daemon.state_dir: invalid reference "
            "\"${HOME:default}\": expected ${NAME} or ${NAME:-default}, where NAME is letters, "
            "digits and _ not starting with a digit");
}

TEST(ParseConfigTest, UndefinedReferencesPointAtTheQueue) {
  std::string queue_head = std::string(kBase) + "retry_policies:\n  slow: {}\nqueues:\n  emails:\n";
  EXPECT_EQ(ParseError(queue_head + "    backend: memm\n    plugin: exec\n"),
            "/etc/foxworker/foxworker.yaml:11:3: queues.emails: backend \"memm\" is not defined "
            "(did you mean \"mem\"?)");
  EXPECT_EQ(ParseError(queue_head + "    backend: redis\n    plugin: exec\n"),
            "/etc/foxworker/foxworker.yaml:11:3: queues.emails: backend \"redis\" is not "
            "defined (defined backends: mem)");
  EXPECT_EQ(ParseError(queue_head + "    backend: mem\n    plugin: python\n"),
            "/etc/foxworker/foxworker.yaml:11:3: queues.emails: plugin \"python\" is not "
            "defined (defined plugins: exec)");
  EXPECT_EQ(ParseError(queue_head + "    backend: mem\n    plugin: exec\n    retry_policy: slwo\n"),
            "/etc/foxworker/foxworker.yaml:11:3: queues.emails: retry policy \"slwo\" is not "
            "defined (did you mean \"slow\"?)");
  EXPECT_EQ(ParseError("queues:\n  emails:\n    backend: mem\n    plugin: exec\n"),
            "/etc/foxworker/foxworker.yaml:2:3: queues.emails: backend \"mem\" is not defined "
            "(no backends are defined)");
  EXPECT_EQ(ParseError(std::string(kBase) + "queues:\n  emails:\n    plugin: exec\n"),
            "/etc/foxworker/foxworker.yaml:9:3: queues.emails: missing required key \"backend\"");
}

TEST(ParseConfigTest, DuplicateKeys) {
  EXPECT_EQ(ParseError("daemon:\n  worker_threads: 2\n  worker_threads: 3\n"),
            "/etc/foxworker/foxworker.yaml:3:3: daemon.worker_threads: duplicate key (first "
            "written at /etc/foxworker/foxworker.yaml:2:3)");
  EXPECT_EQ(ParseError(std::string(kBase) + "  mem:\n    type: memory\n"),
            "/etc/foxworker/foxworker.yaml:8:3: backends.mem: duplicate key (first written at "
            "/etc/foxworker/foxworker.yaml:6:3)");
  EXPECT_EQ(ParseError("plugins:\n  p:\n    path: p.so\n    config:\n      a: 1\n      a: 2\n"),
            "/etc/foxworker/foxworker.yaml:6:7: plugins.p.config.a: duplicate key (first "
            "written at /etc/foxworker/foxworker.yaml:5:7)");
}

TEST(ParseConfigTest, ValueRangesAndEnums) {
  std::string queue_head =
      std::string(kBase) + "queues:\n  q:\n    backend: mem\n    plugin: exec\n";
  EXPECT_EQ(ParseError(queue_head + "    concurrency: 0\n"),
            "/etc/foxworker/foxworker.yaml:12:18: queues.q.concurrency: must be between 1 and "
            "10000, got 0");
  EXPECT_EQ(ParseError(queue_head + "    concurrency: 10001\n"),
            "/etc/foxworker/foxworker.yaml:12:18: queues.q.concurrency: must be between 1 and "
            "10000, got 10001");
  EXPECT_EQ(ParseError(queue_head + "    concurrency: four\n"),
            "/etc/foxworker/foxworker.yaml:12:18: queues.q.concurrency: expected an integer, "
            "got \"four\"");
  EXPECT_EQ(ParseError(queue_head + "    concurrency: 4\n    prefetch: 2\n"),
            "/etc/foxworker/foxworker.yaml:13:15: queues.q.prefetch: must be at least "
            "concurrency (4), got 2");
  EXPECT_EQ(ParseError(queue_head + "    timeout: {seconds: 3}\n"),
            "/etc/foxworker/foxworker.yaml:12:14: queues.q.timeout: expected a scalar value, "
            "got a mapping");
  EXPECT_EQ(ParseError(queue_head + "    handler:\n"),
            "/etc/foxworker/foxworker.yaml:12:5: queues.q.handler: expected a value");

  EXPECT_EQ(ParseError("retry_policies:\n  r:\n    max_attempts: 0\n"),
            "/etc/foxworker/foxworker.yaml:3:19: retry_policies.r.max_attempts: must be between "
            "1 and 1000000, got 0");
  EXPECT_EQ(ParseError("retry_policies:\n  r:\n    multiplier: 0.5\n"),
            "/etc/foxworker/foxworker.yaml:3:17: retry_policies.r.multiplier: must be at least "
            "1, got 0.5");
  EXPECT_EQ(ParseError("retry_policies:\n  r:\n    jitter: 1.5\n"),
            "/etc/foxworker/foxworker.yaml:3:13: retry_policies.r.jitter: must be between 0 and "
            "1, got 1.5");
  EXPECT_EQ(ParseError("retry_policies:\n  r:\n    initial: 10s\n    max: 5s\n"),
            "/etc/foxworker/foxworker.yaml:4:10: retry_policies.r.max: initial (10s) must not be "
            "greater than max (5s)");
  EXPECT_EQ(ParseError("retry_policies:\n  r:\n    backoff: exponentail\n"),
            "/etc/foxworker/foxworker.yaml:3:14: retry_policies.r.backoff: invalid backoff "
            "\"exponentail\": expected fixed, linear or exponential");
  EXPECT_EQ(ParseError("retry_policies:\n  r:\n    full_jitter: yes\n"),
            "/etc/foxworker/foxworker.yaml:3:18: retry_policies.r.full_jitter: expected true or "
            "false, got \"yes\"");
  EXPECT_EQ(ParseError("daemon:\n  log_level: verbose\n"),
            "/etc/foxworker/foxworker.yaml:2:14: daemon.log_level: invalid log level \"verbose\": "
            "expected trace, debug, info, warning or error");
  EXPECT_EQ(ParseError("daemon:\n  worker_threads: -1\n"),
            "/etc/foxworker/foxworker.yaml:2:19: daemon.worker_threads: must be between 0 and "
            "1024, got -1");
  EXPECT_EQ(ParseError("backends:\n  d:\n    type: local\n    durability: paranoid\n"),
            "/etc/foxworker/foxworker.yaml:4:17: backends.d.durability: invalid durability "
            "\"paranoid\": expected full or normal");
  EXPECT_EQ(ParseError("backends:\n  d:\n    type: local\n    lease: 0\n"),
            "/etc/foxworker/foxworker.yaml:4:12: backends.d.lease: must be greater than zero");
  EXPECT_EQ(ParseError("queues:\n  \"bad name\": {}\n"),
            "/etc/foxworker/foxworker.yaml:2:3: queues.bad name: invalid queue name: use letters, "
            "digits, '_', '-', '.' and ':', starting with a letter or digit");
  EXPECT_EQ(ParseError("queues: [a, b]\n"),
            "/etc/foxworker/foxworker.yaml:1:9: queues: expected a mapping, got a sequence");
}

TEST(ParseConfigTest, UserDefinedDefaultPolicyReplacesTheBuiltIn) {
  Config config = ParseOk("retry_policies:\n  default:\n    max_attempts: 1\n");
  ASSERT_EQ(config.retry_policies.size(), 1u);
  EXPECT_EQ(config.retry_policies[0].max_attempts, 1);
  EXPECT_EQ(config.retry_policies[0].mark.ToString(), "/etc/foxworker/foxworker.yaml:2:3");
}

TEST(ParseConfigTest, BackendTypes) {
  EXPECT_EQ(ParseError("backends:\n  b:\n    type: rabbitmq\n"),
            "/etc/foxworker/foxworker.yaml:3:11: backends.b.type: backend type \"rabbitmq\" is "
            "not built into this foxworkerd");
  EXPECT_EQ(ParseError("backends:\n  b:\n    type: redis\n"),
            "/etc/foxworker/foxworker.yaml:3:11: backends.b.type: backend type \"redis\" is not "
            "built into this foxworkerd");
  EXPECT_EQ(ParseError("backends:\n  b:\n    type: kafka\n"),
            "/etc/foxworker/foxworker.yaml:3:11: backends.b.type: unknown backend type "
            "\"kafka\" (known types: local, memory)");
  EXPECT_EQ(ParseError("backends:\n  b:\n    capacity: 3\n"),
            "/etc/foxworker/foxworker.yaml:2:3: backends.b: missing required key \"type\" "
            "(known types: local, memory)");
  EXPECT_EQ(ParseError("backends:\n  b:\n    type: memory\n    path: x.db\n"),
            "/etc/foxworker/foxworker.yaml:4:5: backends.b.path: not a key of a backend of type "
            "memory (it belongs to type local)");
  EXPECT_EQ(ParseError("backends:\n  b:\n    type: local\n    batchsize: 3\n"),
            "/etc/foxworker/foxworker.yaml:4:5: backends.b.batchsize: unknown key (did you mean "
            "\"batch_size\"?)");
}

TEST(ParseConfigTest, LocalBackendPaths) {
  Config config = ParseOk(
      "daemon:\n  state_dir: state\nbackends:\n  a:\n    type: local\n    path: jobs/a.db\n"
      "  b:\n    type: local\n");
  EXPECT_EQ(config.daemon.state_dir, "/etc/foxworker/state");
  EXPECT_EQ(config.FindBackend("a")->local.path, "/etc/foxworker/state/jobs/a.db");
  EXPECT_EQ(config.FindBackend("b")->local.path, "/etc/foxworker/state/foxworker.db");

  EXPECT_EQ(ParseError("backends:\n  a:\n    type: local\n  b:\n    type: local\n"
                       "    path: /var/lib/foxworker/foxworker.db\n"),
            "/etc/foxworker/foxworker.yaml:4:3: backends.b: database "
            "/var/lib/foxworker/foxworker.db is already used by backend \"a\" "
            "(/etc/foxworker/foxworker.yaml:2:3)");
}

TEST(ParseConfigTest, PluginPathsResolveNextToTheConfigWithoutPluginDir) {
  Config config = ParseOk("plugins:\n  a:\n    path: ../lib/a.so\n  b:\n    path: /abs/b.so\n");
  EXPECT_EQ(config.FindPlugin("a")->path, "/etc/lib/a.so");
  EXPECT_EQ(config.FindPlugin("b")->path, "/abs/b.so");
  EXPECT_EQ(ParseError("plugins:\n  a:\n    config: {}\n"),
            "/etc/foxworker/foxworker.yaml:2:3: plugins.a: missing required key \"path\"");
}

TEST(ParseConfigTest, YamlSyntaxErrorHasPosition) {
  EXPECT_EQ(ParseError("daemon:\n  log_level: [info\n"),
            "/etc/foxworker/foxworker.yaml:3:1: invalid YAML: end of sequence flow not found");
  // yaml-cpp's LoadAll() never returns on these, and Load() ignores the rest.
  EXPECT_EQ(ParseError(",daemon:\n  worker_threads: 2\n"),
            "/etc/foxworker/foxworker.yaml:1:1: invalid YAML: unexpected \",\"");
  EXPECT_EQ(ParseError("- a\n,\n"),
            "/etc/foxworker/foxworker.yaml:2:1: invalid YAML: unexpected \",\"");
  EXPECT_EQ(ParseError("daemon: {}\n---\nqueues: {}\n"),
            "/etc/foxworker/foxworker.yaml:3:1: a config file holds one YAML document; found a "
            "second one");
}

TEST(PluginConfigJsonTest, KeepsTypesAndStructure) {
  ScopedEnv port("FOXWORKER_TEST_PORT", "8080");
  Config config = ParseOk(R"(plugins:
  p:
    path: p.so
    config:
      int: 42
      negative: -7
      big: 18446744073709551615
      float: 1.5
      exp: 1e3
      yes_bool: true
      no_bool: False
      nothing: ~
      empty:
      quoted_int: "42"
      single_quoted_bool: 'true'
      str_tag: !!str 12
      word: hello
      hex: 0x1F
      inf: .inf
      port: ${FOXWORKER_TEST_PORT}
      quoted_port: "${FOXWORKER_TEST_PORT}"
      dollars: "$$5"
      block: |
        line 1
        line 2
      list: [1, "2", three, {four: 4}, [5]]
      nested:
        deeper:
          flag: false
)");
  const PluginConfig* plugin = config.FindPlugin("p");
  ASSERT_NE(plugin, nullptr);
  rapidjson::Document json;
  json.Parse(plugin->config_json.c_str());
  ASSERT_FALSE(json.HasParseError()) << plugin->config_json;
  ASSERT_TRUE(json.IsObject());
  EXPECT_EQ(json["int"].GetInt64(), 42);
  EXPECT_EQ(json["negative"].GetInt64(), -7);
  EXPECT_EQ(json["big"].GetUint64(), 18446744073709551615u);
  EXPECT_DOUBLE_EQ(json["float"].GetDouble(), 1.5);
  EXPECT_DOUBLE_EQ(json["exp"].GetDouble(), 1000.0);
  EXPECT_TRUE(json["yes_bool"].IsTrue());
  EXPECT_TRUE(json["no_bool"].IsFalse());
  EXPECT_TRUE(json["nothing"].IsNull());
  EXPECT_TRUE(json["empty"].IsNull());
  EXPECT_STREQ(json["quoted_int"].GetString(), "42");
  EXPECT_STREQ(json["single_quoted_bool"].GetString(), "true");
  EXPECT_STREQ(json["str_tag"].GetString(), "12");
  EXPECT_STREQ(json["word"].GetString(), "hello");
  EXPECT_STREQ(json["hex"].GetString(), "0x1F");
  EXPECT_STREQ(json["inf"].GetString(), ".inf");
  EXPECT_EQ(json["port"].GetInt64(), 8080);
  EXPECT_STREQ(json["quoted_port"].GetString(), "8080");
  EXPECT_STREQ(json["dollars"].GetString(), "$5");
  EXPECT_STREQ(json["block"].GetString(), "line 1\nline 2\n");
  const rapidjson::Value& list = json["list"];
  ASSERT_TRUE(list.IsArray());
  ASSERT_EQ(list.Size(), 5u);
  EXPECT_EQ(list[0].GetInt64(), 1);
  EXPECT_STREQ(list[1].GetString(), "2");
  EXPECT_STREQ(list[2].GetString(), "three");
  EXPECT_EQ(list[3]["four"].GetInt64(), 4);
  EXPECT_EQ(list[4][0].GetInt64(), 5);
  EXPECT_TRUE(json["nested"]["deeper"]["flag"].IsFalse());
  // Keys keep the order they were written in.
  EXPECT_STREQ(json.MemberBegin()->name.GetString(), "int");
  EXPECT_EQ(plugin->config_marks.at("port").ToString(), "/etc/foxworker/foxworker.yaml:20:7");
}

TEST(PluginConfigJsonTest, Errors) {
  unsetenv("FOXWORKER_TEST_UNSET");
  EXPECT_EQ(ParseError("plugins:\n  p:\n    path: p.so\n    config:\n      list:\n"
                       "        - ok\n        - ${FOXWORKER_TEST_UNSET}\n"),
            "/etc/foxworker/foxworker.yaml:7:11: plugins.p.config.list[1]: environment variable "
            "FOXWORKER_TEST_UNSET is not set");
  EXPECT_EQ(ParseError("plugins:\n  p:\n    path: p.so\n    config: [1]\n"),
            "/etc/foxworker/foxworker.yaml:4:13: plugins.p.config: expected a mapping, got a "
            "sequence");
  EXPECT_EQ(ParseError("plugins:\n  p:\n    path: p.so\n    config:\n      n: !!int 5\n"),
            "/etc/foxworker/foxworker.yaml:5:10: plugins.p.config.n: unsupported tag "
            "\"tag:yaml.org,2002:int\" (write the value unquoted for a number or boolean, or "
            "quote it for a string)");
}

TEST(PluginConfigJsonTest, SelfReferringAliasIsAnError) {
  std::string error = ParseError("plugins:\n  p:\n    path: p.so\n    config: &a\n      x: *a\n");
  EXPECT_EQ(error.rfind("/etc/foxworker/foxworker.yaml:4:13: plugins.p.config.x.x.x", 0), 0u)
      << error;
  EXPECT_NE(error.find(": nested more than 64 levels deep (does an alias refer to itself?)"),
            std::string::npos)
      << error;
}

// Compares every value, not the marks (which point into different text).
void ExpectSameValues(const Config& a, const Config& b) {
  EXPECT_EQ(a.daemon.log_level, b.daemon.log_level);
  EXPECT_EQ(a.daemon.worker_threads, b.daemon.worker_threads);
  EXPECT_EQ(a.daemon.shutdown_timeout, b.daemon.shutdown_timeout);
  EXPECT_EQ(a.daemon.plugin_dir, b.daemon.plugin_dir);
  EXPECT_EQ(a.daemon.state_dir, b.daemon.state_dir);
  ASSERT_EQ(a.plugins.size(), b.plugins.size());
  for (size_t i = 0; i < a.plugins.size(); ++i) {
    EXPECT_EQ(a.plugins[i].name, b.plugins[i].name);
    EXPECT_EQ(a.plugins[i].path, b.plugins[i].path);
    EXPECT_EQ(a.plugins[i].config_json, b.plugins[i].config_json);
  }
  ASSERT_EQ(a.backends.size(), b.backends.size());
  for (size_t i = 0; i < a.backends.size(); ++i) {
    const BackendConfig& x = a.backends[i];
    const BackendConfig& y = b.backends[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.type, y.type);
    EXPECT_EQ(x.memory.capacity, y.memory.capacity);
    EXPECT_EQ(x.local.path, y.local.path);
    EXPECT_EQ(x.local.durability, y.local.durability);
    EXPECT_EQ(x.local.lease, y.local.lease);
    EXPECT_EQ(x.local.poll_interval, y.local.poll_interval);
    EXPECT_EQ(x.local.retention, y.local.retention);
    EXPECT_EQ(x.local.batch_size, y.local.batch_size);
  }
  ASSERT_EQ(a.queues.size(), b.queues.size());
  for (size_t i = 0; i < a.queues.size(); ++i) {
    const QueueConfig& x = a.queues[i];
    const QueueConfig& y = b.queues[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.backend, y.backend);
    EXPECT_EQ(x.source, y.source);
    EXPECT_EQ(x.plugin, y.plugin);
    EXPECT_EQ(x.handler, y.handler);
    EXPECT_EQ(x.concurrency, y.concurrency);
    EXPECT_EQ(x.prefetch, y.prefetch);
    EXPECT_EQ(x.timeout, y.timeout);
    EXPECT_EQ(x.retry_policy, y.retry_policy);
  }
  ASSERT_EQ(a.retry_policies.size(), b.retry_policies.size());
  for (size_t i = 0; i < a.retry_policies.size(); ++i) {
    const RetryPolicyConfig& x = a.retry_policies[i];
    const RetryPolicyConfig& y = b.retry_policies[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.max_attempts, y.max_attempts);
    EXPECT_EQ(x.backoff, y.backoff);
    EXPECT_EQ(x.initial, y.initial);
    EXPECT_EQ(x.max, y.max);
    EXPECT_EQ(x.multiplier, y.multiplier);
    EXPECT_EQ(x.jitter, y.jitter);
    EXPECT_EQ(x.full_jitter, y.full_jitter);
  }
}

TEST(FormatConfigTest, RoundTripsTheFullExample) {
  Config config = ParseOk(kFullExample);
  std::string text = FormatConfig(config);
  Result<Config> again = ParseConfigString(text, "/elsewhere/printed.yaml", "/elsewhere");
  ASSERT_TRUE(again.ok()) << again.status().ToString() << "\n" << text;
  ExpectSameValues(config, *again);
  // Printing the reparsed config gives the same text but for the file name.
  std::string reprinted = FormatConfig(*again);
  EXPECT_EQ(reprinted.substr(reprinted.find('\n')), text.substr(text.find('\n')));
}

TEST(FormatConfigTest, RoundTripsAwkwardValues) {
  Config config = ParseOk(R"(plugins:
  "odd:name":
    path: "/opt/with space/$$HOME/p.so"
    config:
      "null": "quote\"back\\slash"
      "1": [[], {}, [1, [2, {a: b}]], {x: {y: [true, null]}}]
      tab: "a\tb"
      unicode: "gr\u00fc\u00dfe"
      ratio: 0.1
      huge: 1e300
      "keys$are$not$expanded": "$$"
)");
  std::string text = FormatConfig(config);
  Result<Config> again = ParseConfigString(text, "printed.yaml", "/elsewhere");
  ASSERT_TRUE(again.ok()) << again.status().ToString() << "\n" << text;
  ExpectSameValues(config, *again);
  EXPECT_EQ(again->plugins[0].path, "/opt/with space/$HOME/p.so");
  rapidjson::Document json;
  json.Parse(again->plugins[0].config_json.c_str());
  ASSERT_TRUE(json.HasMember("keys$are$not$expanded")) << again->plugins[0].config_json;
  EXPECT_STREQ(json["keys$are$not$expanded"].GetString(), "$");
}

TEST(FormatConfigTest, ShowsEmptySectionsAndDefaults) {
  Config config = ParseOk("daemon:\n  worker_threads: 2\n");
  EXPECT_EQ(FormatConfig(config),
            "# Effective configuration of /etc/foxworker/foxworker.yaml, every default written "
            "out.\n"
            "daemon:\n"
            "  log_level: info\n"
            "  worker_threads: 2\n"
            "  shutdown_timeout: 30s\n"
            "  plugin_dir: \"\"\n"
            "  state_dir: \"/var/lib/foxworker\"\n"
            "plugins: {}\n"
            "backends: {}\n"
            "queues: {}\n"
            "retry_policies:\n"
            "  default:\n"
            "    max_attempts: 5\n"
            "    backoff: exponential\n"
            "    initial: 1s\n"
            "    max: 5m\n"
            "    multiplier: 2\n"
            "    jitter: 0.1\n"
            "    full_jitter: false\n");
}

// LoadConfig tests work on real files in a fresh directory.
class LoadConfigTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::path(testing::TempDir()) / "foxworker_config_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = fs::path(pattern).lexically_normal();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& relative, const std::string& text) {
    fs::path path = dir_ / relative;
    fs::create_directories(path.parent_path());
    std::ofstream(path) << text;
    return path.string();
  }

  fs::path dir_;
};

TEST_F(LoadConfigTest, ReadsTheFileAndResolvesNextToIt) {
  std::string main = Write("foxworker.yaml", "plugins:\n  p:\n    path: p.so\n");
  Result<Config> config = LoadConfig(main);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->file, main);
  EXPECT_EQ(config->plugins[0].path, (dir_ / "p.so").string());
  EXPECT_EQ(config->plugins[0].mark.ToString(), main + ":2:3");
}

TEST_F(LoadConfigTest, MissingFile) {
  Result<Config> config = LoadConfig((dir_ / "nope.yaml").string());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(),
            "cannot read " + (dir_ / "nope.yaml").string() + ": No such file or directory");
}

TEST_F(LoadConfigTest, IncludeDirMergesFilesInNameOrder) {
  std::string main = Write("foxworker.yaml", R"(daemon:
  include_dir: conf.d
plugins:
  exec:
    path: exec.so
queues:
  first:
    backend: mem
    plugin: exec
)");
  Write("conf.d/20-queues.yaml",
        "queues:\n  second:\n    backend: mem\n    plugin: local\n"
        "    retry_policy: gentle\n");
  Write("conf.d/10-backends.yaml",
        "backends:\n  mem:\n    type: memory\n"
        "retry_policies:\n  gentle:\n    max_attempts: 2\n");
  Write("conf.d/30-plugins.yaml", "plugins:\n  local:\n    path: local.so\n");
  Write("conf.d/ignored.yml", "this is: [not parsed\n");
  Write("conf.d/.hidden.yaml", "this is: [not parsed\n");
  Result<Config> config = LoadConfig(main);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->daemon.include_dir, (dir_ / "conf.d").string());
  ASSERT_EQ(config->queues.size(), 2u);
  EXPECT_EQ(config->queues[0].name, "first");
  EXPECT_EQ(config->queues[1].name, "second");
  EXPECT_EQ(config->queues[1].mark.ToString(), (dir_ / "conf.d/20-queues.yaml").string() + ":2:3");
  ASSERT_NE(config->FindBackend("mem"), nullptr);
  EXPECT_EQ(config->FindRetryPolicy("gentle")->max_attempts, 2);
  // Without plugin_dir, a plugin path resolves next to the file that names it.
  EXPECT_EQ(config->FindPlugin("local")->path, (dir_ / "conf.d/local.so").string());
  EXPECT_EQ(config->FindPlugin("exec")->path, (dir_ / "exec.so").string());

  // What --check-config prints parses back to the same values.
  std::string printed = Write("printed.yaml", FormatConfig(*config));
  Result<Config> again = LoadConfig(printed);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  ExpectSameValues(*config, *again);
}

TEST_F(LoadConfigTest, NameDefinedInTwoFiles) {
  std::string main = Write("foxworker.yaml",
                           "daemon:\n  include_dir: conf.d\nbackends:\n  mem:\n    type: memory\n");
  Write("conf.d/a.yaml", "# another memory backend\nbackends:\n  mem:\n    type: memory\n");
  Result<Config> config = LoadConfig(main);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(), (dir_ / "conf.d/a.yaml").string() +
                                           ":3:3: backends.mem: backend \"mem\" is already "
                                           "defined at " +
                                           main + ":4:3");
}

TEST_F(LoadConfigTest, IncludedFileErrorsNameThatFile) {
  std::string main = Write("foxworker.yaml", "daemon:\n  include_dir: conf.d\n");
  Write("conf.d/a.yaml", "queues:\n  q:\n    backend: mem\n    plugin: p\n    timeout: soon\n");
  Result<Config> config = LoadConfig(main);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(),
            (dir_ / "conf.d/a.yaml").string() +
                ":5:14: queues.q.timeout: invalid duration "
                "\"soon\": expected a number followed by ms, s, m, h or d");

  Write("conf.d/a.yaml", "daemon:\n  worker_threads: 2\n");
  config = LoadConfig(main);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(), (dir_ / "conf.d/a.yaml").string() +
                                           ":1:1: daemon: the daemon section is only "
                                           "allowed in the main config file " +
                                           main);
}

TEST_F(LoadConfigTest, MissingIncludeDir) {
  std::string main = Write("foxworker.yaml", "daemon:\n  include_dir: /nonexistent/conf.d\n");
  Result<Config> config = LoadConfig(main);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(),
            main +
                ":2:16: daemon.include_dir: cannot read directory /nonexistent/conf.d: No "
                "such file or directory");
}

TEST_F(LoadConfigTest, IncludeDirMayHoldTheMainFile) {
  std::string main = Write("foxworker.yaml", "daemon:\n  include_dir: .\n");
  Write("more.yaml", "backends:\n  mem:\n    type: memory\n");
  Result<Config> config = LoadConfig(main);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_NE(config->FindBackend("mem"), nullptr);
}

}  // namespace
}  // namespace foxworker
