#include "daemon/backends/memory/memory_config.h"

#include <cstdint>
#include <string>

#include "daemon/backends/memory/memory_backend.h"
#include "daemon/config/extension_registry.h"

namespace foxworker {
namespace {

constexpr std::string_view kKeys[] = {"type", "capacity"};

Result<std::shared_ptr<const BackendOptions>> Parse(const YamlFile& file, const MappingEntry&,
                                                    const std::vector<MappingEntry>& entries) {
  auto options = std::make_shared<MemoryBackendOptions>();
  for (const MappingEntry& e : entries) {
    if (e.key == "capacity") {
      Status status = Assign(ReadInteger(file, e, 0, INT64_MAX), &options->capacity);
      if (!status.ok()) return status;
    }
  }
  return std::shared_ptr<const BackendOptions>(std::move(options));
}

void Format(const BackendOptions& base, YamlWriter& w, int depth) {
  const auto& o = static_cast<const MemoryBackendOptions&>(base);
  w.Line(depth, "capacity", std::to_string(o.capacity));
}

Result<std::unique_ptr<Backend>> Make(const BackendConfig& config) {
  const auto* o = config.options.As<MemoryBackendOptions>();
  if (o == nullptr) {
    return Status::InvalidArgument("backend " + config.name + " has no memory options");
  }
  return std::unique_ptr<Backend>(new MemoryBackend(config.name, *o));
}

}  // namespace

void RegisterMemoryBackend(ExtensionRegistry& registry) {
  BackendExtension memory;
  memory.type = "memory";
  memory.keys = kKeys;
  memory.parse = Parse;
  memory.format = Format;
  registry.AddBackend(std::move(memory));
}

void RegisterMemoryBackendFactory(ExtensionRegistry& registry) {
  registry.SetBackendFactory("memory", Make);
}

}  // namespace foxworker
