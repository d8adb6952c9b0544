#include "daemon/app/backend_factory.h"

#include "daemon/backends/local/local_backend.h"
#include "daemon/backends/memory/memory_backend.h"
#include "daemon/backends/rabbitmq/rabbitmq_backend.h"
#include "daemon/backends/redis/redis_backend.h"

namespace foxworker {

Result<std::unique_ptr<Backend>> MakeBackend(const BackendConfig& config) {
  if (config.type == "memory")
    return std::unique_ptr<Backend>(new MemoryBackend(config.name, config.memory));
  if (config.type == "local") return MakeLocalBackend(config);
  if (config.type == "redis") return MakeRedisBackend(config);
  if (config.type == "rabbitmq")
    return std::unique_ptr<Backend>(new RabbitMqBackend(config.name, config.rabbitmq));
  return Status::InvalidArgument(config.mark.ToString() + ": backends." + config.name +
                                 ".type: backend type \"" + config.type +
                                 "\" is not built into this foxworkerd");
}

}  // namespace foxworker
