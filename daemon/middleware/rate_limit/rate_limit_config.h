// `rate_limit` in a queue's `middleware:`: its settings, their YAML and the
// registration that makes the type known.
#ifndef FOXWORKER_MIDDLEWARE_RATE_LIMIT_RATE_LIMIT_CONFIG_H_
#define FOXWORKER_MIDDLEWARE_RATE_LIMIT_RATE_LIMIT_CONFIG_H_

#include <string>
#include <string_view>

#include "daemon/config/config.h"

namespace foxworker {

class ExtensionRegistry;

// A token bucket of the queue's own (`rate`, `burst`) or `shared: NAME`,
// naming an entry of the top-level `rate_limits:` shared by every queue that
// uses it.
struct RateLimitOptions : EquatableOptions<RateLimitOptions, MiddlewareOptions> {
  std::string shared;  // the shared bucket's name, or empty
  double rate = 0;     // tokens per second ("100/s")
  int burst = 0;       // bucket size; 0 = max(1, rate)

  std::string_view shared_state() const override { return shared; }
  bool operator==(const RateLimitOptions&) const = default;
};

// Adds `rate_limit`: its keys, parse, the check that a shared bucket
// exists, format, factory and metrics.
void RegisterRateLimit(ExtensionRegistry& registry);

}  // namespace foxworker

#endif  // FOXWORKER_MIDDLEWARE_RATE_LIMIT_RATE_LIMIT_CONFIG_H_
