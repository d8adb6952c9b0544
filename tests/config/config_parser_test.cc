#include "daemon/config/config_parser.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "daemon/backends/local/local_config.h"
#include "daemon/backends/memory/memory_config.h"
#include "daemon/middleware/circuit_breaker/circuit_breaker_config.h"
#include "daemon/middleware/dedup/dedup_config.h"
#include "daemon/middleware/logging/logging_config.h"
#include "daemon/middleware/rate_limit/rate_limit_config.h"

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
  EXPECT_EQ(mem->options.As<MemoryBackendOptions>()->capacity, 1000u);
  const BackendConfig* disk = config.FindBackend("disk");
  ASSERT_NE(disk, nullptr);
  EXPECT_EQ(disk->type, "local");
  EXPECT_EQ(disk->options.As<LocalBackendOptions>()->path, "/srv/foxworker/foxworker.db");
  EXPECT_EQ(disk->options.As<LocalBackendOptions>()->durability, Durability::kNormal);
  EXPECT_EQ(disk->options.As<LocalBackendOptions>()->lease, milliseconds(60000));
  EXPECT_EQ(disk->options.As<LocalBackendOptions>()->poll_interval, milliseconds(50));
  EXPECT_EQ(disk->options.As<LocalBackendOptions>()->retention, milliseconds(86400000));
  EXPECT_EQ(disk->options.As<LocalBackendOptions>()->batch_size, 64);
  const BackendConfig* archive = config.FindBackend("archive");
  ASSERT_NE(archive, nullptr);
  EXPECT_EQ(archive->options.As<LocalBackendOptions>()->path, "/mnt/archive.db");
  EXPECT_EQ(archive->options.As<LocalBackendOptions>()->durability, Durability::kFull);
  EXPECT_EQ(archive->options.As<LocalBackendOptions>()->lease, milliseconds(30000));
  EXPECT_EQ(archive->options.As<LocalBackendOptions>()->poll_interval, milliseconds(200));
  EXPECT_EQ(archive->options.As<LocalBackendOptions>()->retention, milliseconds(0));
  EXPECT_EQ(archive->options.As<LocalBackendOptions>()->batch_size, 256);

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
            "log_level, worker_threads, shutdown_timeout, long_job_warning, liveness_timeout, "
            "plugin_dir, include_dir, state_dir, admin)");
  EXPECT_EQ(ParseError("middleware:\n  - auth\n"),
            "/etc/foxworker/foxworker.yaml:1:1: middleware: unknown key (expected one of: "
            "daemon, plugins, backends, queues, retry_policies, rate_limits)");
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

TEST(ParseConfigTest, WatchdogKeys) {
  Config defaults = ParseOk("daemon:\n  worker_threads: 2\n");
  EXPECT_EQ(defaults.daemon.long_job_warning, milliseconds(300000));
  EXPECT_EQ(defaults.daemon.liveness_timeout, milliseconds(0));
  Config set = ParseOk("daemon:\n  long_job_warning: 90s\n  liveness_timeout: 5s\n");
  EXPECT_EQ(set.daemon.long_job_warning, milliseconds(90000));
  EXPECT_EQ(set.daemon.liveness_timeout, milliseconds(5000));
  EXPECT_EQ(ParseOk("daemon:\n  long_job_warning: 0s\n").daemon.long_job_warning,
            milliseconds(0));
  EXPECT_EQ(ParseError("daemon:\n  liveness_timeout: 500ms\n"),
            "/etc/foxworker/foxworker.yaml:2:21: daemon.liveness_timeout: must be 0 (derived) "
            "or at least 2s");
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
  EXPECT_EQ(ParseError("backends:\n  b:\n    type: redis\n    url: http://x\n"),
            "/etc/foxworker/foxworker.yaml:4:10: backends.b.url: invalid Redis URL: unknown "
            "scheme \"http\" (expected redis://[[user]:password@]host[:port][/db] or "
            "unix:///path/to/socket[?db=N])");
  EXPECT_EQ(ParseError("backends:\n  b:\n    type: redis\n    start: latest\n"),
            "/etc/foxworker/foxworker.yaml:4:12: backends.b.start: must be \"0\" (the whole "
            "stream) or \"$\" (only new entries)");
  EXPECT_EQ(ParseError("backends:\n  b:\n    type: kafka\n"),
            "/etc/foxworker/foxworker.yaml:3:11: backends.b.type: unknown backend type "
            "\"kafka\" (known types: local, memory, rabbitmq, redis)");
  EXPECT_EQ(ParseError("backends:\n  b:\n    capacity: 3\n"),
            "/etc/foxworker/foxworker.yaml:2:3: backends.b: missing required key \"type\" "
            "(known types: local, memory, rabbitmq, redis)");
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
  EXPECT_EQ(config.FindBackend("a")->options.As<LocalBackendOptions>()->path, "/etc/foxworker/state/jobs/a.db");
  EXPECT_EQ(config.FindBackend("b")->options.As<LocalBackendOptions>()->path, "/etc/foxworker/state/foxworker.db");

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

void ExpectSameRateLimit(const RateLimitConfig& a, const RateLimitConfig& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.rate, b.rate);  // exactly: the printed rate reads back as the same double
  EXPECT_EQ(a.burst, b.burst);
}

void ExpectSameMiddleware(const MiddlewareConfig& a, const MiddlewareConfig& b) {
  EXPECT_EQ(a.type, b.type);
  // Every value of the type's settings (rates exactly: the printed rate reads
  // back as the same double).
  EXPECT_TRUE(a.options == b.options) << a.type;
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
    // Every value of the type's options.
    EXPECT_TRUE(x.options == y.options) << x.name;
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
    EXPECT_EQ(x.batch_size, y.batch_size);
    EXPECT_EQ(x.flush_interval, y.flush_interval);
    EXPECT_EQ(x.timeout, y.timeout);
    EXPECT_EQ(x.retry_policy, y.retry_policy);
    EXPECT_EQ(x.handler_timeouts, y.handler_timeouts);
    ASSERT_EQ(x.middleware.size(), y.middleware.size());
    for (size_t m = 0; m < x.middleware.size(); ++m) {
      ExpectSameMiddleware(x.middleware[m], y.middleware[m]);
    }
  }
  ASSERT_EQ(a.rate_limits.size(), b.rate_limits.size());
  for (size_t i = 0; i < a.rate_limits.size(); ++i) {
    ExpectSameRateLimit(a.rate_limits[i], b.rate_limits[i]);
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

// Found by fuzz/config_fuzzer: a plugin config key with NUL bytes, DEL,
// C1 controls and bytes that are not UTF-8; --check-config printed text
// that did not load again.
TEST(FormatConfigTest, RoundTripsTheFuzzersUnreloadableKey) {
  std::ifstream in(std::string(FOXWORKER_SOURCE_DIR) +
                       "/fuzz/corpus/config/found-check-config-not-reloadable",
                   std::ios::binary);
  ASSERT_TRUE(in.good());
  std::string yaml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Result<Config> config = ParseConfigString(yaml, "fuzzed.yaml", "/elsewhere");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  std::string text = FormatConfig(*config);
  Result<Config> again = ParseConfigString(text, "printed.yaml", "/elsewhere");
  ASSERT_TRUE(again.ok()) << again.status().ToString() << "\n" << text;
  ExpectSameValues(*config, *again);
  std::string reprinted = FormatConfig(*again);
  EXPECT_EQ(reprinted.substr(reprinted.find('\n')), text.substr(text.find('\n')));
}

// Found by fuzz/config_fuzzer: a plugin config number that needs all 17
// digits (or is beyond int64, so a double) printed by --check-config as a
// different number, because the config JSON was parsed back without
// rapidjson's full precision.
TEST(FormatConfigTest, PluginConfigNumbersKeepEveryDigit) {
  Config config = ParseOk(R"(plugins:
  p:
    path: /p.so
    config:
      big: -18446744073105751615
      huge: 18446744073709551616
      precise: 0.10000000000000000555
      third: 0.3333333333333333
      tiny: 5e-324
)");
  const std::string text = FormatConfig(config);
  Result<Config> again = ParseConfigString(text, "printed.yaml", "/elsewhere");
  ASSERT_TRUE(again.ok()) << again.status().ToString() << "\n" << text;
  EXPECT_EQ(again->plugins[0].config_json, config.plugins[0].config_json);
  const std::string reprinted = FormatConfig(*again);
  EXPECT_EQ(reprinted.substr(reprinted.find('\n')), text.substr(text.find('\n')));
  // And the fuzzer's own input.
  std::ifstream in(std::string(FOXWORKER_SOURCE_DIR) + "/fuzz/corpus/config/found-json-number-precision",
                   std::ios::binary);
  ASSERT_TRUE(in.good());
  std::string yaml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Result<Config> fuzzed = ParseConfigString(yaml, "fuzzed.yaml", "/elsewhere");
  ASSERT_TRUE(fuzzed.ok()) << fuzzed.status().ToString();
  const std::string once = FormatConfig(*fuzzed);
  Result<Config> twice = ParseConfigString(once, "printed.yaml", "/elsewhere");
  ASSERT_TRUE(twice.ok()) << twice.status().ToString();
  const std::string printed_twice = FormatConfig(*twice);
  EXPECT_EQ(printed_twice.substr(printed_twice.find('\n')), once.substr(once.find('\n')));
}

TEST(FormatConfigTest, KeysOverYamlsImplicitKeyLimitAreWrittenExplicitly) {
  const std::string a(1500, 'a'), b(1200, 'b');
  Config config = ParseOk("plugins:\n  p:\n    path: /p.so\n    config:\n      ? " + a +
                          "\n      : {x: 1}\n      short: [{? " + b + "\n          : [1, 2]}]\n");
  std::string text = FormatConfig(config);
  EXPECT_NE(text.find("? " + a + "\n      :\n        x: 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("      short:\n        - ? " + b + "\n          :\n            - 1\n"),
            std::string::npos)
      << text;
  Result<Config> again = ParseConfigString(text, "printed.yaml", "/elsewhere");
  ASSERT_TRUE(again.ok()) << again.status().ToString() << "\n" << text;
  ExpectSameValues(config, *again);
  const std::string reprinted = FormatConfig(*again);
  EXPECT_EQ(reprinted.substr(reprinted.find('\n')), text.substr(text.find('\n')));
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
            "  long_job_warning: 5m\n"
            "  liveness_timeout: 0\n"
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
            "    full_jitter: false\n"
            "rate_limits: {}\n");
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

// ---- middleware, handler_timeouts and rate_limits ----

constexpr char kMiddlewareExample[] = R"(plugins:
  exec:
    path: exec.so
backends:
  mem:
    type: memory
rate_limits:
  payments-api: {rate: 100/s, burst: 20}
  slow: {rate: 10/m}
queues:
  emails:
    backend: mem
    plugin: exec
    timeout: 30s
    handler_timeouts: {email.send: 2m, "email:digest": 1.5s}
    middleware:
      - logging: {level: debug}
      - circuit_breaker: {failure_threshold: 3, window: 1m, reset_timeout: 10s, half_open_trials: 2}
      - rate_limit: {rate: 50/s, burst: 5}
      - rate_limit: {shared: payments-api}
      - dedup: {key: "header:x-idempotency-key", ttl: 1h, max_keys: 500}
  reports:
    backend: mem
    plugin: exec
    middleware:
      - logging
      - circuit_breaker: {failure_ratio: 0.5, min_calls: 20, window: 1m, reset_timeout: 30s}
      - rate_limit:
          rate: 7/h
      - dedup: {key: "json:/order/id"}
      - rate_limit: {shared: "${FOXWORKER_TEST_UNSET:-slow}"}
)";

TEST(MiddlewareConfigTest, ParsesEveryMiddleware) {
  unsetenv("FOXWORKER_TEST_UNSET");
  Config config = ParseOk(kMiddlewareExample);
  ASSERT_EQ(config.rate_limits.size(), 2u);
  const RateLimitConfig* payments = config.FindRateLimit("payments-api");
  ASSERT_NE(payments, nullptr);
  EXPECT_DOUBLE_EQ(payments->rate, 100.0);
  EXPECT_EQ(payments->burst, 20);
  EXPECT_EQ(payments->mark.ToString(), "/etc/foxworker/foxworker.yaml:8:3");
  ASSERT_NE(config.FindRateLimit("slow"), nullptr);
  EXPECT_DOUBLE_EQ(config.FindRateLimit("slow")->rate, 10.0 / 60);
  EXPECT_EQ(config.FindRateLimit("slow")->burst, 0);
  EXPECT_EQ(config.FindRateLimit("fast"), nullptr);

  const QueueConfig* emails = config.FindQueue("emails");
  ASSERT_NE(emails, nullptr);
  EXPECT_EQ(emails->timeout, milliseconds(30000));
  EXPECT_EQ(emails->handler_timeouts,
            (std::map<std::string, Duration>{{"email.send", milliseconds(120000)},
                                             {"email:digest", milliseconds(1500)}}));
  const std::vector<MiddlewareConfig>& m = emails->middleware;
  ASSERT_EQ(m.size(), 5u);
  EXPECT_EQ(m[0].type, "logging");
  EXPECT_EQ(m[0].options.As<LoggingConfig>()->level, LogLevel::kDebug);
  EXPECT_EQ(m[0].mark.ToString(), "/etc/foxworker/foxworker.yaml:17:9");
  EXPECT_EQ(m[1].type, "circuit_breaker");
  EXPECT_EQ(m[1].options.As<CircuitBreakerConfig>()->failure_threshold, 3);
  EXPECT_EQ(m[1].options.As<CircuitBreakerConfig>()->failure_ratio, 0.0);
  EXPECT_EQ(m[1].options.As<CircuitBreakerConfig>()->window, milliseconds(60000));
  EXPECT_EQ(m[1].options.As<CircuitBreakerConfig>()->reset_timeout, milliseconds(10000));
  EXPECT_EQ(m[1].options.As<CircuitBreakerConfig>()->half_open_trials, 2);
  EXPECT_EQ(m[2].type, "rate_limit");
  EXPECT_DOUBLE_EQ(m[2].options.As<RateLimitOptions>()->rate, 50.0);
  EXPECT_EQ(m[2].options.As<RateLimitOptions>()->burst, 5);
  EXPECT_EQ(m[2].options.As<RateLimitOptions>()->shared, "");
  EXPECT_EQ(m[2].mark.ToString(), "/etc/foxworker/foxworker.yaml:19:9");
  EXPECT_EQ(m[3].type, "rate_limit");
  EXPECT_EQ(m[3].options.As<RateLimitOptions>()->shared, "payments-api");
  EXPECT_EQ(m[3].options.As<RateLimitOptions>()->rate, 0.0);
  EXPECT_EQ(m[3].mark.ToString(), "/etc/foxworker/foxworker.yaml:20:9");
  EXPECT_EQ(m[4].type, "dedup");
  EXPECT_EQ(m[4].options.As<DedupConfig>()->key, "header:x-idempotency-key");
  EXPECT_EQ(m[4].options.As<DedupConfig>()->ttl, milliseconds(3600000));
  EXPECT_EQ(m[4].options.As<DedupConfig>()->max_keys, 500u);

  const QueueConfig* reports = config.FindQueue("reports");
  ASSERT_NE(reports, nullptr);
  EXPECT_EQ(reports->timeout, milliseconds(0));
  EXPECT_TRUE(reports->handler_timeouts.empty());
  const std::vector<MiddlewareConfig>& r = reports->middleware;
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r[0].type, "logging");  // a bare type takes every default
  EXPECT_EQ(r[0].options.As<LoggingConfig>()->level, LogLevel::kInfo);
  EXPECT_EQ(r[0].mark.ToString(), "/etc/foxworker/foxworker.yaml:26:9");
  EXPECT_DOUBLE_EQ(r[1].options.As<CircuitBreakerConfig>()->failure_ratio, 0.5);
  EXPECT_EQ(r[1].options.As<CircuitBreakerConfig>()->min_calls, 20);
  EXPECT_EQ(r[1].options.As<CircuitBreakerConfig>()->half_open_trials, 1);
  EXPECT_DOUBLE_EQ(r[2].options.As<RateLimitOptions>()->rate, 7.0 / 3600);
  EXPECT_EQ(r[2].options.As<RateLimitOptions>()->burst, 0);
  EXPECT_EQ(r[3].options.As<DedupConfig>()->key, "json:/order/id");
  EXPECT_EQ(r[3].options.As<DedupConfig>()->ttl, milliseconds(86400000));
  EXPECT_EQ(r[3].options.As<DedupConfig>()->max_keys, 100000u);
  EXPECT_EQ(r[4].options.As<RateLimitOptions>()->shared, "slow");
}

TEST(MiddlewareConfigTest, DefaultsWhenAbsent) {
  Config config =
      ParseOk(std::string(kBase) + "queues:\n  q:\n    backend: mem\n    plugin: exec\n");
  EXPECT_TRUE(config.rate_limits.empty());
  EXPECT_TRUE(config.queues[0].middleware.empty());
  EXPECT_TRUE(config.queues[0].handler_timeouts.empty());
  config = ParseOk(std::string(kBase) +
                   "queues:\n  q:\n    backend: mem\n    plugin: exec\n    middleware:\n"
                   "    handler_timeouts:\nrate_limits:\n");
  EXPECT_TRUE(config.queues[0].middleware.empty());
  EXPECT_TRUE(config.queues[0].handler_timeouts.empty());
}

// kBase (7 lines) plus queue "emails" whose middleware items start on line 13,
// their type at column 9.
std::string WithMiddleware(const std::string& items) {
  return std::string(kBase) +
         "queues:\n  emails:\n    backend: mem\n    plugin: exec\n    middleware:\n" + items;
}

TEST(MiddlewareConfigTest, UnknownTypeListsTheKnownOnes) {
  EXPECT_EQ(ParseError(WithMiddleware("      - circuit_braker: {window: 1m}\n")),
            "/etc/foxworker/foxworker.yaml:13:9: queues.emails.middleware[0]: unknown middleware "
            "type \"circuit_braker\" (did you mean \"circuit_breaker\"?); known types: "
            "circuit_breaker, rate_limit, dedup, logging");
  EXPECT_EQ(ParseError(WithMiddleware("      - logging\n      - auth\n")),
            "/etc/foxworker/foxworker.yaml:14:9: queues.emails.middleware[1]: unknown middleware "
            "type \"auth\"; known types: circuit_breaker, rate_limit, dedup, logging");
}

TEST(MiddlewareConfigTest, UnknownKeySuggestsTheClosest) {
  EXPECT_EQ(ParseError(WithMiddleware("      - logging: {level: info}\n"
                                      "      - rate_limit: {rate: 5/s, brust: 2}\n")),
            "/etc/foxworker/foxworker.yaml:14:33: queues.emails.middleware[1].rate_limit.brust: "
            "unknown key (did you mean \"burst\"?)");
  EXPECT_EQ(ParseError(WithMiddleware("      - circuit_breaker:\n          treshold: 3\n")),
            "/etc/foxworker/foxworker.yaml:14:11: queues.emails.middleware[0].circuit_breaker."
            "treshold: unknown key (expected one of: failure_threshold, failure_ratio, min_calls, "
            "window, reset_timeout, half_open_trials)");
  EXPECT_EQ(ParseError(WithMiddleware("      - dedup: {key: \"header:k\", tll: 1h}\n")),
            "/etc/foxworker/foxworker.yaml:13:34: queues.emails.middleware[0].dedup.tll: "
            "unknown key (did you mean \"ttl\"?)");
  EXPECT_EQ(ParseError("rate_limits:\n  api: {rate: 1/s, burts: 3}\n"),
            "/etc/foxworker/foxworker.yaml:2:20: rate_limits.api.burts: unknown key (did you "
            "mean \"burst\"?)");
}

TEST(MiddlewareConfigTest, BadRate) {
  EXPECT_EQ(ParseError(WithMiddleware("      - rate_limit: {rate: 5/sec}\n")),
            "/etc/foxworker/foxworker.yaml:13:28: queues.emails.middleware[0].rate_limit.rate: "
            "invalid rate \"5/sec\": expected a number followed by /s, /m or /h");
  EXPECT_EQ(ParseError(WithMiddleware("      - rate_limit: {rate: 0/s}\n")),
            "/etc/foxworker/foxworker.yaml:13:28: queues.emails.middleware[0].rate_limit.rate: "
            "invalid rate \"0/s\": must be greater than zero");
  EXPECT_EQ(ParseError(WithMiddleware("      - rate_limit: {rate: 5/s, burst: -1}\n")),
            "/etc/foxworker/foxworker.yaml:13:40: queues.emails.middleware[0].rate_limit.burst: "
            "must be between 0 and 1000000000, got -1");
  EXPECT_EQ(ParseError("rate_limits:\n  api:\n    rate: 100\n"),
            "/etc/foxworker/foxworker.yaml:3:11: rate_limits.api.rate: invalid rate \"100\": a "
            "unit is required; expected a number followed by /s, /m or /h");
  EXPECT_EQ(ParseError("rate_limits:\n  api:\n    burst: 10\n"),
            "/etc/foxworker/foxworker.yaml:2:3: rate_limits.api: missing required key \"rate\"");
}

TEST(MiddlewareConfigTest, RateLimitNeedsRateOrShared) {
  EXPECT_EQ(ParseError(WithMiddleware("      - rate_limit: {shared: api, rate: 5/s}\n")),
            "/etc/foxworker/foxworker.yaml:13:22: queues.emails.middleware[0].rate_limit.shared: "
            "cannot be combined with rate or burst (the shared bucket under rate_limits has its "
            "own)");
  EXPECT_EQ(ParseError(WithMiddleware("      - rate_limit: {burst: 5}\n")),
            "/etc/foxworker/foxworker.yaml:13:9: queues.emails.middleware[0].rate_limit: missing "
            "required key \"rate\" (or \"shared\", naming an entry of rate_limits)");
  EXPECT_EQ(ParseError(WithMiddleware("      - rate_limit\n")),
            "/etc/foxworker/foxworker.yaml:13:9: queues.emails.middleware[0].rate_limit: missing "
            "required key \"rate\" (or \"shared\", naming an entry of rate_limits)");
}

TEST(MiddlewareConfigTest, MissingSharedBucket) {
  // The item is line 13; the rate_limits section follows the queue.
  EXPECT_EQ(ParseError(WithMiddleware("      - rate_limit: {shared: paymnts-api}\n") +
                       "rate_limits:\n  payments-api: {rate: 10/s}\n  search: {rate: 1/s}\n"),
            "/etc/foxworker/foxworker.yaml:13:9: queues.emails.middleware[0].rate_limit.shared: "
            "rate limit \"paymnts-api\" is not defined under rate_limits (did you mean "
            "\"payments-api\"?)");
  EXPECT_EQ(ParseError(WithMiddleware("      - logging\n      - rate_limit: {shared: mail}\n") +
                       "rate_limits:\n  search: {rate: 1/s}\n"),
            "/etc/foxworker/foxworker.yaml:14:9: queues.emails.middleware[1].rate_limit.shared: "
            "rate limit \"mail\" is not defined under rate_limits (defined rate limits: search)");
  EXPECT_EQ(ParseError(WithMiddleware("      - rate_limit: {shared: mail}\n")),
            "/etc/foxworker/foxworker.yaml:13:9: queues.emails.middleware[0].rate_limit.shared: "
            "rate limit \"mail\" is not defined under rate_limits (rate_limits defines none)");
}

TEST(MiddlewareConfigTest, AtMostOneBreakerDedupAndLogging) {
  EXPECT_EQ(ParseError(WithMiddleware("      - circuit_breaker: {failure_threshold: 3}\n"
                                      "      - rate_limit: {rate: 1/s}\n"
                                      "      - circuit_breaker\n")),
            "/etc/foxworker/foxworker.yaml:15:9: queues.emails.middleware[2]: a queue has at most "
            "one circuit_breaker (the first is at /etc/foxworker/foxworker.yaml:13:9)");
  EXPECT_EQ(ParseError(WithMiddleware("      - dedup: {key: \"header:a\"}\n"
                                      "      - dedup: {key: \"header:b\"}\n")),
            "/etc/foxworker/foxworker.yaml:14:9: queues.emails.middleware[1]: a queue has at most "
            "one dedup (the first is at /etc/foxworker/foxworker.yaml:13:9)");
  EXPECT_EQ(ParseError(WithMiddleware("      - logging\n      - logging: {level: trace}\n")),
            "/etc/foxworker/foxworker.yaml:14:9: queues.emails.middleware[1]: a queue has at most "
            "one logging (the first is at /etc/foxworker/foxworker.yaml:13:9)");
  // Several rate limits are fine: they all have to grant a token.
  Config config =
      ParseOk(WithMiddleware("      - rate_limit: {rate: 1/s}\n"
                             "      - rate_limit: {rate: 100/m}\n"));
  EXPECT_EQ(config.queues[0].middleware.size(), 2u);
}

TEST(MiddlewareConfigTest, BadDedupKey) {
  EXPECT_EQ(ParseError(WithMiddleware("      - dedup: {key: \"cookie:x\"}\n")),
            "/etc/foxworker/foxworker.yaml:13:22: queues.emails.middleware[0].dedup.key: invalid "
            "dedup key \"cookie:x\": expected header:NAME, property:NAME or json:/POINTER");
  EXPECT_EQ(ParseError(WithMiddleware("      - dedup: {key: \"property:mesage_id\"}\n")),
            "/etc/foxworker/foxworker.yaml:13:22: queues.emails.middleware[0].dedup.key: invalid "
            "dedup key \"property:mesage_id\": unknown property \"mesage_id\" (did you mean "
            "\"message_id\"?)");
  EXPECT_EQ(ParseError(WithMiddleware("      - dedup: {key: \"property:body\"}\n")),
            "/etc/foxworker/foxworker.yaml:13:22: queues.emails.middleware[0].dedup.key: invalid "
            "dedup key \"property:body\": unknown property \"body\" (expected one of: message_id, "
            "correlation_id, type, content_type, app_id, user_id, reply_to)");
  EXPECT_EQ(ParseError(WithMiddleware("      - dedup: {key: \"json:order/id\"}\n")),
            "/etc/foxworker/foxworker.yaml:13:22: queues.emails.middleware[0].dedup.key: invalid "
            "dedup key \"json:order/id\": a JSON pointer starts with \"/\" (json:/order/id)");
  EXPECT_EQ(ParseError(WithMiddleware("      - dedup: {key: \"json:/a~2b\"}\n")),
            "/etc/foxworker/foxworker.yaml:13:22: queues.emails.middleware[0].dedup.key: invalid "
            "dedup key \"json:/a~2b\": in a JSON pointer \"~\" is followed by 0 or 1 (~0 is "
            "\"~\", ~1 is \"/\")");
  EXPECT_EQ(ParseError(WithMiddleware("      - dedup: {key: \"header:\"}\n")),
            "/etc/foxworker/foxworker.yaml:13:22: queues.emails.middleware[0].dedup.key: invalid "
            "dedup key \"header:\": the header name is missing");
  EXPECT_EQ(ParseError(WithMiddleware("      - dedup: {ttl: 1h}\n")),
            "/etc/foxworker/foxworker.yaml:13:9: queues.emails.middleware[0].dedup: missing "
            "required key \"key\" (header:NAME, property:NAME or json:/POINTER)");
  Config config = ParseOk(WithMiddleware("      - dedup: {key: \"json:/a~0b/~1c/0\"}\n"));
  EXPECT_EQ(config.queues[0].middleware[0].options.As<DedupConfig>()->key, "json:/a~0b/~1c/0");
}

TEST(MiddlewareConfigTest, ValueRanges) {
  // The settings are on line 14, after "      - TYPE:\n".
  auto error = [](const std::string& type, const std::string& setting) {
    return ParseError(WithMiddleware("      - " + type + ":\n          " + setting + "\n"));
  };
  const std::string at = "/etc/foxworker/foxworker.yaml:14:";
  EXPECT_EQ(error("circuit_breaker", "failure_threshold: 0"),
            at + "30: queues.emails.middleware[0].circuit_breaker.failure_threshold: must be "
                 "between 1 and 1000000000, got 0");
  EXPECT_EQ(error("circuit_breaker", "failure_ratio: 1.5"),
            at + "26: queues.emails.middleware[0].circuit_breaker.failure_ratio: must be "
                 "between 0 and 1, got 1.5");
  EXPECT_EQ(error("circuit_breaker", "failure_ratio: -0.1"),
            at + "26: queues.emails.middleware[0].circuit_breaker.failure_ratio: must be "
                 "between 0 and 1, got -0.1");
  EXPECT_EQ(error("circuit_breaker", "half_open_trials: 0"),
            at + "29: queues.emails.middleware[0].circuit_breaker.half_open_trials: must be "
                 "between 1 and 1000000000, got 0");
  EXPECT_EQ(error("circuit_breaker", "window: 0"),
            at + "19: queues.emails.middleware[0].circuit_breaker.window: must be greater than "
                 "zero");
  EXPECT_EQ(error("circuit_breaker", "reset_timeout: 0"),
            at + "26: queues.emails.middleware[0].circuit_breaker.reset_timeout: must be "
                 "greater than zero");
  EXPECT_EQ(error("circuit_breaker", "{failure_ratio: 0.5, min_calls: 0}"),
            at + "43: queues.emails.middleware[0].circuit_breaker.min_calls: must be between 1 "
                 "and 1000000000, got 0");
  EXPECT_EQ(error("dedup", "{key: \"header:k\", ttl: 0}"),
            at + "34: queues.emails.middleware[0].dedup.ttl: must be greater than zero");
  EXPECT_EQ(error("dedup", "{key: \"header:k\", max_keys: 0}"),
            at + "39: queues.emails.middleware[0].dedup.max_keys: must be between 1 and "
                 "1000000000, got 0");
  EXPECT_EQ(error("logging", "level: verbose"),
            at + "18: queues.emails.middleware[0].logging.level: invalid log level \"verbose\": "
                 "expected trace, debug, info, warning or error");
  // Keys of the other breaker mode would be ignored, so they are errors.
  EXPECT_EQ(error("circuit_breaker", "{failure_ratio: 0.5, failure_threshold: 3}"),
            at + "32: queues.emails.middleware[0].circuit_breaker.failure_threshold: not used "
                 "with failure_ratio (a breaker counts failures or judges their ratio, not both)");
  EXPECT_EQ(error("circuit_breaker", "min_calls: 10"),
            at + "11: queues.emails.middleware[0].circuit_breaker.min_calls: only used with a "
                 "failure_ratio greater than 0");
}

TEST(MiddlewareConfigTest, ShapeErrors) {
  EXPECT_EQ(
      ParseError(std::string(kBase) + "queues:\n  emails:\n    backend: mem\n    plugin: exec\n"
                                      "    middleware: {logging: {}}\n"),
      "/etc/foxworker/foxworker.yaml:12:17: queues.emails.middleware: expected a sequence "
      "(- TYPE: {settings}), got a mapping");
  // Settings not indented under the type make a two-key item.
  EXPECT_EQ(ParseError(WithMiddleware("      - rate_limit:\n        rate: 5/s\n")),
            "/etc/foxworker/foxworker.yaml:13:9: queues.emails.middleware[0]: a middleware item "
            "has exactly one key, its type; found 2 (rate_limit, rate) (are the settings "
            "indented under the type?)");
  EXPECT_EQ(ParseError(WithMiddleware("      - [logging]\n")),
            "/etc/foxworker/foxworker.yaml:13:9: queues.emails.middleware[0]: expected TYPE: "
            "{settings} or a bare TYPE (known types: circuit_breaker, rate_limit, dedup, logging)");
  EXPECT_EQ(ParseError(WithMiddleware("      - logging: info\n")),
            "/etc/foxworker/foxworker.yaml:13:18: queues.emails.middleware[0].logging: expected a "
            "mapping, got a scalar");
}

TEST(MiddlewareConfigTest, HandlerTimeouts) {
  std::string head =
      std::string(kBase) + "queues:\n  emails:\n    backend: mem\n    plugin: exec\n";
  EXPECT_EQ(ParseError(head + "    handler_timeouts:\n      email.send: 0\n"),
            "/etc/foxworker/foxworker.yaml:13:19: queues.emails.handler_timeouts.email.send: must "
            "be greater than zero");
  EXPECT_EQ(ParseError(head + "    handler_timeouts:\n      email.send: 2 min\n"),
            "/etc/foxworker/foxworker.yaml:13:19: queues.emails.handler_timeouts.email.send: "
            "invalid duration \"2 min\": expected a number followed by ms, s, m, h or d");
  EXPECT_EQ(ParseError(head + "    handler_timeouts: [email.send]\n"),
            "/etc/foxworker/foxworker.yaml:12:23: queues.emails.handler_timeouts: expected a "
            "mapping, got a sequence");
}

TEST(MiddlewareConfigTest, RateLimitNames) {
  EXPECT_EQ(ParseError("rate_limits:\n  \"payments api\": {rate: 1/s}\n"),
            "/etc/foxworker/foxworker.yaml:2:3: rate_limits.payments api: invalid rate limit "
            "name: use letters, digits, '_', '-', '.' and ':', starting with a letter or digit");
}

TEST(FormatConfigTest, RoundTripsMiddleware) {
  unsetenv("FOXWORKER_TEST_UNSET");
  Config config = ParseOk(kMiddlewareExample);
  std::string text = FormatConfig(config);
  Result<Config> again = ParseConfigString(text, "/elsewhere/printed.yaml", "/elsewhere");
  ASSERT_TRUE(again.ok()) << again.status().ToString() << "\n" << text;
  ExpectSameValues(config, *again);
  std::string reprinted = FormatConfig(*again);
  EXPECT_EQ(reprinted.substr(reprinted.find('\n')), text.substr(text.find('\n')));
  // Rates print in the unit they read best in, exactly.
  EXPECT_NE(text.find("  payments-api:\n    rate: 100/s\n    burst: 20\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("  slow:\n    rate: 10/m\n    burst: 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("      - rate_limit:\n          rate: 7/h\n          burst: 0\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("    handler_timeouts:\n      email.send: 2m\n"
                      "      \"email:digest\": 1.5s\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("      - circuit_breaker:\n          failure_ratio: 0.5\n"
                      "          min_calls: 20\n          window: 1m\n"),
            std::string::npos)
      << text;
}

TEST(FormatConfigTest, ShowsMiddlewareDefaults) {
  Config config =
      ParseOk(WithMiddleware("      - logging\n      - circuit_breaker\n"
                             "      - dedup: {key: \"property:message_id\"}\n"));
  std::string text = FormatConfig(config);
  EXPECT_NE(text.find("    retry_policy: \"default\"\n"
                      "    handler_timeouts: {}\n"
                      "    middleware:\n"
                      "      - logging:\n"
                      "          level: info\n"
                      "      - circuit_breaker:\n"
                      "          failure_threshold: 5\n"
                      "          window: 30s\n"
                      "          reset_timeout: 30s\n"
                      "          half_open_trials: 1\n"
                      "      - dedup:\n"
                      "          key: \"property:message_id\"\n"
                      "          ttl: 1d\n"
                      "          max_keys: 100000\n"),
            std::string::npos)
      << text;
  config = ParseOk(std::string(kBase) + "queues:\n  q:\n    backend: mem\n    plugin: exec\n");
  EXPECT_NE(FormatConfig(config).find("    handler_timeouts: {}\n    middleware: []\n"),
            std::string::npos);
}

TEST_F(LoadConfigTest, SharedRateLimitFromAnIncludedFile) {
  std::string main = Write("foxworker.yaml", R"(daemon:
  include_dir: conf.d
plugins:
  exec:
    path: exec.so
backends:
  mem:
    type: memory
queues:
  first:
    backend: mem
    plugin: exec
    middleware:
      - rate_limit: {shared: api}
)");
  Write("conf.d/limits.yaml", "rate_limits:\n  api: {rate: 5/s}\n");
  Result<Config> config = LoadConfig(main);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->FindRateLimit("api")->mark.ToString(),
            (dir_ / "conf.d/limits.yaml").string() + ":2:3");

  Write("conf.d/more.yaml", "rate_limits:\n  api: {rate: 6/s}\n");
  config = LoadConfig(main);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(), (dir_ / "conf.d/more.yaml").string() +
                                           ":2:3: rate_limits.api: rate limit \"api\" is "
                                           "already defined at " +
                                           (dir_ / "conf.d/limits.yaml").string() + ":2:3");
}

TEST(ExampleConfigTest, FullExampleParsesAndRoundTrips) {
  ScopedEnv plugins("FOXWORKER_PLUGIN_DIR", "/opt/fw/plugins");
  ScopedEnv state("FOXWORKER_STATE_DIR", "/tmp/fw-state");
  std::string path = std::string(FOXWORKER_SOURCE_DIR) + "/config/full-example.yaml";
  Result<Config> config = LoadConfig(path);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->FindPlugin("log")->path, "/opt/fw/plugins/libfoxworker_log.so");
  EXPECT_EQ(config->FindBackend("mem")->type, "memory");
  ASSERT_NE(config->FindRateLimit("payments-api"), nullptr);
  // Every middleware type is used, and both breaker modes.
  std::set<std::string> types;
  bool count_mode = false, ratio_mode = false, shared = false, inline_rate = false;
  for (const QueueConfig& queue : config->queues) {
    for (const MiddlewareConfig& m : queue.middleware) {
      types.insert(m.type);
      if (m.type == "circuit_breaker") {
        (m.options.As<CircuitBreakerConfig>()->failure_ratio > 0 ? ratio_mode : count_mode) = true;
      }
      if (m.type == "rate_limit") (m.options.As<RateLimitOptions>()->shared.empty() ? inline_rate : shared) = true;
    }
  }
  EXPECT_EQ(types, (std::set<std::string>{"circuit_breaker", "dedup", "logging", "rate_limit"}));
  EXPECT_TRUE(count_mode && ratio_mode && shared && inline_rate);
  EXPECT_EQ(config->FindQueue("emails")->handler_timeouts.at("email.send"), milliseconds(120000));

  std::string text = FormatConfig(*config);
  Result<Config> again = ParseConfigString(text, "/elsewhere/printed.yaml", "/elsewhere");
  ASSERT_TRUE(again.ok()) << again.status().ToString() << "\n" << text;
  ExpectSameValues(*config, *again);
}

// ---- batch handlers: batch_size and flush_interval -------------------------

TEST(ParseConfigTest, BatchKeysDefaultsAndPrefetch) {
  std::string head = std::string(kBase) + "queues:\n  q:\n    backend: mem\n    plugin: exec\n";
  Config config = ParseOk(head);
  ASSERT_EQ(config.queues.size(), 1u);
  EXPECT_EQ(config.queues[0].batch_size, 0);  // off
  EXPECT_EQ(config.queues[0].flush_interval, milliseconds(50));
  EXPECT_EQ(config.queues[0].prefetch, 2);

  config = ParseOk(head + "    concurrency: 2\n    batch_size: 100\n    flush_interval: 250ms\n");
  EXPECT_EQ(config.queues[0].batch_size, 100);
  EXPECT_EQ(config.queues[0].flush_interval, milliseconds(250));
  // Without prefetch, the queue holds enough for a full batch.
  EXPECT_EQ(config.queues[0].prefetch, 100);

  config = ParseOk(head + "    concurrency: 8\n    batch_size: 3\n");
  EXPECT_EQ(config.queues[0].prefetch, 16);  // 2 x concurrency is already enough
  config = ParseOk(head + "    batch_size: 10000\n    prefetch: 10000\n    flush_interval: 10s\n");
  EXPECT_EQ(config.queues[0].batch_size, 10000);
  EXPECT_EQ(config.queues[0].flush_interval, milliseconds(10000));
}

// `pool`: the queue's own threads (default) or the shared CPU pool.
TEST(ParseConfigTest, PoolKey) {
  std::string head = std::string(kBase) + "queues:\n  q:\n    backend: mem\n    plugin: exec\n";
  auto config = ParseConfigString(head + "    pool: cpu\n", "/etc/foxworker/foxworker.yaml", "/etc");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_TRUE(config->FindQueue("q")->cpu_pool);
  config = ParseConfigString(head, "/etc/foxworker/foxworker.yaml", "/etc");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_FALSE(config->FindQueue("q")->cpu_pool);
  EXPECT_EQ(ParseError(head + "    pool: gpu\n"),
            "/etc/foxworker/foxworker.yaml:12:11: queues.q.pool: must be queue (the queue's own "
            "threads, one per unit of concurrency) or cpu (the daemon's CPU-sized pool), got "
            "\"gpu\"");
}

TEST(ParseConfigTest, StuckKeys) {
  std::string head = std::string(kBase) +
                     "queues:\n  q:\n    backend: mem\n    plugin: exec\n    concurrency: 3\n";
  auto config = ParseConfigString(head, "/etc/foxworker/foxworker.yaml", "/etc");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->FindQueue("q")->replace_stuck, -1);  // as many as the concurrency
  EXPECT_FALSE(config->FindQueue("q")->retry_stuck_at_once);
  config = ParseConfigString(head + "    timeout: 1s\n", "/etc/foxworker/foxworker.yaml", "/etc");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(HandlerSlots(*config->FindQueue("q")), 6);
  config = ParseConfigString(head + "    replace_stuck: 0\n    retry_stuck: at_once\n",
                             "/etc/foxworker/foxworker.yaml", "/etc");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->FindQueue("q")->replace_stuck, 0);
  EXPECT_TRUE(config->FindQueue("q")->retry_stuck_at_once);
  EXPECT_EQ(HandlerSlots(*config->FindQueue("q")), 3);  // no timeout: nothing to replace
  EXPECT_EQ(ParseError(head + "    retry_stuck: later\n"),
            "/etc/foxworker/foxworker.yaml:13:18: queues.q.retry_stuck: must be after_return "
            "(retry a timed-out message once its handler returns) or at_once (retry it while "
            "the stuck call may still run), got \"later\"");
  EXPECT_EQ(ParseError(head + "    replace_stuck: -1\n"),
            "/etc/foxworker/foxworker.yaml:13:20: queues.q.replace_stuck: must be between 0 and "
            "10000, got -1");
}

TEST(ParseConfigTest, BatchKeyErrors) {
  std::string head = std::string(kBase) + "queues:\n  q:\n    backend: mem\n    plugin: exec\n";
  EXPECT_EQ(ParseError(head + "    batch_size: 0\n"),
            "/etc/foxworker/foxworker.yaml:12:17: queues.q.batch_size: must be between 1 and "
            "10000, got 0");
  EXPECT_EQ(ParseError(head + "    batch_size: 10001\n"),
            "/etc/foxworker/foxworker.yaml:12:17: queues.q.batch_size: must be between 1 and "
            "10000, got 10001");
  EXPECT_EQ(ParseError(head + "    batch_size: lots\n"),
            "/etc/foxworker/foxworker.yaml:12:17: queues.q.batch_size: expected an integer, got "
            "\"lots\"");
  EXPECT_EQ(ParseError(head + "    flush_interval: 0\n"),
            "/etc/foxworker/foxworker.yaml:12:21: queues.q.flush_interval: must be greater than "
            "zero");
  EXPECT_EQ(ParseError(head + "    flush_interval: 11s\n"),
            "/etc/foxworker/foxworker.yaml:12:21: queues.q.flush_interval: must be at most 10s, "
            "got 11s");
  EXPECT_EQ(ParseError(head + "    flush_interval: 1m\n"),
            "/etc/foxworker/foxworker.yaml:12:21: queues.q.flush_interval: must be at most 10s, "
            "got 1m");
  // The error points at prefetch, wherever batch_size was written.
  EXPECT_EQ(ParseError(head + "    prefetch: 8\n    concurrency: 2\n    batch_size: 50\n"),
            "/etc/foxworker/foxworker.yaml:12:15: queues.q.prefetch: must be at least "
            "batch_size (50), got 8");
  EXPECT_EQ(ParseError(head + "    bacth_size: 5\n"),
            "/etc/foxworker/foxworker.yaml:12:5: queues.q.bacth_size: unknown key (did you mean "
            "\"batch_size\"?)");
}

TEST(FormatConfigTest, RoundTripsBatchKeys) {
  Config config = ParseOk(std::string(kBase) +
                          "queues:\n"
                          "  batched:\n    backend: mem\n    plugin: exec\n"
                          "    batch_size: 25\n    flush_interval: 1.5s\n"
                          "  single:\n    backend: mem\n    plugin: exec\n");
  std::string text = FormatConfig(config);
  EXPECT_NE(text.find("    prefetch: 25\n    batch_size: 25\n    flush_interval: 1.5s\n"),
            std::string::npos)
      << text;
  // batch_size 0 (off) is written as its absence: a written one is 1..10000.
  EXPECT_NE(text.find("    prefetch: 2\n    flush_interval: 50ms\n"), std::string::npos) << text;
  Result<Config> again = ParseConfigString(text, "/elsewhere/printed.yaml", "/elsewhere");
  ASSERT_TRUE(again.ok()) << again.status().ToString() << "\n" << text;
  ExpectSameValues(config, *again);
  EXPECT_EQ(again->FindQueue("batched")->batch_size, 25);
  EXPECT_EQ(again->FindQueue("single")->batch_size, 0);
}

}  // namespace
}  // namespace foxworker
