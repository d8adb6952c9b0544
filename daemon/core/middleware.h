// Middleware: a step of a queue's pipeline. Each sees the consumer's fetch
// decisions (admission), every delivery before its handler, and every
// outcome after it. Each built-in type lives in a folder of its own under
// daemon/middleware/ and registers itself by name
// (daemon/config/extension_registry.h).
#ifndef FOXWORKER_CORE_MIDDLEWARE_H_
#define FOXWORKER_CORE_MIDDLEWARE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/core/message.h"
#include "daemon/core/outcome.h"

namespace foxworker {

// Monotonic nanoseconds; injected so tests drive time by hand.
using MonotonicClock = std::function<uint64_t()>;

// What a handler call looked like, for After().
struct CallInfo {
  bool handler_ran = false;   // false when a middleware answered in Before()
  uint64_t duration_ns = 0;   // handler time; 0 when it did not run
  bool timed_out = false;
  // The handler asked for a retry (or returned garbage, or timed out): a
  // transient failure. A reject is the message's fault, not the
  // downstream's, and is not a failure here.
  bool failed = false;
};

// One sample of a middleware's metrics for /metrics: a family that its type
// registered, the labels besides "queue", and the value. Samples of one
// queue with the same family and labels are added up.
struct MiddlewareSample {
  std::string family;
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
};

// Implementations must be safe for concurrent use: Admit, Before and After
// are called from every executor thread running the queue.
class Middleware {
 public:
  virtual ~Middleware() = default;
  virtual std::string_view name() const = 0;

  // How many of `want` messages the consumer may fetch now. When it returns
  // less than `want`, *retry_after_ns says when asking again makes sense.
  // Granted-but-unused permits are handed back with Refund().
  virtual size_t Admit(size_t want, uint64_t now_ns, uint64_t* retry_after_ns) {
    (void)now_ns;
    (void)retry_after_ns;
    return want;
  }
  virtual void Refund(size_t n) { (void)n; }

  // Before the handler. An outcome here answers the message without running
  // the handler or the middleware after this one.
  virtual std::optional<Outcome> Before(const Delivery& d) {
    (void)d;
    return std::nullopt;
  }

  // After the outcome was decided (by the handler, the retry policy, a
  // timeout or an earlier middleware).
  virtual void After(const Delivery& d, const Outcome& outcome, const CallInfo& call) {
    (void)d;
    (void)outcome;
    (void)call;
  }

  // A short state for status pages ("closed", "open 4.2s", ...); empty if none.
  virtual std::string State() const { return {}; }

  // Appends its metric samples at `now_ns` (monotonic); none by default.
  virtual void Samples(uint64_t now_ns, std::vector<MiddlewareSample>* out) const {
    (void)now_ns;
    (void)out;
  }
};

}  // namespace foxworker

#endif  // FOXWORKER_CORE_MIDDLEWARE_H_
