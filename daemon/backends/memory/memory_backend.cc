#include "daemon/backends/memory/memory_backend.h"

#include <glog/logging.h>

#include <algorithm>
#include <functional>

#include "daemon/base/clock.h"
#include "daemon/base/crash_stack.h"
#include "daemon/base/liveness.h"
#include "daemon/core/dead_letter.h"

namespace foxworker {

struct MemoryBackend::Queue {
  std::string name;
  std::mutex mu;
  std::deque<std::unique_ptr<Delivery>> ready;  // GUARDED_BY(mu)
  size_t delayed = 0;                            // GUARDED_BY(mu)
  std::function<void()> wake;                    // GUARDED_BY(mu); set by the source
  std::atomic<size_t> ready_count{0};            // hint for MaybeReady
  bool fetching = true;                          // GUARDED_BY(mu)
  // Acked deliveries kept for the next enqueues: saves an allocation and a
  // cross-thread free per message.
  std::vector<std::unique_ptr<Delivery>> spare;  // GUARDED_BY(mu)
};

namespace {
constexpr size_t kMaxSpare = 4096;
}  // namespace

namespace {

class MemorySource : public Source {
 public:
  MemorySource(MemoryBackend::Queue& queue, SourceOptions options,
               std::function<void(MemoryBackend::Queue&, std::unique_ptr<Delivery>, Duration)> retry,
               std::function<void(Message)> dead_letter)
      : queue_(queue),
        options_(std::move(options)),
        retry_(std::move(retry)),
        dead_letter_(std::move(dead_letter)) {}

  Status Start(std::function<void()> wake) override {
    bool ready;
    {
      std::lock_guard<std::mutex> lock(queue_.mu);
      queue_.wake = std::move(wake);
      queue_.fetching = true;
      ready = !queue_.ready.empty();
    }
    if (ready) queue_.wake();
    return Status::Ok();
  }

  size_t Fetch(size_t max, std::vector<std::unique_ptr<Delivery>>& out) override {
    std::lock_guard<std::mutex> lock(queue_.mu);
    if (!queue_.fetching) return 0;
    size_t n = std::min(max, queue_.ready.size());
    // received_ns keeps the enqueue time, so wait time includes the queue.
    for (size_t i = 0; i < n; ++i) {
      out.push_back(std::move(queue_.ready.front()));
      queue_.ready.pop_front();
    }
    queue_.ready_count.store(queue_.ready.size(), std::memory_order_relaxed);
    return n;
  }

  void Settle(std::vector<Settlement>& batch) override {
    std::vector<std::unique_ptr<Delivery>> release;
    size_t acked = 0;
    for (auto& s : batch) {
      switch (s.outcome.kind) {
        case Outcome::Kind::kAck:
          ++acked;  // recycled below
          break;
        case Outcome::Kind::kRetry:
          s.delivery->msg.attempt += 1;
          retry_(queue_, std::move(s.delivery), s.outcome.delay);
          break;
        case Outcome::Kind::kDeadLetter:
          dead_letter_(MakeDeadLetterCopy(*s.delivery, s.outcome.reason, WallMs()));
          break;
        case Outcome::Kind::kRelease:
          release.push_back(std::move(s.delivery));
          break;
      }
    }
    if (acked > 0) {
      std::lock_guard<std::mutex> lock(queue_.mu);
      for (auto& s : batch) {
        if (s.outcome.kind != Outcome::Kind::kAck || !s.delivery) continue;
        if (queue_.spare.size() >= kMaxSpare) break;
        queue_.spare.push_back(std::move(s.delivery));
      }
    }
    if (!release.empty()) {
      std::function<void()> wake;
      {
        std::lock_guard<std::mutex> lock(queue_.mu);
        for (auto it = release.rbegin(); it != release.rend(); ++it) {
          (*it)->consumer = nullptr;
          queue_.ready.push_front(std::move(*it));
        }
        queue_.ready_count.store(queue_.ready.size(), std::memory_order_relaxed);
        wake = queue_.wake;
      }
      if (wake) wake();
    }
  }

  void StopFetching() override {
    std::lock_guard<std::mutex> lock(queue_.mu);
    queue_.fetching = false;
  }

  bool MaybeReady() const override {
    return queue_.ready_count.load(std::memory_order_relaxed) > 0;
  }

  ~MemorySource() override {
    std::lock_guard<std::mutex> lock(queue_.mu);
    queue_.wake = nullptr;
  }

 private:
  MemoryBackend::Queue& queue_;
  SourceOptions options_;
  std::function<void(MemoryBackend::Queue&, std::unique_ptr<Delivery>, Duration)> retry_;
  std::function<void(Message)> dead_letter_;
};

}  // namespace

MemoryBackend::MemoryBackend(std::string name, MemoryBackendOptions options)
    : name_(std::move(name)), options_(options) {}

MemoryBackend::~MemoryBackend() {
  Stop(std::chrono::steady_clock::now());
  std::lock_guard<std::mutex> lock(timer_mu_);
  while (!timers_.empty()) {
    delete timers_.top().delivery;
    timers_.pop();
  }
}

Status MemoryBackend::Start() {
  std::lock_guard<std::mutex> lock(timer_mu_);
  if (!timer_thread_.joinable()) {
    stopping_ = false;
    timer_thread_ = std::thread([this] { TimerLoop(); });
  }
  return Status::Ok();
}

MemoryBackend::Queue& MemoryBackend::GetQueue(const std::string& source) {
  std::lock_guard<std::mutex> lock(queues_mu_);
  auto& q = queues_[source];
  if (!q) {
    q = std::make_unique<Queue>();
    q->name = source;
  }
  return *q;
}

Result<std::unique_ptr<Source>> MemoryBackend::OpenSource(const SourceOptions& options) {
  Queue& q = GetQueue(options.source);
  std::string dlq = options.source + "-dlq";
  return std::unique_ptr<Source>(new MemorySource(
      q, options,
      [this](Queue& queue, std::unique_ptr<Delivery> d, Duration delay) {
        Schedule(queue, std::move(d), delay);
      },
      [this, dlq](Message m) {
        Status s = Enqueue(dlq, std::move(m), Duration{0});
        if (!s.ok()) LOG(ERROR) << "backend " << name_ << ": dead letter lost: " << s.ToString();
      }));
}

Status MemoryBackend::Enqueue(const std::string& source, Message message, Duration delay) {
  std::vector<Message> one;
  one.push_back(std::move(message));
  if (delay.count() > 0) {
    auto d = std::make_unique<Delivery>();
    d->msg = std::move(one[0]);
    if (d->msg.id.empty()) d->msg.id = std::to_string(next_id_.fetch_add(1));
    if (d->msg.enqueued_at_ms == 0) d->msg.enqueued_at_ms = WallMs();
    Queue& q = GetQueue(source);
    Schedule(q, std::move(d), delay);
    return Status::Ok();
  }
  return EnqueueBatch(source, one);
}

Status MemoryBackend::EnqueueBatch(const std::string& source, std::vector<Message>& messages) {
  Queue& q = GetQueue(source);
  const uint64_t now_ns = MonotonicNs();
  const int64_t now_ms = WallMs();
  std::function<void()> wake;
  {
    std::lock_guard<std::mutex> lock(q.mu);
    if (options_.capacity > 0 && q.ready.size() + q.delayed + messages.size() > options_.capacity)
      return Status::Unavailable("memory backend " + name_ + ": queue " + source + " is full (" +
                                 std::to_string(options_.capacity) + " messages)");
    for (auto& m : messages) {
      std::unique_ptr<Delivery> d;
      if (!q.spare.empty()) {
        d = std::move(q.spare.back());
        q.spare.pop_back();
        d->ResetState();
      } else {
        d = std::make_unique<Delivery>();
      }
      d->msg = std::move(m);
      if (d->msg.id.empty()) d->msg.id = std::to_string(next_id_.fetch_add(1, std::memory_order_relaxed));
      if (d->msg.enqueued_at_ms == 0) d->msg.enqueued_at_ms = now_ms;
      d->received_ns = now_ns;
      q.ready.push_back(std::move(d));
    }
    q.ready_count.store(q.ready.size(), std::memory_order_relaxed);
    wake = q.wake;
  }
  if (wake) wake();
  return Status::Ok();
}

void MemoryBackend::Schedule(Queue& q, std::unique_ptr<Delivery> d, Duration delay) {
  // Reset per-delivery state: the message is delivered afresh.
  auto fresh = std::make_unique<Delivery>();
  fresh->msg = std::move(d->msg);
  if (delay.count() <= 0) {
    fresh->received_ns = MonotonicNs();
    std::function<void()> wake;
    {
      std::lock_guard<std::mutex> lock(q.mu);
      q.ready.push_back(std::move(fresh));
      q.ready_count.store(q.ready.size(), std::memory_order_relaxed);
      wake = q.wake;
    }
    if (wake) wake();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(q.mu);
    q.delayed++;
  }
  {
    std::lock_guard<std::mutex> lock(timer_mu_);
    timers_.push(Timed{std::chrono::steady_clock::now() + delay, timer_seq_++, &q, fresh.release()});
  }
  timer_cv_.notify_one();
}

void MemoryBackend::TimerLoop() {
  InstallThreadCrashStack();
  Heartbeat heartbeat("backend memory " + name_ + ": timer");
  std::unique_lock<std::mutex> lock(timer_mu_);
  while (!stopping_) {
    heartbeat.Beat();
    if (timers_.empty()) {
      timer_cv_.wait_for(lock, kHeartbeatPeriod);
      continue;
    }
    auto due = timers_.top().due;
    if (std::chrono::steady_clock::now() < due) {
      timer_cv_.wait_until(lock, std::min(due, std::chrono::steady_clock::now() + kHeartbeatPeriod));
      continue;
    }
    Timed t = timers_.top();
    timers_.pop();
    lock.unlock();
    std::unique_ptr<Delivery> d(t.delivery);
    d->received_ns = MonotonicNs();
    std::function<void()> wake;
    {
      std::lock_guard<std::mutex> qlock(t.queue->mu);
      t.queue->delayed--;
      t.queue->ready.push_back(std::move(d));
      t.queue->ready_count.store(t.queue->ready.size(), std::memory_order_relaxed);
      wake = t.queue->wake;
    }
    if (wake) wake();
    lock.lock();
  }
}

void MemoryBackend::Stop(std::chrono::steady_clock::time_point) {
  {
    std::lock_guard<std::mutex> lock(timer_mu_);
    stopping_ = true;
  }
  timer_cv_.notify_all();
  if (timer_thread_.joinable()) timer_thread_.join();
}

size_t MemoryBackend::ReadyCount(const std::string& source) {
  Queue& q = GetQueue(source);
  std::lock_guard<std::mutex> lock(q.mu);
  return q.ready.size();
}

namespace {

class MemoryInspector final : public Inspector {
 public:
  explicit MemoryInspector(MemoryBackend* backend) : backend_(backend) {}
  Result<QueueDepth> Depth(const SourceOptions& queue) override {
    QueueDepth d;
    d.backlog = static_cast<int64_t>(backend_->ReadyCount(queue.source));
    d.scheduled = static_cast<int64_t>(backend_->DelayedCount(queue.source));
    d.dead_letters = static_cast<int64_t>(backend_->ReadyCount(queue.source + "-dlq"));
    return d;
  }
  Result<DeadLetterPage> ListDead(const SourceOptions&, const DeadLetterFilter&, size_t,
                                  size_t) override {
    return Unsupported();
  }
  Result<DeadLetter> GetDead(const SourceOptions&, const std::string&, size_t) override {
    return Unsupported();
  }
  Result<std::vector<std::string>> RetryDead(const SourceOptions&,
                                             const std::vector<std::string>&) override {
    return Unsupported();
  }
  Result<size_t> RetryMatching(const SourceOptions&, const DeadLetterFilter&) override {
    return Unsupported();
  }
  Result<std::vector<std::string>> DeleteDead(const SourceOptions&,
                                              const std::vector<std::string>&) override {
    return Unsupported();
  }
  Result<size_t> DeleteMatching(const SourceOptions&, const DeadLetterFilter&) override {
    return Unsupported();
  }
  Result<std::vector<ScheduledJob>> ListScheduled(const SourceOptions&, size_t) override {
    return Unsupported();
  }

 private:
  static Status Unsupported() {
    return Status::Unavailable("the memory backend keeps nothing to browse (depth only)");
  }
  MemoryBackend* backend_;
};

}  // namespace

Result<std::unique_ptr<Inspector>> MemoryBackend::OpenInspector(const InspectorOptions& options) {
  (void)options;
  return std::unique_ptr<Inspector>(new MemoryInspector(this));
}

size_t MemoryBackend::DelayedCount(const std::string& source) {
  Queue& q = GetQueue(source);
  std::lock_guard<std::mutex> lock(q.mu);
  return q.delayed;
}

std::vector<Message> MemoryBackend::Peek(const std::string& source) {
  Queue& q = GetQueue(source);
  std::lock_guard<std::mutex> lock(q.mu);
  std::vector<Message> out;
  for (const auto& d : q.ready) out.push_back(d->msg);
  return out;
}

}  // namespace foxworker
