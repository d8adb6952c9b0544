// Consumer: one per configured queue. Pulls deliveries from its Source within
// the prefetch window and what its middleware admits (rate limits, breaker),
// runs them on its own threads (or the shared CPU pool) within the queue's
// concurrency limit, one message per slot at a time,
// routes each to its handler through the middleware chain, turns the verdict
// into an Outcome with the retry policy, and settles it back to the Source.
// A watchdog marks handlers running past their deadline as stuck: their
// message is cancelled and retried (once the call returns, by default), and
// the queue replaces the stuck slots up to its replace_stuck.
#ifndef FOXWORKER_CORE_CONSUMER_H_
#define FOXWORKER_CORE_CONSUMER_H_

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "daemon/base/adaptive_mutex.h"
#include "daemon/core/backend.h"
#include "daemon/core/consumer_options.h"
#include "daemon/core/executor.h"
#include "daemon/core/handler.h"
#include "daemon/core/metrics.h"
#include "daemon/core/middleware.h"
#include "daemon/core/retry_policy.h"
#include "daemon/core/timer.h"

namespace foxworker {

struct ConsumerStats {
  uint64_t received = 0;
  uint64_t acked = 0;
  uint64_t retried = 0;
  uint64_t dead_lettered = 0;
  uint64_t rejected = 0;  // dead-lettered without retrying (part of dead_lettered)
  uint64_t released = 0;
  uint64_t timed_out = 0;
  uint64_t unknown_verdicts = 0;
  uint64_t admission_waits = 0;  // times a middleware held fetching back
  int64_t in_flight = 0;  // fetched and not yet settled (includes deferred)
  int64_t running = 0;    // drain tasks on executor threads now
  int64_t stuck = 0;      // handler calls (or deferred messages) past their deadline now
};

// A handler call still running past its deadline, or a deferred message
// whose complete() has not come by its deadline.
struct StuckHandler {
  std::string handler;  // "(deferred)" for a deferred message
  std::string message_id;
  uint32_t attempt = 0;
  uint64_t running_ns = 0;  // since the handler started
  uint64_t timeout_ns = 0;  // the deadline that applied
  bool deferred = false;
};

// Handler call times of one handler on one queue.
struct HandlerMetrics {
  explicit HandlerMetrics(std::string name) : handler(std::move(name)) {}
  const std::string handler;
  // One observation per message whose handler ran (a batch call counts once
  // per message in it, with the call's duration).
  LatencyHistogram duration;
};

// Safe for concurrent use.
class Consumer {
 public:
  // `cpu_pool` (used when options.cpu_pool) and `timer` must outlive the
  // consumer; otherwise it runs handlers on threads of its own.
  Consumer(ConsumerOptions options, const RetryPolicyOptions& policy,
           std::unique_ptr<HandlerSet> handlers, std::unique_ptr<Source> source,
           std::vector<std::unique_ptr<Middleware>> middleware, TaskRunner& cpu_pool,
           Timer& timer);
  ~Consumer();
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  const std::string& name() const { return config_.name; }
  // The queue's settings, with the limits last changed in place. Read it on
  // the control thread, or under the supervisor's ReadLock().
  const ConsumerOptions& config() const { return config_; }
  const std::vector<std::unique_ptr<Middleware>>& middleware() const { return middleware_; }

  Status Start();
  // Pauses or resumes fetching (handlers already running finish; fetched
  // messages not started go back to the backend at once): an operator's
  // pause. Resuming also ends a hold of the handler set (a crash-loop
  // pause) at once.
  void SetPaused(bool paused);
  // The operator's pause only.
  bool paused() const { return paused_.load(); }
  // The handler set holds the queue (isolation: process after a crash loop,
  // see HandlerSet::SetHoldCallback): it fetches nothing until the set lets
  // go or an operator resumes. Kept apart from paused(): the set's release
  // does not undo an operator's pause.
  bool held() const { return held_.load(); }
  // Why it is held ("" when it is not).
  std::string HoldReason() const {
    std::lock_guard<std::mutex> lock(hold_mu_);
    return hold_reason_;
  }

  // Stops fetching, hands fetched messages not started back to the backend
  // (counted in released, no attempt charged).
  void StopFetching();
  // Waits until nothing is in flight or `deadline` passes; true if drained.
  bool WaitDrained(std::chrono::steady_clock::time_point deadline);
  // Marks every in-flight delivery cancelled (handlers polling see it).
  void CancelInFlight();
  // After StopFetching: true once nothing is in flight and no thread is
  // inside the consumer any more (drain tasks, deferred completions, source
  // wake-ups), so it may be destroyed while the rest of the daemon runs.
  bool Quiesced() const;

  ConsumerStats Stats() const;
  // Stuck now, longest running first.
  std::vector<StuckHandler> Stuck() const;
  // For the daemon's liveness probe: takes and releases, one after another,
  // every lock that starting a handler needs. Returns at once unless one of
  // them is held forever (a deadlock), which then stalls the caller.
  void ProbeDispatch() const;
  // One per distinct handler name the queue can route to; fixed after
  // construction.
  const std::vector<std::unique_ptr<HandlerMetrics>>& handler_metrics() const {
    return handler_metrics_;
  }
  // Enqueue (the backend's timestamp) to handler start, per message whose
  // handler ran.
  const LatencyHistogram& queue_wait() const { return queue_wait_; }

  // Shutdown: the handler set starts ending what runs its handlers by
  // `deadline` (HandlerSet::BeginClose). REQUIRES: drained.
  void CloseInstances(std::chrono::steady_clock::time_point deadline) {
    std::lock_guard<std::mutex> lock(handlers_mu_);
    if (handlers_ != nullptr) handlers_->BeginClose(deadline);
  }
  // Shutdown gave up waiting: the handler set ends the handlers it can end
  // and hands their messages back (HandlerSet::Abandon); how many. Control
  // thread (which alone destroys the set, so no lock is held: the messages
  // it hands back settle meanwhile).
  size_t AbandonInstances(const std::string& why) {
    return handlers_ != nullptr ? handlers_->Abandon(why) : 0;
  }
  // The handler set, for changes a reload makes to it in place (isolation:
  // process: new children). Control thread; null once destroyed.
  HandlerSet* handler_set() const { return handlers_.get(); }
  // Stops the timeout watchdog and destroys the handler set (and with it the
  // plugin instances). REQUIRES: drained (no handler running).
  void DestroyInstances() {
    timer_.Cancel(this);
    std::lock_guard<std::mutex> lock(handlers_mu_);
    handlers_.reset();
  }
  // The handler set's child processes (isolation: process); any thread.
  HandlerChildren Children() const {
    std::lock_guard<std::mutex> lock(handlers_mu_);
    return handlers_ != nullptr ? handlers_->Children() : HandlerChildren{};
  }

  // ---- Changing limits in place (config reload), control thread only.
  //
  // True when `next` differs from config() only in what ChangeLimits can
  // apply to the running consumer: concurrency, timeout, handler_timeouts.
  // A timeout where the consumer started without any stays a hand-over (its
  // watchdog does not run). Everything else (prefetch, which the backend
  // sizes its window from, batch_size, source, ...) needs a new consumer;
  // so does a change the consumer does not see (middleware, plugin, retry
  // policy), which the caller checks.
  bool CanChangeLimits(const ConsumerOptions& next) const;
  // What ChangeLimits applies; building it creates the plugin instances a
  // higher concurrency needs, so it can fail (and then changes nothing).
  struct LimitChange {
    ConsumerOptions config;
    std::unique_ptr<HandlerSet::Growth> instances;
  };
  // REQUIRES: CanChangeLimits(next).
  Result<LimitChange> PrepareLimits(const ConsumerOptions& next);
  // Applies it at once: a higher concurrency starts more handlers right
  // away; after a lower one, drain tasks over the limit stop when their
  // handler returns (handing their unstarted messages back), so no more than
  // the new limit start from then on. A new timeout applies to handlers that
  // start after the call; running ones keep their deadline. Counters and
  // metrics carry on. The caller holds what guards config() for readers.
  void ChangeLimits(LimitChange change);
  // Destroys per-slot plugin instances left idle by a lower concurrency.
  void TrimInstances();

  // Completion of a delivery whose handler answered Verdict::kPending, from
  // any thread. Returns 0, or -1 when it was completed before.
  int32_t Complete(Delivery* d, const HandlerReply& reply);

  // While one lives, Complete() calls on its thread hand their settlements
  // to the backend together: when it ends or is flushed, or when another
  // consumer's answer comes. A thread that reads many answers at once
  // (isolation: process) thus settles them in one call, not one each.
  class CompletionBatch {
   public:
    CompletionBatch();
    ~CompletionBatch();
    CompletionBatch(const CompletionBatch&) = delete;
    CompletionBatch& operator=(const CompletionBatch&) = delete;
    void Flush();

   private:
    friend class Consumer;
    CompletionBatch* outer_;
    Consumer* consumer_ = nullptr;
    std::vector<Settlement> settled_;
  };

 private:
  // The source's wake-up goes through this, so a wake-up racing with the
  // consumer's destruction finds it gone instead of calling into freed memory.
  struct WakeGate {
    std::mutex mu;
    Consumer* consumer = nullptr;  // GUARDED_BY(mu); null once closed
  };
  // Counts a thread inside the consumer for Quiesced().
  class Entered {
   public:
    explicit Entered(std::atomic<int>& n) : n_(n) { n_.fetch_add(1, std::memory_order_acq_rel); }
    ~Entered() { n_.fetch_sub(1, std::memory_order_acq_rel); }
    Entered(const Entered&) = delete;
    Entered& operator=(const Entered&) = delete;

   private:
    std::atomic<int>& n_;
  };

  // A drain task's view of the delivery its handler is running, for the
  // timeout watchdog.
  struct RunningSlot {
    std::mutex mu;
    Delivery* delivery = nullptr;          // GUARDED_BY(mu)
    const std::string* handler = nullptr;  // GUARDED_BY(mu)
    bool timed_out = false;        // GUARDED_BY(mu); stuck past the deadline
    bool copy_settled = false;     // GUARDED_BY(mu); retried at once (retry_stuck_at_once)
  };

  // A handler the queue can route to: its metrics and its deadline.
  struct HandlerRoute {
    HandlerRoute(const Handler* h, HandlerMetrics* m) : handler(h), metrics(m) {}
    const Handler* const handler;
    HandlerMetrics* const metrics;
    std::atomic<uint64_t> timeout_ns{0};  // 0 = none
  };

  void Wake();
  void MaybeSpawn();
  // Fetching stops: paused, held or stopping.
  bool Halted() const {
    return paused_.load(std::memory_order_relaxed) || held_.load(std::memory_order_relaxed) ||
           stopping_.load(std::memory_order_relaxed);
  }
  // The handler set's hold callback.
  void OnHold(const std::string& reason);
  // More drain tasks than the (lowered) concurrency allows.
  // Messages a drain task fetches at once: the batch size, or its share of
  // the prefetch window at the current concurrency.
  size_t batch_max() const;
  bool OverLimit() const { return workers_.load(std::memory_order_relaxed) > Limit(); }
  // A settlement that brings the in-flight count down to this (from above)
  // wakes a task to fetch. With no more prefetch than concurrency, the first
  // free place; with more, a quarter of the spare places: what is buffered
  // keeps the handlers busy meanwhile, and one fetch then takes many
  // messages instead of one wake-up (and one fetch) per answer.
  int64_t RefillMark() const {
    const int64_t spare = prefetch_ - concurrency_.load(std::memory_order_relaxed);
    return prefetch_ - std::max<int64_t>(1, spare / 4);
  }
  // Drain tasks allowed now: the concurrency, plus the stuck handlers the
  // queue replaces. One when the handler set hands messages off
  // (isolation: process): its Submit never blocks, so one task keeps up
  // with any rate, and each task more only costs a thread woken per fetch
  // (the children's slots, not drain tasks, bound what runs at once).
  int Limit() const {
    if (hands_off_) return 1;
    return concurrency_.load(std::memory_order_relaxed) +
           std::min(stuck_.load(std::memory_order_relaxed),
                    replace_stuck_.load(std::memory_order_relaxed));
  }
  // Sets the replacement count and grows the slots for HandlerSlots(q).
  void SetStuckLimits(const ConsumerOptions& q);
  // Leaves workers_ when over the limit; true if this task left.
  bool LeaveIfOverLimit();
  // Sets the deadlines and the watchdog's tick from `q`'s timeouts.
  void SetTimeouts(const ConsumerOptions& q);
  void Drain();
  void DrainBatches();  // queues with batch_size
  // Leaves the task (or posts it again: over a lowered limit that another
  // task already left for, or yielding on the shared pool). `halted`: it
  // stopped for a pause, a hold or a stop.
  void EndTask(bool over_limit, bool yielded, bool window_full, bool halted);
  RunningSlot* TakeSlot();
  void ReturnSlot(RunningSlot* slot);
  // The queue's fetched-but-not-started messages, shared by its slots.
  std::unique_ptr<Delivery> TakeBuffered();
  void ReleaseBuffered();
  // Runs one delivery up to its settlement (appended to `settled`; nothing
  // when deferred or settled by the watchdog) and returns true; or returns
  // false with `*batched` set when its handler is a batch handler.
  bool RunOne(std::unique_ptr<Delivery>& d, HandlerInstance instance, RunningSlot* slot,
              std::vector<Settlement>& settled, const Handler** batched, int64_t wall_offset_ns);
  // Settles `settled` now, or with the other outcomes of the next
  // kSettleDelayNs (a timer flushes them).
  void QueueSettlement(std::vector<Settlement>& settled);
  struct SettleShard;
  // Settles what the calling thread's shard holds (`shard`: that one, from
  // its timer).
  void FlushSettlements(SettleShard* shard = nullptr, bool from_timer = false);
  // How many of `want` the middleware admits now; schedules a wake-up when
  // it is fewer. Returns the admitted count.
  size_t Admit(size_t want);
  void Refund(size_t n);
  void RunBatch(std::vector<std::unique_ptr<Delivery>>& batch, std::vector<Settlement>& settled,
                RunningSlot* slot);
  // Runs a group of deliveries routed to one batch handler in one call.
  // Returns the monotonic time the call returned.
  uint64_t RunBatchHandler(const Handler* handler, HandlerInstance instance,
                           std::vector<std::unique_ptr<Delivery>>& group,
                           std::vector<Settlement>& settled, int64_t wall_offset_ns);
  // Tops `batch` up towards the queue's batch_size for up to flush_interval.
  void FillBatch(std::vector<std::unique_ptr<Delivery>>& batch);
  Outcome Decide(const Delivery& d, const HandlerReply& reply, const std::string& handler_name);
  void RunAfter(const Delivery& d, const Outcome& o, const CallInfo& call, size_t upto);
  void SettleAll(std::vector<Settlement>& settled);
  // SettleAll of one, or into this thread's CompletionBatch.
  void SettleCompleted(Settlement settled);
  // The handler's deadline; `route` may be null (a handler without one).
  uint64_t TimeoutNs(const HandlerRoute* route) const;
  const HandlerRoute* RouteOf(const Handler* handler) const;
  // Counts enqueue-to-start for `d`, whose handler starts at monotonic
  // `start_ns`; `wall_offset_ns` is wall-clock minus monotonic time.
  void ObserveWait(const Delivery& d, uint64_t start_ns, int64_t wall_offset_ns);
  void Watchdog();
  std::unique_ptr<Delivery> CloneForSettlement(const Delivery& d);
  // The retry a timed-out delivery gets (counted when it was marked stuck).
  // `reason` replaces "timeout after ..." (a killed handler child says why).
  Outcome TimeoutOutcome(const Delivery& d, const std::string& handler, CallInfo* call,
                         std::string_view reason = {});
  // A stuck call returned (from RunOne): settles its message now unless a
  // copy was retried at once.
  void StuckReturned(std::unique_ptr<Delivery>& d, const Handler& handler,
                     const HandlerReply& reply, bool copy_settled,
                     std::vector<Settlement>& settled);

  // Only ChangeLimits() writes it, and only concurrency, timeout and
  // handler_timeouts, which the consumer's own threads never read (they use
  // concurrency_, routes_ and default_timeout_ns_ instead).
  ConsumerOptions config_;
  const RetryPolicy policy_;
  std::unique_ptr<HandlerSet> handlers_;
  // Calls from outside the consumer's own threads (Children(), SetPaused(),
  // StopFetching(), CloseInstances()) and DestroyInstances() take it: the
  // consumer's own threads use handlers_ while it exists, and it is reset
  // only once they are done.
  mutable std::mutex handlers_mu_;
  const Handler* pinned_ = nullptr;  // set when config_.handler names one
  std::unique_ptr<Source> source_;
  const std::vector<std::unique_ptr<Middleware>> middleware_;
  TaskRunner* runner_ = nullptr;  // own_pool_ or the shared CPU pool
  Timer& timer_;
  std::atomic<int> concurrency_;  // changed in place (ChangeLimits)
  const int prefetch_;            // >= every concurrency (config validation)
  // A timeout was configured at start: the watchdog runs and drain tasks use
  // slots, for the consumer's life (also if a reload removes the timeouts).
  const bool timeouts_;
  const size_t batch_size_;  // queue's batch_size (0 = off)
  const bool hands_off_;     // handlers_->HandsOff()
  std::atomic<uint64_t> default_timeout_ns_{0};  // `timeout`; 0 = none
  std::atomic<uint64_t> watchdog_tick_ns_{100000000};
  std::atomic<int> replace_stuck_{0};        // StuckReplacements(config)
  std::atomic<bool> retry_stuck_at_once_{false};
  std::atomic<int> stuck_{0};                // handler calls past their deadline now

  std::atomic<int> workers_{0};        // drain tasks posted or running
  std::atomic<int> entered_{0};        // threads inside Drain/Complete (see Entered)
  const std::shared_ptr<WakeGate> wake_gate_ = std::make_shared<WakeGate>();
  std::atomic<int64_t> in_flight_{0};  // fetched, not settled
  std::atomic<bool> paused_{false};
  std::atomic<bool> held_{false};  // by the handler set; see held()
  mutable std::mutex hold_mu_;
  std::string hold_reason_;  // GUARDED_BY(hold_mu_)
  std::atomic<bool> stopping_{false};
  std::atomic<bool> admission_wake_pending_{false};
  // Set by CancelInFlight(); every delivery of this queue points at it.
  std::atomic<bool> cancel_all_{false};

  mutable std::mutex slots_mu_;
  // One per unit of the highest concurrency the consumer had; a slot is
  // never destroyed before the consumer, so the watchdog's copy of the
  // pointers stays valid.
  std::vector<std::unique_ptr<RunningSlot>> slots_;  // GUARDED_BY(slots_mu_)
  std::vector<RunningSlot*> free_slots_;             // GUARDED_BY(slots_mu_)
  std::vector<RunningSlot*> watched_;  // the watchdog's copy of slots_ (timer thread)
  mutable std::mutex deferred_mu_;
  std::set<Delivery*> deferred_;  // GUARDED_BY(deferred_mu_); only when timeouts_
  // Deferred past their deadline, waiting for complete() (retry_stuck
  // after_return); still in deferred_.
  std::set<Delivery*> overdue_;  // GUARDED_BY(deferred_mu_)

  std::atomic<uint64_t> received_{0}, acked_{0}, retried_{0}, dead_{0}, rejected_{0},
      released_{0}, timed_out_{0}, unknown_verdicts_{0}, admission_waits_{0};

  // Fetched, not started; any slot takes the next one.
  mutable AdaptiveMutex buffer_mu_;
  std::deque<std::unique_ptr<Delivery>> buffer_;  // GUARDED_BY(buffer_mu_)
  std::atomic<size_t> buffered_{0};                // buffer_.size(), read without the lock

  // Outcomes returned and not yet settled, in shards by thread index so that
  // the threads of a busy queue do not contend on one lock per message.
  struct alignas(64) SettleShard {
    mutable AdaptiveMutex mu;
    std::vector<Settlement> pending;  // GUARDED_BY(mu)
    uint64_t since_ns = 0;            // GUARDED_BY(mu); when the oldest came
    bool timer_armed = false;         // GUARDED_BY(mu)
  };
  static constexpr size_t kSettleShards = 8;
  SettleShard& ShardOfThisThread();
  std::array<SettleShard, kSettleShards> settle_shards_;

  std::vector<std::unique_ptr<HandlerMetrics>> handler_metrics_;
  // Handler -> its route (several definitions may share a name).
  // Fixed after construction (a deque: the atomics do not move).
  std::deque<HandlerRoute> routes_;
  LatencyHistogram queue_wait_;
  // Last: destroyed first, joining its (idle) threads before anything they
  // could touch goes.
  std::unique_ptr<ThreadPool> own_pool_;
};

}  // namespace foxworker

#endif  // FOXWORKER_CORE_CONSUMER_H_
