// Builds a queue's middleware chain from its config, in config order, with
// each type's registered factory (daemon/config/extension_registry.h).
#ifndef FOXWORKER_MIDDLEWARE_CHAIN_H_
#define FOXWORKER_MIDDLEWARE_CHAIN_H_

#include <memory>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/config/extension_registry.h"
#include "daemon/core/middleware.h"

namespace foxworker {

Result<std::vector<std::unique_ptr<Middleware>>> BuildMiddleware(const QueueConfig& queue,
                                                                 MiddlewareContext& context);

}  // namespace foxworker

#endif  // FOXWORKER_MIDDLEWARE_CHAIN_H_
