// Message: what a backend received, in backend-neutral form.
// Delivery: one message handed to a consumer, with the state the host keeps
// while it is processed. A Delivery is what plugins see as foxw_message.
#ifndef FOXWORKER_CORE_MESSAGE_H_
#define FOXWORKER_CORE_MESSAGE_H_

#include <atomic>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "daemon/core/deferred_completion.h"
#include "daemon/core/running_journal.h"

namespace foxworker {

struct Properties {
  std::string content_type;
  std::string content_encoding;
  std::string message_type;
  std::string correlation_id;
  std::string reply_to;
  std::string app_id;
  std::string user_id;
  std::string expiration;
  std::string message_id;  // the producer's id, when it set one
  std::string cluster_id;  // AMQP's cluster-id (deprecated by the spec, still carried)
  uint8_t priority = 0;      // clamped to 0..255 (sent_priority has it as sent)
  int64_t timestamp_ms = 0;  // producer's timestamp, Unix ms; 0 = unknown
  // What the producer set, as it set it (plugin ABI 1.1's msg_property_int):
  // a priority outside 0..255 on Redis, a timestamp of 0, a delivery mode.
  bool priority_set = false;
  int64_t sent_priority = 0;
  bool timestamp_set = false;
  uint8_t delivery_mode = 0;  // AMQP: 1 transient, 2 persistent; 0 = not set
};

using Headers = std::vector<std::pair<std::string, std::string>>;

// The type a header was sent with (foxw_header_type). A backend whose
// headers are all strings leaves Message::header_types empty.
enum class HeaderType : uint8_t {
  kString = 1,
  kNull = 2,
  kBool = 3,
  kInt = 4,
  kFloat = 5,
  kDecimal = 6,
  kTimestamp = 7,
  kBytes = 8,
  kTable = 9,
  kArray = 10,
};

struct Message {
  std::string id;  // the backend's id for this message (stable across redeliveries)
  std::string payload;
  Properties props;
  Headers headers;
  // headers[i]'s type, when the backend knows types (AMQP); empty: all are
  // strings. Set with the headers, by the backend that decoded them.
  std::vector<HeaderType> header_types;
  int64_t enqueued_at_ms = 0;  // Unix ms; 0 = unknown
  uint32_t attempt = 1;        // this delivery's attempt number, starting at 1

  // Returns the header's value or nullptr.
  const std::string* FindHeader(std::string_view name) const {
    for (const auto& [k, v] : headers)
      if (k == name) return &v;
    return nullptr;
  }
  HeaderType TypeOfHeader(size_t index) const {
    return index < header_types.size() && header_types.size() == headers.size()
               ? header_types[index]
               : HeaderType::kString;
  }
};

class Consumer;

// REQUIRES: a Delivery is owned by exactly one party at a time: the source
// that produced it, then the consumer running it, then the source again
// through Settle().
struct Delivery {
  static constexpr uint64_t kNoDeadline = std::numeric_limits<uint64_t>::max();

  Message msg;
  const std::string* queue = nullptr;  // the consumer's queue name (outlives the delivery)
  uint64_t tag = 0;                    // backend token: AMQP delivery tag, job id, ...
  uint64_t generation = 0;             // backend token: connection or lease generation
  uint64_t received_ns = 0;            // monotonic time the daemon received it
  uint64_t started_ns = 0;             // monotonic time its handler started
  uint64_t deadline_ns = kNoDeadline;  // monotonic; kNoDeadline = none
  std::atomic<bool> cancelled{false};
  // The consumer's cancel-everything flag (shutdown timeout); may be null.
  const std::atomic<bool>* cancel_all = nullptr;
  // A handler that deferred it (Verdict::kPending), the plugin's complete()
  // and the timeout watchdog agree through this on who settles it.
  DeferredCompletion deferred;
  Consumer* consumer = nullptr;
  // A deferred delivery's entry in the running journal, ended when the
  // delivery is destroyed or reset (it was settled).
  RunningJournalHold journal_hold;

  // Clears everything but `msg`, so a backend can reuse the allocation for
  // the next message. REQUIRES: nobody else refers to this delivery.
  void ResetState() {
    queue = nullptr;
    tag = 0;
    generation = 0;
    received_ns = 0;
    started_ns = 0;
    deadline_ns = kNoDeadline;
    cancelled.store(false, std::memory_order_relaxed);
    cancel_all = nullptr;
    deferred.Reset();
    consumer = nullptr;
    journal_hold.Release();
  }

  bool IsCancelled(uint64_t now_ns) const {
    return cancelled.load(std::memory_order_relaxed) ||
           (cancel_all != nullptr && cancel_all->load(std::memory_order_relaxed)) ||
           now_ns >= deadline_ns;
  }
};

}  // namespace foxworker

#endif  // FOXWORKER_CORE_MESSAGE_H_
