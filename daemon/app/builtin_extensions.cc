#include "daemon/app/builtin_extensions.h"

#include <mutex>

#include "daemon/backends/local/local_backend.h"
#include "daemon/backends/memory/memory_config.h"
#include "daemon/backends/rabbitmq/rabbitmq_backend.h"
#include "daemon/backends/redis/redis_backend.h"
#include "daemon/config/extension_registry.h"

namespace foxworker {

void RegisterBuiltinExtensions() {
  static std::once_flag once;
  std::call_once(once, [] {
    RegisterBuiltinConfig();
    ExtensionRegistry& registry = ExtensionRegistry::Global();
    // One line per backend: its factory.
    RegisterLocalBackendFactory(registry);
    RegisterMemoryBackendFactory(registry);
    RegisterRabbitMqBackendFactory(registry);
    RegisterRedisBackendFactory(registry);
  });
}

}  // namespace foxworker
