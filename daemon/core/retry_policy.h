// RetryPolicy: decides whether a failed attempt is retried, and after what
// delay. Pure computation; the random source is injected for tests.
#ifndef FOXWORKER_CORE_RETRY_POLICY_H_
#define FOXWORKER_CORE_RETRY_POLICY_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

#include "daemon/base/status.h"
#include "daemon/base/units.h"

namespace foxworker {

enum class Backoff { kFixed, kLinear, kExponential };

// "fixed", "linear", "exponential".
std::string_view BackoffName(Backoff backoff);
Result<Backoff> ParseBackoff(std::string_view name);

// What a retry policy computes from. The defaults are the built-in policy.
struct RetryPolicyOptions {
  int max_attempts = 5;  // total handler attempts, including the first
  Backoff backoff = Backoff::kExponential;
  Duration initial{1000};
  Duration max{300000};
  double multiplier = 2.0;
  double jitter = 0.1;       // fraction of the delay, +/-
  bool full_jitter = false;  // delay = uniform(0, computed)

  bool operator==(const RetryPolicyOptions&) const = default;
};

// Safe for concurrent use (const after construction; the default random
// source is thread-local).
class RetryPolicy {
 public:
  // `uniform01` returns a value in [0, 1); defaults to a thread-local PRNG.
  explicit RetryPolicy(RetryPolicyOptions config, std::function<double()> uniform01 = nullptr);

  const RetryPolicyOptions& config() const { return config_; }
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
  RetryPolicyOptions config_;
  std::function<double()> uniform01_;
};

}  // namespace foxworker

#endif  // FOXWORKER_CORE_RETRY_POLICY_H_
