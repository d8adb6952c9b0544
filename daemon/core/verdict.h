// Verdict and HandlerReply: what a handler answered for one message.
#ifndef FOXWORKER_CORE_VERDICT_H_
#define FOXWORKER_CORE_VERDICT_H_

#include <cstdint>
#include <string_view>

namespace foxworker {

// A handler's answer for one message.
enum class Verdict {
  kAck,      // done: remove the message
  kRetry,    // transient failure: the retry policy decides
  kReject,   // permanent failure: dead-letter at once
  kPending,  // deferred: the handler completes it later (Consumer::Complete)
  kUnknown,  // anything else a handler returned: a bug, treated as a retry
  // Not started: the handler set could not run it now (its queue is being
  // paused) and hands it back to the backend untouched, no attempt charged.
  // A handler set's answer only; no plugin verdict maps to it.
  kRelease,
};

struct HandlerReply {
  Verdict verdict = Verdict::kUnknown;
  int64_t raw = 0;              // the handler's own value, for the kUnknown log line
  std::string_view reason;      // valid until the next call on the same buffers
  uint64_t retry_delay_ms = 0;  // kRetry: the handler's requested delay (0 = none)
};

}  // namespace foxworker

#endif  // FOXWORKER_CORE_VERDICT_H_
