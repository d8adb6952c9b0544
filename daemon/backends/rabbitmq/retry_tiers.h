// Delay tiers for delayed retries, derived from a queue's retry policy.
//
// RabbitMQ expires messages only at the head of a queue, so one retry queue
// with per-message TTLs would hold a 1 s retry behind a 1 h one. Each tier is
// its own queue with a queue-level TTL (`x-message-ttl`) that dead-letters
// back to the main queue.
//
// The tiers are the distinct delays the policy produces for attempts
// 1..max_attempts-1, each widened to the top of its jitter range (capped at
// `max`) and rounded up to three significant digits, plus steps of a 1-2-5
// ladder (100ms ... 24h) for delays a handler or a publisher asks for, and
// the policy's `max`. There are at most kMaxRetryTiers: when there are more,
// the tier closest to the next longer one is dropped (ladder steps first),
// and its delays go to that longer tier.
//
// A delay goes to the first tier at least as long as the longest delay it
// may draw (for a retry: its un-jittered delay's jitter range, so jitter never
// moves a retry into another tier), and its copy carries its own delay as
// the per-message `expiration`. It therefore waits at least its own delay,
// and at most the tier's TTL when a longer one of the same tier is ahead.
#ifndef FOXWORKER_BACKENDS_RABBITMQ_RETRY_TIERS_H_
#define FOXWORKER_BACKENDS_RABBITMQ_RETRY_TIERS_H_

#include <string>
#include <vector>

#include "daemon/config/config.h"

namespace foxworker {

inline constexpr size_t kMaxRetryTiers = 16;

struct RetryTier {
  Duration ttl;         // the queue's x-message-ttl
  bool policy = false;  // a delay of the retry policy (else a ladder step)
  bool operator==(const RetryTier&) const = default;
};

// The tiers of `policy`, shortest first; every ttl is positive, and the last
// is at least the policy's max and 24h.
std::vector<RetryTier> ComputeRetryTiers(const RetryPolicyOptions& policy,
                                         size_t max_tiers = kMaxRetryTiers);

// The longest delay the policy draws when the un-jittered delay is `base`.
Duration LongestJitteredDelay(const RetryPolicyOptions& policy, Duration base);

// The first tier whose TTL is at least `longest`; null when `longest` is zero
// (no tier: straight back to the queue) or beyond every tier.
const RetryTier* FindRetryTier(const std::vector<RetryTier>& tiers, Duration longest);

// "250ms", "1.1s", "2m": the tier's suffix after the retry queue prefix.
std::string RetryTierName(Duration ttl);

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_RABBITMQ_RETRY_TIERS_H_
