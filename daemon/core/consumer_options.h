// ConsumerOptions: what a Consumer needs to know about its queue. The config
// layer's QueueConfig extends it with what only the wiring uses (plugin,
// retry policy name, middleware, backend-specific settings).
#ifndef FOXWORKER_CORE_CONSUMER_OPTIONS_H_
#define FOXWORKER_CORE_CONSUMER_OPTIONS_H_

#include <algorithm>
#include <map>
#include <string>

#include "daemon/base/units.h"

namespace foxworker {

struct ConsumerOptions {
  std::string name;
  std::string backend;  // the backend's name (for logs and hand-over rules)
  std::string source;   // backend-side name (AMQP queue, stream, local queue); default: name
  std::string handler;  // pin every message to this handler; empty = route by message type
  int concurrency = 1;
  int prefetch = 0;     // 0 = max(2 * concurrency, batch_size); else >= both
  // Batch handlers get up to `batch_size` messages, or whatever arrived within
  // `flush_interval`. 0 = batching off: a batch handler then gets batches of
  // one. Per-message handlers always get one message per call.
  int batch_size = 0;
  Duration flush_interval{50};
  Duration timeout{0};  // 0 = no deadline
  // Per message type overrides of `timeout` (handler name -> deadline).
  std::map<std::string, Duration> handler_timeouts;
  // Rejects, before any middleware or handler runs, a payload that does not
  // parse as its content type declares (application/json, */*+json).
  bool validate_payload = true;
  // Where handlers run: false (`pool: queue`, the default) = the queue's own
  // threads, as many as its concurrency; true (`pool: cpu`) = the daemon's
  // CPU-sized pool shared with the other `pool: cpu` queues.
  bool cpu_pool = false;
  // A handler still running past its deadline is "stuck": its message is
  // cancelled and its slot no longer counts against `concurrency`, for up to
  // this many stuck handlers at once (so the queue keeps its capacity while
  // they hang). -1 (the key absent) = as many as `concurrency`.
  int replace_stuck = -1;
  // false (the default): a timed-out message is retried once its stuck
  // handler returns, so two attempts of one message never run at once in
  // this daemon. true: retried at once, while the stuck call may still run.
  bool retry_stuck_at_once = false;

  bool operator==(const ConsumerOptions&) const = default;
};

inline bool HasTimeouts(const ConsumerOptions& q) {
  return q.timeout.count() > 0 || !q.handler_timeouts.empty();
}

// Stuck handlers whose slots the queue replaces (0 without timeouts).
inline int StuckReplacements(const ConsumerOptions& q) {
  if (!HasTimeouts(q)) return 0;
  return q.replace_stuck < 0 ? std::max(1, q.concurrency) : q.replace_stuck;
}

// Handler calls of the queue that may exist at once: its concurrency plus
// the stuck ones it replaces. Threads and per-slot plugin instances are
// sized to it.
inline int HandlerSlots(const ConsumerOptions& q) {
  return std::max(1, q.concurrency) + StuckReplacements(q);
}

// Whether a running consumer with `running` can take `next` in place: they
// differ at most in concurrency, timeout, handler_timeouts, replace_stuck and
// retry_stuck_at_once, and a timeout
// appears only where the consumer's timeout watchdog runs (`watchdog`: it
// started with a timeout).
inline bool OnlyLimitsDiffer(const ConsumerOptions& running, const ConsumerOptions& next,
                             bool watchdog) {
  ConsumerOptions probe = next;
  probe.concurrency = running.concurrency;
  probe.timeout = running.timeout;
  probe.handler_timeouts = running.handler_timeouts;
  probe.replace_stuck = running.replace_stuck;
  probe.retry_stuck_at_once = running.retry_stuck_at_once;
  if (!(probe == running)) return false;
  return watchdog || !HasTimeouts(next);
}

}  // namespace foxworker

#endif  // FOXWORKER_CORE_CONSUMER_OPTIONS_H_
