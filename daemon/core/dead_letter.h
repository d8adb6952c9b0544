// The dead-letter policy: which facts a dead-lettered copy of a message
// carries, as typed header fields. It is written once, here; each backend
// maps the fields to its own wire types:
//   - memory and Redis (string headers / stream fields): MakeDeadLetterCopy
//     below, integers in decimal and timestamps as ISO 8601 UTC text;
//   - RabbitMQ: strings as AMQP longstr, integers as AMQP signed 64-bit,
//     timestamps as ISO 8601 UTC longstr (as the other backends, so a plugin
//     reading a dead letter sees the same text everywhere);
//   - local: keeps no copy; the dead job's row holds the same facts in its
//     columns (queue, id, properties, attempts, last_error, failed_at), so it
//     does not use these fields.
//
// The fields, in this order:
//   x-original-queue   string     the queue it was consumed from
//   x-original-id      string     the message's id
//   x-message-type     string     its type; only when the message has one
//   x-failure-reason   string     why it was dead-lettered
//   x-final-attempt    integer    the attempt that ran last
//   x-first-seen-at    timestamp  when it was enqueued; only when known and
//                                 not already carried from an earlier copy
//   x-failed-at        timestamp  when it was dead-lettered
#ifndef FOXWORKER_CORE_DEAD_LETTER_H_
#define FOXWORKER_CORE_DEAD_LETTER_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "daemon/core/message.h"

namespace foxworker {

inline constexpr char kHeaderOriginalQueue[] = "x-original-queue";
inline constexpr char kHeaderFailureReason[] = "x-failure-reason";
inline constexpr char kHeaderFinalAttempt[] = "x-final-attempt";
inline constexpr char kHeaderFirstSeenAt[] = "x-first-seen-at";
inline constexpr char kHeaderFailedAt[] = "x-failed-at";
inline constexpr char kHeaderMessageType[] = "x-message-type";
inline constexpr char kHeaderOriginalId[] = "x-original-id";

// One dead-letter header: a name and a typed value.
struct DeadLetterField {
  enum class Type { kString, kInteger, kTimestamp };

  const char* name = "";
  Type type = Type::kString;
  std::string_view text;  // kString
  int64_t number = 0;     // kInteger: the value; kTimestamp: Unix ms

  // The value as text, for wires whose headers are strings: integers in
  // decimal, timestamps as ISO 8601 UTC ("2026-11-22T22:53:51.123Z").
  std::string ToText() const;
};

// The fields of one dead letter (at most seven; no allocation).
class DeadLetterFields {
 public:
  static constexpr size_t kMaxFields = 7;

  const DeadLetterField* begin() const { return fields_.data(); }
  const DeadLetterField* end() const { return fields_.data() + size_; }
  size_t size() const { return size_; }
  // The field named `name`, or nullptr.
  const DeadLetterField* Find(std::string_view name) const;

  void Add(const DeadLetterField& field) { fields_[size_++] = field; }

 private:
  std::array<DeadLetterField, kMaxFields> fields_{};
  size_t size_ = 0;
};

// The dead-letter fields of `d`, consumed from `original_queue` (as the
// backend names it), dead-lettered at `failed_at_ms` (Unix ms) for `reason`.
// The string fields point into `d`, `original_queue` and `reason`, which
// must outlive the result.
DeadLetterFields DeadLetterFieldsFor(const Delivery& d, std::string_view original_queue,
                                     std::string_view reason, int64_t failed_at_ms);

// Copies `d`'s message and sets (replacing earlier values in place, else
// appending) the fields of DeadLetterFieldsFor(d, *d.queue, ...) as string
// headers. For backends whose headers are strings (memory, Redis).
Message MakeDeadLetterCopy(const Delivery& d, const std::string& reason, int64_t failed_at_ms);

}  // namespace foxworker

#endif  // FOXWORKER_CORE_DEAD_LETTER_H_
