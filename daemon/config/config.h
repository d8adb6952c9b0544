// The daemon's configuration as plain, validated data. Nothing here has
// behaviour; daemon/config/config_parser.cc turns YAML into it and checks it
// as a whole before anything starts.
#ifndef FOXWORKER_CONFIG_CONFIG_H_
#define FOXWORKER_CONFIG_CONFIG_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/base/status.h"
#include "daemon/base/units.h"
#include "daemon/core/consumer_options.h"
#include "daemon/core/retry_policy.h"

namespace foxworker {

// Where a value came from, for error messages after parsing.
struct SourceMark {
  std::string file;
  int line = 0;    // 1-based; 0 = unknown
  int column = 0;  // 1-based
  std::string ToString() const;  // "file:line:column"; just "file" when the line is unknown
  // A mark says where a value was written, not what it is: entries that
  // differ only in where they sit compare equal (config reload diffs).
  bool operator==(const SourceMark&) const { return true; }
};

enum class LogLevel { kTrace, kDebug, kInfo, kWarning, kError };

// "trace", "debug", "info", "warning", "error": the spelling in the config file.
std::string_view LogLevelName(LogLevel level);
Result<LogLevel> ParseLogLevel(std::string_view name);

// `daemon.admin` (daemon/app/admin/): the HTTP admin endpoint. Off unless
// `listen` is set.
struct AdminConfig {
  std::string listen;      // "HOST:PORT" ("127.0.0.1:9090", "[::1]:9090") or "unix:/path"
  std::string token_file;  // bearer token for mutating endpoints; empty = they are disabled

  bool operator==(const AdminConfig&) const = default;
};

struct DaemonConfig {
  LogLevel log_level = LogLevel::kInfo;
  int worker_threads = 0;  // 0 = one per CPU
  Duration shutdown_timeout{30000};
  std::string plugin_dir;  // relative plugin paths resolve here, else next to the config file
  std::string include_dir;  // optional: more YAML files (*.yaml) merged in name order
  std::string state_dir = "/var/lib/foxworker";
  AdminConfig admin;

  bool operator==(const DaemonConfig&) const = default;
};

struct PluginConfig {
  std::string name;
  std::string path;         // absolute after parsing
  std::string config_json;  // the `config:` subtree as a JSON object ("{}" when absent)
  // Where each top-level key of `config:` was written, for schema errors.
  std::map<std::string, SourceMark> config_marks;
  SourceMark mark;  // of the plugin's entry
  SourceMark config_mark;  // of its `config:` mapping (or the entry when absent)

  bool operator==(const PluginConfig&) const = default;
};

enum class Durability { kFull, kNormal };

// "full", "normal".
std::string_view DurabilityName(Durability durability);
Result<Durability> ParseDurability(std::string_view name);

struct MemoryBackendOptions {
  size_t capacity = 0;  // 0 = unbounded; enqueue fails when full

  bool operator==(const MemoryBackendOptions&) const = default;
};

struct LocalBackendOptions {
  std::string path;                 // SQLite file; relative to daemon.state_dir
  Durability durability = Durability::kFull;
  Duration lease{30000};            // claim lease; renewed while a handler runs
  Duration poll_interval{200};      // how often idle queues look for due jobs
  Duration retention{0};            // keep acked jobs this long (0 = delete at ack)
  int batch_size = 256;             // max jobs claimed or settled per transaction

  bool operator==(const LocalBackendOptions&) const = default;
};

// `type: redis` (daemon/backends/redis/). The endpoint fields are parsed
// from `url`; `password` is never printed or logged.
struct RedisBackendOptions {
  std::string url = "redis://127.0.0.1:6379/0";
  std::string host = "127.0.0.1";  // empty when unix_path is set
  int port = 6379;
  std::string unix_path;            // unix:///path?db=N
  int db = 0;
  std::string user;                 // ACL user (Redis 6+); empty = default user
  std::string password;             // empty = no AUTH
  Duration connect_timeout{5000};
  Duration command_timeout{5000};
  std::string group = "foxworker";
  std::string consumer;             // empty = "hostname:pid"
  std::string start = "0";          // where a new group starts: "0" (all) or "$" (new only)
  std::string payload_field = "data";
  Duration min_idle{60000};         // claim others' pending entries idle this long
  Duration claim_interval{5000};    // how often to look for such entries
  Duration block{1000};             // XREADGROUP BLOCK
  int64_t maxlen = 0;               // stream MAXLEN ~ on our XADDs; 0 = no trimming
  int64_t dlq_maxlen = 0;           // same for <stream>-dlq
  Duration reconnect_initial{100};
  Duration reconnect_max{10000};

  bool operator==(const RedisBackendOptions&) const = default;
};

enum class AmqpQueueType { kQuorum, kClassic };

// "quorum", "classic".
std::string_view AmqpQueueTypeName(AmqpQueueType type);
Result<AmqpQueueType> ParseAmqpQueueType(std::string_view name);

struct AmqpTlsOptions {
  std::string ca;    // CA bundle (PEM); empty = the system's default
  std::string cert;  // client certificate (PEM); empty = none
  std::string key;   // client key (PEM); required with cert
  bool verify = true;  // verify the broker's certificate and host name

  bool operator==(const AmqpTlsOptions&) const = default;
};

struct RabbitMqBackendOptions {
  std::string url = "amqp://guest:guest@localhost:5672";  // amqp:// or amqps://; "/" after the port = vhost ""
  AmqpTlsOptions tls;               // used with amqps://
  Duration heartbeat{30000};        // 0 = no heartbeats
  std::string connection_name = "foxworkerd";  // shown in the management UI
  bool declare = true;              // declare each queue and its {queue}-dlq
  AmqpQueueType queue_type = AmqpQueueType::kQuorum;  // for queues the daemon declares
  bool delayed_retries = true;      // retry through per-delay-tier TTL queues
  Duration reconnect_initial{500};  // first reconnect delay (then doubled, jittered)
  Duration reconnect_max{30000};    // cap of the reconnect delay

  bool operator==(const RabbitMqBackendOptions&) const = default;
};

// `url` with its password replaced by "***" (for logs and --check-config).
std::string RedactUrl(std::string_view url);

// One entry of an AMQP `arguments` table (x-max-length: 1000). The YAML
// scalar's type decides the AMQP type: unquoted integers are signed 64-bit,
// unquoted decimals doubles, unquoted true/false booleans, everything else a
// UTF-8 string.
struct AmqpArgument {
  enum class Kind { kString, kInt, kDouble, kBool };
  std::string key;
  Kind kind = Kind::kString;
  std::string text;  // kString
  int64_t int_value = 0;
  double double_value = 0;
  bool bool_value = false;
  bool operator==(const AmqpArgument&) const = default;
};

// "direct", "topic", "fanout", "headers".
inline constexpr std::string_view kAmqpExchangeTypes[] = {"direct", "topic", "fanout", "headers"};

// An exchange a queue declares (exchange.declare).
struct AmqpExchangeConfig {
  std::string name;
  std::string type = "direct";
  bool durable = true;
  bool auto_delete = false;
  std::vector<AmqpArgument> arguments;
  SourceMark mark;
  bool operator==(const AmqpExchangeConfig&) const = default;
};

// queue.bind of the queue to `exchange`, once per routing key.
struct AmqpBindingConfig {
  std::string exchange;                    // default: the queue's declared exchange
  std::vector<std::string> routing_keys;   // at least one ("" for fanout/headers)
  std::vector<AmqpArgument> arguments;     // e.g. x-match for a headers exchange
  SourceMark mark;
  bool operator==(const AmqpBindingConfig&) const = default;
};

// A queue's `rabbitmq:` settings (queues on a rabbitmq backend only). Names
// may use "{queue}", the AMQP queue (the queue's `source`).
struct RabbitMqQueueOptions {
  bool present = false;  // the queue has a `rabbitmq:` key
  bool durable = true;
  std::optional<AmqpQueueType> queue_type;  // unset = the backend's queue_type
  std::vector<AmqpArgument> arguments;      // of the queue.declare
  std::optional<AmqpExchangeConfig> exchange;
  std::vector<AmqpBindingConfig> bindings;
  std::string dead_letter_queue = "{queue}-dlq";
  std::string retry_queue_prefix = "{queue}-retry-";  // + the tier ("1.5s")
  SourceMark mark;  // of the `rabbitmq:` key
  bool operator==(const RabbitMqQueueOptions&) const = default;
};

// `pattern` with every "{queue}" replaced by `queue`.
std::string ExpandQueuePattern(std::string_view pattern, std::string_view queue);

struct BackendConfig {
  std::string name;
  std::string type;  // memory | local | rabbitmq | redis
  MemoryBackendOptions memory;
  LocalBackendOptions local;
  RabbitMqBackendOptions rabbitmq;
  RedisBackendOptions redis;
  SourceMark mark;

  bool operator==(const BackendConfig&) const = default;
};

// A named retry policy: core's RetryPolicyOptions plus where it was written.
struct RetryPolicyConfig : RetryPolicyOptions {
  std::string name;
  SourceMark mark;

  bool operator==(const RetryPolicyConfig&) const = default;
};

// ---- middleware (daemon/middleware/, one file each) ----

// Closed -> open when failures reach the threshold within `window`; open ->
// half-open after `reset_timeout`; half-open lets `half_open_trials`
// messages through and closes when they all succeed (one failure reopens).
struct CircuitBreakerConfig {
  int failure_threshold = 5;   // failures within `window` that open it (count mode)
  double failure_ratio = 0;    // > 0: open when failures/total in `window` reach it (ratio mode)
  int min_calls = 10;          // ratio mode: calls needed in the window before judging
  Duration window{30000};
  Duration reset_timeout{30000};
  int half_open_trials = 1;

  bool operator==(const CircuitBreakerConfig&) const = default;
};

// A token bucket. Either inline (`rate`, `burst`) or `shared: NAME`, which
// names an entry of the top-level `rate_limits:` shared by every queue that
// uses it.
struct RateLimitConfig {
  std::string name;    // top-level entries: their name
  std::string shared;  // middleware entries: the shared bucket's name, or empty
  double rate = 0;     // tokens per second ("100/s")
  int burst = 0;       // bucket size; 0 = max(1, rate)
  SourceMark mark;

  bool operator==(const RateLimitConfig&) const = default;
};

// Skips a message whose key was processed successfully within `ttl`.
// `key`: "header:NAME", "property:NAME" (message_id, correlation_id, type,
// ...) or "json:/json/pointer" into the payload.
struct DedupConfig {
  std::string key;
  Duration ttl{86400000};
  size_t max_keys = 100000;  // in-memory store bound (LRU); the local store is unbounded

  bool operator==(const DedupConfig&) const = default;
};

// One structured line per outcome at `level`; `trace` also logs each step.
struct LoggingConfig {
  LogLevel level = LogLevel::kInfo;

  bool operator==(const LoggingConfig&) const = default;
};

struct MiddlewareConfig {
  std::string type;  // circuit_breaker | rate_limit | dedup | logging
  CircuitBreakerConfig circuit_breaker;
  RateLimitConfig rate_limit;
  DedupConfig dedup;
  LoggingConfig logging;
  SourceMark mark;

  bool operator==(const MiddlewareConfig&) const = default;
};

// A queue: core's ConsumerOptions plus what the wiring needs.
struct QueueConfig : ConsumerOptions {
  std::string plugin;
  std::string retry_policy = "default";
  std::vector<MiddlewareConfig> middleware;  // in config order
  RabbitMqQueueOptions rabbitmq;             // queues on a rabbitmq backend
  SourceMark mark;

  bool operator==(const QueueConfig&) const = default;
};

struct Config {
  std::string file;  // the main config file, absolute
  DaemonConfig daemon;
  std::vector<PluginConfig> plugins;
  std::vector<BackendConfig> backends;
  std::vector<QueueConfig> queues;
  std::vector<RetryPolicyConfig> retry_policies;  // always holds "default"
  std::vector<RateLimitConfig> rate_limits;       // shared token buckets, by name

  const PluginConfig* FindPlugin(const std::string& name) const;
  const BackendConfig* FindBackend(const std::string& name) const;
  const RetryPolicyConfig* FindRetryPolicy(const std::string& name) const;
  const QueueConfig* FindQueue(const std::string& name) const;
  const RateLimitConfig* FindRateLimit(const std::string& name) const;
};

}  // namespace foxworker

#endif  // FOXWORKER_CONFIG_CONFIG_H_
