#include "daemon/config/config_parser.h"

#include <sys/utsname.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <span>
#include <sstream>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "daemon/config/extension_registry.h"
#include "daemon/config/listen_address.h"
#include "daemon/config/plugin_config_json.h"
#include "daemon/config/syscalls.h"
#include "daemon/base/units.h"
#include "daemon/config/yaml_reader.h"

namespace foxworker {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kTopLevelKeys[] = {"daemon", "plugins",        "backends",
                                              "queues", "retry_policies", "rate_limits"};
constexpr std::string_view kDaemonKeys[] = {"log_level",        "worker_threads",
                                            "shutdown_timeout", "long_job_warning",
                                            "liveness_timeout", "plugin_dir",
                                            "include_dir",      "state_dir",
                                            "admin"};
// A liveness timeout shorter than this would call threads that beat every
// kHeartbeatPeriod (1s) stuck.
constexpr Duration kMinLivenessTimeout{2000};
constexpr Duration kMinAdminRequestTimeout{100};
// Each round of the depth poller asks every queue's backend.
constexpr Duration kMinDepthInterval{100};
constexpr std::string_view kAdminKeys[] = {"listen", "token_file", "request_timeout",
                                           "depth_interval", "read_only"};
constexpr std::string_view kPluginKeys[] = {"path", "config"};
constexpr std::string_view kQueueKeys[] = {
    "backend",  "source",  "plugin",       "handler",          "concurrency",
    "prefetch", "timeout", "retry_policy", "handler_timeouts", "middleware",
    "batch_size", "flush_interval", "pool", "replace_stuck", "retry_stuck",
    "isolation", "process"};
constexpr std::string_view kProcessKeys[] = {
    "processes",     "timeout_grace", "max_tasks",     "max_memory",   "max_lifetime", "address_space",
    "cpu_time",      "open_files",    "max_processes", "no_new_privs", "user",
    "syscall_filter", "syscall_deny", "syscall_action", "crash_loop"};
constexpr std::string_view kCrashLoopKeys[] = {"crashes", "window", "pause"};
// Beyond these a crash loop is no longer what is being detected.
constexpr int kMaxCrashLoopCrashes = 1000000;
constexpr Duration kMaxCrashLoopDuration{24 * 3600 * 1000};
constexpr std::string_view kRetryPolicyKeys[] = {"max_attempts", "backoff", "initial",    "max",
                                                 "multiplier",   "jitter",  "full_jitter"};
constexpr int kMaxConcurrency = 10000;
constexpr int kMaxBatchSize = 10000;
constexpr Duration kMaxFlushInterval{10000};
constexpr int kMaxWorkerThreads = 1024;
constexpr std::string_view kDefaultPolicy = "default";

std::string Join(const std::vector<std::string_view>& items) {
  std::string out;
  for (std::string_view item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

// `path` made absolute against `base` and normalized, without a trailing '/'.
std::string ResolvePath(const std::string& base, const std::string& path) {
  fs::path p(path);
  if (p.is_relative()) p = fs::path(base) / p;
  p = p.lexically_normal();
  if (!p.has_filename() && p.has_relative_path()) p = p.parent_path();
  return p.string();
}

// A key that ReadMapping let through but nothing reads: every known key has
// its own branch, so this is a bug, not bad input.
Status UnexpectedKey(const MappingEntry& e) {
  return Status::Internal(e.path + ": a known key that nothing reads");
}

Result<std::string> ReadFileText(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    return Status::IoError("cannot read " + path + ": is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IoError("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Status::IoError("cannot read " + path + ": " + std::strerror(errno));
  return text.str();
}

// ---- rate_limits, handler_timeouts and middleware ----

constexpr std::string_view kRateLimitKeys[] = {"rate", "burst"};

// A queue's `middleware:`, a sequence whose items are `TYPE: {settings}` or a
// bare `TYPE` (all defaults).
Status ParseMiddlewareList(const YamlFile& file, const MappingEntry& list,
                           std::vector<MiddlewareConfig>* out) {
  if (list.value.IsNull()) return Status::Ok();
  const ExtensionRegistry& registry = ExtensionRegistry::Global();
  const std::vector<std::string_view> types = registry.MiddlewareTypes();
  std::string known = "known types: " + Join(types);
  if (!list.value.IsSequence()) {
    return ErrorAt(file, list.value_mark, list.path,
                   std::string("expected a sequence (- TYPE: {settings}), got ") +
                       (list.value.IsMap() ? "a mapping" : "a scalar"));
  }
  size_t index = 0;
  for (auto it = list.value.begin(); it != list.value.end(); ++it, ++index) {
    YAML::Node node = *it;
    std::string path = list.path + "[" + std::to_string(index) + "]";
    YAML::Mark mark = node.Mark();
    if (mark.line < 0) mark = list.value_mark;
    MappingEntry item;  // TYPE: settings
    if (node.IsScalar()) {
      item.key = node.Scalar();
      item.path = path + "." + item.key;
      item.key_mark = item.value_mark = mark;
      item.value = YAML::Node(YAML::NodeType::Null);
    } else if (node.IsMap()) {
      Result<std::vector<MappingEntry>> entries = ReadMapping(file, node, mark, path, {});
      if (!entries.ok()) return entries.status();
      if (entries->size() != 1) {
        std::string found;
        for (const MappingEntry& e : *entries) found += (found.empty() ? "" : ", ") + e.key;
        return ErrorAt(file, mark, path,
                       "a middleware item has exactly one key, its type; found " +
                           std::to_string(entries->size()) +
                           (entries->empty() ? "" : " (" + found + ")") +
                           " (are the settings indented under the type?)");
      }
      item = std::move(entries->front());
    } else {
      return ErrorAt(file, mark, path, "expected TYPE: {settings} or a bare TYPE (" + known + ")");
    }
    const MiddlewareExtension* extension = registry.FindMiddleware(item.key);
    if (extension == nullptr) {
      return ErrorAt(file, item.key_mark, path,
                     "unknown middleware type \"" + item.key + "\"" +
                         DidYouMean(item.key, types) + "; " + known);
    }
    MiddlewareConfig mw;
    mw.type = item.key;
    mw.mark = ToSourceMark(file, item.key_mark);
    if (extension->once_per_queue) {
      for (const MiddlewareConfig& other : *out) {
        if (other.type == mw.type) {
          return ErrorAt(mw.mark, path,
                         "a queue has at most one " + mw.type + " (the first is at " +
                             other.mark.ToString() + ")");
        }
      }
    }
    Result<std::vector<MappingEntry>> entries =
        ReadMapping(file, item.value, item.value_mark, item.path, extension->keys);
    if (!entries.ok()) return entries.status();
    Result<std::shared_ptr<const MiddlewareOptions>> options =
        extension->parse(file, item, *entries);
    if (!options.ok()) return options.status();
    mw.options = std::move(*options);
    out->push_back(std::move(mw));
  }
  return Status::Ok();
}

// A queue's `handler_timeouts:`, handler name -> deadline.
Status ParseHandlerTimeouts(const YamlFile& file, const MappingEntry& section,
                            std::map<std::string, Duration>* out) {
  Result<std::vector<MappingEntry>> entries =
      ReadMapping(file, section.value, section.value_mark, section.path, {});
  if (!entries.ok()) return entries.status();
  for (const MappingEntry& e : *entries) {
    Status status = AssignPositiveDuration(file, e, &(*out)[e.key]);
    if (!status.ok()) return status;
  }
  return Status::Ok();
}

Result<uint64_t> ReadSize(const YamlFile& file, const MappingEntry& e) {
  Result<std::string> text = ReadString(file, e);
  if (!text.ok()) return text.status();
  Result<uint64_t> size = ParseSize(*text);
  if (!size.ok()) return ErrorAt(file, e.value_mark, e.path, size.status().message());
  return size;
}

// A queue's `process: crash_loop:` block.
Status ParseCrashLoopBlock(const YamlFile& file, const MappingEntry& section,
                           CrashLoopConfig* out) {
  Result<std::vector<MappingEntry>> entries =
      ReadMapping(file, section.value, section.value_mark, section.path, kCrashLoopKeys);
  if (!entries.ok()) return entries.status();
  for (const MappingEntry& e : *entries) {
    Status status;
    if (e.key == "crashes") {
      status = Assign(ReadInteger(file, e, 0, kMaxCrashLoopCrashes), &out->crashes);
    } else {
      Duration* d = e.key == "window" ? &out->window : &out->pause;
      status = AssignPositiveDuration(file, e, d);
      if (status.ok() && *d > kMaxCrashLoopDuration)
        status = ErrorAt(file, e.value_mark, e.path,
                         "must be at most " + FormatDuration(kMaxCrashLoopDuration) + ", got " +
                             FormatDuration(*d));
    }
    if (!status.ok()) return status;
  }
  return Status::Ok();
}

// A queue's `process: syscall_deny:`, a sequence of system call names of
// this architecture.
Status ParseSyscallDeny(const YamlFile& file, const MappingEntry& list,
                        std::vector<std::string>* out) {
  out->clear();
  if (list.value.IsNull()) return Status::Ok();
  if (!list.value.IsSequence()) {
    return ErrorAt(file, list.value_mark, list.path,
                   std::string("expected a sequence of system call names ([socket, connect]), "
                               "got ") +
                       (list.value.IsMap() ? "a mapping" : "a scalar"));
  }
  const std::vector<std::string_view> known = SyscallNames();
  const std::span<const std::string_view> needed = SyscallsTheChildNeeds();
  size_t index = 0;
  for (auto it = list.value.begin(); it != list.value.end(); ++it, ++index) {
    YAML::Node node = *it;
    MappingEntry item;
    item.key = list.key;
    item.path = list.path + "[" + std::to_string(index) + "]";
    item.key_mark = item.value_mark = node.Mark().line >= 0 ? node.Mark() : list.value_mark;
    item.value = node;
    Result<std::string> name = ReadNonEmptyString(file, item);
    if (!name.ok()) return name.status();
    if (!SyscallNumber(*name)) {
      return ErrorAt(file, item.value_mark, item.path,
                     "no system call \"" + *name + "\" on " + std::string(SyscallFilterArch()) +
                         DidYouMean(*name, known));
    }
    if (std::find(needed.begin(), needed.end(), *name) != needed.end()) {
      return ErrorAt(file, item.value_mark, item.path,
                     "cannot deny " + *name +
                         ": foxworker-child itself needs it (its channel, threads, memory or "
                         "signals, or loading the plugin)");
    }
    if (std::find(out->begin(), out->end(), *name) == out->end()) out->push_back(*name);
  }
  return Status::Ok();
}

// A queue's `process:` block. `processes_entry` keeps the `processes`
// entry for the check against the concurrency.
Status ParseProcessBlock(const YamlFile& file, const MappingEntry& section,
                         ProcessIsolationConfig* out, std::optional<MappingEntry>* processes_entry) {
  out->mark = ToSourceMark(file, section.key_mark);
  Result<std::vector<MappingEntry>> entries =
      ReadMapping(file, section.value, section.value_mark, section.path, kProcessKeys);
  if (!entries.ok()) return entries.status();
  constexpr int64_t kMaxLimit = int64_t{1} << 40;
  // The key that turned the syscall filter on, for the checks below.
  const MappingEntry* filter_entry = nullptr;
  const MappingEntry* no_new_privs_entry = nullptr;
  for (const MappingEntry& e : *entries) {
    Status status;
    if (e.key == "processes") {
      *processes_entry = e;
      status = Assign(ReadInteger(file, e, 1, kMaxConcurrency), &out->processes);
    } else if (e.key == "timeout_grace") {
      status = Assign(ReadDuration(file, e), &out->timeout_grace);
    } else if (e.key == "max_tasks") {
      status = Assign(ReadInteger(file, e, 0, kMaxLimit), &out->max_tasks);
    } else if (e.key == "max_memory") {
      status = Assign(ReadSize(file, e), &out->max_memory);
    } else if (e.key == "max_lifetime") {
      status = Assign(ReadDuration(file, e), &out->max_lifetime);
    } else if (e.key == "address_space") {
      status = Assign(ReadSize(file, e), &out->address_space);
    } else if (e.key == "cpu_time") {
      status = Assign(ReadDuration(file, e), &out->cpu_time);
      if (status.ok() && out->cpu_time.count() % 1000 != 0)
        status = ErrorAt(file, e.value_mark, e.path,
                         "must be whole seconds (RLIMIT_CPU counts seconds), got " +
                             FormatDuration(out->cpu_time));
    } else if (e.key == "open_files") {
      status = Assign(ReadInteger(file, e, 0, kMaxLimit), &out->open_files);
    } else if (e.key == "max_processes") {
      status = Assign(ReadInteger(file, e, 0, kMaxLimit), &out->max_processes);
    } else if (e.key == "no_new_privs") {
      no_new_privs_entry = &e;
      status = Assign(ReadBool(file, e), &out->no_new_privs);
    } else if (e.key == "user") {
      status = Assign(ReadString(file, e), &out->user);
    } else if (e.key == "syscall_filter") {
      status = AssignEnum(file, e, &ParseSyscallFilter, &out->syscall_filter);
      if (status.ok() && out->syscall_filter != SyscallFilter::kNone) filter_entry = &e;
    } else if (e.key == "syscall_deny") {
      status = ParseSyscallDeny(file, e, &out->syscall_deny);
      if (status.ok() && !out->syscall_deny.empty() && filter_entry == nullptr) filter_entry = &e;
    } else if (e.key == "syscall_action") {
      status = AssignEnum(file, e, &ParseSyscallAction, &out->syscall_action);
    } else if (e.key == "crash_loop") {
      status = ParseCrashLoopBlock(file, e, &out->crash_loop);
    }
    if (!status.ok()) return status;
  }
  if (filter_entry != nullptr) {
    if (SyscallFilterArch().empty()) {
      utsname u{};
      uname(&u);
      return ErrorAt(file, filter_entry->key_mark, filter_entry->path,
                     std::string("syscall filters are built for x86_64 and aarch64 only; this "
                                 "machine is ") +
                         u.machine);
    }
    if (!out->no_new_privs) {
      // Without no_new_privs the kernel lets only CAP_SYS_ADMIN install a
      // filter, which a child that gave up root (user:) no longer has.
      return ErrorAt(file, no_new_privs_entry->value_mark, no_new_privs_entry->path,
                     "must be true with a syscall filter (" + filter_entry->path +
                         " at " + ToSourceMark(file, filter_entry->key_mark).ToString() +
                         "): the kernel installs a filter only under no_new_privs");
    }
  }
  return Status::Ok();
}

// A queue's `<backend type>:` block (`rabbitmq:`), parsed by the backend type
// that registered the key. Whether the queue's backend is of that type is
// checked once every file was read.
Status ParseQueueBackendBlock(const YamlFile& file, const MappingEntry& e, QueueBackendBlock* out) {
  const BackendExtension* type = nullptr;
  for (const BackendExtension& b : ExtensionRegistry::Global().backends()) {
    if (b.queue_key == e.key) type = &b;
  }
  if (type == nullptr || !type->parse_queue) {
    return UnexpectedKey(e);
  }
  if (!out->type.empty()) {
    return ErrorAt(file, e.key_mark, e.path,
                   "a queue has the block of its backend's type only (it also has " + out->type +
                       " at " + out->mark.ToString() + ")");
  }
  Result<std::shared_ptr<const BackendQueueOptions>> options = type->parse_queue(file, e);
  if (!options.ok()) return options.status();
  out->type = type->type;
  out->options = std::move(*options);
  out->mark = ToSourceMark(file, e.key_mark);
  return Status::Ok();
}

// Builds a Config from the main file and the included files, then checks it
// as a whole.
class ConfigBuilder {
 public:
  explicit ConfigBuilder(Config* config) : config_(config) {}

  Status ParseFile(const std::string& text, const YamlFile& file, bool is_main);
  Status ParseIncludedFiles();
  Status Finish();

 private:
  using SectionParser = Status (ConfigBuilder::*)(const YamlFile&, const MappingEntry&);

  Status ParseSection(const YamlFile& file, const MappingEntry& section, std::string_view kind,
                      SectionParser parse);
  Status ParseDaemon(const YamlFile& file, const MappingEntry& section);
  Status ParsePlugin(const YamlFile& file, const MappingEntry& item);
  Status ParseBackend(const YamlFile& file, const MappingEntry& item);
  Status ParseQueue(const YamlFile& file, const MappingEntry& item);
  Status ParseRetryPolicy(const YamlFile& file, const MappingEntry& item);
  Status ParseRateLimit(const YamlFile& file, const MappingEntry& item);
  Status CheckReference(const QueueConfig& queue, std::string_view kind, const std::string& name,
                        const std::vector<std::string_view>& defined) const;

  Config* config_;
  // Where each plugin, backend, queue and retry policy was defined, by
  // "kind/name", to report a name defined in two files.
  std::map<std::string, SourceMark> defined_at_;
  std::map<std::string, std::string> plugin_file_dirs_;  // by plugin name
  SourceMark include_dir_mark_;
};

Status ConfigBuilder::ParseFile(const std::string& text, const YamlFile& file, bool is_main) {
  Result<YAML::Node> root = ParseYamlDocument(text, file);
  if (!root.ok()) return root.status();
  Result<std::vector<MappingEntry>> sections =
      ReadMapping(file, *root, YAML::Mark(), "", kTopLevelKeys);
  if (!sections.ok()) return sections.status();
  for (const MappingEntry& section : *sections) {
    Status status;
    if (section.key == "daemon") {
      if (!is_main) {
        return ErrorAt(
            file, section.key_mark, section.path,
            "the daemon section is only allowed in the main config file " + config_->file);
      }
      status = ParseDaemon(file, section);
    } else if (section.key == "plugins") {
      status = ParseSection(file, section, "plugin", &ConfigBuilder::ParsePlugin);
    } else if (section.key == "backends") {
      status = ParseSection(file, section, "backend", &ConfigBuilder::ParseBackend);
    } else if (section.key == "queues") {
      config_->declares_queues = true;
      status = ParseSection(file, section, "queue", &ConfigBuilder::ParseQueue);
    } else if (section.key == "rate_limits") {
      status = ParseSection(file, section, "rate limit", &ConfigBuilder::ParseRateLimit);
    } else if (section.key == "retry_policies") {
      status = ParseSection(file, section, "retry policy", &ConfigBuilder::ParseRetryPolicy);
    } else {
      return UnexpectedKey(section);
    }
    if (!status.ok()) return status;
  }
  return Status::Ok();
}

Status ConfigBuilder::ParseSection(const YamlFile& file, const MappingEntry& section,
                                   std::string_view kind, SectionParser parse) {
  Result<std::vector<MappingEntry>> items =
      ReadMapping(file, section.value, section.value_mark, section.path, {});
  if (!items.ok()) return items.status();
  for (const MappingEntry& item : *items) {
    if (!IsValidName(item.key)) {
      return ErrorAt(file, item.key_mark, item.path,
                     "invalid " + std::string(kind) +
                         " name: use letters, digits, '_', '-', '.' and ':', starting with a "
                         "letter or digit");
    }
    SourceMark mark = ToSourceMark(file, item.key_mark);
    auto [previous, inserted] = defined_at_.emplace(std::string(kind) + "/" + item.key, mark);
    if (!inserted) {
      return ErrorAt(mark, item.path,
                     std::string(kind) + " \"" + item.key + "\" is already defined at " +
                         previous->second.ToString());
    }
    Status status = (this->*parse)(file, item);
    if (!status.ok()) return status;
  }
  return Status::Ok();
}

// `daemon.admin` (daemon/app/admin/). An empty `listen` leaves it off.
Status ParseAdmin(const YamlFile& file, const MappingEntry& section, AdminConfig* admin) {
  Result<std::vector<MappingEntry>> entries =
      ReadMapping(file, section.value, section.value_mark, section.path, kAdminKeys);
  if (!entries.ok()) return entries.status();
  for (const MappingEntry& e : *entries) {
    if (e.key == "request_timeout") {
      Result<Duration> d = ReadDuration(file, e);
      if (!d.ok()) return d.status();
      if (*d < kMinAdminRequestTimeout)
        return ErrorAt(file, e.value_mark, e.path, "must be at least 100ms");
      admin->request_timeout = *d;
      continue;
    }
    if (e.key == "read_only") {
      Result<bool> b = ReadBool(file, e);
      if (!b.ok()) return b.status();
      admin->read_only = *b;
      continue;
    }
    if (e.key == "depth_interval") {
      Result<Duration> d = ReadDuration(file, e);
      if (!d.ok()) return d.status();
      if (*d < kMinDepthInterval)
        return ErrorAt(file, e.value_mark, e.path, "must be at least 100ms");
      admin->depth_interval = *d;
      continue;
    }
    Result<std::string> text = ReadString(file, e);
    if (!text.ok()) return text.status();
    if (e.key == "listen") {
      if (!text->empty()) {
        Result<ListenAddress> address = ParseListenAddress(*text);
        if (!address.ok()) return ErrorAt(file, e.value_mark, e.path, address.status().message());
      }
      admin->listen = *text;
    } else if (e.key == "token_file") {
      admin->token_file = text->empty() ? "" : ResolvePath(file.dir, *text);
    } else {
      return UnexpectedKey(e);
    }
  }
  return Status::Ok();
}

Status ConfigBuilder::ParseDaemon(const YamlFile& file, const MappingEntry& section) {
  Result<std::vector<MappingEntry>> entries =
      ReadMapping(file, section.value, section.value_mark, section.path, kDaemonKeys);
  if (!entries.ok()) return entries.status();
  DaemonConfig& daemon = config_->daemon;
  for (const MappingEntry& e : *entries) {
    Status status;
    if (e.key == "log_level") {
      status = AssignEnum(file, e, &ParseLogLevel, &daemon.log_level);
    } else if (e.key == "worker_threads") {
      status = Assign(ReadInteger(file, e, 0, kMaxWorkerThreads), &daemon.worker_threads);
    } else if (e.key == "shutdown_timeout") {
      status = Assign(ReadDuration(file, e), &daemon.shutdown_timeout);
    } else if (e.key == "long_job_warning") {
      status = Assign(ReadDuration(file, e), &daemon.long_job_warning);
      if (status.ok() && daemon.long_job_warning < Duration::zero())
        return ErrorAt(file, e.value_mark, e.path, "must be 0 (off) or positive");
    } else if (e.key == "liveness_timeout") {
      status = Assign(ReadDuration(file, e), &daemon.liveness_timeout);
      if (status.ok() && daemon.liveness_timeout != Duration::zero() &&
          daemon.liveness_timeout < kMinLivenessTimeout) {
        return ErrorAt(file, e.value_mark, e.path, "must be 0 (derived) or at least 2s");
      }
    } else if (e.key == "admin") {
      status = ParseAdmin(file, e, &daemon.admin);
    } else if (e.key == "state_dir" || e.key == "plugin_dir" || e.key == "include_dir") {
      // A directory: plugin_dir and include_dir may be "" (unset).
      Result<std::string> dir =
          e.key == "state_dir" ? ReadNonEmptyString(file, e) : ReadString(file, e);
      if (!dir.ok()) return dir.status();
      std::string resolved = dir->empty() ? "" : ResolvePath(file.dir, *dir);
      if (e.key == "state_dir") {
        daemon.state_dir = resolved;
      } else if (e.key == "plugin_dir") {
        daemon.plugin_dir = resolved;
      } else {
        daemon.include_dir = resolved;
        include_dir_mark_ = ToSourceMark(file, e.value_mark);
      }
    } else {
      return UnexpectedKey(e);
    }
    if (!status.ok()) return status;
  }
  return Status::Ok();
}

Status ConfigBuilder::ParsePlugin(const YamlFile& file, const MappingEntry& item) {
  Result<std::vector<MappingEntry>> entries =
      ReadMapping(file, item.value, item.value_mark, item.path, kPluginKeys);
  if (!entries.ok()) return entries.status();
  PluginConfig plugin;
  plugin.name = item.key;
  plugin.mark = ToSourceMark(file, item.key_mark);
  plugin.config_json = "{}";
  plugin.config_mark = plugin.mark;
  for (const MappingEntry& e : *entries) {
    Status status;
    if (e.key == "path") {
      plugin.path_mark = ToSourceMark(file, e.value_mark);
      status = Assign(ReadNonEmptyString(file, e), &plugin.path);
    } else if (e.key == "config") {
      plugin.config_mark = ToSourceMark(file, e.value_mark);
      status = Assign(PluginConfigToJson(file, e, &plugin.config_marks), &plugin.config_json);
    } else {
      return UnexpectedKey(e);
    }
    if (!status.ok()) return status;
  }
  if (plugin.path.empty()) return ErrorAt(plugin.mark, item.path, "missing required key \"path\"");
  plugin_file_dirs_[plugin.name] = file.dir;
  config_->plugins.push_back(std::move(plugin));
  return Status::Ok();
}

Status ConfigBuilder::ParseBackend(const YamlFile& file, const MappingEntry& item) {
  Result<std::vector<MappingEntry>> entries =
      ReadMapping(file, item.value, item.value_mark, item.path, {});
  if (!entries.ok()) return entries.status();
  BackendConfig backend;
  backend.name = item.key;
  backend.mark = ToSourceMark(file, item.key_mark);
  const ExtensionRegistry& registry = ExtensionRegistry::Global();
  std::string known_types = "known types: " + Join(registry.BackendTypes());
  auto type_entry = std::find_if(entries->begin(), entries->end(),
                                 [](const MappingEntry& e) { return e.key == "type"; });
  if (type_entry == entries->end()) {
    return ErrorAt(backend.mark, item.path, "missing required key \"type\" (" + known_types + ")");
  }
  Status status = Assign(ReadNonEmptyString(file, *type_entry), &backend.type);
  if (!status.ok()) return status;
  const BackendExtension* type = registry.FindBackend(backend.type);
  if (type == nullptr) {
    return ErrorAt(file, type_entry->value_mark, type_entry->path,
                   "unknown backend type \"" + backend.type + "\" (" + known_types + ")");
  }
  for (const MappingEntry& e : *entries) {
    if (std::find(type->keys.begin(), type->keys.end(), e.key) == type->keys.end()) {
      for (const BackendExtension& other : registry.backends()) {
        if (std::find(other.keys.begin(), other.keys.end(), e.key) != other.keys.end()) {
          return ErrorAt(file, e.key_mark, e.path,
                         "not a key of a backend of type " + backend.type +
                             " (it belongs to type " + other.type + ")");
        }
      }
      return UnknownKeyError(file, e, type->keys);
    }
  }
  Result<std::shared_ptr<const BackendOptions>> options = type->parse(file, item, *entries);
  if (!options.ok()) return options.status();
  backend.options = std::move(*options);
  config_->backends.push_back(std::move(backend));
  return Status::Ok();
}

Status ConfigBuilder::ParseQueue(const YamlFile& file, const MappingEntry& item) {
  // The queue's own keys, then each backend type's block (`rabbitmq:`).
  const ExtensionRegistry& registry = ExtensionRegistry::Global();
  std::vector<std::string_view> keys(std::begin(kQueueKeys), std::end(kQueueKeys));
  for (const BackendExtension& b : registry.backends()) {
    if (!b.queue_key.empty()) keys.push_back(b.queue_key);
  }
  Result<std::vector<MappingEntry>> entries =
      ReadMapping(file, item.value, item.value_mark, item.path, keys);
  if (!entries.ok()) return entries.status();
  QueueConfig queue;
  queue.name = item.key;
  queue.source = item.key;
  queue.mark = ToSourceMark(file, item.key_mark);
  const MappingEntry* prefetch_entry = nullptr;
  const MappingEntry* process_entry = nullptr;
  std::optional<MappingEntry> processes_entry;
  const MappingEntry* retry_stuck_entry = nullptr;
  for (const MappingEntry& e : *entries) {
    Status status;
    if (e.key == "backend") {
      status = Assign(ReadNonEmptyString(file, e), &queue.backend);
    } else if (e.key == "source") {
      status = Assign(ReadNonEmptyString(file, e), &queue.source);
    } else if (e.key == "plugin") {
      status = Assign(ReadNonEmptyString(file, e), &queue.plugin);
    } else if (e.key == "handler") {
      status = Assign(ReadString(file, e), &queue.handler);
    } else if (e.key == "concurrency") {
      status = Assign(ReadInteger(file, e, 1, kMaxConcurrency), &queue.concurrency);
    } else if (e.key == "prefetch") {
      prefetch_entry = &e;
      status = Assign(ReadInteger(file, e, 0, 2 * kMaxConcurrency), &queue.prefetch);
    } else if (e.key == "batch_size") {
      status = Assign(ReadInteger(file, e, 1, kMaxBatchSize), &queue.batch_size);
    } else if (e.key == "flush_interval") {
      status = AssignPositiveDuration(file, e, &queue.flush_interval);
      if (status.ok() && queue.flush_interval > kMaxFlushInterval) {
        status = ErrorAt(file, e.value_mark, e.path,
                         "must be at most " + FormatDuration(kMaxFlushInterval) + ", got " +
                             FormatDuration(queue.flush_interval));
      }
    } else if (e.key == "pool") {
      Result<std::string> pool = ReadString(file, e);
      status = pool.status();
      if (status.ok() && *pool != "queue" && *pool != "cpu")
        status = ErrorAt(file, e.value_mark, e.path,
                         "must be queue (the queue's own threads, one per unit of concurrency) "
                         "or cpu (the daemon's CPU-sized pool), got \"" + *pool + "\"");
      if (status.ok()) queue.cpu_pool = *pool == "cpu";
    } else if (e.key == "isolation") {
      Result<std::string> mode = ReadString(file, e);
      status = mode.status();
      if (status.ok() && *mode != "in_process" && *mode != "process")
        status = ErrorAt(file, e.value_mark, e.path,
                         "must be in_process (handlers run inside the daemon) or process (in "
                         "child processes: a crash or a hang costs one message), got \"" +
                             *mode + "\"");
      if (status.ok()) queue.process_isolation = *mode == "process";
    } else if (e.key == "process") {
      process_entry = &e;
      status = ParseProcessBlock(file, e, &queue.process, &processes_entry);
    } else if (e.key == "replace_stuck") {
      status = Assign(ReadInteger(file, e, 0, kMaxConcurrency), &queue.replace_stuck);
    } else if (e.key == "retry_stuck") {
      retry_stuck_entry = &e;
      Result<std::string> when = ReadString(file, e);
      status = when.status();
      if (status.ok() && *when != "after_return" && *when != "at_once")
        status = ErrorAt(file, e.value_mark, e.path,
                         "must be after_return (retry a timed-out message once its handler "
                         "returns) or at_once (retry it while the stuck call may still run), "
                         "got \"" + *when + "\"");
      if (status.ok()) queue.retry_stuck_at_once = *when == "at_once";
    } else if (e.key == "timeout") {
      status = Assign(ReadDuration(file, e), &queue.timeout);
    } else if (e.key == "handler_timeouts") {
      status = ParseHandlerTimeouts(file, e, &queue.handler_timeouts);
    } else if (e.key == "middleware") {
      status = ParseMiddlewareList(file, e, &queue.middleware);
    } else if (e.key == "retry_policy") {
      status = Assign(ReadNonEmptyString(file, e), &queue.retry_policy);
    } else {
      status = ParseQueueBackendBlock(file, e, &queue.backend_block);  // refuses other keys
    }
    if (!status.ok()) return status;
  }
  for (std::string_view required : {"backend", "plugin"}) {
    const std::string& value = required == "backend" ? queue.backend : queue.plugin;
    if (value.empty()) {
      return ErrorAt(queue.mark, item.path,
                     "missing required key \"" + std::string(required) + "\"");
    }
  }
  if (queue.prefetch == 0) {
    queue.prefetch = std::max(2 * queue.concurrency, queue.batch_size);
  } else if (queue.prefetch < queue.concurrency) {
    return ErrorAt(file, prefetch_entry->value_mark, prefetch_entry->path,
                   "must be at least concurrency (" + std::to_string(queue.concurrency) +
                       "), got " + std::to_string(queue.prefetch));
  } else if (queue.prefetch < queue.batch_size) {
    // A batch can never fill beyond what the queue may hold.
    return ErrorAt(file, prefetch_entry->value_mark, prefetch_entry->path,
                   "must be at least batch_size (" + std::to_string(queue.batch_size) +
                       "), got " + std::to_string(queue.prefetch));
  }
  if (!queue.process_isolation) {
    if (process_entry != nullptr)
      return ErrorAt(file, process_entry->key_mark, process_entry->path,
                     "applies only with isolation: process");
  } else {
    if (queue.process.processes > queue.concurrency)
      return ErrorAt(file, processes_entry->value_mark, processes_entry->path,
                     "must be at most concurrency (" + std::to_string(queue.concurrency) +
                         "), got " + std::to_string(queue.process.processes));
    if (queue.retry_stuck_at_once)
      return ErrorAt(file, retry_stuck_entry->value_mark, retry_stuck_entry->path,
                     "at_once does not apply with isolation: process (a timed-out message is "
                     "retried once its child stopped it or was killed)");
  }
  config_->queues.push_back(std::move(queue));
  return Status::Ok();
}

Status ConfigBuilder::ParseRetryPolicy(const YamlFile& file, const MappingEntry& item) {
  Result<std::vector<MappingEntry>> entries =
      ReadMapping(file, item.value, item.value_mark, item.path, kRetryPolicyKeys);
  if (!entries.ok()) return entries.status();
  RetryPolicyConfig policy;
  policy.name = item.key;
  policy.mark = ToSourceMark(file, item.key_mark);
  const MappingEntry* initial_entry = nullptr;
  const MappingEntry* max_entry = nullptr;
  for (const MappingEntry& e : *entries) {
    Status status;
    if (e.key == "max_attempts") {
      status = Assign(ReadInteger(file, e, 1, 1000000), &policy.max_attempts);
    } else if (e.key == "backoff") {
      status = AssignEnum(file, e, &ParseBackoff, &policy.backoff);
    } else if (e.key == "initial") {
      initial_entry = &e;
      status = Assign(ReadDuration(file, e), &policy.initial);
    } else if (e.key == "max") {
      max_entry = &e;
      status = Assign(ReadDuration(file, e), &policy.max);
    } else if (e.key == "multiplier") {
      status = Assign(ReadNumber(file, e, 1, HUGE_VAL), &policy.multiplier);
    } else if (e.key == "jitter") {
      status = Assign(ReadNumber(file, e, 0, 1), &policy.jitter);
    } else if (e.key == "full_jitter") {
      status = Assign(ReadBool(file, e), &policy.full_jitter);
    } else {
      return UnexpectedKey(e);
    }
    if (!status.ok()) return status;
  }
  if (policy.initial > policy.max) {
    const MappingEntry* at = max_entry != nullptr ? max_entry : initial_entry;
    return ErrorAt(file, at->value_mark, at->path,
                   "initial (" + FormatDuration(policy.initial) +
                       ") must not be greater than max (" + FormatDuration(policy.max) + ")");
  }
  config_->retry_policies.push_back(std::move(policy));
  return Status::Ok();
}

Status ConfigBuilder::ParseRateLimit(const YamlFile& file, const MappingEntry& item) {
  Result<std::vector<MappingEntry>> entries =
      ReadMapping(file, item.value, item.value_mark, item.path, kRateLimitKeys);
  if (!entries.ok()) return entries.status();
  RateLimitConfig limit;
  limit.name = item.key;
  limit.mark = ToSourceMark(file, item.key_mark);
  bool has_rate = false;
  for (const MappingEntry& e : *entries) {
    has_rate = has_rate || e.key == "rate";
    Status status = ReadTokenBucketKey(file, e, &limit.rate, &limit.burst);
    if (!status.ok()) return status;
  }
  if (!has_rate) return ErrorAt(limit.mark, item.path, "missing required key \"rate\"");
  config_->rate_limits.push_back(std::move(limit));
  return Status::Ok();
}

Status ConfigBuilder::ParseIncludedFiles() {
  const std::string& dir = config_->daemon.include_dir;
  if (dir.empty()) return Status::Ok();
  std::error_code ec;
  std::vector<fs::path> files;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    std::string name = p.filename().string();
    std::error_code entry_ec;
    if (p.extension() != ".yaml" || name[0] == '.' || !it->is_regular_file(entry_ec)) continue;
    // include_dir may be the main file's own directory.
    if (fs::equivalent(p, config_->file, entry_ec)) continue;
    files.push_back(p);
  }
  if (ec) {
    return ErrorAt(include_dir_mark_, "daemon.include_dir",
                   "cannot read directory " + dir + ": " + ec.message());
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& p : files) {
    Result<std::string> text = ReadFileText(p.string());
    if (!text.ok())
      return ErrorAt(include_dir_mark_, "daemon.include_dir", text.status().message());
    Status status = ParseFile(*text, YamlFile{p.string(), dir}, /*is_main=*/false);
    if (!status.ok()) return status;
  }
  return Status::Ok();
}

Status ConfigBuilder::CheckReference(const QueueConfig& queue, std::string_view kind,
                                     const std::string& name,
                                     const std::vector<std::string_view>& defined) const {
  if (std::find(defined.begin(), defined.end(), name) != defined.end()) return Status::Ok();
  std::string hint = DidYouMean(name, defined);
  if (hint.empty()) {
    hint = defined.empty() ? " (no " + std::string(kind) + "s are defined)"
                           : " (defined " + std::string(kind) + "s: " + Join(defined) + ")";
  }
  return ErrorAt(queue.mark, "queues." + queue.name,
                 std::string(kind) + " \"" + name + "\" is not defined" + hint);
}

Status ConfigBuilder::Finish() {
  DaemonConfig& daemon = config_->daemon;
  if (daemon.worker_threads == 0) {
    daemon.worker_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  if (config_->FindRetryPolicy(std::string(kDefaultPolicy)) == nullptr) {
    RetryPolicyConfig policy;  // the struct's defaults are the documented built-in policy
    policy.name = kDefaultPolicy;
    policy.mark.file = config_->file;
    config_->retry_policies.insert(config_->retry_policies.begin(), std::move(policy));
  }
  for (PluginConfig& plugin : config_->plugins) {
    const std::string& base =
        daemon.plugin_dir.empty() ? plugin_file_dirs_[plugin.name] : daemon.plugin_dir;
    plugin.path = ResolvePath(base, plugin.path);
  }
  const ExtensionRegistry& registry = ExtensionRegistry::Global();
  for (const BackendExtension& type : registry.backends()) {
    if (!type.finish) continue;
    if (Status status = type.finish(*config_); !status.ok()) return status;
  }
  std::vector<std::string_view> backends, plugins, policies;
  for (const BackendConfig& b : config_->backends) backends.push_back(b.name);
  for (const PluginConfig& p : config_->plugins) plugins.push_back(p.name);
  for (const RetryPolicyConfig& r : config_->retry_policies) policies.push_back(r.name);
  for (const QueueConfig& queue : config_->queues) {
    for (Status status : {CheckReference(queue, "backend", queue.backend, backends),
                          CheckReference(queue, "plugin", queue.plugin, plugins),
                          CheckReference(queue, "retry policy", queue.retry_policy, policies)}) {
      if (!status.ok()) return status;
    }
  }
  // A queue's backend block belongs to its backend's type.
  for (const QueueConfig& queue : config_->queues) {
    const QueueBackendBlock& block = queue.backend_block;
    const BackendConfig* backend = config_->FindBackend(queue.backend);
    if (block.type.empty() || backend->type == block.type) continue;
    const std::string& key = registry.FindBackend(block.type)->queue_key;
    return ErrorAt(block.mark, "queues." + queue.name + "." + key,
                   "only queues on a " + block.type + " backend have this key (backend \"" +
                       queue.backend + "\" is of type " + backend->type + ")");
  }
  for (const BackendExtension& type : registry.backends()) {
    if (!type.check_queues) continue;
    if (Status status = type.check_queues(*config_); !status.ok()) return status;
  }
  for (const QueueConfig& queue : config_->queues) {
    for (size_t i = 0; i < queue.middleware.size(); ++i) {
      const MiddlewareExtension* type = registry.FindMiddleware(queue.middleware[i].type);
      if (!type->check) continue;
      if (Status status = type->check(*config_, queue, i); !status.ok()) return status;
    }
  }
  return Status::Ok();
}

Result<Config> Parse(const std::string& yaml, const std::string& file_name,
                     const std::string& base_dir) {
  Config config;
  config.file = file_name;
  config.daemon.state_dir = ResolvePath(base_dir, config.daemon.state_dir);
  ConfigBuilder builder(&config);
  try {
    Status status = builder.ParseFile(yaml, YamlFile{file_name, base_dir}, /*is_main=*/true);
    if (status.ok()) status = builder.ParseIncludedFiles();
    if (status.ok()) status = builder.Finish();
    if (!status.ok()) return status;
  } catch (const YAML::Exception& e) {
    // Reading checks every node's type first, so this is a bug, not bad input.
    return Status::Internal(file_name + ": unexpected YAML error: " + e.what());
  }
  return config;
}

}  // namespace

Result<Config> ParseConfigString(const std::string& yaml, const std::string& file_name_for_errors,
                                 const std::string& base_dir) {
  std::error_code ec;
  fs::path dir = fs::absolute(base_dir.empty() ? fs::path(".") : fs::path(base_dir), ec);
  if (ec)
    return Status::InvalidArgument("invalid base directory " + base_dir + ": " + ec.message());
  return Parse(yaml, file_name_for_errors, ResolvePath("/", dir.string()));
}

Result<Config> LoadConfig(const std::string& path) {
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  if (ec) return Status::InvalidArgument("invalid config path " + path + ": " + ec.message());
  std::string file = absolute.lexically_normal().string();
  Result<std::string> text = ReadFileText(file);
  if (!text.ok()) return text.status();
  return Parse(*text, file, fs::path(file).parent_path().string());
}

}  // namespace foxworker
