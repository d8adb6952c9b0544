// Handler and HandlerSet: what a Consumer runs messages on. The core knows
// handlers only through these interfaces; daemon/plugins/ implements them
// over the C ABI of dlopen()ed plugins, and tests implement them directly.
#ifndef FOXWORKER_CORE_HANDLER_H_
#define FOXWORKER_CORE_HANDLER_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/base/status.h"
#include "daemon/core/message.h"
#include "daemon/core/verdict.h"

namespace foxworker {

// An opaque handler instance (one plugin instance); HandlerSet hands them out.
using HandlerInstance = void*;

// One routable handler. Safe for concurrent use; an instance is used by one
// call at a time (the HandlerSet's instance model decides how they are shared).
class Handler {
 public:
  virtual ~Handler() = default;
  virtual const std::string& name() const = 0;
  // True when the handler takes messages in batches (HandleBatch).
  virtual bool batched() const = 0;
  // Runs `d`. The reply's reason points into `reason_buf` (`reason_cap` bytes).
  virtual HandlerReply Handle(HandlerInstance instance, Delivery& d, char* reason_buf,
                              size_t reason_cap) const = 0;
  // Runs `n` messages in one call; `replies[i]` answers `batch[i]`, with its
  // reason in `reason_bufs + i * reason_cap`. A kPending reply is turned into
  // a retry by the caller (batches cannot defer).
  virtual void HandleBatch(HandlerInstance instance, Delivery* const* batch, size_t n,
                           HandlerReply* replies, char* reason_bufs, size_t reason_cap) const = 0;
};

// The child processes a queue's handlers run in (isolation: process), for
// /api/v1/queues and /metrics. `index` is the child's slot: its pid changes
// when it is restarted or recycled, the slot does not.
struct HandlerChild {
  int index = 0;
  int pid = 0;             // 0 while it is being restarted
  uint64_t tasks = 0;      // messages this process answered
  int running = 0;
  uint64_t rss_bytes = 0;  // resident memory now
  double uptime_s = 0;
  uint64_t restarts = 0;   // of this slot: crashes and recycling
  uint64_t crashes = 0;
};
struct HandlerChildren {
  bool isolated = false;  // the handlers run in child processes
  std::vector<HandlerChild> children;
  uint64_t crash_loop_pauses = 0;  // times the set paused its queue after a crash loop
};

// The handlers one queue can route to and the instances it runs them on.
// Safe for concurrent use (Acquire/Release from every thread running the
// queue); the resize calls come from the control thread.
class HandlerSet {
 public:
  virtual ~HandlerSet() = default;

  // Who provides the handlers ("plugin mail"), for log lines and reasons.
  virtual const std::string& provider() const = 0;
  // Every handler, in declaration order.
  virtual const std::vector<const Handler*>& handlers() const = 0;
  // The handler for a message type: exact name first, then "*"; null if none.
  virtual const Handler* Find(std::string_view type) const = 0;
  // "a, b, *" for messages.
  virtual std::string HandlerNames() const = 0;

  // An instance for the calling thread; Release() it after use.
  virtual HandlerInstance Acquire() = 0;
  virtual void Release(HandlerInstance instance) = 0;

  // Instances made ahead of an in-place concurrency change, so that a failing
  // create fails the change before anything changed. Destroyed unless handed
  // to Resize().
  class Growth {
   public:
    virtual ~Growth() = default;
  };
  virtual Result<std::unique_ptr<Growth>> PrepareResize(int concurrency) = 0;
  virtual void Resize(std::unique_ptr<Growth> growth) = 0;
  // Destroys idle instances beyond what max(concurrency, `workers`) needs.
  virtual void Trim(int workers) = 0;

  // Handle() only hands each message on and returns at once (isolation:
  // process sends it to a child): one consumer task keeps up with any
  // number of messages, so a buffered message wakes no further task.
  virtual bool HandsOff() const { return false; }

  // Its child processes, when it runs handlers in them. Any thread.
  virtual HandlerChildren Children() const { return {}; }

  // A set may stop its queue for a while by itself (isolation: process
  // does after a crash loop): it calls `hold` with why when the queue
  // should take no more messages, and with "" when it may go on. While it
  // holds, the set answers Verdict::kRelease for messages it did not start.
  // Calls to `hold` come one at a time (from the set's threads, or from
  // the thread calling EndHold), none after SetHoldCallback(nullptr)
  // returned. The consumer sets it when it starts.
  using HoldCallback = std::function<void(const std::string& reason)>;
  virtual void SetHoldCallback(HoldCallback hold) { (void)hold; }
  // An operator resumed the queue: a hold ends now (through the callback)
  // and what led to it is forgotten (the crashes counted so far).
  virtual void EndHold() {}

  // The consumer stopped fetching (a pause, a shutdown, a hand-over):
  // while `on`, messages the set accepted (Verdict::kPending) but has not
  // started go back through Consumer::Complete as Verdict::kRelease,
  // uncharged, those waiting now included. Sets that start every message
  // at once ignore it. Any thread.
  virtual void SetHandBack(bool on) { (void)on; }

  // Shutdown, after the consumer drained: starts ending what runs the
  // handlers so that it is gone by `deadline` (isolation: process: the
  // children run the plugin's shutdown, then are terminated), without
  // waiting; the destructor waits. Control thread.
  virtual void BeginClose(std::chrono::steady_clock::time_point deadline) { (void)deadline; }
  // Shutdown gave up waiting for the handlers (`why`): ends those that run
  // somewhere it can end them (isolation: process: their children are
  // terminated) and hands their messages back through Consumer::Complete
  // as Verdict::kRelease, uncharged, as each one's end is seen (within
  // seconds; the call does not wait). Returns how many. 0 for handlers in
  // the daemon's own threads, which cannot be ended. Control thread.
  virtual size_t Abandon(const std::string& why) {
    (void)why;
    return 0;
  }
};

}  // namespace foxworker

#endif  // FOXWORKER_CORE_HANDLER_H_
