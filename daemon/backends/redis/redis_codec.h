// Stream entries <-> messages.
//
// An entry's fields map to a Message this way (docs/backends/redis.md):
//   <payload_field> (default "data")   payload
//   content_type, content_encoding, message_type (or type), correlation_id,
//   reply_to, app_id, user_id, expiration, message_id
//                                       the Properties of the same name
//   priority (0-255), timestamp (Unix ms)  Properties
//   x-attempt (else attempt)            attempt number of the entry's first
//                                       delivery (retry copies carry
//                                       x-attempt; a producer's or an older
//                                       version's copy may carry attempt)
//   x-original-id                       the message id (else the entry id);
//                                       also a header
//   anything else                       a header
#ifndef FOXWORKER_BACKENDS_REDIS_REDIS_CODEC_H_
#define FOXWORKER_BACKENDS_REDIS_REDIS_CODEC_H_

#include <hiredis/hiredis.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/core/message.h"

namespace foxworker {

inline constexpr char kAttemptField[] = "attempt";
// The attempt field of foxworker's retry copies: a bookkeeping field, so a
// producer's own `attempt` field is kept as it was.
inline constexpr char kCopyAttemptField[] = "x-attempt";
// The message id that copies carry (kHeaderOriginalId of dead_letter.h):
// when an entry has it, it is the message's id and the time in it its
// enqueued time; it stays a header too.
inline constexpr char kOriginalIdField[] = "x-original-id";

// Builds the message of entry `id` from its field array (name, value, ...).
// `delivery_count` is the entry's count in the group's pending list; the
// message's attempt is the entry's attempt field (1 when absent) plus the
// deliveries before this one, so deliveries that crashed count too.
Message DecodeEntry(const std::string& id, const redisReply* fields,
                    const std::string& payload_field, uint32_t delivery_count);

// The same into `m`, which may hold an earlier message: every field is
// overwritten, and its strings keep their capacity (no allocation when the
// new values fit).
void DecodeEntryInto(std::string_view id, const redisReply* fields,
                     const std::string& payload_field, uint32_t delivery_count, Message* m);

// The fields (name, value, ...) that carry `m`, with `attempt` as the
// attempt field (omitted when 1).
std::vector<std::string> EncodeMessage(const Message& m, const std::string& payload_field,
                                       uint32_t attempt);

// Unix ms of a stream entry id ("1700000000000-3"); 0 when malformed.
int64_t EntryIdMs(const std::string& id);

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_REDIS_REDIS_CODEC_H_
