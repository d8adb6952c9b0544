// ConsumerOptions: what a Consumer needs to know about its queue. The config
// layer's QueueConfig extends it with what only the wiring uses (plugin,
// retry policy name, middleware, backend-specific settings).
#ifndef FOXWORKER_CORE_CONSUMER_OPTIONS_H_
#define FOXWORKER_CORE_CONSUMER_OPTIONS_H_

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

  bool operator==(const ConsumerOptions&) const = default;
};

// Whether a running consumer with `running` can take `next` in place: they
// differ at most in concurrency, timeout and handler_timeouts, and a timeout
// appears only where the consumer's timeout watchdog runs (`watchdog`: it
// started with a timeout).
inline bool OnlyLimitsDiffer(const ConsumerOptions& running, const ConsumerOptions& next,
                             bool watchdog) {
  ConsumerOptions probe = next;
  probe.concurrency = running.concurrency;
  probe.timeout = running.timeout;
  probe.handler_timeouts = running.handler_timeouts;
  if (!(probe == running)) return false;
  const bool wants_timeouts = next.timeout.count() > 0 || !next.handler_timeouts.empty();
  return watchdog || !wants_timeouts;
}

}  // namespace foxworker

#endif  // FOXWORKER_CORE_CONSUMER_OPTIONS_H_
