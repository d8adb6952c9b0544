// Loading handler plugins: dlopen, the ABI checks, init, and the per-queue
// instances a plugin's instance model calls for.
#ifndef FOXWORKER_PLUGINS_PLUGIN_LOADER_H_
#define FOXWORKER_PLUGINS_PLUGIN_LOADER_H_

#include <foxworker/plugin.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/base/status.h"
#include "daemon/plugins/host_api.h"

namespace foxworker {

// Checks that `path` exists, is a regular file, and that neither it nor its
// directory is writable by users other than its owner (root or us).
Status CheckPluginFileSafety(const std::string& path);

// The host's copy of a plugin's magic block and config schema, read with the
// plugin's struct sizes and strides (so a plugin built with a newer SDK whose
// structs grew reads right). `info.config_schema` points at `schema`, whose
// stride is the host's sizeof; fields the plugin's SDK did not have are zero.
struct PluginInfo {
  foxw_plugin_info info;
  std::vector<foxw_config_key> schema;
};

// Reads `count` elements of `stride` bytes each from a plugin's array into
// zero-filled host structs, copying min(stride, sizeof(T)) bytes of each.
// The caller checked stride >= the struct's 1.0 size.
template <typename T>
std::vector<T> CopyPluginArray(const void* base, size_t count, size_t stride) {
  std::vector<T> out(count);
  const size_t n = stride < sizeof(T) ? stride : sizeof(T);
  for (size_t i = 0; i < count; ++i) {
    std::memset(static_cast<void*>(&out[i]), 0, sizeof(T));
    std::memcpy(static_cast<void*>(&out[i]), static_cast<const char*>(base) + i * stride, n);
  }
  return out;
}

// Checks the file (CheckPluginFileSafety, then its ELF header and exports,
// before any of its code runs), opens it and reads its magic block without
// running init. The handle is never closed (no dlclose in production);
// `handle_out` may be null.
Result<std::unique_ptr<PluginInfo>> ReadPluginInfo(const std::string& path,
                                                   void** handle_out = nullptr);

// Validates `plugin.config_json` against the plugin's declared schema
// (unknown keys, missing required keys, wrong types), naming the config file
// location of the offending key, and returns the JSON the plugin's create()
// receives: defaults filled in, durations in milliseconds. Without a schema
// the config is handed over unchanged.
Result<std::string> ApplyPluginSchema(const PluginConfig& plugin, const foxw_plugin_info& info);

// What identifies a plugin file's contents on disk: a rebuilt or replaced
// .so at the same path has a different inode, size or mtime.
struct PluginFileId {
  uint64_t dev = 0;
  uint64_t ino = 0;
  int64_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const PluginFileId&) const = default;
};
Result<PluginFileId> StatPluginFile(const std::string& path);

// One initialised plugin.
class LoadedPlugin {
 public:
  ~LoadedPlugin();
  LoadedPlugin(const LoadedPlugin&) = delete;
  LoadedPlugin& operator=(const LoadedPlugin&) = delete;

  const std::string& name() const { return config_.name; }
  const std::string& path() const { return config_.path; }
  const PluginConfig& config() const { return config_; }
  // Host copies, read with the plugin's sizes (see PluginInfo).
  const foxw_plugin_info& info() const { return info_->info; }
  const foxw_plugin_v1& def() const { return def_; }
  foxw_plugin_ctx* ctx() const { return ctx_.get(); }
  uint32_t instance_model() const { return def_.instance_model; }
  // Host copies of the plugin's handler entries, in its order.
  const std::vector<const foxw_handler_def*>& handlers() const { return handlers_; }
  // The handler for a message type: exact name first, then "*"; null if none.
  const foxw_handler_def* FindHandler(std::string_view type) const;
  // "a, b, *" for messages.
  std::string HandlerNames() const;

  // The file as it was when it was loaded.
  const PluginFileId& file_id() const { return file_id_; }

  // Replaces the JSON that instances created from now on receive, and that
  // typed config reads inside their create() see (config reload; control
  // thread). Instances that exist keep theirs; running handlers' reads see
  // it after CommitConfig().
  void SetConfigJson(std::string json);
  void CommitConfig();

  // Creates one instance from the plugin's config (control thread).
  Result<void*> CreateInstance() const;
  void DestroyInstance(void* instance) const;

  // Calls the plugin's shutdown hook once. REQUIRES: every instance destroyed.
  void Shutdown();

  // Loads, checks and initialises. Errors name the path and the reason.
  static Result<std::unique_ptr<LoadedPlugin>> Load(const PluginConfig& config);

 private:
  LoadedPlugin() = default;
  PluginConfig config_;
  void* handle_ = nullptr;
  std::unique_ptr<PluginInfo> info_;
  foxw_plugin_v1 def_{};
  std::unique_ptr<foxw_plugin_ctx> ctx_;
  std::vector<foxw_handler_def> handler_defs_;
  std::vector<const foxw_handler_def*> handlers_;  // into handler_defs_
  PluginFileId file_id_;
  bool shut_down_ = false;
};

// The instances one queue uses, per the plugin's instance model.
// Safe for concurrent use.
class InstancePool {
 public:
  // `concurrency` is the queue's; `threads` the shared CPU pool's when the
  // queue runs there, 0 when it runs on its own threads (one per unit of
  // concurrency).
  static Result<std::unique_ptr<InstancePool>> Create(const LoadedPlugin& plugin, int concurrency,
                                                      int threads);
  ~InstancePool();  // Destroys every instance; REQUIRES: none in use.

  // An instance for the calling executor thread; Release() it after use.
  void* Acquire();
  void Release(void* instance);

  // Instances made ahead of an in-place change of the queue's concurrency
  // (PER_SLOT: the ones the new limit adds; other models: none), so that a
  // failing create() fails the reload before anything changed. Destroys
  // them unless handed to Resize(). Move-only.
  class Growth {
   public:
    Growth() = default;
    Growth(Growth&& o) noexcept;
    Growth& operator=(Growth&& o) noexcept;
    ~Growth();
    int concurrency() const { return concurrency_; }
    size_t size() const { return instances_.size(); }

   private:
    friend class InstancePool;
    const LoadedPlugin* plugin_ = nullptr;
    std::vector<void*> instances_;
    int concurrency_ = 0;
  };
  // Creates what raising the limit to `concurrency` needs (control thread).
  Result<Growth> PrepareResize(int concurrency);
  // Commits a concurrency change: adds the prepared instances. Lowering it
  // destroys nothing at once; Trim() does that as instances fall idle.
  void Resize(Growth growth);
  // PER_SLOT: destroys idle instances beyond max(concurrency, `workers`),
  // where `workers` is the number of the consumer's drain tasks now (each
  // may hold one instance, and no more tasks than the concurrency start
  // after this). Control thread.
  void Trim(int workers);
  // Instances that exist now.
  size_t size() const;

 private:
  explicit InstancePool(const LoadedPlugin& plugin) : plugin_(plugin) {}
  const LoadedPlugin& plugin_;
  mutable std::mutex mu_;
  // Every instance. Changes only in the PER_SLOT model and for
  // per_thread_grows_, under mu_ (Acquire of the SHARED model reads it
  // without the lock: it never changes there).
  std::vector<void*> all_;
  std::vector<void*> free_;  // GUARDED_BY(mu_); PER_SLOT only
  int target_ = 0;           // GUARDED_BY(mu_); PER_SLOT: the queue's concurrency
  // PER_THREAD on the queue's own threads: one instance per unit of
  // concurrency, grown like PER_SLOT (never trimmed: a thread index may come
  // back).
  bool per_thread_grows_ = false;
};

}  // namespace foxworker

#endif  // FOXWORKER_PLUGINS_PLUGIN_LOADER_H_
