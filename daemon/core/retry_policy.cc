#include "daemon/core/retry_policy.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

namespace foxworker {
namespace {

double ThreadLocalUniform01() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace

std::string_view BackoffName(Backoff backoff) {
  switch (backoff) {
    case Backoff::kFixed: return "fixed";
    case Backoff::kLinear: return "linear";
    case Backoff::kExponential: return "exponential";
  }
  return "exponential";
}

Result<Backoff> ParseBackoff(std::string_view name) {
  for (Backoff b : {Backoff::kFixed, Backoff::kLinear, Backoff::kExponential})
    if (BackoffName(b) == name) return b;
  return Status::InvalidArgument("invalid backoff \"" + std::string(name) +
                                 "\": expected fixed, linear or exponential");
}

RetryPolicy::RetryPolicy(RetryPolicyOptions config, std::function<double()> uniform01)
    : config_(std::move(config)),
      uniform01_(uniform01 ? std::move(uniform01) : ThreadLocalUniform01) {}

Duration RetryPolicy::BaseDelay(uint32_t attempt) const {
  const double initial = static_cast<double>(config_.initial.count());
  const double cap = static_cast<double>(config_.max.count());
  const double n = attempt == 0 ? 0.0 : static_cast<double>(attempt - 1);
  double ms = initial;
  switch (config_.backoff) {
    case Backoff::kFixed:
      break;
    case Backoff::kLinear:
      ms = initial * (n + 1.0);
      break;
    case Backoff::kExponential:
      ms = initial * std::pow(config_.multiplier, n);
      break;
  }
  if (!std::isfinite(ms) || ms > cap) ms = cap;
  return Duration(static_cast<int64_t>(ms));
}

Duration RetryPolicy::UnjitteredDelay(uint32_t attempt, Duration hint) const {
  if (hint.count() > 0) return std::min(hint, config_.max);
  return BaseDelay(attempt);
}

Duration RetryPolicy::NextDelay(uint32_t attempt, Duration hint) const {
  if (hint.count() > 0) return std::min(hint, config_.max);
  const double base = static_cast<double>(BaseDelay(attempt).count());
  double ms = base;
  if (config_.full_jitter) {
    ms = base * uniform01_();
  } else if (config_.jitter > 0) {
    // Uniform in [base * (1 - jitter), base * (1 + jitter)].
    ms = base * (1.0 + config_.jitter * (2.0 * uniform01_() - 1.0));
  }
  ms = std::clamp(ms, 0.0, static_cast<double>(config_.max.count()));
  return Duration(static_cast<int64_t>(ms));
}

}  // namespace foxworker
