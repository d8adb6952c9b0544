// DeferredCompletion: the race between a handler that returns "pending", the
// plugin's complete() (from any thread, possibly before the handler even
// returned) and the timeout watchdog, decided by two atomic steps.
//
// Who may finish a deferred delivery is settled once, by Claim*(): the
// plugin's complete() or the watchdog, whoever comes first. Independently,
// the handler's return and a plugin's complete() meet in a second step, so
// that exactly one of the two threads settles the delivery:
//
//   handler returns kPending ──HandlerDeferred()── true:  complete() settles later
//                                              └── false: complete() already ran;
//                                                         the handler thread settles
//   complete() ──ClaimForPlugin()── kTwice / kTimedOut: nothing more to do
//              └── kClaimed, store the result ──ResultReady()── true:  complete() settles
//                                                            └── false: the handler thread
//                                                                       settles on return
#ifndef FOXWORKER_CORE_DEFERRED_COMPLETION_H_
#define FOXWORKER_CORE_DEFERRED_COMPLETION_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "daemon/core/verdict.h"

namespace foxworker {

// Safe for concurrent use by the handler's thread, the plugin's completing
// thread and the watchdog, with the ownership rules above.
class DeferredCompletion {
 public:
  enum class Claim {
    kClaimed,   // the caller finishes the delivery
    kTimedOut,  // the watchdog finished it already (a late complete())
    kTwice,     // the plugin completed it before (a plugin bug)
  };

  // The plugin's complete(): claims the finish for the plugin.
  Claim ClaimForPlugin() {
    Finisher expected = Finisher::kNobody;
    if (finisher_.compare_exchange_strong(expected, Finisher::kPlugin, std::memory_order_acq_rel))
      return Claim::kClaimed;
    return expected == Finisher::kWatchdog ? Claim::kTimedOut : Claim::kTwice;
  }
  // The timeout watchdog: true when it claimed the finish (the plugin had not
  // completed it), so it settles a copy and a late complete() frees it.
  bool ClaimForWatchdog() {
    Finisher expected = Finisher::kNobody;
    return finisher_.compare_exchange_strong(expected, Finisher::kWatchdog,
                                             std::memory_order_acq_rel);
  }
  // Whether the plugin's complete() claimed the finish.
  bool CompletedByPlugin() const {
    return finisher_.load(std::memory_order_acquire) == Finisher::kPlugin;
  }

  // The handler's thread, after the handler returned kPending: true when the
  // result is not in yet (the completing thread settles); false when
  // complete() ran during the call (result() holds its answer and the
  // handler's thread settles).
  bool HandlerDeferred() {
    Meeting expected = Meeting::kHandlerRunning;
    return meeting_.compare_exchange_strong(expected, Meeting::kAwaitingResult,
                                            std::memory_order_acq_rel);
  }
  // The completing thread, after ClaimForPlugin() and SetResult(): true when
  // the handler already returned kPending (the caller settles); false when it
  // is still running (its thread settles when it returns).
  bool ResultReady() {
    return meeting_.exchange(Meeting::kResultIn, std::memory_order_acq_rel) ==
           Meeting::kAwaitingResult;
  }

  // What complete() answered. Written before ResultReady(), read after a
  // false HandlerDeferred() or a true ResultReady().
  void SetResult(const HandlerReply& reply) {
    verdict_ = reply.verdict;
    raw_ = reply.raw;
    reason_.assign(reply.reason.data(), reply.reason.size());
    delay_ms_ = reply.retry_delay_ms;
  }
  HandlerReply result() const { return HandlerReply{verdict_, raw_, reason_, delay_ms_}; }

  void Reset() {
    finisher_.store(Finisher::kNobody, std::memory_order_relaxed);
    meeting_.store(Meeting::kHandlerRunning, std::memory_order_relaxed);
    verdict_ = Verdict::kUnknown;
    raw_ = 0;
    reason_.clear();
    delay_ms_ = 0;
  }

 private:
  enum class Finisher { kNobody, kPlugin, kWatchdog };
  enum class Meeting { kHandlerRunning, kAwaitingResult, kResultIn };
  std::atomic<Finisher> finisher_{Finisher::kNobody};
  std::atomic<Meeting> meeting_{Meeting::kHandlerRunning};
  Verdict verdict_ = Verdict::kUnknown;
  int64_t raw_ = 0;
  std::string reason_;
  uint64_t delay_ms_ = 0;
};

}  // namespace foxworker

#endif  // FOXWORKER_CORE_DEFERRED_COMPLETION_H_
