// The parts of RedisBackend that its sources and its two threads share.
// Internal to daemon/backends/redis/: include only from its .cc files.
#ifndef FOXWORKER_BACKENDS_REDIS_REDIS_SOURCE_H_
#define FOXWORKER_BACKENDS_REDIS_REDIS_SOURCE_H_

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "daemon/backends/redis/redis_backend.h"

namespace foxworker {

// One stream as a queue sees it.
struct RedisBackend::SourceState {
  explicit SourceState(SourceOptions o)
      : options(std::move(o)), retry_key(options.source + ":retry"), dlq_key(options.source + "-dlq") {}

  const SourceOptions options;
  const std::string retry_key;  // sorted set of retry copies, scored by due Unix ms
  const std::string dlq_key;    // dead-letter stream

  std::mutex mu;
  std::deque<std::unique_ptr<Delivery>> buffer;  // GUARDED_BY(mu): read, not handed out
  // Entries this backend holds (buffered, running, or settled but not yet
  // applied in Redis), by id, with when they were last read, claimed or
  // renewed. Never claimed again while held.
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> held;  // GUARDED_BY(mu)
  int reserved = 0;              // GUARDED_BY(mu): room promised to a read in flight
  std::function<void()> wake;    // GUARDED_BY(mu)
  bool started = false;          // GUARDED_BY(mu)
  bool stopped = false;          // GUARDED_BY(mu): StopFetching was called
  std::atomic<size_t> buffered{0};      // buffer.size(), for MaybeReady
  std::atomic<bool> group_ready{false};  // the group exists (as far as we know)

  // REQUIRES: mu held.
  int RoomLocked() const {
    return options.prefetch - static_cast<int>(held.size()) - reserved;
  }

  // Owned by the command thread.
  std::chrono::steady_clock::time_point next_move{};
  std::chrono::steady_clock::time_point next_renew{};

  // Owned by the reader thread.
  std::chrono::steady_clock::time_point next_claim{};
  std::string claim_cursor = "-";
  bool own_recovered = false;  // our consumer's leftovers from an earlier run were taken
};

struct RedisBackend::SettleOp {
  std::shared_ptr<SourceState> source;
  std::unique_ptr<Delivery> delivery;
  Outcome outcome;
};

struct RedisBackend::EnqueueOp {
  std::string stream;
  Message message;
  Duration delay{0};
  Status status;
  bool done = false;  // GUARDED_BY(RedisBackend::mu_)
};

// Fetch and Settle only touch memory; the backend's threads talk to Redis.
class RedisBackend::RedisSource final : public Source {
 public:
  RedisSource(RedisBackend* backend, std::shared_ptr<SourceState> state)
      : backend_(backend), state_(std::move(state)) {}
  // Releases what is still buffered.
  ~RedisSource() override;

  Status Start(std::function<void()> wake) override;
  size_t Fetch(size_t max, std::vector<std::unique_ptr<Delivery>>& out) override;
  void Settle(std::vector<Settlement>& batch) override;
  void StopFetching() override;
  bool MaybeReady() const override;

 private:
  RedisBackend* const backend_;
  const std::shared_ptr<SourceState> state_;
};

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_REDIS_REDIS_SOURCE_H_
