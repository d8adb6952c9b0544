// The dead-letter copy of a message: the original with the reason and the
// history a person needs to decide what to do with it. Backends that keep
// dead letters as messages (memory, RabbitMQ, Redis) use these headers.
#ifndef FOXWORKER_CORE_DEAD_LETTER_H_
#define FOXWORKER_CORE_DEAD_LETTER_H_

#include <string>

#include "daemon/core/message.h"

namespace foxworker {

inline constexpr char kHeaderOriginalQueue[] = "x-original-queue";
inline constexpr char kHeaderFailureReason[] = "x-failure-reason";
inline constexpr char kHeaderFinalAttempt[] = "x-final-attempt";
inline constexpr char kHeaderFirstSeenAt[] = "x-first-seen-at";
inline constexpr char kHeaderFailedAt[] = "x-failed-at";
inline constexpr char kHeaderMessageType[] = "x-message-type";
inline constexpr char kHeaderOriginalId[] = "x-original-id";

// Copies `d`'s message and adds (replacing earlier values) the dead-letter
// headers. Times are ISO 8601 UTC.
Message MakeDeadLetterCopy(const Delivery& d, const std::string& reason, int64_t failed_at_ms);

}  // namespace foxworker

#endif  // FOXWORKER_CORE_DEAD_LETTER_H_
