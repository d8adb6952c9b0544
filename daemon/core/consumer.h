// Consumer: one per configured queue. Pulls deliveries from its Source within
// the prefetch window, runs them on the shared Executor within the queue's
// concurrency limit, routes each to its handler, turns the verdict into an
// Outcome with the retry policy, and settles it back to the Source.
#ifndef FOXWORKER_CORE_CONSUMER_H_
#define FOXWORKER_CORE_CONSUMER_H_

#include <foxworker/plugin.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/core/backend.h"
#include "daemon/core/executor.h"
#include "daemon/core/retry_policy.h"
#include "daemon/plugins/plugin_loader.h"

namespace foxworker {

struct ConsumerStats {
  uint64_t received = 0;
  uint64_t acked = 0;
  uint64_t retried = 0;
  uint64_t dead_lettered = 0;
  uint64_t released = 0;
  uint64_t unknown_verdicts = 0;
  int64_t in_flight = 0;  // fetched and not yet settled (includes deferred)
  int64_t running = 0;    // batches on executor threads now
};

// Safe for concurrent use.
class Consumer {
 public:
  // `plugin`, `source` and `executor` must outlive the consumer.
  Consumer(QueueConfig config, const RetryPolicyConfig& policy, const LoadedPlugin& plugin,
           std::unique_ptr<InstancePool> instances, std::unique_ptr<Source> source,
           Executor& executor);
  ~Consumer();
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  const std::string& name() const { return config_.name; }
  const QueueConfig& config() const { return config_; }

  Status Start();
  // Pauses or resumes fetching (handlers already running finish).
  void SetPaused(bool paused);
  bool paused() const { return paused_.load(); }

  // Stops fetching, hands unstarted buffered messages back to the backend.
  void StopFetching();
  // Waits until nothing is in flight or `deadline` passes; true if drained.
  bool WaitDrained(std::chrono::steady_clock::time_point deadline);
  // Marks every in-flight delivery cancelled (handlers polling see it).
  void CancelInFlight();

  ConsumerStats Stats() const;

  // Destroys the plugin instances. REQUIRES: drained (no handler running).
  void DestroyInstances() { instances_.reset(); }

  // Completion of a deferred delivery (see CompleteDeferred in host_api.h).
  int32_t Complete(Delivery* d, foxw_verdict verdict, std::string_view reason,
                   uint64_t retry_delay_ms);

 private:
  void Wake();
  void MaybeSpawn();
  void Drain();
  // Runs `batch` with one instance; fills `settled` with finished ones.
  void RunBatch(std::vector<std::unique_ptr<Delivery>>& batch, std::vector<Settlement>& settled);
  Outcome Decide(const Delivery& d, foxw_verdict verdict, std::string_view reason,
                 uint64_t retry_delay_ms, const char* handler_name);
  void SettleAll(std::vector<Settlement>& settled);

  const QueueConfig config_;
  const RetryPolicy policy_;
  const LoadedPlugin& plugin_;
  const foxw_handler_def* pinned_ = nullptr;  // set when config_.handler names one
  std::unique_ptr<InstancePool> instances_;
  std::unique_ptr<Source> source_;
  Executor& executor_;
  const int concurrency_;
  const int prefetch_;
  const size_t batch_max_;

  std::atomic<int> workers_{0};       // drain tasks posted or running
  std::atomic<int64_t> in_flight_{0};  // fetched, not settled
  std::atomic<bool> paused_{false};
  std::atomic<bool> stopping_{false};

  // Set by CancelInFlight(); every delivery of this queue points at it, so
  // cancelling all costs no per-message bookkeeping.
  std::atomic<bool> cancel_all_{false};

  std::atomic<uint64_t> received_{0}, acked_{0}, retried_{0}, dead_{0}, released_{0},
      unknown_verdicts_{0};
};

}  // namespace foxworker

#endif  // FOXWORKER_CORE_CONSUMER_H_
