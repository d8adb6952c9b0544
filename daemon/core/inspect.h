// Inspector: what an operator reads and changes of a backend's queues that is
// not the flow of messages: backlog depth, dead letters (list, show, retry,
// delete) and scheduled retries. The console (/api/v1), `foxworkerctl --url`
// and the depth metrics use it.
//
// A backend opens an inspector on a connection of its own (a second SQLite
// connection, a second hiredis context, a second AMQP connection), so that
// nothing an operator does waits behind, or delays, message flow. Every
// call blocks on that connection, bounded by `InspectorOptions::timeout`;
// an inspector is used by one thread at a time (callers serialise).
#ifndef FOXWORKER_CORE_INSPECT_H_
#define FOXWORKER_CORE_INSPECT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/base/status.h"
#include "daemon/base/units.h"

namespace foxworker {

struct SourceOptions;

struct InspectorOptions {
  // The most any one call may block on the broker or the file; past it the
  // call returns kUnavailable and the inspector reconnects on its next call.
  Duration timeout = std::chrono::seconds(5);
};

// Which dead letters a list, a retry-all or a delete-all applies to.
struct DeadLetterFilter {
  // Case-insensitive substring of the failure reason; empty = any.
  std::string reason_contains;
};

// The case folding every inspector applies to reasons and to
// `reason_contains` (ASCII letters only, as SQLite's lower() does).
inline std::string LowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// One dead letter as a list shows it.
struct DeadLetterSummary {
  // Stable across calls for as long as the letter exists: the value to pass
  // to GetDead, RetryDead and DeleteDead (a row id, a stream entry id, a
  // hash of what identifies a RabbitMQ message).
  std::string id;
  std::string queue;       // the daemon's queue name
  std::string message_id;  // the message's own id, "" when it has none
  std::string type;        // the message type, "" when none
  std::string reason;      // why it was dead-lettered
  int attempts = 0;        // attempts charged before it was dead-lettered
  int64_t first_seen_ms = 0;  // Unix ms the message was first enqueued/seen; 0 = unknown
  int64_t failed_at_ms = 0;   // Unix ms it was dead-lettered; 0 = unknown
  size_t payload_bytes = 0;
};

// One dead letter with everything stored about it.
struct DeadLetter {
  DeadLetterSummary summary;
  std::string payload;     // cut at GetDead's `max_payload` bytes
  bool payload_truncated = false;
  // The message's headers as the handler saw them (name, value).
  std::vector<std::pair<std::string, std::string>> headers;
  // Everything else the backend stores about it (AMQP properties, stream
  // fields, SQLite columns), as (name, value) text.
  std::vector<std::pair<std::string, std::string>> properties;
};

struct DeadLetterPage {
  std::vector<DeadLetterSummary> letters;  // newest failure first
  // Letters matching the filter in all; `total_exact` false when the
  // backend stopped counting (say, a browse limit) and `total` is a floor.
  size_t total = 0;
  bool total_exact = true;
};

// A message waiting for a later time: a retry's backoff or a delayed enqueue.
struct ScheduledJob {
  std::string queue;
  std::string message_id;
  std::string type;
  int attempt = 0;      // attempts already charged (0 = a delayed enqueue)
  int64_t due_ms = 0;   // Unix ms it becomes ready
  std::string last_error;  // the failure that scheduled it, "" when none
};

// A queue's depth, read cheaply (an indexed count, XLEN/XPENDING, a passive
// declare). -1 = the backend cannot tell.
struct QueueDepth {
  int64_t backlog = -1;         // ready to fetch, not yet delivered
  int64_t unacked = -1;         // delivered to some consumer, not yet settled
  int64_t scheduled = -1;       // waiting for a retry backoff or a delay
  int64_t dead_letters = -1;
  double oldest_age_seconds = -1;  // age of the oldest ready message
};

class Inspector {
 public:
  virtual ~Inspector() = default;

  // `queue` names the queue as the backend's sources were opened with it
  // (the daemon's queue name, the backend-side source, the queue's backend
  // options, which decide for example the RabbitMQ dead-letter queue).
  virtual Result<QueueDepth> Depth(const SourceOptions& queue) = 0;

  // Dead letters newest first, `offset` of them skipped, at most `limit`.
  virtual Result<DeadLetterPage> ListDead(const SourceOptions& queue, const DeadLetterFilter& filter,
                                          size_t offset, size_t limit) = 0;
  // kNotFound when `id` is not a dead letter of `queue` (any more).
  virtual Result<DeadLetter> GetDead(const SourceOptions& queue, const std::string& id,
                                     size_t max_payload) = 0;

  // Puts the letters back on their queue as new work: attempt count reset,
  // failure fields dropped, due now; removed from the dead letters only once
  // the copy is durable. Returns the ids done; unknown ids are skipped.
  virtual Result<std::vector<std::string>> RetryDead(const SourceOptions& queue,
                                                     const std::vector<std::string>& ids) = 0;
  // Every letter matching `filter`; returns how many.
  virtual Result<size_t> RetryMatching(const SourceOptions& queue, const DeadLetterFilter& filter) = 0;

  virtual Result<std::vector<std::string>> DeleteDead(const SourceOptions& queue,
                                                      const std::vector<std::string>& ids) = 0;
  virtual Result<size_t> DeleteMatching(const SourceOptions& queue, const DeadLetterFilter& filter) = 0;

  // Retries waiting for their backoff and delayed messages, soonest first.
  // kUnavailable with a reason when the backend cannot list them (RabbitMQ's
  // TTL tiers cannot be browsed).
  virtual Result<std::vector<ScheduledJob>> ListScheduled(const SourceOptions& queue, size_t limit) = 0;
};

}  // namespace foxworker

#endif  // FOXWORKER_CORE_INSPECT_H_
