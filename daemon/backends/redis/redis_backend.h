// RedisBackend: the `redis` backend, Redis Streams with consumer groups.
//
// Two threads per backend, each owning one blocking hiredis connection:
//  - the reader runs XREADGROUP for every started source that has room in
//    its prefetch window, and fills the sources' buffers. While entries flow
//    it keeps two requests in flight on its connection, each the XACKs of
//    the entries settled since the last one followed by a read, so Redis
//    always has the next read queued and plain acks cost no round trip of
//    their own; once a read finds nothing it waits in one XREADGROUP BLOCK,
//    and acks go to the command thread meanwhile;
//  - the command thread applies the other settlements (XACKs while the
//    reader is blocked or down; retry and dead-letter copies through Lua scripts that write the copy and
//    ack the original atomically), enqueues, moves due retries back to their
//    stream, claims entries other consumers left idle longer than min_idle
//    (crash recovery) and keeps the idle time of long-running entries low.
// Executor threads only touch memory: Fetch takes from a buffer, Settle hands
// the outcomes to the command thread. docs/backends/redis.md explains why
// blocking connections on two threads rather than hiredis's async API.
//
// Both threads reconnect forever with exponential backoff and jitter; an
// entry read but not yet acked stays in the group's pending list, so a
// Redis restart (with AOF) or a daemon crash can only redeliver, never lose.
//
// Safe for concurrent use.
#ifndef FOXWORKER_BACKENDS_REDIS_REDIS_BACKEND_H_
#define FOXWORKER_BACKENDS_REDIS_REDIS_BACKEND_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "daemon/backends/redis/redis_connection.h"
#include "daemon/backends/redis/redis_config.h"
#include "daemon/base/liveness.h"
#include "daemon/core/backend.h"

namespace foxworker {

class RedisBackend final : public Backend {
 public:
  RedisBackend(std::string name, RedisBackendOptions options);
  // Stops (flushing what is pending, for at most 10 s) if still running.
  ~RedisBackend() override;
  RedisBackend(const RedisBackend&) = delete;
  RedisBackend& operator=(const RedisBackend&) = delete;

  const std::string& name() const override { return name_; }
  // The consumer name in the groups: options.consumer or "hostname:pid".
  const std::string& consumer() const { return consumer_; }

  // Starts the threads. A Redis that cannot be reached is not an error: the
  // backend logs it and keeps trying (State() tells).
  Status Start() override;

  // `options.source` is the stream key. The group is created (MKSTREAM) when
  // the source starts. The source must be destroyed before the backend.
  Result<std::unique_ptr<Source>> OpenSource(const SourceOptions& options) override;

  // XADD to the stream (or, with a delay, into "<stream>:retry"), done
  // before it returns. Fails at once while Redis is unreachable.
  // REQUIRES: Start succeeded and Stop has not finished.
  Status Enqueue(const std::string& source, Message message, Duration delay) override;

  // Stops reading, applies every pending settlement and closes the
  // connections. Past `deadline` it gives up: entries not acked stay pending
  // and are claimed again after min_idle, never lost.
  void Stop(std::chrono::steady_clock::time_point deadline) override;

  BackendState State() const override;
  std::string ClaimOwner() const override { return consumer_; }
  // A RedisInspector on a connection of its own.
  Result<std::unique_ptr<Inspector>> OpenInspector(const InspectorOptions& options) override;
  // Applied by the reader, per stream, before its first claim or read.
  void AdoptPreviousRun(PreviousRun previous) override;

 private:
  class RedisSource;
  struct SourceState;
  struct SettleOp;
  struct EnqueueOp;
  struct ReadRound;
  using SourceList = std::vector<std::shared_ptr<SourceState>>;
  using TimePoint = std::chrono::steady_clock::time_point;
  enum class Link { kCommands, kReader };

  // Any thread. Plain acks go to the reader while it takes them (see
  // reader_takes_acks_), the rest to the command thread; `to_commands`
  // sends them all there.
  void SubmitSettlements(std::vector<SettleOp> ops, bool to_commands = false);
  void KickReader();
  void KickCommands(bool unblock_reader);

  // Puts claimed or read entries (an array of [id, fields]) into the source's
  // buffer and wakes its consumer; entries past max_attempts are
  // dead-lettered, entries for a stopped source released. `counts` are the
  // delivery counts by position (empty: 1 each). Reader or command thread.
  void Deliver(const std::shared_ptr<SourceState>& source, const redisReply* entries,
               const std::vector<uint32_t>& counts);

  // The command thread (redis_command_thread.cc).
  void RunCommands();
  Status ApplySettlements(std::vector<SettleOp>& ops);
  void ApplyEnqueues(std::vector<EnqueueOp*>& ops);
  Status MoveDue(SourceState& source, TimePoint now);
  // Moves retries too large for a script back in transactions: `big` is
  // the move script's [member, fields, ...].
  Status MoveBig(SourceState& source, const redisReply* big);
  Status RenewHeld(SourceState& source, TimePoint now);
  void FailEnqueues(std::vector<EnqueueOp*>& ops, const Status& status);

  // The reader thread (redis_reader_thread.cc).
  void RunReader();
  Status EnsureGroup(RedisConnection& conn, SourceState& source);
  // One step: maintenance (group, claims) when due and nothing is in
  // flight; else sends the next round when there is something to send and
  // room in the pipeline, or receives the oldest round, or waits.
  Status ReaderStep(const SourceList& sources);
  Status SendRound(const SourceList& sources, bool* sent);
  // Takes in the oldest round's replies. `wakeable`: may return before
  // they are all in (with Ok) for acks worth sending first; only where the
  // caller goes on to SendRound.
  Status ReceiveRound(bool wakeable);
  // The next reply of the oldest round; null when woken for acks first.
  Status ReceiveReply(RedisReplyPtr* reply, bool wakeable);
  static bool AnyWantsRead(const SourceList& sources);
  // Delivers a read's entries; an error reply becomes the Status.
  Status TakeReadReply(const SourceList& read, const redisReply* reply);
  // Groups the round's acks from `begin` on by source (in their order
  // within one), adds an XACK for each group and counts its ops as acking.
  static void AddXacks(ReadRound& round, size_t begin);
  // The connection failed: every round in flight is given up, its acks
  // handed to the command thread and its reservations returned.
  void AbandonRounds();
  // Claims entries left pending: at the first call, this consumer name's
  // own (an earlier run's); then other consumers' idle for min_idle.
  Status ClaimIdle(RedisConnection& conn, const std::shared_ptr<SourceState>& source);
  // The previous daemon's consumer (proved dead by the running journal):
  // its pending entries that were never started get their delivery count
  // back; all of them go to this consumer, idle, for ClaimIdle to take.
  Status RecoverPreviousRun(RedisConnection& conn, SourceState& source);

  // Connection bookkeeping shared by both threads.
  Result<std::unique_ptr<RedisConnection>> Connect(Link link);
  void RecordFailure(Link link, const Status& status);
  std::chrono::milliseconds Backoff(int failures);
  // Sleeps until `until` or Stop; false when stopping.
  bool SleepUnlessStopping(TimePoint until);

  const std::string name_;
  const RedisBackendOptions options_;
  const std::string consumer_;
  std::optional<PreviousRun> previous_;  // set before Start; read by the reader

  mutable std::mutex mu_;
  std::condition_variable cv_;         // wakes the command thread
  std::condition_variable reader_cv_;  // wakes the reader
  std::condition_variable done_cv_;    // wakes Enqueue callers
  std::deque<SettleOp> pending_settles_;      // GUARDED_BY(mu_)
  std::vector<EnqueueOp*> pending_enqueues_;  // GUARDED_BY(mu_)
  std::vector<SettleOp> reader_acks_;         // GUARDED_BY(mu_): plain acks for the reader
  // The reader is connected, not inside a blocking read and not stopping:
  // it sends plain acks ahead of its next read within a round trip.
  bool reader_takes_acks_ = false;            // GUARDED_BY(mu_)
  // The reader waits for a reply and could send another round: a
  // SubmitSettlements that brings reader_acks_ to reader_wake_acks_ writes
  // reader_wake_fd_ (an eventfd), once, so the acks go out at once.
  bool reader_polling_ = false;               // GUARDED_BY(mu_)
  size_t reader_wake_acks_ = 1;               // GUARDED_BY(mu_)
  int reader_wake_fd_ = -1;
  SourceList sources_;                        // GUARDED_BY(mu_)
  bool commands_kicked_ = false;              // GUARDED_BY(mu_)
  bool reader_kicked_ = false;                // GUARDED_BY(mu_)
  bool unblock_reader_ = false;               // GUARDED_BY(mu_)
  bool running_ = false;                      // GUARDED_BY(mu_)
  bool stop_requested_ = false;               // GUARDED_BY(mu_)
  bool reader_done_ = false;                  // GUARDED_BY(mu_): RunReader returned
  TimePoint stop_deadline_{};                 // GUARDED_BY(mu_)
  bool commands_connected_ = false;           // GUARDED_BY(mu_)
  bool reader_connected_ = false;             // GUARDED_BY(mu_)
  bool ever_connected_[2] = {false, false};   // GUARDED_BY(mu_)
  bool lost_[2] = {false, false};             // GUARDED_BY(mu_): down since it was up
  BackendState state_;                        // GUARDED_BY(mu_)

  std::atomic<int64_t> reader_client_id_{-1};  // CLIENT ID of the reader's connection
  std::atomic<bool> reader_blocking_{false};   // the reader is inside XREADGROUP BLOCK

  std::thread commands_thread_;
  std::thread reader_thread_;
  // Each thread's own (docs/operations.md#watchdog); only that thread beats.
  Heartbeat commands_heartbeat_;
  Heartbeat reader_heartbeat_;

  // Owned by the command thread.
  std::unique_ptr<RedisConnection> commands_;
  // Owned by the reader thread.
  std::unique_ptr<RedisConnection> reader_;
  std::vector<ReadRound> rounds_;  // sent on reader_, replies not yet read; oldest first
  bool dry_ = false;              // the last read found nothing: the next one blocks
  size_t ack_batch_ = 1;          // acks worth a round of their own (a quarter window)
};

// Builds the backend for a `type: redis` entry.
class ExtensionRegistry;
Result<std::unique_ptr<Backend>> MakeRedisBackend(const BackendConfig& config);
// Sets MakeRedisBackend as the "redis" type's factory.
void RegisterRedisBackendFactory(ExtensionRegistry& registry);

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_REDIS_REDIS_BACKEND_H_
