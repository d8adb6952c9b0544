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
#include <vector>

#include <glog/logging.h>

#include "daemon/backends/redis/redis_backend.h"
#include "daemon/core/buffered_source.h"

namespace foxworker {

// One stream as a queue sees it. The buffer holds entries read and not
// handed out; every read that leaves something buffered wakes the consumer.
// The one mutex (BufferedSourceState::mu) also guards the held entries, so
// a read takes it once per batch.
struct RedisBackend::SourceState : BufferedSourceState {
  using TimePoint = std::chrono::steady_clock::time_point;

  // An entry this backend holds. A delivery of it carries 1 + its slot's
  // index in Delivery::generation (copies made for settlement keep it), so
  // holding and forgetting an entry costs no hashing and no allocation.
  // The slot is also where the entry's stream id lives: a delivery's msg.id
  // is the message id, which a retry copy shares with the first entry of
  // its message (docs/backends/redis.md, "Message ids").
  struct HeldSlot {
    std::string id;  // the stream entry id; keeps its capacity while the slot is free
    TimePoint since{};
    bool used = false;
  };

  explicit SourceState(SourceOptions o)
      : BufferedSourceState(WakeOn::kRefill),
        options(std::move(o)),
        retry_key(options.source + ":retry"),
        dlq_key(options.source + "-dlq") {
    free_held.reserve(static_cast<size_t>(options.prefetch));
  }

  const SourceOptions options;
  const std::string retry_key;  // sorted set of retry copies, scored by due Unix ms
  const std::string dlq_key;    // dead-letter stream

  // Entries this backend holds (buffered, running, or settled but not yet
  // applied in Redis), with when they were last read, claimed or renewed.
  // Never claimed again while held.
  // A deque: a slot never moves, so a command may point at its id from
  // the time it is read under mu until the entry is released.
  std::deque<HeldSlot> held;       // GUARDED_BY(mu); slots in use and free ones
  std::vector<uint32_t> free_held; // GUARDED_BY(mu): indexes of free slots
  int held_count = 0;              // GUARDED_BY(mu): slots in use
  int reserved = 0;              // GUARDED_BY(mu): room promised to a read in flight
  // Held entries whose XACK the reader has sent ahead of its next reads: on
  // one connection Redis applies it before them, so their room is free for
  // those reads already.
  int acking = 0;                // GUARDED_BY(mu)
  // Settled deliveries kept for reuse (their strings keep their capacity),
  // so that steady reading allocates nothing per entry; at most `prefetch`.
  std::vector<std::unique_ptr<Delivery>> spare;  // GUARDED_BY(mu)
  std::atomic<bool> group_ready{false};  // the group exists (as far as we know)

  // REQUIRES: mu held.
  int RoomLocked() const { return options.prefetch - held_count - reserved + acking; }

  // Whether the reader should read for this source now: when a quarter of
  // the window is free, or when anything is and nothing waits in the buffer.
  // Reading in large batches keeps the reads (and their wake-ups) few; the
  // second rule keeps a window full of long-running entries from idling.
  // REQUIRES: mu held.
  bool WantsReadLocked() const {
    const int room = RoomLocked();
    return room > 0 && (room >= std::max(1, options.prefetch / 4) || buffer.empty());
  }

  // Started, not stopped, with its group, and wanting entries: the reader
  // reads it now. REQUIRES: mu held.
  bool ReadableLocked() const {
    return started && !stopped && group_ready.load() && WantsReadLocked();
  }

  // Marks entry `entry_id`, delivered as `d`, held since `now`.
  // REQUIRES: mu held.
  void HoldLocked(Delivery& d, std::string_view entry_id, TimePoint now) {
    uint32_t i;
    if (free_held.empty()) {
      i = static_cast<uint32_t>(held.size());
      held.emplace_back();
    } else {
      i = free_held.back();
      free_held.pop_back();
    }
    HeldSlot& slot = held[i];
    slot.id.assign(entry_id);
    slot.since = now;
    slot.used = true;
    ++held_count;
    d.generation = i + 1;
  }

  // The stream entry id of `d` (held by HoldLocked). It stays where it is
  // until the slot is reused, after ReleaseLocked. REQUIRES: mu held.
  const std::string& EntryIdLocked(const Delivery& d) const {
    CHECK(d.generation > 0 && d.generation <= held.size())
        << "redis delivery of message " << d.msg.id << " has no held slot";
    return held[static_cast<size_t>(d.generation) - 1].id;
  }

  // Forgets the entry of `d` (held by HoldLocked). REQUIRES: mu held.
  void ReleaseLocked(const Delivery& d) {
    const size_t i = static_cast<size_t>(d.generation) - 1;
    if (d.generation == 0 || i >= held.size() || !held[i].used) return;  // released already
    held[i].used = false;
    --held_count;
    free_held.push_back(static_cast<uint32_t>(i));
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
  bool previous_recovered = false;  // a dead previous daemon's entries were sorted (journal)
};

struct RedisBackend::SettleOp {
  // The backend keeps every SourceState it opened (sources_) until it is
  // destroyed, and settle ops never outlive it: a plain pointer, which
  // spares a contended reference count per entry.
  SourceState* source;
  std::unique_ptr<Delivery> delivery;
  Outcome outcome;
};

// One request pipelined on the reader's connection: an XACK per stream for
// the plain acks settled since the last round, then at most one XREADGROUP.
struct RedisBackend::ReadRound {
  struct Xack {
    SourceState* source;
    size_t begin, end;  // its ops in `acks`
  };
  std::vector<SettleOp> acks;
  std::vector<std::string_view> entry_ids;  // of `acks`, in their held slots
  std::vector<Xack> xacks;  // in the order sent
  SourceList read;          // the streams the XREADGROUP reads; empty: no read
  int count = 0;            // its COUNT, reserved in each of `read`
  bool blocking = false;    // it has BLOCK: nothing is sent behind it
  // Progress of the replies, so that a failure midway undoes only the rest.
  size_t xacks_done = 0;
  bool read_done = false;
};

struct RedisBackend::EnqueueOp {
  std::string stream;
  Message message;
  Duration delay{0};
  Status status;
  bool done = false;  // GUARDED_BY(RedisBackend::mu_)
};

// Fetch and Settle only touch memory; the backend's threads talk to Redis.
class RedisBackend::RedisSource final : public BufferedSource {
 public:
  RedisSource(RedisBackend* backend, std::shared_ptr<SourceState> state)
      : BufferedSource("redis source " + state->options.source, state),
        backend_(backend),
        state_(std::move(state)) {}
  // Releases what is still buffered.
  ~RedisSource() override;

  void Settle(std::vector<Settlement>& batch) override;

 private:
  void OnStarted() override;
  void OnStopFetching(BufferedSourceState::Buffer unstarted) override;

  RedisBackend* const backend_;
  const std::shared_ptr<SourceState> state_;
};

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_REDIS_REDIS_SOURCE_H_
