#include "daemon/plugins/plugin_loader.h"

#include <glog/logging.h>

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <utility>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "daemon/base/units.h"
#include "daemon/core/executor.h"
#include "daemon/plugins/elf_check.h"

namespace foxworker {
namespace {

constexpr size_t kErrCap = 1024;
// More handlers or config keys than this, or entries further apart, is
// garbage, not a plugin.
constexpr size_t kMaxArrayLength = 4096;
constexpr size_t kMaxElementSize = 4096;

std::string PathError(const std::string& path, const std::string& why) {
  return "plugin " + path + ": " + why;
}

Status CheckNotWritableByOthers(const std::string& what, const std::string& path,
                                const struct stat& st) {
  if (st.st_mode & S_IWOTH)
    return Status::InvalidArgument(PathError(path, what + " is writable by every user (mode " +
                                                       [&] {
                                                         char b[8];
                                                         snprintf(b, sizeof b, "%04o",
                                                                  st.st_mode & 07777);
                                                         return std::string(b);
                                                       }() +
                                                       "); refusing to load it"));
  if (st.st_uid != 0 && st.st_uid != geteuid())
    return Status::InvalidArgument(PathError(
        path, what + " is owned by uid " + std::to_string(st.st_uid) +
                  ", neither root nor the daemon's user; refusing to load it"));
  return Status::Ok();
}

bool ValidPluginName(const char* name) {
  if (name == nullptr || *name == '\0') return false;
  for (const char* p = name; *p; ++p)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) return false;
  return true;
}

const char* ConfigTypeName(int32_t type) {
  switch (type) {
    case FOXW_CONFIG_STRING: return "a string";
    case FOXW_CONFIG_INT: return "an integer";
    case FOXW_CONFIG_DOUBLE: return "a number";
    case FOXW_CONFIG_BOOL: return "a boolean";
    case FOXW_CONFIG_DURATION: return "a duration like 30s";
    case FOXW_CONFIG_STRING_LIST: return "a list of strings";
    case FOXW_CONFIG_MAP: return "a mapping of strings";
  }
  return "an unknown type";
}

// Converts `v` in place to the schema type; false when it cannot be.
bool CoerceToType(int32_t type, rapidjson::Value& v, rapidjson::Document::AllocatorType& alloc,
                  std::string* why) {
  switch (type) {
    case FOXW_CONFIG_STRING:
      if (v.IsString()) return true;
      if (v.IsNumber() || v.IsBool()) {
        rapidjson::StringBuffer sb;
        rapidjson::Writer<rapidjson::StringBuffer> w(sb);
        v.Accept(w);
        v.SetString(sb.GetString(), static_cast<rapidjson::SizeType>(sb.GetSize()), alloc);
        return true;
      }
      return false;
    case FOXW_CONFIG_INT:
      if (v.IsInt64()) return true;
      if (v.IsString()) {
        char* end = nullptr;
        errno = 0;
        long long n = strtoll(v.GetString(), &end, 10);
        if (errno == 0 && end && *end == '\0' && end != v.GetString()) {
          v.SetInt64(n);
          return true;
        }
      }
      return false;
    case FOXW_CONFIG_DOUBLE:
      if (v.IsNumber()) {
        v.SetDouble(v.GetDouble());
        return true;
      }
      if (v.IsString()) {  // YAML text, and every schema default
        char* end = nullptr;
        errno = 0;
        double d = strtod(v.GetString(), &end);
        if (errno == 0 && end != v.GetString() && *end == '\0' && std::isfinite(d)) {
          v.SetDouble(d);
          return true;
        }
      }
      return false;
    case FOXW_CONFIG_BOOL:
      if (v.IsBool()) return true;
      if (v.IsString()) {
        std::string s = v.GetString();
        if (s == "true" || s == "yes" || s == "on") { v.SetBool(true); return true; }
        if (s == "false" || s == "no" || s == "off") { v.SetBool(false); return true; }
      }
      return false;
    case FOXW_CONFIG_DURATION: {
      if (v.IsInt64() && v.GetInt64() == 0) return true;
      if (!v.IsString()) return false;
      auto d = ParseDuration(v.GetString());
      if (!d.ok()) {
        *why = d.status().message();
        return false;
      }
      v.SetInt64(d->count());
      return true;
    }
    case FOXW_CONFIG_STRING_LIST:
      if (!v.IsArray()) return false;
      for (auto& e : v.GetArray())
        if (!CoerceToType(FOXW_CONFIG_STRING, e, alloc, why)) return false;
      return true;
    case FOXW_CONFIG_MAP:
      if (!v.IsObject()) return false;
      // By index: comparing mutable rapidjson member iterators is ambiguous
      // in C++20 (clang's -Wambiguous-reversed-operator).
      for (rapidjson::SizeType i = 0; i < v.MemberCount(); ++i)
        if (!CoerceToType(FOXW_CONFIG_STRING, v.MemberBegin()[i].value, alloc, why)) return false;
      return true;
  }
  return false;
}

}  // namespace

Status CheckPluginFileSafety(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0)
    return Status::NotFound(PathError(path, std::string("cannot open: ") + strerror(errno)));
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(PathError(path, "not a regular file"));
  Status s = CheckNotWritableByOthers("the file", path, st);
  if (!s.ok()) return s;
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  struct stat dst;
  if (stat(dir.c_str(), &dst) != 0)
    return Status::NotFound(PathError(path, "cannot stat its directory " + dir));
  if ((dst.st_mode & S_IWOTH) && !(dst.st_mode & S_ISVTX))
    return CheckNotWritableByOthers("its directory " + dir, path, dst);
  if (dst.st_uid != 0 && dst.st_uid != geteuid())
    return CheckNotWritableByOthers("its directory " + dir, path, dst);
  return Status::Ok();
}

Result<std::unique_ptr<PluginInfo>> ReadPluginInfo(const std::string& path, void** handle_out) {
  Status safe = CheckPluginFileSafety(path);
  if (!safe.ok()) return safe;
  // Before dlopen, which runs the file's constructors: a file that is not a
  // plugin for this machine is refused without running any of its code.
  Status elf = CheckElfPlugin(path, {FOXW_MAGIC_SYMBOL, FOXW_INIT_V1_SYMBOL});
  if (!elf.ok()) return Status::InvalidArgument(PathError(path, elf.message()));
  // RTLD_NOW: unresolved symbols fail here, not mid-message. RTLD_LOCAL: two
  // plugins' symbols never mix.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* e = dlerror();
    return Status::InvalidArgument(PathError(path, std::string("cannot load: ") + (e ? e : "?")));
  }
  auto magic = reinterpret_cast<foxw_magic_fn>(dlsym(handle, FOXW_MAGIC_SYMBOL));
  if (magic == nullptr)
    return Status::InvalidArgument(PathError(
        path, "not a foxworker plugin (no " FOXW_MAGIC_SYMBOL " symbol; build it with the SDK's "
              "FOXW_DECLARE_PLUGIN, FOXW_PLUGIN or FOXWORKER_PLUGIN)"));
  const foxw_plugin_info* raw = magic();
  // Only the fields every version has are read before the size is checked.
  if (raw == nullptr || raw->struct_size < FOXW_END_OF(foxw_plugin_info, abi_minor) ||
      raw->magic != FOXW_PLUGIN_MAGIC_VALUE)
    return Status::InvalidArgument(PathError(path, "not a foxworker plugin (bad magic block)"));
  if (raw->abi_major != FOXW_ABI_MAJOR)
    return Status::InvalidArgument(PathError(
        path, "built for plugin ABI major " + std::to_string(raw->abi_major) +
                  ", but this foxworkerd speaks ABI major " + std::to_string(FOXW_ABI_MAJOR) +
                  "; rebuild it against this foxworkerd's SDK"));
  if (raw->abi_minor > FOXW_ABI_MINOR) {
    std::string built;
    if (raw->struct_size >= FOXW_END_OF(foxw_plugin_info, sdk_minor))
      built = " (built with SDK 1." + std::to_string(raw->sdk_minor) + ")";
    return Status::InvalidArgument(PathError(
        path, "needs plugin ABI 1." + std::to_string(raw->abi_minor) + built +
                  ", newer than this foxworkerd's 1." + std::to_string(FOXW_ABI_MINOR) +
                  "; upgrade foxworker, or rebuild the plugin with FOXW_TARGET_ABI_MINOR=" +
                  std::to_string(FOXW_ABI_MINOR) + " if it uses nothing newer"));
  }
  if (raw->struct_size < FOXW_PLUGIN_INFO_SIZE_1_0 || raw->struct_size > kMaxElementSize)
    return Status::InvalidArgument(PathError(
        path, "magic block is " + std::to_string(raw->struct_size) + " bytes, outside the " +
                  std::to_string(FOXW_PLUGIN_INFO_SIZE_1_0) + " to " +
                  std::to_string(kMaxElementSize) + " a plugin of ABI 1.x has"));
  auto out = std::make_unique<PluginInfo>();
  out->info = CopyPluginArray<foxw_plugin_info>(raw, 1, raw->struct_size)[0];
  foxw_plugin_info& info = out->info;
  if (!ValidPluginName(info.name))
    return Status::InvalidArgument(PathError(path, "plugin name must match [a-z0-9_]+"));
  if (info.config_key_count > kMaxArrayLength)
    return Status::InvalidArgument(PathError(path, "config schema claims " +
                                                       std::to_string(info.config_key_count) +
                                                       " keys; the limit is " +
                                                       std::to_string(kMaxArrayLength)));
  if (info.config_key_count > 0) {
    if (info.config_schema == nullptr)
      return Status::InvalidArgument(PathError(path, "config schema has keys but no array"));
    if (info.config_key_size < FOXW_CONFIG_KEY_SIZE_1_0)
      return Status::InvalidArgument(PathError(
          path, "config schema entries are " + std::to_string(info.config_key_size) +
                    " bytes apart, smaller than the " + std::to_string(FOXW_CONFIG_KEY_SIZE_1_0) +
                    " of ABI 1.0"));
    if (info.config_key_size > kMaxElementSize)
      return Status::InvalidArgument(PathError(
          path, "config schema entries are " + std::to_string(info.config_key_size) +
                    " bytes apart; the limit is " + std::to_string(kMaxElementSize)));
    out->schema = CopyPluginArray<foxw_config_key>(info.config_schema, info.config_key_count,
                                                   info.config_key_size);
  }
  for (size_t i = 0; i < out->schema.size(); ++i) {
    const auto& k = out->schema[i];
    if (k.struct_size < FOXW_CONFIG_KEY_SIZE_1_0 || k.name == nullptr)
      return Status::InvalidArgument(PathError(path, "config schema entry " + std::to_string(i) +
                                                         " is malformed"));
    if (k.type < FOXW_CONFIG_STRING || k.type > FOXW_CONFIG_MAP)
      return Status::InvalidArgument(PathError(path, std::string("config key ") + k.name +
                                                         " has unknown type " +
                                                         std::to_string(k.type)));
  }
  info.struct_size = sizeof(foxw_plugin_info);
  info.config_schema = out->schema.empty() ? nullptr : out->schema.data();
  info.config_key_size = sizeof(foxw_config_key);
  if (handle_out) *handle_out = handle;
  return out;
}

Result<std::string> ApplyPluginSchema(const PluginConfig& plugin, const foxw_plugin_info& info) {
  if (info.config_key_count == 0) return plugin.config_json;
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseFullPrecisionFlag>(plugin.config_json.c_str(), plugin.config_json.size());
  auto& alloc = doc.GetAllocator();
  if (doc.HasParseError() || !doc.IsObject())
    return Status::InvalidArgument(plugin.config_mark.ToString() + ": plugins." + plugin.name +
                                   ".config: must be a mapping");
  auto where = [&](const std::string& key) {
    auto it = plugin.config_marks.find(key);
    const SourceMark& m = it != plugin.config_marks.end() ? it->second : plugin.config_mark;
    return m.ToString() + ": plugins." + plugin.name + ".config" + (key.empty() ? "" : "." + key);
  };
  std::set<std::string> known;
  for (size_t i = 0; i < info.config_key_count; ++i) known.insert(info.config_schema[i].name);
  for (const auto& m : std::as_const(doc).GetObject()) {
    std::string key = m.name.GetString();
    if (!known.count(key)) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      return Status::InvalidArgument(where(key) + ": unknown key for plugin " + info.name +
                                     " (known: " + list + ")");
    }
  }
  for (size_t i = 0; i < info.config_key_count; ++i) {
    const auto& k = info.config_schema[i];
    if (!doc.HasMember(k.name)) {
      if (k.required)
        return Status::InvalidArgument(where("") + ": missing required key " + k.name + " (" +
                                       ConfigTypeName(k.type) + ")");
      if (k.default_value == nullptr) continue;
      rapidjson::Value v(k.default_value, alloc);
      std::string why;
      if (!CoerceToType(k.type, v, alloc, &why))
        return Status::Internal(PathError(plugin.path, std::string("default of key ") + k.name +
                                                           " is not " + ConfigTypeName(k.type)));
      doc.AddMember(rapidjson::Value(k.name, alloc), v, alloc);
      continue;
    }
    std::string why;
    if (!CoerceToType(k.type, doc[k.name], alloc, &why))
      return Status::InvalidArgument(where(k.name) + ": must be " + ConfigTypeName(k.type) +
                                     (why.empty() ? "" : " (" + why + ")"));
  }
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  doc.Accept(w);
  return std::string(sb.GetString(), sb.GetSize());
}

// ---------------------------------------------------------------------------

Result<PluginFileId> StatPluginFile(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0)
    return Status::NotFound(PathError(path, std::string("cannot open: ") + strerror(errno)));
  PluginFileId id;
  id.dev = static_cast<uint64_t>(st.st_dev);
  id.ino = static_cast<uint64_t>(st.st_ino);
  id.size = static_cast<int64_t>(st.st_size);
  id.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return id;
}

LoadedPlugin::~LoadedPlugin() = default;  // never dlclose: a plugin's threads or atexit handlers may still run its code (docs/plugin-guide.md)

Result<std::unique_ptr<LoadedPlugin>> LoadedPlugin::Load(const PluginConfig& config) {
  // Before dlopen: a file replaced between the two is then seen as changed
  // by a later reload (a needless restart warning), never the other way
  // (a rebuilt plugin taken for the one that runs).
  auto file_id = StatPluginFile(config.path);
  if (!file_id.ok()) return file_id.status();
  void* handle = nullptr;
  auto info = ReadPluginInfo(config.path, &handle);
  if (!info.ok()) return info.status();
  auto json = ApplyPluginSchema(config, (*info)->info);
  if (!json.ok()) return json.status();

  auto init = reinterpret_cast<foxw_init_v1_fn>(dlsym(handle, FOXW_INIT_V1_SYMBOL));
  if (init == nullptr)
    return Status::InvalidArgument(PathError(config.path, "declares ABI 1 but does not export " FOXW_INIT_V1_SYMBOL));

  std::unique_ptr<LoadedPlugin> p(new LoadedPlugin());
  p->file_id_ = *file_id;
  p->config_ = config;
  p->config_.config_json = std::move(*json);
  p->handle_ = handle;
  p->info_ = std::move(*info);
  p->ctx_ = std::make_unique<foxw_plugin_ctx>();
  p->ctx_->plugin_name = config.name;
  SetPluginConfig(p->ctx_.get(), p->config_.config_json);
  CommitPluginConfig(p->ctx_.get());  // nothing of the plugin runs yet
  char err[kErrCap] = {0};
  const foxw_plugin_v1* def = nullptr;
  {
    DefiningScope defining(p->ctx_.get());
    def = init(HostApi(), p->ctx_.get(), err, sizeof err);
  }
  if (def == nullptr)
    return Status::InvalidArgument(PathError(
        config.path, std::string("init refused: ") + (err[0] ? err : "(no reason given)")));
  if (def->struct_size < FOXW_PLUGIN_V1_SIZE_1_0 || def->struct_size > kMaxElementSize)
    return Status::InvalidArgument(PathError(
        config.path, "plugin definition is " + std::to_string(def->struct_size) +
                         " bytes, outside the " + std::to_string(FOXW_PLUGIN_V1_SIZE_1_0) +
                         " to " + std::to_string(kMaxElementSize) + " a plugin of ABI 1.x has"));
  p->def_ = CopyPluginArray<foxw_plugin_v1>(def, 1, def->struct_size)[0];
  const foxw_plugin_v1& d = p->def_;
  if (d.flags != 0)
    return Status::InvalidArgument(PathError(config.path, "unknown plugin flags 0x" + [&] {
      char b[16];
      snprintf(b, sizeof b, "%x", d.flags);
      return std::string(b);
    }()));
  if (d.instance_model > FOXW_INSTANCE_PER_THREAD)
    return Status::InvalidArgument(PathError(config.path, "unknown instance model " +
                                                              std::to_string(d.instance_model)));
  if (d.create == nullptr || d.destroy == nullptr)
    return Status::InvalidArgument(PathError(config.path, "create and destroy are required"));
  if (d.handler_count == 0 || d.handlers == nullptr)
    return Status::InvalidArgument(PathError(config.path, "declares no handlers"));
  if (d.handler_count > kMaxArrayLength)
    return Status::InvalidArgument(PathError(config.path, "declares " +
                                                              std::to_string(d.handler_count) +
                                                              " handlers; the limit is " +
                                                              std::to_string(kMaxArrayLength)));
  if (d.handler_size < FOXW_HANDLER_DEF_SIZE_1_0)
    return Status::InvalidArgument(PathError(
        config.path, "handler entries are " + std::to_string(d.handler_size) +
                         " bytes apart, smaller than the " +
                         std::to_string(FOXW_HANDLER_DEF_SIZE_1_0) + " of ABI 1.0"));
  if (d.handler_size > kMaxElementSize)
    return Status::InvalidArgument(PathError(
        config.path, "handler entries are " + std::to_string(d.handler_size) +
                         " bytes apart; the limit is " + std::to_string(kMaxElementSize)));
  p->handler_defs_ =
      CopyPluginArray<foxw_handler_def>(d.handlers, d.handler_count, d.handler_size);
  // def() describes the host's copies, at the host's stride.
  p->def_.struct_size = sizeof(foxw_plugin_v1);
  p->def_.handlers = p->handler_defs_.data();
  p->def_.handler_size = sizeof(foxw_handler_def);
  std::set<std::string> seen;
  for (size_t i = 0; i < p->handler_defs_.size(); ++i) {
    const foxw_handler_def* h = &p->handler_defs_[i];
    if (h->struct_size < FOXW_HANDLER_DEF_SIZE_1_0 || h->name == nullptr ||
        (h->handle == nullptr && h->handle_batch == nullptr))
      return Status::InvalidArgument(PathError(config.path, "handler " + std::to_string(i) +
                                                                " is malformed (size, name or "
                                                                "function missing)"));
    if (h->flags != 0 || h->reserved != 0)
      return Status::InvalidArgument(
          PathError(config.path, std::string("handler ") + h->name + " has unknown flags"));
    if (!seen.insert(h->name).second)
      return Status::InvalidArgument(
          PathError(config.path, std::string("duplicate handler name \"") + h->name + "\""));
    p->handlers_.push_back(h);
  }
  return p;
}

const foxw_handler_def* LoadedPlugin::FindHandler(std::string_view type) const {
  const foxw_handler_def* wildcard = nullptr;
  for (const auto* h : handlers_) {
    if (type == h->name) return h;
    if (h->name[0] == '*' && h->name[1] == '\0') wildcard = h;
  }
  return wildcard;
}

std::string LoadedPlugin::HandlerNames() const {
  std::string out;
  for (const auto* h : handlers_) out += (out.empty() ? "" : ", ") + std::string(h->name);
  return out;
}

Result<void*> LoadedPlugin::CreateInstance() const {
  char err[kErrCap] = {0};
  void* instance = nullptr;
  int32_t rc = 0;
  {
    DefiningScope defining(ctx_.get());
    rc = def_.create(ctx_.get(), config_.config_json.c_str(), config_.config_json.size(),
                     &instance, err, sizeof err);
  }
  if (rc != 0)
    return Status::InvalidArgument(PathError(
        config_.path, std::string("create refused: ") + (err[0] ? err : "(no reason given)")));
  return instance;
}

void LoadedPlugin::DestroyInstance(void* instance) const { def_.destroy(instance); }

void LoadedPlugin::SetConfigJson(std::string json) {
  config_.config_json = std::move(json);
  SetPluginConfig(ctx_.get(), config_.config_json);
}

void LoadedPlugin::CommitConfig() { CommitPluginConfig(ctx_.get()); }

void LoadedPlugin::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (def_.shutdown) def_.shutdown(ctx_.get());
}

// ---------------------------------------------------------------------------

Result<std::unique_ptr<InstancePool>> InstancePool::Create(const LoadedPlugin& plugin,
                                                           int concurrency, int threads) {
  std::unique_ptr<InstancePool> pool(new InstancePool(plugin));
  int n = 1;
  switch (plugin.instance_model()) {
    case FOXW_INSTANCE_PER_SLOT: n = concurrency; break;
    case FOXW_INSTANCE_SHARED: n = 1; break;
    case FOXW_INSTANCE_PER_THREAD: n = threads > 0 ? threads : concurrency; break;
  }
  // The queue's own threads follow its concurrency: so do PER_THREAD
  // instances (one per thread index).
  pool->per_thread_grows_ = plugin.instance_model() == FOXW_INSTANCE_PER_THREAD && threads == 0;
  for (int i = 0; i < n; ++i) {
    auto inst = plugin.CreateInstance();
    if (!inst.ok()) return inst.status();  // the destructor destroys the ones made so far
    pool->all_.push_back(*inst);
  }
  pool->free_ = pool->all_;
  pool->target_ = concurrency;
  return pool;
}

InstancePool::~InstancePool() {
  for (void* inst : all_) plugin_.DestroyInstance(inst);
}

InstancePool::Growth::Growth(Growth&& o) noexcept
    : plugin_(o.plugin_), instances_(std::move(o.instances_)), concurrency_(o.concurrency_) {
  o.instances_.clear();
}

InstancePool::Growth& InstancePool::Growth::operator=(Growth&& o) noexcept {
  if (this != &o) {
    for (void* inst : instances_) plugin_->DestroyInstance(inst);
    plugin_ = o.plugin_;
    instances_ = std::move(o.instances_);
    o.instances_.clear();
    concurrency_ = o.concurrency_;
  }
  return *this;
}

InstancePool::Growth::~Growth() {
  for (void* inst : instances_) plugin_->DestroyInstance(inst);
}

Result<InstancePool::Growth> InstancePool::PrepareResize(int concurrency) {
  Growth g;
  g.plugin_ = &plugin_;
  g.concurrency_ = concurrency;
  if (plugin_.instance_model() != FOXW_INSTANCE_PER_SLOT && !per_thread_grows_) return g;
  size_t have;
  {
    std::lock_guard<std::mutex> lock(mu_);
    have = all_.size();
  }
  for (size_t i = have; i < static_cast<size_t>(concurrency); ++i) {
    auto inst = plugin_.CreateInstance();
    if (!inst.ok()) return inst.status();  // g's destructor destroys the ones made so far
    g.instances_.push_back(*inst);
  }
  return g;
}

void InstancePool::Resize(Growth growth) {
  if (plugin_.instance_model() != FOXW_INSTANCE_PER_SLOT && !per_thread_grows_) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (void* inst : growth.instances_) {
    all_.push_back(inst);
    if (plugin_.instance_model() == FOXW_INSTANCE_PER_SLOT) free_.push_back(inst);
  }
  growth.instances_.clear();
  target_ = growth.concurrency_;
}

void InstancePool::Trim(int workers) {
  if (plugin_.instance_model() != FOXW_INSTANCE_PER_SLOT) return;
  std::vector<void*> idle;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Tasks that hold or are about to take an instance are counted in
    // `workers`; new ones start only below the concurrency. Keeping
    // max(both) leaves one for each.
    const size_t keep = static_cast<size_t>(std::max(target_, workers));
    while (all_.size() > keep && !free_.empty()) {
      void* inst = free_.back();
      free_.pop_back();
      all_.erase(std::find(all_.begin(), all_.end(), inst));
      idle.push_back(inst);
    }
  }
  for (void* inst : idle) plugin_.DestroyInstance(inst);
}

size_t InstancePool::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return all_.size();
}

void* InstancePool::Acquire() {
  switch (plugin_.instance_model()) {
    case FOXW_INSTANCE_SHARED:
      return all_[0];
    case FOXW_INSTANCE_PER_THREAD: {
      int i = TaskRunner::CurrentThreadIndex();
      std::lock_guard<std::mutex> lock(mu_);  // Resize may add instances meanwhile
      CHECK(i >= 0 && static_cast<size_t>(i) < all_.size()) << "handler run off the executor";
      return all_[i];
    }
    default: {
      std::lock_guard<std::mutex> lock(mu_);
      // The consumer runs at most `concurrency` batches at once, one instance
      // each, so the pool is never empty here.
      CHECK(!free_.empty()) << "instance pool exhausted: concurrency limit broken";
      void* inst = free_.back();
      free_.pop_back();
      return inst;
    }
  }
}

void InstancePool::Release(void* instance) {
  if (plugin_.instance_model() != FOXW_INSTANCE_PER_SLOT) return;
  std::lock_guard<std::mutex> lock(mu_);
  free_.push_back(instance);
}

}  // namespace foxworker
