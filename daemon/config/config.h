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

#include "daemon/core/status.h"

namespace foxworker {

using Duration = std::chrono::milliseconds;

// Where a value came from, for error messages after parsing.
struct SourceMark {
  std::string file;
  int line = 0;    // 1-based; 0 = unknown
  int column = 0;  // 1-based
  std::string ToString() const;  // "file:line:column"; just "file" when the line is unknown
};

enum class LogLevel { kTrace, kDebug, kInfo, kWarning, kError };

// "trace", "debug", "info", "warning", "error": the spelling in the config file.
std::string_view LogLevelName(LogLevel level);
Result<LogLevel> ParseLogLevel(std::string_view name);

struct DaemonConfig {
  LogLevel log_level = LogLevel::kInfo;
  int worker_threads = 0;  // 0 = one per CPU
  Duration shutdown_timeout{30000};
  std::string plugin_dir;  // relative plugin paths resolve here, else next to the config file
  std::string include_dir;  // optional: more YAML files (*.yaml) merged in name order
  std::string state_dir = "/var/lib/foxworker";
};

struct PluginConfig {
  std::string name;
  std::string path;         // absolute after parsing
  std::string config_json;  // the `config:` subtree as a JSON object ("{}" when absent)
  // Where each top-level key of `config:` was written, for schema errors.
  std::map<std::string, SourceMark> config_marks;
  SourceMark mark;  // of the plugin's entry
  SourceMark config_mark;  // of its `config:` mapping (or the entry when absent)
};

enum class Durability { kFull, kNormal };

// "full", "normal".
std::string_view DurabilityName(Durability durability);
Result<Durability> ParseDurability(std::string_view name);

struct MemoryBackendOptions {
  size_t capacity = 0;  // 0 = unbounded; enqueue fails when full
};

struct LocalBackendOptions {
  std::string path;                 // SQLite file; relative to daemon.state_dir
  Durability durability = Durability::kFull;
  Duration lease{30000};            // claim lease; renewed while a handler runs
  Duration poll_interval{200};      // how often idle queues look for due jobs
  Duration retention{0};            // keep acked jobs this long (0 = delete at ack)
  int batch_size = 256;             // max jobs claimed or settled per transaction
};

struct BackendConfig {
  std::string name;
  std::string type;  // memory | local | rabbitmq | redis
  MemoryBackendOptions memory;
  LocalBackendOptions local;
  SourceMark mark;
};

enum class Backoff { kFixed, kLinear, kExponential };

// "fixed", "linear", "exponential".
std::string_view BackoffName(Backoff backoff);
Result<Backoff> ParseBackoff(std::string_view name);

struct RetryPolicyConfig {
  std::string name;
  int max_attempts = 5;  // total handler attempts, including the first
  Backoff backoff = Backoff::kExponential;
  Duration initial{1000};
  Duration max{300000};
  double multiplier = 2.0;
  double jitter = 0.1;       // fraction of the delay, +/-
  bool full_jitter = false;  // delay = uniform(0, computed)
  SourceMark mark;
};

struct QueueConfig {
  std::string name;
  std::string backend;
  std::string source;   // backend-side name (AMQP queue, stream, local queue); default: name
  std::string plugin;
  std::string handler;  // pin every message to this handler; empty = route by message type
  int concurrency = 1;
  int prefetch = 0;     // 0 = 2 * concurrency
  Duration timeout{0};  // 0 = no deadline
  std::string retry_policy = "default";
  SourceMark mark;
};

struct Config {
  std::string file;  // the main config file, absolute
  DaemonConfig daemon;
  std::vector<PluginConfig> plugins;
  std::vector<BackendConfig> backends;
  std::vector<QueueConfig> queues;
  std::vector<RetryPolicyConfig> retry_policies;  // always holds "default"

  const PluginConfig* FindPlugin(const std::string& name) const;
  const BackendConfig* FindBackend(const std::string& name) const;
  const RetryPolicyConfig* FindRetryPolicy(const std::string& name) const;
  const QueueConfig* FindQueue(const std::string& name) const;
};

}  // namespace foxworker

#endif  // FOXWORKER_CONFIG_CONFIG_H_
