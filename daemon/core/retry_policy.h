// RetryPolicy: decides whether a failed attempt is retried, and after what
// delay. Pure computation; the random source is injected for tests.
#ifndef FOXWORKER_CORE_RETRY_POLICY_H_
#define FOXWORKER_CORE_RETRY_POLICY_H_

#include <cstdint>
#include <functional>
#include <optional>

#include "daemon/config/config.h"

namespace foxworker {

// Safe for concurrent use (const after construction; the default random
// source is thread-local).
class RetryPolicy {
 public:
  // `uniform01` returns a value in [0, 1); defaults to a thread-local PRNG.
  explicit RetryPolicy(RetryPolicyConfig config, std::function<double()> uniform01 = nullptr);

  const RetryPolicyConfig& config() const { return config_; }
  int max_attempts() const { return config_.max_attempts; }

  // Whether another attempt may follow attempt number `attempt` (1-based).
  bool AttemptsRemain(uint32_t attempt) const {
    return attempt < static_cast<uint32_t>(config_.max_attempts);
  }

  // The backoff before attempt `attempt + 1`, without jitter.
  Duration BaseDelay(uint32_t attempt) const;

  // The delay to use after failed attempt `attempt`, with jitter; `hint` is a
  // handler's requested delay (0 = none), capped by `max`.
  Duration NextDelay(uint32_t attempt, Duration hint = Duration{0}) const;

  // NextDelay without the jitter: BaseDelay(attempt), or the capped hint.
  Duration UnjitteredDelay(uint32_t attempt, Duration hint = Duration{0}) const;

 private:
  RetryPolicyConfig config_;
  std::function<double()> uniform01_;
};

}  // namespace foxworker

#endif  // FOXWORKER_CORE_RETRY_POLICY_H_
