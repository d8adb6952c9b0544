#include "daemon/core/outcome.h"

namespace foxworker {

const char* OutcomeKindName(Outcome::Kind kind) {
  switch (kind) {
    case Outcome::Kind::kAck: return "ack";
    case Outcome::Kind::kRetry: return "retry";
    case Outcome::Kind::kDeadLetter: return "dead-letter";
    case Outcome::Kind::kRelease: return "release";
  }
  return "unknown";
}

}  // namespace foxworker
