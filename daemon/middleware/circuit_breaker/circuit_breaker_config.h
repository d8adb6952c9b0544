// `circuit_breaker` in a queue's `middleware:`: its settings, their YAML and
// the registration that makes the type known.
#ifndef FOXWORKER_MIDDLEWARE_CIRCUIT_BREAKER_CIRCUIT_BREAKER_CONFIG_H_
#define FOXWORKER_MIDDLEWARE_CIRCUIT_BREAKER_CIRCUIT_BREAKER_CONFIG_H_

#include "daemon/config/config.h"

namespace foxworker {

class ExtensionRegistry;

// Closed -> open when failures reach the threshold within `window`; open ->
// half-open after `reset_timeout`; half-open lets `half_open_trials`
// messages through and closes when they all succeed (one failure reopens).
struct CircuitBreakerConfig : EquatableOptions<CircuitBreakerConfig, MiddlewareOptions> {
  int failure_threshold = 5;   // failures within `window` that open it (count mode)
  double failure_ratio = 0;    // > 0: open when failures/total in `window` reach it (ratio mode)
  int min_calls = 10;          // ratio mode: calls needed in the window before judging
  Duration window{30000};
  Duration reset_timeout{30000};
  int half_open_trials = 1;

  bool operator==(const CircuitBreakerConfig&) const = default;
};

// Adds `circuit_breaker`: its keys, parse, format, factory and metrics.
void RegisterCircuitBreaker(ExtensionRegistry& registry);

}  // namespace foxworker

#endif  // FOXWORKER_MIDDLEWARE_CIRCUIT_BREAKER_CIRCUIT_BREAKER_CONFIG_H_
