#include "daemon/core/consumer.h"

#include <algorithm>
#include <thread>

#include "daemon/core/clock.h"
#include "daemon/plugins/host_api.h"

namespace foxworker {
namespace {

constexpr size_t kReasonCap = 2048;
constexpr size_t kMaxBatch = 64;
// Batches a drain task runs before it yields its thread to other queues.
constexpr int kBatchesPerTurn = 16;

}  // namespace

int32_t CompleteDeferred(Delivery* d, foxw_verdict verdict, std::string_view reason,
                         uint64_t retry_delay_ms) {
  if (d == nullptr || d->consumer == nullptr) return -1;
  return d->consumer->Complete(d, verdict, reason, retry_delay_ms);
}

Consumer::Consumer(QueueConfig config, const RetryPolicyConfig& policy, const LoadedPlugin& plugin,
                   std::unique_ptr<InstancePool> instances, std::unique_ptr<Source> source,
                   Executor& executor)
    : config_(std::move(config)),
      policy_(policy),
      plugin_(plugin),
      instances_(std::move(instances)),
      source_(std::move(source)),
      executor_(executor),
      concurrency_(std::max(1, config_.concurrency)),
      prefetch_(std::max(config_.prefetch, concurrency_)),
      batch_max_(std::clamp<size_t>(static_cast<size_t>(prefetch_ / concurrency_), 1, kMaxBatch)) {
  if (!config_.handler.empty()) pinned_ = plugin_.FindHandler(config_.handler);
}

Consumer::~Consumer() = default;

Status Consumer::Start() {
  if (!config_.handler.empty() &&
      (pinned_ == nullptr || config_.handler != pinned_->name))
    return Status::InvalidArgument(config_.mark.ToString() + ": queues." + config_.name +
                                   ".handler: plugin " + plugin_.name() + " has no handler \"" +
                                   config_.handler + "\" (it has: " + plugin_.HandlerNames() + ")");
  return source_->Start([this] { Wake(); });
}

void Consumer::SetPaused(bool paused) {
  paused_.store(paused);
  if (!paused) MaybeSpawn();
}

void Consumer::StopFetching() {
  stopping_.store(true);
  source_->StopFetching();
}

bool Consumer::WaitDrained(std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    if (in_flight_.load() == 0 && workers_.load() == 0) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void Consumer::CancelInFlight() { cancel_all_.store(true); }

ConsumerStats Consumer::Stats() const {
  ConsumerStats s;
  s.received = received_.load();
  s.acked = acked_.load();
  s.retried = retried_.load();
  s.dead_lettered = dead_.load();
  s.released = released_.load();
  s.unknown_verdicts = unknown_verdicts_.load();
  s.in_flight = in_flight_.load();
  s.running = workers_.load();
  return s;
}

void Consumer::Wake() { MaybeSpawn(); }

void Consumer::MaybeSpawn() {
  if (paused_.load(std::memory_order_relaxed) || stopping_.load(std::memory_order_relaxed)) return;
  int w = workers_.load(std::memory_order_relaxed);
  while (w < concurrency_) {
    if (in_flight_.load(std::memory_order_relaxed) >= prefetch_) return;  // Settle re-wakes
    if (workers_.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel)) {
      executor_.Post([this] { Drain(); });
      return;
    }
  }
}

void Consumer::Drain() {
  std::vector<std::unique_ptr<Delivery>> batch;
  std::vector<Settlement> settled;
  batch.reserve(batch_max_);
  settled.reserve(batch_max_);
  for (int turn = 0; turn < kBatchesPerTurn; ++turn) {
    if (paused_.load(std::memory_order_relaxed) || stopping_.load(std::memory_order_relaxed))
      break;
    int64_t room = prefetch_ - in_flight_.load(std::memory_order_relaxed);
    if (room <= 0) break;
    size_t want = std::min<size_t>(batch_max_, static_cast<size_t>(room));
    size_t n = source_->Fetch(want, batch);
    if (n == 0) break;
    in_flight_.fetch_add(static_cast<int64_t>(n), std::memory_order_relaxed);
    received_.fetch_add(n, std::memory_order_relaxed);
    // More waiting than this batch: let another slot start on it now.
    if (source_->MaybeReady()) MaybeSpawn();
    RunBatch(batch, settled);
    batch.clear();
    SettleAll(settled);
    if (turn + 1 == kBatchesPerTurn) {
      // Fairness: give other queues' tasks a turn, keep our slot.
      executor_.Post([this] { Drain(); });
      return;
    }
  }
  workers_.fetch_sub(1, std::memory_order_acq_rel);
  // A wake-up that raced with our exit saw every slot taken; look again.
  if (source_->MaybeReady()) MaybeSpawn();
}

void Consumer::RunBatch(std::vector<std::unique_ptr<Delivery>>& batch,
                        std::vector<Settlement>& settled) {
  void* instance = instances_->Acquire();
  char reason[kReasonCap];
  const uint64_t timeout_ns = static_cast<uint64_t>(config_.timeout.count()) * 1000000ull;
  for (auto& d : batch) {
    d->consumer = this;
    d->queue = &config_.name;
    d->cancel_all = &cancel_all_;
    const foxw_handler_def* handler = pinned_;
    if (handler == nullptr) {
      handler = plugin_.FindHandler(d->msg.props.message_type);
      if (handler == nullptr) {
        Outcome o = Outcome::DeadLetter("unknown message type \"" + d->msg.props.message_type +
                                        "\": plugin " + plugin_.name() + " has handlers " +
                                        plugin_.HandlerNames());
        settled.push_back({std::move(d), std::move(o)});
        continue;
      }
    }
    foxw_outcome out{sizeof(foxw_outcome), reason, kReasonCap, 0, 0};
    reason[0] = '\0';
    d->started_ns = MonotonicNs();
    if (timeout_ns) d->deadline_ns = d->started_ns + timeout_ns;
    foxw_verdict v = handler->handle(instance, AsForeign(d.get()), &out);
    std::string_view why(reason, std::min(out.reason_len, kReasonCap - 1));
    if (v == FOXW_PENDING) {
      int expected = 0;
      if (d->pending_state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
        d.release();  // owned by the plugin's pending completion now
        continue;
      }
      // complete() already ran on another thread while we were in the handler.
      Outcome o = Decide(*d, d->deferred_verdict, d->deferred_reason, d->deferred_delay_ms,
                         handler->name);
      settled.push_back({std::move(d), std::move(o)});
      continue;
    }
    if (d->complete_claimed.load(std::memory_order_acquire))
      LOG(WARNING) << "queue " << config_.name << ": plugin " << plugin_.name() << " handler "
                   << handler->name << " completed message " << d->msg.id
                   << " and also returned a verdict; the returned verdict wins";
    Outcome o = Decide(*d, v, why, out.retry_delay_ms, handler->name);
    settled.push_back({std::move(d), std::move(o)});
  }
  instances_->Release(instance);
}

Outcome Consumer::Decide(const Delivery& d, foxw_verdict verdict, std::string_view reason,
                         uint64_t retry_delay_ms, const char* handler_name) {
  switch (verdict) {
    case FOXW_ACK:
      return Outcome::Ack();
    case FOXW_REJECT:
      return Outcome::DeadLetter(reason.empty()
                                     ? std::string("rejected by handler ") + handler_name
                                     : std::string(reason));
    case FOXW_RETRY:
      break;
    default:
      unknown_verdicts_.fetch_add(1, std::memory_order_relaxed);
      LOG(ERROR) << "queue " << config_.name << ": plugin " << plugin_.name() << " handler "
                 << handler_name << " returned unknown verdict " << verdict << " for message "
                 << d.msg.id << "; treating it as a retry (plugin bug)";
      return Decide(d, FOXW_RETRY, "plugin returned unknown verdict " + std::to_string(verdict),
                    0, handler_name);
  }
  std::string why = reason.empty() ? std::string("retry requested by handler ") + handler_name
                                   : std::string(reason);
  if (!policy_.AttemptsRemain(d.msg.attempt))
    return Outcome::DeadLetter("retries exhausted after " + std::to_string(d.msg.attempt) +
                               " attempts: " + why);
  return Outcome::Retry(policy_.NextDelay(d.msg.attempt, Duration(retry_delay_ms)), why);
}

void Consumer::SettleAll(std::vector<Settlement>& settled) {
  if (settled.empty()) return;
  const int64_t n = static_cast<int64_t>(settled.size());
  for (const auto& s : settled) {
    switch (s.outcome.kind) {
      case Outcome::Kind::kAck: acked_.fetch_add(1, std::memory_order_relaxed); break;
      case Outcome::Kind::kRetry: retried_.fetch_add(1, std::memory_order_relaxed); break;
      case Outcome::Kind::kDeadLetter:
        dead_.fetch_add(1, std::memory_order_relaxed);
        LOG(WARNING) << "queue " << config_.name << ": message " << s.delivery->msg.id
                     << " dead-lettered after attempt " << s.delivery->msg.attempt << ": "
                     << s.outcome.reason;
        break;
      case Outcome::Kind::kRelease: released_.fetch_add(1, std::memory_order_relaxed); break;
    }
  }
  source_->Settle(settled);
  settled.clear();
  int64_t before = in_flight_.fetch_sub(n, std::memory_order_acq_rel);
  if (before >= prefetch_) MaybeSpawn();  // the window had been full
}

int32_t Consumer::Complete(Delivery* d, foxw_verdict verdict, std::string_view reason,
                           uint64_t retry_delay_ms) {
  if (d->complete_claimed.exchange(true, std::memory_order_acq_rel)) {
    LOG(ERROR) << "queue " << config_.name << ": plugin " << plugin_.name()
               << " completed message " << d->msg.id << " twice; ignoring the second call";
    return -1;
  }
  d->deferred_verdict = verdict;
  d->deferred_reason.assign(reason.data(), reason.size());
  d->deferred_delay_ms = retry_delay_ms;
  int prev = d->pending_state.exchange(2, std::memory_order_acq_rel);
  if (prev == 0) return 0;  // the handler is still running; its thread settles it
  std::vector<Settlement> settled;
  Outcome o = Decide(*d, verdict, d->deferred_reason, retry_delay_ms, "(deferred)");
  settled.push_back({std::unique_ptr<Delivery>(d), std::move(o)});
  SettleAll(settled);
  return 0;
}

}  // namespace foxworker
