// Builds a queue's middleware chain from its config, in config order.
#ifndef FOXWORKER_MIDDLEWARE_REGISTRY_H_
#define FOXWORKER_MIDDLEWARE_REGISTRY_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/core/middleware.h"
#include "daemon/middleware/rate_limit.h"

namespace foxworker {

// What building a chain may use beyond the queue's own config.
struct MiddlewareContext {
  const Config* config = nullptr;
  const BackendConfig* backend = nullptr;  // the queue's backend
  // Shared token buckets by name, created on first use.
  std::map<std::string, std::shared_ptr<TokenBucket>>* shared_buckets = nullptr;
  MonotonicClock clock;
};

Result<std::vector<std::unique_ptr<Middleware>>> BuildMiddleware(const QueueConfig& queue,
                                                                 MiddlewareContext& context);

}  // namespace foxworker

#endif  // FOXWORKER_MIDDLEWARE_REGISTRY_H_
