// The parts of RedisBackend that its sources and its two threads share.
// Internal to daemon/backends/redis/: include only from its .cc files.
#ifndef FOXWORKER_BACKENDS_REDIS_REDIS_SOURCE_H_
#define FOXWORKER_BACKENDS_REDIS_REDIS_SOURCE_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "daemon/backends/redis/redis_backend.h"

namespace foxworker {

// One stream as a queue sees it.
struct RedisBackend::SourceState {
  using TimePoint = std::chrono::steady_clock::time_point;
  using HeldMap = std::unordered_map<std::string, TimePoint>;

  explicit SourceState(SourceOptions o)
      : options(std::move(o)), retry_key(options.source + ":retry"), dlq_key(options.source + "-dlq") {
    held.reserve(static_cast<size_t>(options.prefetch));
  }

  const SourceOptions options;
  const std::string retry_key;  // sorted set of retry copies, scored by due Unix ms
  const std::string dlq_key;    // dead-letter stream

  std::mutex mu;
  std::deque<std::unique_ptr<Delivery>> buffer;  // GUARDED_BY(mu): read, not handed out
  // Entries this backend holds (buffered, running, or settled but not yet
  // applied in Redis), by id, with when they were last read, claimed or
  // renewed. Never claimed again while held.
  HeldMap held;                  // GUARDED_BY(mu)
  int reserved = 0;              // GUARDED_BY(mu): room promised to a read in flight
  // Recycled allocations, so that steady reading allocates nothing per
  // entry: settled deliveries (their strings keep their capacity) and the
  // nodes of entries no longer held. Each at most `prefetch` long.
  std::vector<std::unique_ptr<Delivery>> spare;  // GUARDED_BY(mu)
  std::vector<HeldMap::node_type> spare_nodes;   // GUARDED_BY(mu)
  std::function<void()> wake;    // GUARDED_BY(mu)
  bool started = false;          // GUARDED_BY(mu)
  bool stopped = false;          // GUARDED_BY(mu): StopFetching was called
  std::atomic<size_t> buffered{0};      // buffer.size(), for MaybeReady
  std::atomic<bool> group_ready{false};  // the group exists (as far as we know)

  // REQUIRES: mu held.
  int RoomLocked() const {
    return options.prefetch - static_cast<int>(held.size()) - reserved;
  }

  // Whether the reader should read for this source now: when a quarter of
  // the window is free, or when anything is and nothing waits in the buffer.
  // Reading in large batches keeps the reads (and their wake-ups) few; the
  // second rule keeps a window full of long-running entries from idling.
  // REQUIRES: mu held.
  bool WantsReadLocked() const {
    const int room = RoomLocked();
    return room > 0 && (room >= std::max(1, options.prefetch / 4) || buffer.empty());
  }

  // Marks `id` held since `now` (reusing a spare node). REQUIRES: mu held.
  void HoldLocked(std::string_view id, TimePoint now) {
    if (spare_nodes.empty()) {
      held.emplace(std::string(id), now);
      return;
    }
    HeldMap::node_type node = std::move(spare_nodes.back());
    spare_nodes.pop_back();
    node.key().assign(id);
    node.mapped() = now;
    auto result = held.insert(std::move(node));
    if (!result.inserted) spare_nodes.push_back(std::move(result.node));  // held already
  }

  // Forgets `id` (keeping its node for the next one). REQUIRES: mu held.
  void ReleaseLocked(const std::string& id) {
    HeldMap::node_type node = held.extract(id);
    if (!node.empty() && spare_nodes.size() < static_cast<size_t>(options.prefetch)) {
      spare_nodes.push_back(std::move(node));
    }
  }

  // Keeps a settled delivery for reuse. REQUIRES: mu held; nobody else
  // refers to `d`.
  void RecycleLocked(std::unique_ptr<Delivery> d) {
    if (d == nullptr || spare.size() >= static_cast<size_t>(options.prefetch)) return;
    d->ResetState();
    spare.push_back(std::move(d));
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
