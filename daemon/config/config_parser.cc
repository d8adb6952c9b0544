#include "daemon/config/config_parser.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "daemon/config/plugin_config_json.h"
#include "daemon/config/units.h"
#include "daemon/config/yaml_reader.h"

namespace foxworker {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kTopLevelKeys[] = {"daemon", "plugins", "backends", "queues",
                                              "retry_policies"};
constexpr std::string_view kDaemonKeys[] = {"log_level",  "worker_threads", "shutdown_timeout",
                                            "plugin_dir", "include_dir",    "state_dir"};
constexpr std::string_view kPluginKeys[] = {"path", "config"};
constexpr std::string_view kQueueKeys[] = {"backend",     "source",   "plugin",  "handler",
                                           "concurrency", "prefetch", "timeout", "retry_policy"};
constexpr std::string_view kRetryPolicyKeys[] = {"max_attempts", "backoff", "initial",    "max",
                                                 "multiplier",   "jitter",  "full_jitter"};
constexpr std::string_view kMemoryBackendKeys[] = {"type", "capacity"};
constexpr std::string_view kLocalBackendKeys[] = {
    "type", "path", "durability", "lease", "poll_interval", "retention", "batch_size"};

struct BackendType {
  std::string_view name;
  std::span<const std::string_view> keys;  // empty: not built into this binary
};
constexpr BackendType kBackendTypes[] = {
    {"local", kLocalBackendKeys},
    {"memory", kMemoryBackendKeys},
    {"rabbitmq", {}},
    {"redis", {}},
};
constexpr std::string_view kBuiltInBackendTypes[] = {"local", "memory"};

constexpr int kMaxConcurrency = 10000;
constexpr int kMaxWorkerThreads = 1024;
constexpr std::string_view kDefaultPolicy = "default";
constexpr std::string_view kLocalDatabaseFile = "foxworker.db";

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

template <typename T, typename U>
Status Assign(Result<U> result, T* out) {
  if (!result.ok()) return result.status();
  *out = static_cast<T>(*result);
  return Status::Ok();
}

template <typename E>
Status AssignEnum(const YamlFile& file, const MappingEntry& entry,
                  Result<E> (*parse)(std::string_view), E* out) {
  Result<std::string> text = ReadString(file, entry);
  if (!text.ok()) return text.status();
  Result<E> value = parse(*text);
  if (!value.ok()) return ErrorAt(file, entry.value_mark, entry.path, value.status().message());
  *out = *value;
  return Status::Ok();
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
      status = ParseSection(file, section, "queue", &ConfigBuilder::ParseQueue);
    } else {
      status = ParseSection(file, section, "retry policy", &ConfigBuilder::ParseRetryPolicy);
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
    } else {
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
      status = Assign(ReadNonEmptyString(file, e), &plugin.path);
    } else {
      plugin.config_mark = ToSourceMark(file, e.value_mark);
      status = Assign(PluginConfigToJson(file, e, &plugin.config_marks), &plugin.config_json);
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
  std::string known_types =
      "known types: " + Join({std::begin(kBuiltInBackendTypes), std::end(kBuiltInBackendTypes)});
  auto type_entry = std::find_if(entries->begin(), entries->end(),
                                 [](const MappingEntry& e) { return e.key == "type"; });
  if (type_entry == entries->end()) {
    return ErrorAt(backend.mark, item.path, "missing required key \"type\" (" + known_types + ")");
  }
  Status status = Assign(ReadNonEmptyString(file, *type_entry), &backend.type);
  if (!status.ok()) return status;
  const BackendType* type = nullptr;
  for (const BackendType& t : kBackendTypes) {
    if (t.name == backend.type) type = &t;
  }
  if (type == nullptr) {
    return ErrorAt(file, type_entry->value_mark, type_entry->path,
                   "unknown backend type \"" + backend.type + "\" (" + known_types + ")");
  }
  if (type->keys.empty()) {
    return ErrorAt(file, type_entry->value_mark, type_entry->path,
                   "backend type \"" + backend.type + "\" is not built into this foxworkerd");
  }
  for (const MappingEntry& e : *entries) {
    if (std::find(type->keys.begin(), type->keys.end(), e.key) == type->keys.end()) {
      for (const BackendType& other : kBackendTypes) {
        if (std::find(other.keys.begin(), other.keys.end(), e.key) != other.keys.end()) {
          return ErrorAt(file, e.key_mark, e.path,
                         "not a key of a backend of type " + backend.type +
                             " (it belongs to type " + std::string(other.name) + ")");
        }
      }
      return UnknownKeyError(file, e, type->keys);
    }
    LocalBackendOptions& local = backend.local;
    if (e.key == "type") {
      continue;
    } else if (e.key == "capacity") {
      status = Assign(ReadInteger(file, e, 0, INT64_MAX), &backend.memory.capacity);
    } else if (e.key == "path") {
      status = Assign(ReadNonEmptyString(file, e), &local.path);
    } else if (e.key == "durability") {
      status = AssignEnum(file, e, &ParseDurability, &local.durability);
    } else if (e.key == "batch_size") {
      status = Assign(ReadInteger(file, e, 1, 100000), &local.batch_size);
    } else if (e.key == "retention") {
      status = Assign(ReadDuration(file, e), &local.retention);
    } else {
      // lease and poll_interval: a zero would spin or expire every claim.
      Duration* target = e.key == "lease" ? &local.lease : &local.poll_interval;
      status = Assign(ReadDuration(file, e), target);
      if (status.ok() && *target == Duration::zero()) {
        return ErrorAt(file, e.value_mark, e.path, "must be greater than zero");
      }
    }
    if (!status.ok()) return status;
  }
  config_->backends.push_back(std::move(backend));
  return Status::Ok();
}

Status ConfigBuilder::ParseQueue(const YamlFile& file, const MappingEntry& item) {
  Result<std::vector<MappingEntry>> entries =
      ReadMapping(file, item.value, item.value_mark, item.path, kQueueKeys);
  if (!entries.ok()) return entries.status();
  QueueConfig queue;
  queue.name = item.key;
  queue.source = item.key;
  queue.mark = ToSourceMark(file, item.key_mark);
  const MappingEntry* prefetch_entry = nullptr;
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
    } else if (e.key == "timeout") {
      status = Assign(ReadDuration(file, e), &queue.timeout);
    } else {
      status = Assign(ReadNonEmptyString(file, e), &queue.retry_policy);
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
    queue.prefetch = 2 * queue.concurrency;
  } else if (queue.prefetch < queue.concurrency) {
    return ErrorAt(file, prefetch_entry->value_mark, prefetch_entry->path,
                   "must be at least concurrency (" + std::to_string(queue.concurrency) +
                       "), got " + std::to_string(queue.prefetch));
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
    } else {
      status = Assign(ReadBool(file, e), &policy.full_jitter);
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
  std::map<std::string, const BackendConfig*> local_paths;
  for (BackendConfig& backend : config_->backends) {
    if (backend.type != "local") continue;
    std::string& path = backend.local.path;
    path = ResolvePath(daemon.state_dir, path.empty() ? std::string(kLocalDatabaseFile) : path);
    auto [other, inserted] = local_paths.emplace(path, &backend);
    if (!inserted) {
      return ErrorAt(backend.mark, "backends." + backend.name,
                     "database " + path + " is already used by backend \"" + other->second->name +
                         "\" (" + other->second->mark.ToString() + ")");
    }
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
