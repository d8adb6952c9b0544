// `type: memory` in `backends:`: the options of a MemoryBackend, their YAML
// and the registration that makes the type known.
#ifndef FOXWORKER_BACKENDS_MEMORY_MEMORY_CONFIG_H_
#define FOXWORKER_BACKENDS_MEMORY_MEMORY_CONFIG_H_

#include <cstddef>

#include "daemon/config/config.h"

namespace foxworker {

class ExtensionRegistry;

struct MemoryBackendOptions : EquatableOptions<MemoryBackendOptions, BackendOptions> {
  size_t capacity = 0;  // 0 = unbounded; enqueue fails when full

  bool operator==(const MemoryBackendOptions&) const = default;
};

// Adds `type: memory`: its keys, parse, format and factory.
void RegisterMemoryBackend(ExtensionRegistry& registry);
// Its factory (what running it needs).
void RegisterMemoryBackendFactory(ExtensionRegistry& registry);

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_MEMORY_MEMORY_CONFIG_H_
