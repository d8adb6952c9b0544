// Outcome: what the daemon decided for a delivery, sent back to its backend.
#ifndef FOXWORKER_CORE_OUTCOME_H_
#define FOXWORKER_CORE_OUTCOME_H_

#include <memory>
#include <string>
#include <vector>

#include "daemon/base/units.h"
#include "daemon/core/message.h"

namespace foxworker {

struct Outcome {
  enum class Kind {
    kAck,         // processed: remove the message
    kRetry,       // redeliver after `delay` with attempt + 1
    kDeadLetter,  // move to the dead-letter store with `reason`
    kRelease,     // never started (shutdown, pause): make it available again
                  // without counting an attempt where the backend can
  };
  Kind kind = Kind::kAck;
  Duration delay{0};
  std::string reason;
  // kRetry: `delay` before jitter (the policy's backoff for the attempt, or
  // the handler's capped request). Backends that round delays to tiers pick
  // the tier by it, so jitter never moves a retry into another tier.
  Duration base_delay{0};
  // A dead letter the message earned on its own (the handler rejected it,
  // nothing handles its type, a middleware refused it), as opposed to one
  // that ran out of attempts. Counted as "rejected" in the metrics.
  bool rejected = false;

  static Outcome Ack() { return {}; }
  static Outcome Retry(Duration delay, std::string reason) {
    return {Kind::kRetry, delay, std::move(reason), delay, false};
  }
  static Outcome Retry(Duration delay, std::string reason, Duration base_delay) {
    return {Kind::kRetry, delay, std::move(reason), base_delay, false};
  }
  // Out of attempts (or otherwise given up on after failures).
  static Outcome DeadLetter(std::string reason) {
    return {Kind::kDeadLetter, Duration{0}, std::move(reason), Duration{0}, false};
  }
  // Dead-lettered without retrying: see `rejected`.
  static Outcome Reject(std::string reason) {
    return {Kind::kDeadLetter, Duration{0}, std::move(reason), Duration{0}, true};
  }
  static Outcome Release() { return {Kind::kRelease, Duration{0}, {}, Duration{0}, false}; }
};

const char* OutcomeKindName(Outcome::Kind kind);

struct Settlement {
  std::unique_ptr<Delivery> delivery;
  Outcome outcome;
};

}  // namespace foxworker

#endif  // FOXWORKER_CORE_OUTCOME_H_
