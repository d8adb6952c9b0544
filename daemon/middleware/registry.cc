#include "daemon/middleware/registry.h"

#include "daemon/base/clock.h"
#include "daemon/middleware/circuit_breaker.h"
#include "daemon/middleware/dedup.h"
#include "daemon/middleware/logging.h"

namespace foxworker {
namespace {

using Made = Result<std::unique_ptr<Middleware>>;

Made MakeCircuitBreaker(const QueueConfig& q, const MiddlewareConfig& m, MiddlewareContext& c) {
  return std::unique_ptr<Middleware>(new CircuitBreaker(q.name, m.circuit_breaker, c.clock));
}

Made MakeRateLimit(const QueueConfig&, const MiddlewareConfig& m, MiddlewareContext& c) {
  const RateLimitConfig* rl = &m.rate_limit;
  std::string label = "own";
  if (!rl->shared.empty()) {
    rl = c.config->FindRateLimit(rl->shared);
    if (rl == nullptr)
      return Status::InvalidArgument(m.mark.ToString() + ": unknown shared rate limit \"" +
                                     m.rate_limit.shared + "\"");
    label = "shared " + rl->name;
    auto& bucket = (*c.shared_buckets)[rl->name];
    if (!bucket) bucket = std::make_shared<TokenBucket>(rl->rate, rl->burst, c.clock());
    return std::unique_ptr<Middleware>(new RateLimit(bucket, label));
  }
  return std::unique_ptr<Middleware>(
      new RateLimit(std::make_shared<TokenBucket>(rl->rate, rl->burst, c.clock()), label));
}

Made MakeDedup(const QueueConfig& q, const MiddlewareConfig& m, MiddlewareContext& c) {
  std::unique_ptr<DedupStore> store;
  if (c.backend != nullptr && c.backend->type == "local") {
    store = std::make_unique<SqliteDedupStore>(c.backend->local.path, q.name);
  } else {
    store = std::make_unique<MemoryDedupStore>(m.dedup.max_keys);
  }
  return std::unique_ptr<Middleware>(new Dedup(q.name, m.dedup, std::move(store), WallMs));
}

Made MakeLogging(const QueueConfig& q, const MiddlewareConfig& m, MiddlewareContext&) {
  return std::unique_ptr<Middleware>(new OutcomeLogging(q.name, m.logging));
}

// The registry: one line per middleware type.
const std::map<std::string, Made (*)(const QueueConfig&, const MiddlewareConfig&,
                                     MiddlewareContext&)>
    kFactories = {
        {"circuit_breaker", MakeCircuitBreaker},
        {"rate_limit", MakeRateLimit},
        {"dedup", MakeDedup},
        {"logging", MakeLogging},
};

}  // namespace

Result<std::vector<std::unique_ptr<Middleware>>> BuildMiddleware(const QueueConfig& queue,
                                                                 MiddlewareContext& context) {
  std::vector<std::unique_ptr<Middleware>> chain;
  for (const auto& m : queue.middleware) {
    auto it = kFactories.find(m.type);
    if (it == kFactories.end())
      return Status::InvalidArgument(m.mark.ToString() + ": queues." + queue.name +
                                     ".middleware: unknown middleware \"" + m.type + "\"");
    auto made = it->second(queue, m, context);
    if (!made.ok()) return made.status();
    chain.push_back(std::move(*made));
  }
  return chain;
}

}  // namespace foxworker
