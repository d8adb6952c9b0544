// The daemon's configuration as plain, validated data. Nothing here has
// behaviour; daemon/config/config_parser.cc turns YAML into it and checks it
// as a whole before anything starts.
#ifndef FOXWORKER_CONFIG_CONFIG_H_
#define FOXWORKER_CONFIG_CONFIG_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "daemon/base/status.h"
#include "daemon/base/units.h"
#include "daemon/core/backend_queue_options.h"
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
  // How long a connection may take to deliver a whole request (headers and
  // body), counted from accept or from the previous answer; then it is closed.
  Duration request_timeout{10000};
  // Serves the console without change buttons and refuses every change
  // (pause, retry, delete, enqueue, quiet), token or not.
  bool read_only = false;
  // How often every queue's depth is read for /metrics and /api/v1/queues
  // (daemon/app/depth_poller.h).
  Duration depth_interval{5000};

  bool operator==(const AdminConfig&) const = default;
};

struct DaemonConfig {
  LogLevel log_level = LogLevel::kInfo;
  int worker_threads = 0;  // 0 = one per CPU
  Duration shutdown_timeout{30000};
  // One WARNING per message whose handler has run this long (0 = never).
  Duration long_job_warning{300000};
  // How late a daemon thread's heartbeat may be before the daemon stops
  // feeding the systemd watchdog (0 = derived: half the watchdog interval,
  // at least 10s; 10s without a watchdog). See docs/operations.md.
  Duration liveness_timeout{0};
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
  SourceMark path_mark;    // of its `path` value (errors about the file point here)
  SourceMark config_mark;  // of its `config:` mapping (or the entry when absent)

  bool operator==(const PluginConfig&) const = default;
};

// ---- extensions (backends, middleware) ----
//
// Each backend and middleware folder owns its options: it derives them from
// BackendOptions or MiddlewareOptions, parses them from its YAML block and
// registers both with daemon/config/extension_registry.h. The config holds
// them behind OptionsPtr, which compares by value.

// The options of one `backends:` entry, beyond its name and type.
class BackendOptions {
 public:
  virtual ~BackendOptions() = default;
  // Same dynamic type and same values.
  virtual bool Equals(const BackendOptions& other) const = 0;
};

// The settings of one item of a queue's `middleware:`.
class MiddlewareOptions {
 public:
  virtual ~MiddlewareOptions() = default;
  // Same dynamic type and same values.
  virtual bool Equals(const MiddlewareOptions& other) const = 0;
  // The name of the shared state (a top-level `rate_limits:` entry) these
  // settings use, or "" for none. A reload gives every queue using a changed
  // one new state.
  virtual std::string_view shared_state() const { return {}; }
};

// Implements Equals for an options struct `Derived` that has a defaulted
// operator==: struct FooOptions : EquatableOptions<FooOptions, BackendOptions>.
template <typename Derived, typename Base>
class EquatableOptions : public Base {
 public:
  bool Equals(const Base& other) const override {
    const auto* same = dynamic_cast<const Derived*>(&other);
    return same != nullptr && *static_cast<const Derived*>(this) == *same;
  }
  bool operator==(const EquatableOptions&) const { return true; }
};

// Shared, immutable extension options (copies of a Config share them),
// compared by value: null equals only null.
template <typename T>
class OptionsPtr {
 public:
  OptionsPtr() = default;
  // From the options of an extension's own class (implicitly, like a
  // shared_ptr to a derived class).
  template <typename U>
    requires std::is_base_of_v<T, U>
  OptionsPtr(std::shared_ptr<U> options) : options_(std::move(options)) {}  // NOLINT

  const T* get() const { return options_.get(); }
  const T& operator*() const { return *options_; }
  const T* operator->() const { return options_.get(); }
  explicit operator bool() const { return options_ != nullptr; }
  const std::shared_ptr<const T>& shared() const { return options_; }

  // The options as `U`, the type its extension parses; null when absent or
  // of another type.
  template <typename U>
  const U* As() const {
    return dynamic_cast<const U*>(options_.get());
  }

  friend bool operator==(const OptionsPtr& a, const OptionsPtr& b) {
    if (a.options_ == nullptr || b.options_ == nullptr) return a.options_ == b.options_;
    return a.options_ == b.options_ || a.options_->Equals(*b.options_);
  }

 private:
  std::shared_ptr<const T> options_;
};

struct BackendConfig {
  std::string name;
  std::string type;  // a registered backend type: memory, local, rabbitmq, redis
  OptionsPtr<BackendOptions> options;  // of the type's own class; set by parsing
  SourceMark mark;

  bool operator==(const BackendConfig&) const = default;
};

// A named retry policy: core's RetryPolicyOptions plus where it was written.
struct RetryPolicyConfig : RetryPolicyOptions {
  std::string name;
  SourceMark mark;

  bool operator==(const RetryPolicyConfig&) const = default;
};

// A shared token bucket: an entry of the top-level `rate_limits:`, used by
// `rate_limit` middleware with `shared: NAME`.
struct RateLimitConfig {
  std::string name;
  double rate = 0;     // tokens per second ("100/s")
  int burst = 0;       // bucket size; 0 = max(1, rate)
  SourceMark mark;

  bool operator==(const RateLimitConfig&) const = default;
};

struct MiddlewareConfig {
  std::string type;  // a registered middleware type: circuit_breaker, rate_limit, dedup, logging
  OptionsPtr<MiddlewareOptions> options;  // of the type's own class; set by parsing
  SourceMark mark;

  bool operator==(const MiddlewareConfig&) const = default;
};

// A queue's `<backend type>:` block (for now only `rabbitmq:`), parsed by the
// backend type that registered the key.
struct QueueBackendBlock {
  std::string type;  // the backend type whose block it is; empty = none
  OptionsPtr<BackendQueueOptions> options;
  SourceMark mark;  // of the key

  bool operator==(const QueueBackendBlock&) const = default;
};

// A queue's `process: crash_loop:` block: its children crashing `crashes`
// times within `window` pause the queue for `pause`.
struct CrashLoopConfig {
  int crashes = 10;          // 0 = never pause
  Duration window{60000};
  Duration pause{300000};

  bool operator==(const CrashLoopConfig&) const = default;
};

// `process: syscall_filter`: the built-in list of calls to deny, if any.
enum class SyscallFilter { kNone, kDefault };
// `process: syscall_action`: what a denied call does.
enum class SyscallAction {
  kErrno,  // fails with EPERM; the handler decides what that means
  kKill,   // the child dies with SIGSYS, charging what it ran
};

std::string_view SyscallFilterName(SyscallFilter filter);
Result<SyscallFilter> ParseSyscallFilter(std::string_view name);
std::string_view SyscallActionName(SyscallAction action);
Result<SyscallAction> ParseSyscallAction(std::string_view name);

// A queue's `process:` block (isolation: process; docs/configuration.md).
struct ProcessIsolationConfig {
  int processes = 0;              // children; 0 = one per unit of concurrency
  Duration timeout_grace{5000};   // after a deadline, before SIGTERM
  int64_t max_tasks = 0;          // recycle a child after this many messages; 0 = never
  uint64_t max_memory = 0;        // recycle a child whose RSS is above this; 0 = never
  Duration max_lifetime{0};       // recycle a child this old; 0 = never
  uint64_t address_space = 0;     // RLIMIT_AS; 0 = unlimited
  Duration cpu_time{0};           // RLIMIT_CPU (whole seconds); 0 = unlimited
  int64_t open_files = 0;         // RLIMIT_NOFILE; 0 = inherited
  int64_t max_processes = 0;      // RLIMIT_NPROC; 0 = inherited
  bool no_new_privs = true;       // PR_SET_NO_NEW_PRIVS
  std::string user;               // run as this user (the daemon must be root); "" = the daemon's
  // The children's seccomp filter: on with kDefault or any syscall_deny
  // name (daemon/isolation/syscall_filter.h).
  SyscallFilter syscall_filter = SyscallFilter::kNone;
  std::vector<std::string> syscall_deny;  // more calls to deny, as written (known names)
  SyscallAction syscall_action = SyscallAction::kErrno;
  CrashLoopConfig crash_loop;
  SourceMark mark;

  bool operator==(const ProcessIsolationConfig&) const = default;
};

// A queue: core's ConsumerOptions plus what the wiring needs.
struct QueueConfig : ConsumerOptions {
  std::string plugin;
  // isolation: process. The queue's handlers run in foxworker-child
  // processes, set up by `process`.
  bool process_isolation = false;
  ProcessIsolationConfig process;
  std::string retry_policy = "default";
  std::vector<MiddlewareConfig> middleware;  // in config order
  QueueBackendBlock backend_block;           // e.g. `rabbitmq:` for a rabbitmq backend
  SourceMark mark;

  bool operator==(const QueueConfig&) const = default;
};

// isolation: process: how many children a queue runs and how many
// messages each runs at once (`processes`, default one per unit of
// concurrency; the concurrency spread over them, rounded up).
struct ChildLayout {
  int processes = 1;
  int slots_per_child = 1;
  bool operator==(const ChildLayout&) const = default;
};
ChildLayout ChildLayoutOf(const QueueConfig& q);

struct Config {
  std::string file;  // the main config file, absolute
  DaemonConfig daemon;
  std::vector<PluginConfig> plugins;
  std::vector<BackendConfig> backends;
  std::vector<QueueConfig> queues;
  std::vector<RetryPolicyConfig> retry_policies;  // always holds "default"
  std::vector<RateLimitConfig> rate_limits;       // shared token buckets, by name
  // Some file of the config has a top-level `queues` key (even `queues: {}`).
  // A reload refuses a config without one while queues run: an empty or
  // half-written file must not remove every queue.
  bool declares_queues = false;

  const PluginConfig* FindPlugin(const std::string& name) const;
  const BackendConfig* FindBackend(const std::string& name) const;
  const RetryPolicyConfig* FindRetryPolicy(const std::string& name) const;
  const QueueConfig* FindQueue(const std::string& name) const;
  const RateLimitConfig* FindRateLimit(const std::string& name) const;
};

}  // namespace foxworker

#endif  // FOXWORKER_CONFIG_CONFIG_H_
