// What the operator's console (/api/v1 beyond the queue list, and the page
// at /) reads and renders: running jobs, plugins, the history ring the page
// charts, dead letters and scheduled jobs as JSON, and the parsing of the
// requests that change things (enqueue, retry, delete). Pure functions and a
// small sampler, so tests can check them without HTTP.
#ifndef FOXWORKER_APP_ADMIN_ADMIN_CONSOLE_H_
#define FOXWORKER_APP_ADMIN_ADMIN_CONSOLE_H_

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/base/status.h"
#include "daemon/base/units.h"
#include "daemon/core/backend.h"
#include "daemon/core/inspect.h"
#include "daemon/core/message.h"

namespace foxworker {

class Supervisor;
struct RuntimeSnapshot;

// {"running": [{queue, handler, provider, message_id, attempt, running_for_s,
// stuck}]}: every handler call running now, longest first.
std::string RenderRunningJson(const Supervisor& supervisor);

// {"plugins": [{name, version, description, instance_model, handlers}]}
std::string RenderPluginsJson(const RuntimeSnapshot& snapshot);

// The history the overview charts: one sample per queue every `interval`,
// the last `capacity` of them. Sample() runs on the admin loop thread; Render
// from any thread.
class ConsoleHistory {
 public:
  ConsoleHistory(Duration interval, size_t capacity) : interval_(interval), capacity_(capacity) {}
  Duration interval() const { return interval_; }
  // Reads every queue's counters and latency histograms (and depth, where a
  // depth reading is given) and appends one sample per queue.
  // REQUIRES: the supervisor's ReadLock() held.
  void Sample(const Supervisor& supervisor, int64_t now_ms);
  // {"interval_s": 5, "queues": {"q": [{t, processed, failed, retried,
  // dead_lettered, p50_s, p95_s, p99_s, backlog}]}}: rates are per second
  // over the sample's interval; latency percentiles over the interval's
  // handler calls (null when none ran).
  std::string RenderJson() const;

 private:
  struct Point {
    int64_t t_ms = 0;
    double processed_per_s = 0, failed_per_s = 0, retried_per_s = 0, dead_per_s = 0;
    double p50 = -1, p95 = -1, p99 = -1;
    int64_t backlog = -1;
    int64_t in_flight = 0;
  };
  struct Last {
    int64_t t_ms = 0;
    uint64_t acked = 0, failed = 0, retried = 0, dead = 0;
    std::vector<uint64_t> cumulative;  // merged handler-latency buckets
  };
  const Duration interval_;
  const size_t capacity_;
  mutable std::mutex mu_;
  std::map<std::string, std::deque<Point>> points_;
  std::map<std::string, Last> last_;
};

// The q-th quantile (0..1) of the observations between two cumulative
// bucket snapshots of LatencyHistogram (linear inside the bucket); -1 when
// none.
double QuantileFromBuckets(const std::vector<uint64_t>& before, const std::vector<uint64_t>& after,
                           double q);

// A dead-letter page, one letter, scheduled jobs, as the API answers them.
std::string RenderDeadPageJson(const DeadLetterPage& page, size_t offset, size_t limit);
// The payload shown as "json" (pretty-printed), "text" (valid UTF-8 without
// control characters other than whitespace) or "hex" (a hex dump).
std::string RenderDeadLetterJson(const DeadLetter& letter);
std::string RenderScheduledJson(const std::vector<ScheduledJob>& jobs);
std::string RenderDoneJson(const std::vector<std::string>& ids);
std::string RenderCountJson(size_t count);

// POST .../dead/retry and .../dead/delete: {"ids": [...]} or
// {"all": true, "reason": "text"}.
struct DeadSelection {
  std::vector<std::string> ids;
  bool all = false;
  DeadLetterFilter filter;
};
Result<DeadSelection> ParseDeadSelection(std::string_view body);

// POST /api/v1/queues/{name}/messages:
// {"payload": "text" | "payload_base64": "...", "type": "t",
//  "headers": {"k": "v"}, "delay": "5s" | "delay_ms": 5000, "priority": 3,
//  "unique_key": "k", "content_type": "application/json"}
struct EnqueueRequest {
  Message message;
  Duration delay{0};
};
Result<EnqueueRequest> ParseEnqueue(std::string_view body);

// A random 32-byte token as 64 hex digits (the session cookie).
std::string RandomToken();

}  // namespace foxworker

#endif  // FOXWORKER_APP_ADMIN_ADMIN_CONSOLE_H_
