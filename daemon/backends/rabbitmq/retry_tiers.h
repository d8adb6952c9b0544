// Delay tiers for delayed retries. RabbitMQ expires messages only at the head
// of a queue, so one retry queue with per-message TTLs would hold a 1 s retry
// behind a 1 h one. Each tier is its own queue with a queue-level TTL; a
// requested delay goes to the nearest tier (on a log scale), so the retry
// policy's jitter of a few percent stays within one tier.
#ifndef FOXWORKER_BACKENDS_RABBITMQ_RETRY_TIERS_H_
#define FOXWORKER_BACKENDS_RABBITMQ_RETRY_TIERS_H_

#include <string>

#include "daemon/config/config.h"

namespace foxworker {

// The tier a retry delay rounds to; zero for a delay under half the
// smallest tier (such a retry is published straight back to the queue).
Duration RetryTierFor(Duration delay);

// "250ms", "5s", "2m", "1h": the tier's suffix in "{queue}.retry.{tier}".
std::string RetryTierName(Duration tier);

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_RABBITMQ_RETRY_TIERS_H_
