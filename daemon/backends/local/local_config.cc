#include "daemon/backends/local/local_config.h"

#include <filesystem>
#include <map>
#include <utility>

#include "daemon/backends/local/local_backend.h"
#include "daemon/config/extension_registry.h"
#include "daemon/base/units.h"

namespace foxworker {
namespace {

constexpr std::string_view kKeys[] = {"type",      "path",     "durability", "lease", "poll_interval",
                                      "retention", "batch_size"};
constexpr std::string_view kDatabaseFile = "foxworker.db";

Result<std::shared_ptr<const BackendOptions>> Parse(const YamlFile& file, const MappingEntry&,
                                                    const std::vector<MappingEntry>& entries) {
  auto o = std::make_shared<LocalBackendOptions>();
  for (const MappingEntry& e : entries) {
    Status status;
    if (e.key == "type") {
      continue;
    } else if (e.key == "path") {
      status = Assign(ReadNonEmptyString(file, e), &o->path);
    } else if (e.key == "durability") {
      status = AssignEnum(file, e, &ParseDurability, &o->durability);
    } else if (e.key == "batch_size") {
      status = Assign(ReadInteger(file, e, 1, 100000), &o->batch_size);
    } else if (e.key == "retention") {
      status = Assign(ReadDuration(file, e), &o->retention);
    } else if (e.key == "lease") {
      status = AssignPositiveDuration(file, e, &o->lease);
    } else if (e.key == "poll_interval") {
      status = AssignPositiveDuration(file, e, &o->poll_interval);
    } else {
      return Status::Internal(e.path + ": not a key of a local backend");  // keys were checked
    }
    if (!status.ok()) return status;
  }
  return std::shared_ptr<const BackendOptions>(std::move(o));
}

void Format(const BackendOptions& base, YamlWriter& w, int depth) {
  const auto& l = static_cast<const LocalBackendOptions&>(base);
  w.Line(depth, "path", Quote(l.path));
  w.Line(depth, "durability", DurabilityName(l.durability));
  w.Line(depth, "lease", FormatDuration(l.lease));
  w.Line(depth, "poll_interval", FormatDuration(l.poll_interval));
  w.Line(depth, "retention", FormatDuration(l.retention));
  w.Line(depth, "batch_size", std::to_string(l.batch_size));
}

// `path` made absolute against daemon.state_dir (foxworker.db when unset);
// two backends on one file would claim each other's jobs.
Status Finish(Config& config) {
  std::map<std::string, const BackendConfig*> paths;
  for (BackendConfig& backend : config.backends) {
    const auto* options = backend.options.As<LocalBackendOptions>();
    if (options == nullptr) continue;
    auto resolved = std::make_shared<LocalBackendOptions>(*options);
    std::filesystem::path p(resolved->path.empty() ? std::string(kDatabaseFile) : resolved->path);
    if (p.is_relative()) p = std::filesystem::path(config.daemon.state_dir) / p;
    p = p.lexically_normal();
    if (!p.has_filename() && p.has_relative_path()) p = p.parent_path();
    resolved->path = p.string();
    backend.options = std::shared_ptr<const BackendOptions>(resolved);
    auto [other, inserted] = paths.emplace(resolved->path, &backend);
    if (!inserted) {
      return ErrorAt(backend.mark, "backends." + backend.name,
                     "database " + resolved->path + " is already used by backend \"" +
                         other->second->name + "\" (" + other->second->mark.ToString() + ")");
    }
  }
  return Status::Ok();
}

}  // namespace

std::string_view DurabilityName(Durability durability) {
  return durability == Durability::kFull ? "full" : "normal";
}

Result<Durability> ParseDurability(std::string_view name) {
  if (name == "full") return Durability::kFull;
  if (name == "normal") return Durability::kNormal;
  return Status::InvalidArgument("invalid durability \"" + std::string(name) +
                                 "\": expected full or normal");
}

void RegisterLocalBackend(ExtensionRegistry& registry) {
  BackendExtension local;
  local.type = "local";
  local.keys = kKeys;
  local.parse = Parse;
  local.format = Format;
  local.finish = Finish;
  registry.AddBackend(std::move(local));
}

}  // namespace foxworker
