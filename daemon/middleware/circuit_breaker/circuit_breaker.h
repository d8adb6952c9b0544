// CircuitBreaker: stops a queue from fetching while its downstream fails, so
// waiting messages stay in the broker and do not burn their attempts.
//   closed    -> open       when failures in `window` reach the threshold
//                           (count) or the ratio (ratio mode, >= min_calls)
//   open      -> half-open  after `reset_timeout`
//   half-open -> closed     when `half_open_trials` messages all succeed
//   half-open -> open       on any failure
// A failure is a handler call that asked for a retry or timed out (see
// CallInfo::failed); rejects and messages answered without the handler do
// not count.
#ifndef FOXWORKER_MIDDLEWARE_CIRCUIT_BREAKER_CIRCUIT_BREAKER_H_
#define FOXWORKER_MIDDLEWARE_CIRCUIT_BREAKER_CIRCUIT_BREAKER_H_

#include <deque>
#include <mutex>
#include <string>

#include "daemon/middleware/circuit_breaker/circuit_breaker_config.h"
#include "daemon/core/middleware.h"

namespace foxworker {

class CircuitBreaker : public Middleware {
 public:
  enum class Phase { kClosed, kOpen, kHalfOpen };

  CircuitBreaker(std::string queue, CircuitBreakerConfig config, MonotonicClock clock);

  std::string_view name() const override { return "circuit_breaker"; }
  size_t Admit(size_t want, uint64_t now_ns, uint64_t* retry_after_ns) override;
  void Refund(size_t n) override;
  void After(const Delivery& d, const Outcome& outcome, const CallInfo& call) override;
  std::string State() const override;
  // kStateFamily (1 for the current phase, 0 for the others) and
  // kOpenedFamily.
  void Samples(uint64_t now_ns, std::vector<MiddlewareSample>* out) const override;

  static constexpr std::string_view kStateFamily = "foxworker_circuit_breaker_state";
  static constexpr std::string_view kOpenedFamily = "foxworker_circuit_breaker_opened_total";

  Phase phase() const;
  uint64_t times_opened() const;

 private:
  void RecordLocked(bool failed, uint64_t now_ns);
  void TransitionLocked(Phase to, uint64_t now_ns, const char* why);

  const std::string queue_;
  const CircuitBreakerConfig config_;
  const MonotonicClock clock_;
  mutable std::mutex mu_;
  Phase state_ = Phase::kClosed;  // GUARDED_BY(mu_)
  uint64_t open_until_ns_ = 0;         // GUARDED_BY(mu_)
  int trials_granted_ = 0;             // GUARDED_BY(mu_)
  int trials_succeeded_ = 0;           // GUARDED_BY(mu_)
  std::deque<std::pair<uint64_t, bool>> calls_;  // GUARDED_BY(mu_): (time, failed) in window
  uint64_t times_opened_ = 0;          // GUARDED_BY(mu_)
};

}  // namespace foxworker

#endif  // FOXWORKER_MIDDLEWARE_CIRCUIT_BREAKER_CIRCUIT_BREAKER_H_
