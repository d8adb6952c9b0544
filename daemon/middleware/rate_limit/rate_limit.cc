#include "daemon/middleware/rate_limit/rate_limit.h"

#include <algorithm>
#include <cmath>

namespace foxworker {

TokenBucket::TokenBucket(double rate, double burst, uint64_t now_ns)
    : rate_(rate), burst_(std::max(1.0, burst)), tokens_(std::max(1.0, burst)), last_ns_(now_ns) {}

void TokenBucket::RefillLocked(uint64_t now_ns) {
  if (now_ns > last_ns_) {
    tokens_ = std::min(burst_, tokens_ + rate_ * static_cast<double>(now_ns - last_ns_) / 1e9);
    last_ns_ = now_ns;
  }
}

size_t TokenBucket::Take(size_t want, uint64_t now_ns, uint64_t* retry_after_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  RefillLocked(now_ns);
  size_t n = std::min(want, static_cast<size_t>(std::floor(tokens_)));
  tokens_ -= static_cast<double>(n);
  if (n < want) {
    double missing = 1.0 - (tokens_ - std::floor(tokens_));
    *retry_after_ns = static_cast<uint64_t>(std::ceil(missing / rate_ * 1e9));
  }
  return n;
}

void TokenBucket::Give(size_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  tokens_ = std::min(burst_, tokens_ + static_cast<double>(n));
}

RateLimit::RateLimit(std::shared_ptr<TokenBucket> bucket, std::string label)
    : bucket_(std::move(bucket)), label_(std::move(label)) {}

size_t RateLimit::Admit(size_t want, uint64_t now_ns, uint64_t* retry_after_ns) {
  size_t n = bucket_->Take(want, now_ns, retry_after_ns);
  if (n == 0) {
    waits_.fetch_add(1, std::memory_order_relaxed);
    uint64_t none = 0;
    waiting_since_.compare_exchange_strong(none, std::max<uint64_t>(now_ns, 1),
                                           std::memory_order_relaxed);
  } else if (waiting_since_.load(std::memory_order_relaxed) != 0) {
    uint64_t since = waiting_since_.exchange(0, std::memory_order_relaxed);
    if (since != 0 && now_ns > since)
      waited_ns_.fetch_add(now_ns - since, std::memory_order_relaxed);
  }
  return n;
}

uint64_t RateLimit::WaitedNs(uint64_t now_ns) const {
  uint64_t waited = waited_ns_.load(std::memory_order_relaxed);
  uint64_t since = waiting_since_.load(std::memory_order_relaxed);
  return since != 0 && now_ns > since ? waited + (now_ns - since) : waited;
}

void RateLimit::Samples(uint64_t now_ns, std::vector<MiddlewareSample>* out) const {
  out->push_back({std::string(kWaitsFamily), {{"limit", limit()}}, static_cast<double>(waits())});
  out->push_back({std::string(kWaitSecondsFamily),
                  {{"limit", limit()}},
                  static_cast<double>(WaitedNs(now_ns)) / 1e9});
}

}  // namespace foxworker
