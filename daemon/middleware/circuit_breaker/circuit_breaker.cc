#include "daemon/middleware/circuit_breaker/circuit_breaker.h"

#include <glog/logging.h>

#include <cstdio>

namespace foxworker {
namespace {

uint64_t Ns(Duration d) { return static_cast<uint64_t>(d.count()) * 1000000ull; }

const char* StateName(CircuitBreaker::Phase s) {
  switch (s) {
    case CircuitBreaker::Phase::kClosed: return "closed";
    case CircuitBreaker::Phase::kOpen: return "open";
    case CircuitBreaker::Phase::kHalfOpen: return "half-open";
  }
  return "?";
}

}  // namespace

CircuitBreaker::CircuitBreaker(std::string queue, CircuitBreakerConfig config,
                               MonotonicClock clock)
    : queue_(std::move(queue)), config_(config), clock_(std::move(clock)) {}

size_t CircuitBreaker::Admit(size_t want, uint64_t now_ns, uint64_t* retry_after_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ == Phase::kOpen) {
    if (now_ns < open_until_ns_) {
      *retry_after_ns = open_until_ns_ - now_ns;
      return 0;
    }
    TransitionLocked(Phase::kHalfOpen, now_ns, "reset timeout passed");
  }
  if (state_ == Phase::kHalfOpen) {
    size_t room = static_cast<size_t>(config_.half_open_trials - trials_granted_);
    size_t n = std::min(want, room);
    trials_granted_ += static_cast<int>(n);
    // The trials are out; wait for their results (After() re-decides).
    if (n == 0) *retry_after_ns = Ns(config_.reset_timeout) / 10 + 1000000;
    return n;
  }
  return want;
}

void CircuitBreaker::Refund(size_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ == Phase::kHalfOpen)
    trials_granted_ = std::max(0, trials_granted_ - static_cast<int>(n));
}

void CircuitBreaker::After(const Delivery&, const Outcome&, const CallInfo& call) {
  if (!call.handler_ran) return;
  std::lock_guard<std::mutex> lock(mu_);
  RecordLocked(call.failed, clock_());
}

void CircuitBreaker::RecordLocked(bool failed, uint64_t now_ns) {
  switch (state_) {
    case Phase::kOpen:
      return;  // a straggler from before the breaker opened
    case Phase::kHalfOpen:
      if (failed) {
        TransitionLocked(Phase::kOpen, now_ns, "a trial message failed");
      } else if (++trials_succeeded_ >= config_.half_open_trials) {
        TransitionLocked(Phase::kClosed, now_ns, "the trial messages succeeded");
      }
      return;
    case Phase::kClosed:
      break;
  }
  calls_.emplace_back(now_ns, failed);
  const uint64_t window = Ns(config_.window);
  while (!calls_.empty() && calls_.front().first + window < now_ns) calls_.pop_front();
  size_t failures = 0;
  for (const auto& c : calls_) failures += c.second;
  char why[128];
  if (config_.failure_ratio > 0) {
    if (calls_.size() >= static_cast<size_t>(config_.min_calls) &&
        static_cast<double>(failures) >= config_.failure_ratio * static_cast<double>(calls_.size())) {
      snprintf(why, sizeof why, "%zu of %zu calls failed within %lldms", failures, calls_.size(),
               static_cast<long long>(config_.window.count()));
      TransitionLocked(Phase::kOpen, now_ns, why);
    }
  } else if (failures >= static_cast<size_t>(config_.failure_threshold)) {
    snprintf(why, sizeof why, "%zu failures within %lldms", failures,
             static_cast<long long>(config_.window.count()));
    TransitionLocked(Phase::kOpen, now_ns, why);
  }
}

void CircuitBreaker::TransitionLocked(Phase to, uint64_t now_ns, const char* why) {
  if (to == state_) return;
  LOG(WARNING) << "queue " << queue_ << ": circuit breaker " << StateName(state_) << " -> "
               << StateName(to) << " (" << why << ")"
               << (to == Phase::kOpen ? "; fetching stops for " +
                                            std::to_string(config_.reset_timeout.count()) + "ms"
                                      : std::string());
  state_ = to;
  calls_.clear();
  trials_granted_ = 0;
  trials_succeeded_ = 0;
  if (to == Phase::kOpen) {
    open_until_ns_ = now_ns + Ns(config_.reset_timeout);
    ++times_opened_;
  }
}

std::string CircuitBreaker::State() const {
  std::lock_guard<std::mutex> lock(mu_);
  return StateName(state_);
}

CircuitBreaker::Phase CircuitBreaker::phase() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

uint64_t CircuitBreaker::times_opened() const {
  std::lock_guard<std::mutex> lock(mu_);
  return times_opened_;
}

void CircuitBreaker::Samples(uint64_t, std::vector<MiddlewareSample>* out) const {
  static constexpr std::pair<Phase, const char*> kPhases[] = {
      {Phase::kClosed, "closed"}, {Phase::kOpen, "open"}, {Phase::kHalfOpen, "half_open"}};
  const Phase now = phase();
  for (const auto& [p, name] : kPhases) {
    out->push_back({std::string(kStateFamily), {{"state", name}}, p == now ? 1.0 : 0.0});
  }
  out->push_back({std::string(kOpenedFamily), {}, static_cast<double>(times_opened())});
}

}  // namespace foxworker
