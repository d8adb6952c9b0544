// RateLimit: a token bucket in front of fetching. While the bucket is empty
// the consumer fetches nothing and asks again when the next token is due, so
// messages wait in the broker: a rate limit never fails or drops a message.
// Several queues can share one TokenBucket (a downstream API's limit).
#ifndef FOXWORKER_MIDDLEWARE_RATE_LIMIT_RATE_LIMIT_H_
#define FOXWORKER_MIDDLEWARE_RATE_LIMIT_RATE_LIMIT_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "daemon/config/extension_registry.h"
#include "daemon/core/middleware.h"
#include "daemon/middleware/rate_limit/rate_limit_config.h"

namespace foxworker {

// Safe for concurrent use. Shared by the queues that name one `rate_limits:`
// entry.
class TokenBucket : public SharedMiddlewareState {
 public:
  // `rate` tokens per second, holding at most `burst` (>= 1). Starts full.
  TokenBucket(double rate, double burst, uint64_t now_ns);

  // Takes up to `want` whole tokens; when it gets fewer, *retry_after_ns is
  // the wait until the next one.
  size_t Take(size_t want, uint64_t now_ns, uint64_t* retry_after_ns);
  void Give(size_t n);
  double rate() const { return rate_; }

 private:
  void RefillLocked(uint64_t now_ns);
  const double rate_;
  const double burst_;
  std::mutex mu_;
  double tokens_;       // GUARDED_BY(mu_)
  uint64_t last_ns_;    // GUARDED_BY(mu_)
};

class RateLimit : public Middleware {
 public:
  RateLimit(std::shared_ptr<TokenBucket> bucket, std::string label);
  std::string_view name() const override { return "rate_limit"; }
  size_t Admit(size_t want, uint64_t now_ns, uint64_t* retry_after_ns) override;
  void Refund(size_t n) override { bucket_->Give(n); }
  std::string State() const override { return label_; }
  // "own", or the name of the shared limit ("shared NAME").
  std::string limit() const {
    return label_.rfind("shared ", 0) == 0 ? label_.substr(7) : label_;
  }
  // Times fetching found the bucket empty.
  uint64_t waits() const { return waits_.load(std::memory_order_relaxed); }
  // Nanoseconds fetching was held back: from the first refusal to the next
  // grant, including a wait still open at `now_ns`.
  uint64_t WaitedNs(uint64_t now_ns) const;
  // kWaitsFamily and kWaitSecondsFamily, labelled with limit().
  void Samples(uint64_t now_ns, std::vector<MiddlewareSample>* out) const override;

  static constexpr std::string_view kWaitsFamily = "foxworker_rate_limit_waits_total";
  static constexpr std::string_view kWaitSecondsFamily = "foxworker_rate_limit_wait_seconds_total";

 private:
  std::shared_ptr<TokenBucket> bucket_;
  const std::string label_;
  std::atomic<uint64_t> waits_{0};
  std::atomic<uint64_t> waited_ns_{0};      // closed waits
  std::atomic<uint64_t> waiting_since_{0};  // start of the open wait; 0 = none
};

}  // namespace foxworker

#endif  // FOXWORKER_MIDDLEWARE_RATE_LIMIT_RATE_LIMIT_H_
