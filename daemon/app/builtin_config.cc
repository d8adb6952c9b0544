#include <mutex>

#include "daemon/app/builtin_extensions.h"
#include "daemon/backends/local/local_config.h"
#include "daemon/backends/memory/memory_config.h"
#include "daemon/backends/rabbitmq/rabbitmq_config.h"
#include "daemon/backends/redis/redis_config.h"
#include "daemon/config/extension_registry.h"
#include "daemon/middleware/circuit_breaker/circuit_breaker_config.h"
#include "daemon/middleware/dedup/dedup_config.h"
#include "daemon/middleware/logging/logging_config.h"
#include "daemon/middleware/rate_limit/rate_limit_config.h"

namespace foxworker {

void RegisterBuiltinConfig() {
  static std::once_flag once;
  std::call_once(once, [] {
    ExtensionRegistry& registry = ExtensionRegistry::Global();
    // One line per extension. Error messages list the types in this order.
    RegisterLocalBackend(registry);
    RegisterMemoryBackend(registry);
    RegisterRabbitMqBackend(registry);
    RegisterRedisBackend(registry);

    RegisterCircuitBreaker(registry);
    RegisterRateLimit(registry);
    RegisterDedup(registry);
    RegisterLogging(registry);
  });
}

}  // namespace foxworker
