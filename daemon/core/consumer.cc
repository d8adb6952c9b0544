#include "daemon/core/consumer.h"

#include <algorithm>
#include <cstdio>
#include <thread>

#include <glog/logging.h>

#include "daemon/base/clock.h"
#include "daemon/core/payload_validation.h"
#include "daemon/core/running_job.h"

namespace foxworker {
namespace {

constexpr size_t kReasonCap = 2048;
constexpr size_t kMaxBatch = 64;
// On the shared CPU pool: batches (or messages) a drain task runs before it
// yields its thread to other queues.
constexpr int kBatchesPerTurn = 16;
constexpr int kMessagesPerTurn = 256;
// Outcomes of handlers that return within this long of each other are
// settled together (one backend round trip), at most kSettleBatch at once.
constexpr uint64_t kSettleDelayNs = 1000000;
constexpr size_t kSettleBatch = 64;

uint64_t MsToNs(Duration d) { return static_cast<uint64_t>(d.count()) * 1000000ull; }

// Messages a drain task fetches at once when the queue does not batch: its
// share of the prefetch window.
size_t BatchMax(int prefetch, int concurrency, size_t batch_size) {
  if (batch_size > 0) return batch_size;
  return std::clamp<size_t>(static_cast<size_t>(prefetch / concurrency), 1, kMaxBatch);
}

std::string Seconds(uint64_t ns) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.3gs", static_cast<double>(ns) / 1e9);
  return buf;
}

}  // namespace

Consumer::Consumer(ConsumerOptions options, const RetryPolicyOptions& policy,
                   std::unique_ptr<HandlerSet> handlers, std::unique_ptr<Source> source,
                   std::vector<std::unique_ptr<Middleware>> middleware, TaskRunner& cpu_pool,
                   Timer& timer)
    : config_(std::move(options)),
      policy_(policy),
      handlers_(std::move(handlers)),
      source_(std::move(source)),
      middleware_(std::move(middleware)),
      runner_(&cpu_pool),
      timer_(timer),
      concurrency_(std::max(1, config_.concurrency)),
      prefetch_(std::max(config_.prefetch, concurrency_.load())),
      timeouts_(config_.timeout.count() > 0 || !config_.handler_timeouts.empty()),
      batch_size_(static_cast<size_t>(std::max(0, config_.batch_size))),
      hands_off_(handlers_ != nullptr && handlers_->HandsOff()) {
  if (!config_.handler.empty()) pinned_ = handlers_->Find(config_.handler);
  std::vector<const Handler*> routable;
  if (pinned_ != nullptr) {
    routable.push_back(pinned_);
  } else if (config_.handler.empty()) {
    routable = handlers_->handlers();
  }
  for (const Handler* h : routable) {
    HandlerMetrics* m = nullptr;
    for (const auto& existing : handler_metrics_)
      if (existing->handler == h->name()) m = existing.get();
    if (m == nullptr) {
      handler_metrics_.push_back(std::make_unique<HandlerMetrics>(h->name()));
      m = handler_metrics_.back().get();
    }
    routes_.emplace_back(h, m);
  }
  SetTimeouts(config_);
  if (!config_.cpu_pool) {
    own_pool_ = std::make_unique<ThreadPool>(config_.name, HandlerSlots(config_));
    runner_ = own_pool_.get();
  }
  SetStuckLimits(config_);
}

void Consumer::SetStuckLimits(const ConsumerOptions& q) {
  if (timeouts_) {
    // Slots first: a task that the higher limit admits always finds one.
    std::lock_guard<std::mutex> lock(slots_mu_);
    while (slots_.size() < static_cast<size_t>(HandlerSlots(q))) {
      slots_.push_back(std::make_unique<RunningSlot>());
      free_slots_.push_back(slots_.back().get());
    }
  }
  replace_stuck_.store(StuckReplacements(q));
  retry_stuck_at_once_.store(q.retry_stuck_at_once);
}

Consumer::~Consumer() {
  // No hold callback runs from here on (one under way is waited for).
  if (handlers_ != nullptr) handlers_->SetHoldCallback(nullptr);
  {
    std::lock_guard<std::mutex> lock(wake_gate_->mu);
    wake_gate_->consumer = nullptr;
  }
  timer_.Cancel(this);
}

Status Consumer::Start() {
  if (!config_.handler.empty() && (pinned_ == nullptr || pinned_->name() != config_.handler))
    return Status::InvalidArgument("queue " + config_.name + ": " + handlers_->provider() +
                                   " has no handler \"" + config_.handler + "\" (it has: " +
                                   handlers_->HandlerNames() + ")");
  if (timeouts_) Watchdog();
  handlers_->SetHoldCallback([this](const std::string& reason) { OnHold(reason); });
  {
    std::lock_guard<std::mutex> lock(wake_gate_->mu);
    wake_gate_->consumer = this;
  }
  return source_->Start([gate = wake_gate_] {
    std::lock_guard<std::mutex> lock(gate->mu);
    if (gate->consumer != nullptr) gate->consumer->Wake();
  });
}

void Consumer::SetPaused(bool paused) {
  paused_.store(paused);
  if (!paused) {
    // An operator's resume also ends the handler set's hold (its callback
    // clears held_) and what led to it.
    {
      std::lock_guard<std::mutex> lock(handlers_mu_);
      if (handlers_ != nullptr) {
        handlers_->EndHold();
        if (!stopping_.load()) handlers_->SetHandBack(false);
      }
    }
    MaybeSpawn();
    return;
  }
  // Running handlers finish; what is fetched and not started goes back now,
  // from the buffer and from the handler set.
  ReleaseBuffered();
  std::lock_guard<std::mutex> lock(handlers_mu_);
  if (handlers_ != nullptr) handlers_->SetHandBack(true);
}

void Consumer::OnHold(const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(hold_mu_);
    hold_reason_ = reason;
  }
  held_.store(!reason.empty());
  if (reason.empty()) {
    MaybeSpawn();
  } else {
    // As a pause: running handlers finish, the unstarted go back now.
    ReleaseBuffered();
  }
}

void Consumer::StopFetching() {
  stopping_.store(true);
  source_->StopFetching();
  ReleaseBuffered();
  // What the handler set holds but has not started goes back too.
  std::lock_guard<std::mutex> lock(handlers_mu_);
  if (handlers_ != nullptr) handlers_->SetHandBack(true);
}

bool Consumer::WaitDrained(std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    if (in_flight_.load() == 0 && workers_.load() == 0) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void Consumer::CancelInFlight() { cancel_all_.store(true); }

bool Consumer::Quiesced() const {
  // In this order: a deferred completion enters before it settles (drops
  // in_flight_), a drain task enters before it leaves workers_.
  return stopping_.load() && in_flight_.load() == 0 && workers_.load() == 0 &&
         entered_.load() == 0;
}

ConsumerStats Consumer::Stats() const {
  ConsumerStats s;
  s.received = received_.load();
  s.acked = acked_.load();
  s.retried = retried_.load();
  s.dead_lettered = dead_.load();
  s.rejected = rejected_.load();
  s.released = released_.load();
  s.timed_out = timed_out_.load();
  s.unknown_verdicts = unknown_verdicts_.load();
  s.admission_waits = admission_waits_.load();
  s.in_flight = in_flight_.load();
  s.running = workers_.load();
  s.stuck = stuck_.load();
  if (timeouts_) {
    std::lock_guard<std::mutex> lock(deferred_mu_);
    s.stuck += static_cast<int64_t>(overdue_.size());
  }
  return s;
}

std::vector<StuckHandler> Consumer::Stuck() const {
  std::vector<StuckHandler> out;
  if (!timeouts_) return out;
  const uint64_t now = MonotonicNs();
  std::vector<RunningSlot*> slots;
  {
    std::lock_guard<std::mutex> lock(slots_mu_);
    for (const auto& slot : slots_) slots.push_back(slot.get());
  }
  for (RunningSlot* slot : slots) {
    std::lock_guard<std::mutex> lock(slot->mu);
    const Delivery* d = slot->delivery;
    if (d == nullptr || !slot->timed_out) continue;
    out.push_back({*slot->handler, d->msg.id, d->msg.attempt, now - d->started_ns,
                   d->deadline_ns - d->started_ns, false});
  }
  {
    std::lock_guard<std::mutex> lock(deferred_mu_);
    for (const Delivery* d : overdue_)
      out.push_back({"(deferred)", d->msg.id, d->msg.attempt, now - d->started_ns,
                     d->deadline_ns - d->started_ns, true});
  }
  std::sort(out.begin(), out.end(), [](const StuckHandler& a, const StuckHandler& b) {
    return a.running_ns > b.running_ns;
  });
  return out;
}

void Consumer::ProbeDispatch() const {
  // The locks a drain task takes to start a handler and to settle one.
  auto touch = [](auto& mu) { std::lock_guard lock(mu); };
  touch(buffer_mu_);
  for (const SettleShard& shard : settle_shards_) touch(shard.mu);
  touch(slots_mu_);
  touch(deferred_mu_);
  if (own_pool_) own_pool_->Probe();
}

bool Consumer::CanChangeLimits(const ConsumerOptions& next) const {
  return OnlyLimitsDiffer(config_, next, timeouts_);
}

Result<Consumer::LimitChange> Consumer::PrepareLimits(const ConsumerOptions& next) {
  CHECK(CanChangeLimits(next)) << "queue " << name() << ": not a change of limits only";
  CHECK(handlers_) << "queue " << name() << ": instances already destroyed";
  auto growth = handlers_->PrepareResize(HandlerSlots(next));
  if (!growth.ok())
    return Status::InvalidArgument("queue " + name() + ": " + growth.status().message());
  return LimitChange{next, std::move(*growth)};
}

void Consumer::ChangeLimits(LimitChange change) {
  const ConsumerOptions& next = change.config;
  const int before = HandlerSlots(config_);
  const int after = HandlerSlots(next);
  const bool grows = after > before;
  if (grows) {
    // Slots, instances and threads first: a drain task that the new limit
    // admits finds all three.
    handlers_->Resize(std::move(change.instances));
    if (own_pool_) own_pool_->SetMaxThreads(after);
  }
  SetStuckLimits(next);  // grows the slots
  concurrency_.store(std::max(1, next.concurrency));
  if (!grows) {
    if (own_pool_) own_pool_->SetMaxThreads(after);
    // Lower: drain tasks over the limit leave as their handlers return;
    // TrimInstances() destroys the instances they leave idle.
    handlers_->Resize(std::move(change.instances));
  }
  SetTimeouts(next);
  config_.concurrency = next.concurrency;
  config_.timeout = next.timeout;
  config_.handler_timeouts = next.handler_timeouts;
  config_.replace_stuck = next.replace_stuck;
  config_.retry_stuck_at_once = next.retry_stuck_at_once;
  // Start the tasks a higher limit allows now; each one that finds more
  // waiting starts the next.
  MaybeSpawn();
}

void Consumer::TrimInstances() {
  if (handlers_) handlers_->Trim(workers_.load());
}

bool Consumer::LeaveIfOverLimit() {
  int w = workers_.load(std::memory_order_relaxed);
  while (w > Limit())
    if (workers_.compare_exchange_weak(w, w - 1, std::memory_order_acq_rel)) return true;
  return false;
}

void Consumer::SetTimeouts(const ConsumerOptions& q) {
  const uint64_t fallback = MsToNs(q.timeout);
  default_timeout_ns_.store(fallback);
  for (auto& r : routes_) {
    auto it = q.handler_timeouts.find(r.handler->name());
    r.timeout_ns.store(it != q.handler_timeouts.end() ? MsToNs(it->second) : fallback);
  }
  // The watchdog looks at a tenth of the shortest timeout (5 ms .. 100 ms).
  uint64_t shortest = fallback;
  for (const auto& [handler, t] : q.handler_timeouts)
    if (shortest == 0 || MsToNs(t) < shortest) shortest = MsToNs(t);
  watchdog_tick_ns_.store(shortest == 0 ? 100000000
                                        : std::clamp<uint64_t>(shortest / 10, 5000000, 100000000));
}

size_t Consumer::batch_max() const {
  // A set that hands messages off has one drain task (Limit): the whole
  // window is its share, and each fetch's messages leave in one write per
  // child.
  return BatchMax(prefetch_, hands_off_ ? 1 : concurrency_.load(std::memory_order_relaxed),
                  batch_size_);
}

void Consumer::Wake() { MaybeSpawn(); }

void Consumer::MaybeSpawn() {
  if (Halted()) return;
  int w = workers_.load(std::memory_order_relaxed);
  while (w < Limit()) {
    // Nothing buffered and the window full: Settle re-wakes.
    if (buffered_.load(std::memory_order_relaxed) == 0 &&
        in_flight_.load(std::memory_order_relaxed) >= prefetch_)
      return;
    if (workers_.compare_exchange_weak(w, w + 1)) {
      // StopFetching may have come between the check above and the
      // increment, and Quiesced() may have seen no worker before it: a task
      // posted now could outlive the consumer. (seq_cst, like StopFetching's
      // store and Quiesced's loads.)
      if (stopping_.load()) {
        workers_.fetch_sub(1);
        return;
      }
      runner_->Post([this] { Drain(); });
      return;
    }
  }
}

size_t Consumer::Admit(size_t want) {
  if (middleware_.empty()) return want;
  const uint64_t now = MonotonicNs();
  size_t granted = want;
  uint64_t retry_after = 0;
  size_t i = 0;
  for (; i < middleware_.size() && granted > 0; ++i) {
    uint64_t after = 0;
    size_t n = middleware_[i]->Admit(granted, now, &after);
    if (n < granted) {
      // Earlier steps granted more than this one allows: hand the rest back.
      for (size_t j = 0; j < i; ++j) middleware_[j]->Refund(granted - n);
      retry_after = std::max(retry_after, after);
    }
    granted = n;
  }
  if (granted == 0) {
    admission_waits_.fetch_add(1, std::memory_order_relaxed);
    // One wake-up at a time; it retries admission through MaybeSpawn.
    if (!admission_wake_pending_.exchange(true)) {
      timer_.At(now + std::max<uint64_t>(retry_after, 1000000), this, [this] {
        admission_wake_pending_.store(false);
        MaybeSpawn();
      });
    }
  }
  return granted;
}

void Consumer::Refund(size_t n) {
  if (n == 0) return;
  for (auto& m : middleware_) m->Refund(n);
}

Consumer::RunningSlot* Consumer::TakeSlot() {
  if (!timeouts_) return nullptr;
  std::lock_guard<std::mutex> lock(slots_mu_);
  CHECK(!free_slots_.empty()) << "more drain tasks than concurrency";
  RunningSlot* slot = free_slots_.back();
  free_slots_.pop_back();
  return slot;
}

void Consumer::ReturnSlot(RunningSlot* slot) {
  if (slot == nullptr) return;
  std::lock_guard<std::mutex> lock(slots_mu_);
  free_slots_.push_back(slot);
}

std::unique_ptr<Delivery> Consumer::TakeBuffered() {
  std::lock_guard<AdaptiveMutex> lock(buffer_mu_);
  if (buffer_.empty()) return nullptr;
  std::unique_ptr<Delivery> d = std::move(buffer_.front());
  buffer_.pop_front();
  buffered_.store(buffer_.size(), std::memory_order_relaxed);
  return d;
}

void Consumer::ReleaseBuffered() {
  std::vector<Settlement> released;
  {
    std::lock_guard<AdaptiveMutex> lock(buffer_mu_);
    for (auto& d : buffer_) released.push_back({std::move(d), Outcome::Release()});
    buffer_.clear();
    buffered_.store(0, std::memory_order_relaxed);
  }
  if (released.empty()) return;
  // Never started: no attempt charged, the admission they took handed back.
  Refund(released.size());
  SettleAll(released);
}

Consumer::SettleShard& Consumer::ShardOfThisThread() {
  const int i = TaskRunner::CurrentThreadIndex();
  return settle_shards_[static_cast<size_t>(i < 0 ? 0 : i) % kSettleShards];
}

void Consumer::QueueSettlement(std::vector<Settlement>& settled) {
  if (settled.empty()) return;
  SettleShard& shard = ShardOfThisThread();
  std::vector<Settlement> flush;
  bool arm = false;
  uint64_t due = 0;
  {
    std::lock_guard<AdaptiveMutex> lock(shard.mu);
    const uint64_t now = MonotonicNs();
    if (shard.pending.empty()) {
      shard.since_ns = now;
      shard.pending.reserve(kSettleBatch);
    }
    for (auto& s : settled) shard.pending.push_back(std::move(s));
    if (shard.pending.size() >= kSettleBatch || now - shard.since_ns >= kSettleDelayNs) {
      flush.swap(shard.pending);
    } else if (!shard.timer_armed) {
      shard.timer_armed = true;
      arm = true;
      due = shard.since_ns + kSettleDelayNs;
    }
  }
  settled.clear();
  if (arm) timer_.At(due, this, [this, sh = &shard] { FlushSettlements(sh, /*from_timer=*/true); });
  if (!flush.empty()) SettleAll(flush);
}

void Consumer::FlushSettlements(SettleShard* shard, bool from_timer) {
  if (shard == nullptr) shard = &ShardOfThisThread();
  std::vector<Settlement> flush;
  {
    std::lock_guard<AdaptiveMutex> lock(shard->mu);
    if (from_timer) shard->timer_armed = false;
    flush.swap(shard->pending);
  }
  SettleAll(flush);
}

void Consumer::Drain() {
  Entered entered(entered_);
  if (batch_size_ > 0) {
    DrainBatches();
    return;
  }
  // One message at a time from the queue's buffer of fetched messages: a
  // message waits only for a free slot, never behind another in a slot's
  // private batch. Fetched messages beyond the first go to the buffer for
  // the other slots; each outcome is settled as its handler returns (a
  // burst of fast ones within kSettleDelayNs together).
  RunningSlot* slot = TakeSlot();
  HandlerInstance instance = handlers_->Acquire();
  std::vector<std::unique_ptr<Delivery>> fetched;
  std::vector<Settlement> settled;
  bool over_limit = false;
  bool yielded = false;
  bool window_full = false;
  int ran = 0;
  int flushed = 0;  // hands_off_: `ran` when the pass's messages were last sent
  bool halted = false;
  // Enqueue times are wall-clock: one offset converts, refreshed per fetch
  // rather than read per message.
  int64_t wall_offset_ns = WallNs() - static_cast<int64_t>(MonotonicNs());
  for (;;) {
    if (Halted()) {
      halted = true;
      break;
    }
    // The concurrency was lowered in place: tasks over it stop here.
    if (OverLimit()) {
      over_limit = true;
      break;
    }
    // On the shared CPU pool, give the other queues' tasks a turn now and
    // then; a queue's own threads need no such courtesy.
    if (own_pool_ == nullptr && ran == kMessagesPerTurn) {
      yielded = true;
      break;
    }
    std::unique_ptr<Delivery> d = TakeBuffered();
    // More waiting in the buffer: the next idle slot starts on it now (each
    // task that takes one passes the word on, up to the concurrency).
    if (d != nullptr && !hands_off_ && buffered_.load(std::memory_order_relaxed) > 0)
      MaybeSpawn();
    if (d == nullptr) {
      // A set that hands messages off sends what this pass submitted at the
      // pass's end (Release): send it before fetching more, so that the one
      // task (Limit) never holds messages back while it keeps fetching.
      if (hands_off_ && ran > flushed) {
        handlers_->Release(instance);
        instance = handlers_->Acquire();
        flushed = ran;
      }
      int64_t room = prefetch_ - in_flight_.load(std::memory_order_relaxed);
      if (room <= 0) {
        // Outcomes waiting to be settled hold the window: settle them now,
        // then ask the source (an empty answer is what makes a buffered
        // source wake us when it refills).
        FlushSettlements();
        room = prefetch_ - in_flight_.load(std::memory_order_relaxed);
        if (room <= 0) {
          window_full = true;
          break;
        }
      }
      size_t want = Admit(std::min<size_t>(batch_max(), static_cast<size_t>(room)));
      if (want == 0) break;
      size_t n = source_->Fetch(want, fetched);
      Refund(want - n);
      if (n == 0) break;
      in_flight_.fetch_add(static_cast<int64_t>(n), std::memory_order_relaxed);
      received_.fetch_add(n, std::memory_order_relaxed);
      wall_offset_ns = WallNs() - static_cast<int64_t>(MonotonicNs());
      d = std::move(fetched.front());
      if (n > 1) {
        std::lock_guard<AdaptiveMutex> lock(buffer_mu_);
        for (size_t i = 1; i < n; ++i) buffer_.push_back(std::move(fetched[i]));
        buffered_.store(buffer_.size(), std::memory_order_relaxed);
      }
      fetched.clear();
      // Others waiting: let idle slots start on them now (a set that hands
      // messages off has this task only).
      if (!hands_off_ && (n > 1 || source_->MaybeReady())) MaybeSpawn();
    }
    ++ran;
    const Handler* batched = nullptr;
    if (!RunOne(d, instance, slot, settled, &batched, wall_offset_ns)) {
      // A batch handler on a queue without batch_size: batches of one.
      std::vector<std::unique_ptr<Delivery>> group;
      group.push_back(std::move(d));
      RunBatchHandler(batched, instance, group, settled, wall_offset_ns);
    }
    QueueSettlement(settled);
  }
  handlers_->Release(instance);
  ReturnSlot(slot);
  FlushSettlements();
  // Paused or stopping: what is fetched and not started goes back at once
  // (what this task handed to the set after SetPaused or StopFetching, the
  // set hands back itself: SetHandBack).
  if (paused_.load() || held_.load() || stopping_.load()) ReleaseBuffered();
  EndTask(over_limit, yielded, window_full, halted);
}

void Consumer::EndTask(bool over_limit, bool yielded, bool window_full, bool halted) {
  // (The caller gave its slot back before the task leaves workers_: a task
  // that the limit admits next always finds one.)
  if (over_limit) {
    if (LeaveIfOverLimit()) return;
    // Another task left first and this one is within the limit again.
    yielded = true;
  }
  if (yielded) {
    runner_->Post([this] { Drain(); });
    return;
  }
  workers_.fetch_sub(1);  // seq_cst: against a resume's store, read below
  // A wake-up that raced with our exit saw every slot taken; look again.
  // That includes a settlement that opened the window this task stopped at
  // (deferred answers, isolation: process, settle from other threads while
  // the task is still leaving), and a resume (or the end of a hold) that
  // came after this task stopped for the pause: its MaybeSpawn saw this
  // task, the queue's only one at a limit of 1 (HandsOff), and started none.
  const bool resumed = halted && !(paused_.load() || held_.load() || stopping_.load());
  if (resumed || buffered_.load() > 0 || source_->MaybeReady() ||
      (window_full && in_flight_.load() <= RefillMark()))
    MaybeSpawn();
}

void Consumer::DrainBatches() {
  std::vector<std::unique_ptr<Delivery>> batch;
  std::vector<Settlement> settled;
  const size_t reserve = batch_max();
  batch.reserve(reserve);
  settled.reserve(reserve);
  RunningSlot* slot = TakeSlot();
  bool yielded = false;
  bool over_limit = false;
  bool window_full = false;
  bool halted = false;
  for (int turn = 0; turn < kBatchesPerTurn; ++turn) {
    if (Halted()) {
      halted = true;
      break;
    }
    if (OverLimit()) {
      over_limit = true;
      break;
    }
    int64_t room = prefetch_ - in_flight_.load(std::memory_order_relaxed);
    if (room <= 0) {
      window_full = true;
      break;
    }
    size_t want = Admit(std::min<size_t>(batch_max(), static_cast<size_t>(room)));
    if (want == 0) break;
    size_t n = source_->Fetch(want, batch);
    Refund(want - n);
    if (n == 0) break;
    in_flight_.fetch_add(static_cast<int64_t>(n), std::memory_order_relaxed);
    received_.fetch_add(n, std::memory_order_relaxed);
    if (n < batch_size_) FillBatch(batch);
    if (source_->MaybeReady()) MaybeSpawn();
    RunBatch(batch, settled, slot);
    batch.clear();
    SettleAll(settled);
    if (turn + 1 == kBatchesPerTurn && own_pool_ == nullptr) yielded = true;
  }
  ReturnSlot(slot);
  EndTask(over_limit, yielded, window_full, halted);
}

const Consumer::HandlerRoute* Consumer::RouteOf(const Handler* handler) const {
  for (const auto& r : routes_)
    if (r.handler == handler) return &r;
  return nullptr;
}

uint64_t Consumer::TimeoutNs(const HandlerRoute* route) const {
  return route ? route->timeout_ns.load(std::memory_order_relaxed)
               : default_timeout_ns_.load(std::memory_order_relaxed);
}

void Consumer::ObserveWait(const Delivery& d, uint64_t start_ns, int64_t wall_offset_ns) {
  if (d.msg.enqueued_at_ms <= 0) return;  // the backend does not know
  const int64_t waited =
      static_cast<int64_t>(start_ns) + wall_offset_ns - d.msg.enqueued_at_ms * 1000000;
  // A producer's clock ahead of ours reads as a negative wait: count it as none.
  queue_wait_.ObserveNs(waited > 0 ? static_cast<uint64_t>(waited) : 0);
}

bool Consumer::RunOne(std::unique_ptr<Delivery>& d, HandlerInstance instance, RunningSlot* slot,
                      std::vector<Settlement>& settled, const Handler** batched,
                      int64_t wall_offset_ns) {
  d->consumer = this;
  d->queue = &config_.name;
  d->cancel_all = &cancel_all_;
  CallInfo call;
  // Payload validation, then middleware before the handler; an answer
  // skips the handler and the steps after the one that answered.
  size_t ran = 0;
  std::optional<Outcome> early;
  if (config_.validate_payload) early = ValidatePayload(*d);
  for (; !early && ran < middleware_.size(); ++ran) {
    early = middleware_[ran]->Before(*d);
    if (early) {
      ++ran;
      break;
    }
  }
  const Handler* handler = pinned_;
  if (!early && handler == nullptr) {
    handler = handlers_->Find(d->msg.props.message_type);
    if (handler == nullptr)
      early = Outcome::Reject("unknown message type \"" + d->msg.props.message_type + "\": " +
                              handlers_->provider() + " has handlers " +
                              handlers_->HandlerNames());
  }
  if (early) {
    RunAfter(*d, *early, call, ran);
    settled.push_back({std::move(d), std::move(*early)});
    return true;
  }
  if (handler->batched()) {
    *batched = handler;  // the caller groups it
    return false;
  }
  const uint64_t started = MonotonicNs();
  d->started_ns = started;
  ObserveWait(*d, started, wall_offset_ns);
  const HandlerRoute* route = RouteOf(handler);
  if (timeouts_) {
    uint64_t t = TimeoutNs(route);
    if (t) d->deadline_ns = d->started_ns + t;
    std::lock_guard<std::mutex> lock(slot->mu);
    slot->delivery = d.get();
    slot->handler = &handler->name();
    slot->timed_out = false;
    slot->copy_settled = false;
  }
  char reason[kReasonCap];
  HandlerReply reply;
  {
    RunningJobScope running(config_.name, handlers_->provider(), handler->name(), d->msg.id,
                            d->msg.attempt);
    reply = handler->Handle(instance, *d, reason, kReasonCap);
    // Deferred: the message stays "running" in the journal until settled.
    if (reply.verdict == Verdict::kPending) running.KeepIn(d->journal_hold);
  }
  const uint64_t ended = MonotonicNs();
  const bool released = reply.verdict == Verdict::kRelease;
  if (route && !released) route->metrics->duration.ObserveNs(ended - d->started_ns);
  if (timeouts_) {
    bool timed_out, copy_settled;
    {
      std::lock_guard<std::mutex> lock(slot->mu);
      timed_out = slot->timed_out;
      copy_settled = slot->copy_settled;
      slot->delivery = nullptr;
    }
    if (timed_out) {
      StuckReturned(d, *handler, reply, copy_settled, settled);
      return true;
    }
  }
  if (released) {
    // Not started (the handler set holds the queue): back to the backend
    // untouched, no attempt charged, with the admission it took.
    Refund(1);
    RunAfter(*d, Outcome::Release(), call, middleware_.size());
    settled.push_back({std::move(d), Outcome::Release()});
    return true;
  }
  call.handler_ran = true;
  call.duration_ns = ended - d->started_ns;
  if (reply.verdict == Verdict::kPending) {
    if (timeouts_) {
      std::lock_guard<std::mutex> lock(deferred_mu_);
      deferred_.insert(d.get());
    }
    if (d->deferred.HandlerDeferred()) {
      d.release();  // owned by the plugin's pending completion now
      return true;
    }
    // complete() already ran on another thread while we were in the handler.
    if (timeouts_) {
      std::lock_guard<std::mutex> lock(deferred_mu_);
      deferred_.erase(d.get());
    }
    reply = d->deferred.result();
  } else if (d->deferred.CompletedByPlugin()) {
    LOG(WARNING) << "queue " << config_.name << ": " << handlers_->provider() << " handler "
                 << handler->name() << " completed message " << d->msg.id
                 << " and also returned a verdict; the returned verdict wins";
  }
  call.failed = reply.verdict != Verdict::kAck && reply.verdict != Verdict::kReject;
  Outcome o = Decide(*d, reply, handler->name());
  RunAfter(*d, o, call, middleware_.size());
  settled.push_back({std::move(d), std::move(o)});
  return true;
}

void Consumer::RunBatch(std::vector<std::unique_ptr<Delivery>>& batch,
                        std::vector<Settlement>& settled, RunningSlot* slot) {
  HandlerInstance instance = handlers_->Acquire();
  std::vector<std::unique_ptr<Delivery>> group;  // for one batch handler
  const Handler* group_handler = nullptr;
  // Enqueue times are wall-clock; one offset per batch converts.
  const int64_t wall_offset_ns = WallNs() - static_cast<int64_t>(MonotonicNs());
  for (size_t i = 0; i < batch.size(); ++i) {
    auto& d = batch[i];
    if (i > 0 && group.empty() && OverLimit()) {
      // The concurrency was lowered while this task ran: the messages it
      // has not started go back to the backend for the tasks within the
      // limit, and the task stops (in Drain).
      for (size_t j = i; j < batch.size(); ++j)
        settled.push_back({std::move(batch[j]), Outcome::Release()});
      Refund(batch.size() - i);
      break;
    }
    const Handler* batched = nullptr;
    if (RunOne(d, instance, slot, settled, &batched, wall_offset_ns)) continue;
    if (group_handler != batched && !group.empty())
      RunBatchHandler(group_handler, instance, group, settled, wall_offset_ns);
    group_handler = batched;
    group.push_back(std::move(d));
  }
  if (!group.empty()) RunBatchHandler(group_handler, instance, group, settled, wall_offset_ns);
  handlers_->Release(instance);
}

void Consumer::FillBatch(std::vector<std::unique_ptr<Delivery>>& batch) {
  // Whatever arrives within flush_interval joins the batch. The slot waits
  // here (bounded by flush_interval), so size the interval to the latency
  // the queue can afford.
  const uint64_t deadline = MonotonicNs() + MsToNs(config_.flush_interval);
  while (batch.size() < batch_size_ && !stopping_.load(std::memory_order_relaxed)) {
    int64_t room = prefetch_ - in_flight_.load(std::memory_order_relaxed);
    if (room > 0) {
      size_t want = Admit(std::min<size_t>(batch_size_ - batch.size(), static_cast<size_t>(room)));
      size_t n = want ? source_->Fetch(want, batch) : 0;
      Refund(want - n);
      in_flight_.fetch_add(static_cast<int64_t>(n), std::memory_order_relaxed);
      received_.fetch_add(n, std::memory_order_relaxed);
      if (n > 0) continue;
    }
    if (MonotonicNs() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

uint64_t Consumer::RunBatchHandler(const Handler* handler, HandlerInstance instance,
                                   std::vector<std::unique_ptr<Delivery>>& group,
                                   std::vector<Settlement>& settled, int64_t wall_offset_ns) {
  const size_t n = group.size();
  constexpr size_t kBatchReasonCap = 512;
  std::vector<Delivery*> ds(n);
  std::vector<HandlerReply> replies(n);
  std::string reasons(n * kBatchReasonCap, '\0');
  const uint64_t started = MonotonicNs();
  const HandlerRoute* route = RouteOf(handler);
  for (size_t i = 0; i < n; ++i) {
    Delivery& d = *group[i];
    d.started_ns = started;
    ObserveWait(d, started, wall_offset_ns);
    // The deadline is visible to the handler (msg_cancelled); the watchdog
    // does not split a batch, so a batch's outcome waits for its call.
    uint64_t t = TimeoutNs(route);
    if (t) d.deadline_ns = started + t;
    ds[i] = &d;
  }
  {
    // A batch names its first message; the crash report says how many ran.
    RunningJobScope running(config_.name, handlers_->provider(), handler->name(),
                            group[0]->msg.id + (n > 1 ? " and " + std::to_string(n - 1) + " more" : ""),
                            group[0]->msg.attempt, ds);
    handler->HandleBatch(instance, ds.data(), n, replies.data(), reasons.data(), kBatchReasonCap);
    // A handler set that hands messages on (isolation: process) answers
    // each message later, through Complete: it stays "running" until then.
    if (hands_off_)
      for (size_t i = 0; i < n; ++i)
        if (replies[i].verdict == Verdict::kPending) running.KeepBatchIn(i, ds[i]->journal_hold);
  }
  const uint64_t ended = MonotonicNs();
  size_t handed_on = 0;
  for (size_t i = 0; i < n; ++i) {
    auto& d = group[i];
    HandlerReply reply = replies[i];
    if (hands_off_ && reply.verdict == Verdict::kRelease) {
      // Not started (the set holds the queue or stopped taking messages):
      // back to the backend untouched, with the admission it took.
      Refund(1);
      RunAfter(*d, Outcome::Release(), CallInfo{}, middleware_.size());
      settled.push_back({std::move(d), Outcome::Release()});
      ++handed_on;
      continue;
    }
    if (hands_off_ && reply.verdict == Verdict::kPending) {
      // Handed on: settled by Complete when its answer comes.
      ++handed_on;
      if (timeouts_) {
        std::lock_guard<std::mutex> lock(deferred_mu_);
        deferred_.insert(d.get());
      }
      if (d->deferred.HandlerDeferred()) {
        d.release();
        continue;
      }
      // Answered already, while the call returned.
      if (timeouts_) {
        std::lock_guard<std::mutex> lock(deferred_mu_);
        deferred_.erase(d.get());
      }
      reply = d->deferred.result();
    } else if (reply.verdict == Verdict::kPending) {
      LOG(ERROR) << "queue " << config_.name << ": batch handler " << handler->name()
                 << " returned FOXW_PENDING for message " << d->msg.id
                 << ", which batches do not allow; treating it as a retry";
      reply = HandlerReply{Verdict::kRetry, reply.raw,
                           "batch handler returned FOXW_PENDING, which batches do not allow", 0};
    }
    CallInfo call;
    call.handler_ran = true;
    call.duration_ns = ended - started;
    call.failed = reply.verdict != Verdict::kAck && reply.verdict != Verdict::kReject;
    Outcome o = Decide(*d, reply, handler->name());
    RunAfter(*d, o, call, middleware_.size());
    settled.push_back({std::move(d), std::move(o)});
  }
  // A call handed on is timed by Complete; one that ran here, now.
  if (route && handed_on < n) route->metrics->duration.ObserveNs(ended - started, n - handed_on);
  group.clear();
  return ended;
}

void Consumer::RunAfter(const Delivery& d, const Outcome& o, const CallInfo& call, size_t upto) {
  for (size_t i = upto; i-- > 0;) middleware_[i]->After(d, o, call);
}

Outcome Consumer::Decide(const Delivery& d, const HandlerReply& reply,
                         const std::string& handler_name) {
  switch (reply.verdict) {
    case Verdict::kAck:
      return Outcome::Ack();
    case Verdict::kReject:
      return Outcome::Reject(reply.reason.empty() ? "rejected by handler " + handler_name
                                                  : std::string(reply.reason));
    case Verdict::kRetry:
      break;
    case Verdict::kRelease:
      return Outcome::Release();
    case Verdict::kPending:
    case Verdict::kUnknown:
      unknown_verdicts_.fetch_add(1, std::memory_order_relaxed);
      LOG(ERROR) << "queue " << config_.name << ": " << handlers_->provider() << " handler "
                 << handler_name << " returned unknown verdict " << reply.raw << " for message "
                 << d.msg.id << "; treating it as a retry (plugin bug)";
      return Decide(d,
                    HandlerReply{Verdict::kRetry, reply.raw,
                                 "plugin returned unknown verdict " + std::to_string(reply.raw), 0},
                    handler_name);
  }
  std::string why = reply.reason.empty() ? "retry requested by handler " + handler_name
                                         : std::string(reply.reason);
  if (!policy_.AttemptsRemain(d.msg.attempt))
    return Outcome::DeadLetter("retries exhausted after " + std::to_string(d.msg.attempt) +
                               " attempts: " + why);
  const Duration hint(reply.retry_delay_ms);
  return Outcome::Retry(policy_.NextDelay(d.msg.attempt, hint), why,
                        policy_.UnjitteredDelay(d.msg.attempt, hint));
}

void Consumer::SettleAll(std::vector<Settlement>& settled) {
  if (settled.empty()) return;
  const int64_t n = static_cast<int64_t>(settled.size());
  // Counted locally and added once per batch: the counters are shared by
  // every thread running this queue.
  uint64_t acked = 0, retried = 0, dead = 0, rejected = 0, released = 0;
  for (const auto& s : settled) {
    switch (s.outcome.kind) {
      case Outcome::Kind::kAck: ++acked; break;
      case Outcome::Kind::kRetry:
        ++retried;
        VLOG(1) << "queue " << config_.name << ": message " << s.delivery->msg.id
                << " retried after attempt " << s.delivery->msg.attempt << " in "
                << s.outcome.delay.count() << " ms: " << s.outcome.reason;
        break;
      case Outcome::Kind::kDeadLetter:
        ++dead;
        rejected += s.outcome.rejected;
        LOG(WARNING) << "queue " << config_.name << ": message " << s.delivery->msg.id
                     << " dead-lettered after attempt " << s.delivery->msg.attempt << ": "
                     << s.outcome.reason;
        break;
      case Outcome::Kind::kRelease: ++released; break;
    }
  }
  source_->Settle(settled);
  settled.clear();
  // Counted after the backend took them, so a reader that sees a count can
  // also see the settlement (tests and status pages rely on that order).
  if (acked) acked_.fetch_add(acked, std::memory_order_relaxed);
  if (retried) retried_.fetch_add(retried, std::memory_order_relaxed);
  if (dead) dead_.fetch_add(dead, std::memory_order_relaxed);
  if (rejected) rejected_.fetch_add(rejected, std::memory_order_relaxed);
  if (released) released_.fetch_add(released, std::memory_order_relaxed);
  int64_t before = in_flight_.fetch_sub(n, std::memory_order_acq_rel);
  // The window had been full past the refill mark and now has room for a
  // fetch worth waking a task for.
  const int64_t mark = RefillMark();
  if (before > mark && before - n <= mark) MaybeSpawn();
}

int32_t Consumer::Complete(Delivery* d, const HandlerReply& reply) {
  Entered entered(entered_);
  switch (d->deferred.ClaimForPlugin()) {
    case DeferredCompletion::Claim::kClaimed:
      break;
    case DeferredCompletion::Claim::kTimedOut:
      // The watchdog timed it out and settled a copy; this is the late answer.
      LOG(WARNING) << "queue " << config_.name << ": deferred message " << d->msg.id
                   << " completed after its timeout; the verdict is ignored";
      delete d;
      return 0;
    case DeferredCompletion::Claim::kTwice:
      LOG(ERROR) << "queue " << config_.name << ": " << handlers_->provider()
                 << " completed message " << d->msg.id << " twice; ignoring the second call";
      return -1;
  }
  d->deferred.SetResult(reply);
  if (!d->deferred.ResultReady()) return 0;  // the handler is still running; its thread settles it
  bool overdue = false;
  if (timeouts_) {
    std::lock_guard<std::mutex> lock(deferred_mu_);
    deferred_.erase(d);
    overdue = overdue_.erase(d) > 0;
  }
  // A release was never started (a handler set hands back what waited for
  // it): for the middleware no run and no failure.
  const bool released = reply.verdict == Verdict::kRelease;
  CallInfo call;
  call.handler_ran = !released;
  call.duration_ns = released ? 0 : MonotonicNs() - d->started_ns;
  call.failed = !released && reply.verdict != Verdict::kAck && reply.verdict != Verdict::kReject;
  if (overdue) {
    // Past its deadline (the watchdog said so and cancelled it): the timeout
    // stands, whatever complete() answered.
    LOG(WARNING) << "queue " << config_.name << ": deferred message " << d->msg.id
                 << " completed " << Seconds(MonotonicNs() - d->deadline_ns)
                 << " after its timeout; retrying it now (its verdict is ignored)";
    // Except that a handler child killed for it (isolation: process) says
    // so: "killed after timeout 30s".
    const std::string_view reason = d->deferred.result().reason;
    Outcome o = reason.starts_with("killed after timeout")
                    ? TimeoutOutcome(*d, "(deferred)", &call, reason)
                    : TimeoutOutcome(*d, "(deferred)", &call);
    RunAfter(*d, o, call, middleware_.size());
    SettleCompleted({std::unique_ptr<Delivery>(d), std::move(o)});
    return 0;
  }
  Outcome o = Decide(*d, d->deferred.result(), "(deferred)");
  if (o.kind == Outcome::Kind::kRelease) {
    // Never started (isolation: process hands back what waited for a child
    // when the queue pauses, stops or is held after a crash loop): the
    // delivery goes back to its backend, which may hand the same object out
    // again, so its deferred state and journal entry are cleared as for a
    // new one; the admission it took goes back, as in RunOne.
    d->deferred.Reset();
    d->journal_hold.Release();
    Refund(1);
  }
  RunAfter(*d, o, call, middleware_.size());
  SettleCompleted({std::unique_ptr<Delivery>(d), std::move(o)});
  return 0;
}

namespace {
thread_local Consumer::CompletionBatch* tls_completion_batch = nullptr;
}  // namespace

Consumer::CompletionBatch::CompletionBatch() : outer_(tls_completion_batch) {
  tls_completion_batch = this;
}

Consumer::CompletionBatch::~CompletionBatch() {
  Flush();
  tls_completion_batch = outer_;
}

void Consumer::CompletionBatch::Flush() {
  if (consumer_ != nullptr && !settled_.empty()) {
    // What is batched holds the consumer's in-flight count up, so it is
    // not destroyed before this (Quiesced).
    Entered entered(consumer_->entered_);
    consumer_->SettleAll(settled_);
  }
  consumer_ = nullptr;
}

void Consumer::SettleCompleted(Settlement settled) {
  CompletionBatch* batch = tls_completion_batch;
  if (batch == nullptr) {
    std::vector<Settlement> one;
    one.push_back(std::move(settled));
    SettleAll(one);
    return;
  }
  if (batch->consumer_ != this) batch->Flush();
  batch->consumer_ = this;
  batch->settled_.push_back(std::move(settled));
}

std::unique_ptr<Delivery> Consumer::CloneForSettlement(const Delivery& d) {
  auto c = std::make_unique<Delivery>();
  c->msg = d.msg;
  c->queue = d.queue;
  c->tag = d.tag;
  c->generation = d.generation;
  c->received_ns = d.received_ns;
  c->started_ns = d.started_ns;
  c->deadline_ns = d.deadline_ns;
  c->consumer = this;
  return c;
}

Outcome Consumer::TimeoutOutcome(const Delivery& d, const std::string& handler, CallInfo* call,
                                 std::string_view reason) {
  const uint64_t limit = d.deadline_ns - d.started_ns;
  call->handler_ran = true;
  call->timed_out = true;
  call->failed = true;
  call->duration_ns = MonotonicNs() - d.started_ns;
  const std::string text = reason.empty() ? "timeout after " + Seconds(limit) : std::string(reason);
  return Decide(d, HandlerReply{Verdict::kRetry, 0, text, 0}, handler);
}

void Consumer::StuckReturned(std::unique_ptr<Delivery>& d, const Handler& handler,
                             const HandlerReply& reply, bool copy_settled,
                             std::vector<Settlement>& settled) {
  stuck_.fetch_sub(1, std::memory_order_relaxed);
  const uint64_t late = MonotonicNs() - d->deadline_ns;
  if (copy_settled) {
    // The watchdog retried a copy at once; this verdict is late.
    LOG(WARNING) << "queue " << config_.name << ": stuck handler " << handler.name()
                 << " returned for message " << d->msg.id << ", " << Seconds(late)
                 << " after its timeout; it was retried at once, so this verdict is ignored";
    // A deferred one: the plugin holds it until its complete(), which
    // frees it (the watchdog's claim makes that complete() a late one).
    if (reply.verdict == Verdict::kPending && d->deferred.ClaimForWatchdog()) d.release();
    return;
  }
  LOG(WARNING) << "queue " << config_.name << ": stuck handler " << handler.name()
               << " returned for message " << d->msg.id << ", " << Seconds(late)
               << " after its timeout; retrying the message now (the verdict is ignored)";
  CallInfo call;
  Outcome o = TimeoutOutcome(*d, handler.name(), &call);
  RunAfter(*d, o, call, middleware_.size());
  if (reply.verdict == Verdict::kPending && d->deferred.ClaimForWatchdog()) {
    // The plugin holds `d` until its complete(), which frees it (a late
    // one); a copy carries the settlement.
    auto copy = CloneForSettlement(*d);
    d.release();
    settled.push_back({std::move(copy), std::move(o)});
    return;
  }
  settled.push_back({std::move(d), std::move(o)});
}

void Consumer::Watchdog() {
  const uint64_t now = MonotonicNs();
  const bool at_once = retry_stuck_at_once_.load();
  std::vector<Settlement> settled;
  bool replaced = false;
  {
    // A higher limit adds slots (SetStuckLimits).
    std::lock_guard<std::mutex> lock(slots_mu_);
    watched_.clear();
    for (const auto& slot : slots_) watched_.push_back(slot.get());
  }
  for (RunningSlot* slot : watched_) {
    std::lock_guard<std::mutex> lock(slot->mu);
    Delivery* d = slot->delivery;
    if (d == nullptr || slot->timed_out || now < d->deadline_ns) continue;
    slot->timed_out = true;
    d->cancelled.store(true);
    timed_out_.fetch_add(1, std::memory_order_relaxed);
    const int stuck = stuck_.fetch_add(1, std::memory_order_relaxed) + 1;
    const int replace = replace_stuck_.load(std::memory_order_relaxed);
    replaced = replaced || stuck <= replace;
    LOG(WARNING) << "queue " << config_.name << ": handler " << *slot->handler << " of "
                 << handlers_->provider() << " is stuck: still running message " << d->msg.id
                 << " (attempt " << d->msg.attempt << ") past its "
                 << Seconds(d->deadline_ns - d->started_ns) << " timeout; cancelled it, "
                 << (at_once ? "retrying the message now while the call may still run"
                             : "the message is retried when the call returns")
                 << "; " << stuck << " stuck on this queue, "
                 << (stuck <= replace ? "its slot is replaced"
                                      : "not replaced (replace_stuck " + std::to_string(replace) +
                                            " reached): the queue runs fewer handlers");
    if (!at_once) continue;
    slot->copy_settled = true;
    CallInfo call;
    Outcome o = TimeoutOutcome(*d, *slot->handler, &call);
    auto copy = CloneForSettlement(*d);
    RunAfter(*copy, o, call, middleware_.size());
    settled.push_back({std::move(copy), std::move(o)});
  }
  {
    std::lock_guard<std::mutex> lock(deferred_mu_);
    for (auto it = deferred_.begin(); it != deferred_.end();) {
      Delivery* d = *it;
      if (now < d->deadline_ns || overdue_.count(d) > 0) {
        ++it;
        continue;
      }
      if (!at_once) {
        // Waits for its complete() (Complete settles the timeout then).
        overdue_.insert(d);
        d->cancelled.store(true);
        timed_out_.fetch_add(1, std::memory_order_relaxed);
        LOG(WARNING) << "queue " << config_.name << ": deferred message " << d->msg.id
                     << " (attempt " << d->msg.attempt << ") of " << handlers_->provider()
                     << " is not completed within its " << Seconds(d->deadline_ns - d->started_ns)
                     << " timeout; cancelled it, the message is retried when complete() comes";
        ++it;
        continue;
      }
      if (!d->deferred.ClaimForWatchdog()) {
        ++it;
        continue;
      }
      // The plugin still holds `d` and frees it through its late complete().
      d->cancelled.store(true);
      timed_out_.fetch_add(1, std::memory_order_relaxed);
      LOG(WARNING) << "queue " << config_.name << ": deferred message " << d->msg.id
                   << " (attempt " << d->msg.attempt << ") of " << handlers_->provider()
                   << " is not completed within its " << Seconds(d->deadline_ns - d->started_ns)
                   << " timeout; cancelled it and retrying it now";
      CallInfo call;
      static const std::string kDeferred = "(deferred)";
      Outcome o = TimeoutOutcome(*d, kDeferred, &call);
      auto copy = CloneForSettlement(*d);
      RunAfter(*copy, o, call, middleware_.size());
      settled.push_back({std::move(copy), std::move(o)});
      it = deferred_.erase(it);
    }
  }
  SettleAll(settled);
  // The stuck ones' replacements start now.
  if (replaced) MaybeSpawn();
  timer_.At(now + watchdog_tick_ns_.load(std::memory_order_relaxed), this, [this] { Watchdog(); });
}

}  // namespace foxworker
