// LocalBackend: the `local` backend, a durable job queue in one SQLite file.
//
// One dedicated thread per backend owns the SQLite connection (a LocalStore);
// executor threads never call SQLite. They hand work to that thread through a
// queue: settlements from Settle, and enqueues. The thread applies everything
// that accumulated in as few transactions as possible (group commit):
// enqueues and settlements first, then claims that refill each source's
// buffer up to its prefetch, and then it wakes the consumers that ran dry.
// One commit (one fsync with `durability: full`) thus carries up to
// `batch_size` settlements and as many claims.
//
// Leases: every job this backend holds, buffered or running, has a lease in
// the file that the thread renews every lease/3, so long handlers never lose
// theirs. Jobs of owners that died or hung are made available again when
// their lease expires. New work is noticed at once when it is enqueued
// through this backend, within 20 ms when another process commits to the
// file (PRAGMA data_version, polled while a source is idle), and every
// poll_interval for delayed jobs that became due.
//
// Safe for concurrent use.
#ifndef FOXWORKER_BACKENDS_LOCAL_LOCAL_BACKEND_H_
#define FOXWORKER_BACKENDS_LOCAL_LOCAL_BACKEND_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "daemon/backends/local/local_config.h"
#include "daemon/backends/local/local_store.h"
#include "daemon/backends/local/storage_fault.h"
#include "daemon/base/liveness.h"
#include "daemon/config/config.h"
#include "daemon/core/backend.h"

namespace foxworker {

class LocalBackend final : public Backend {
 public:
  LocalBackend(std::string name, LocalBackendOptions options);
  // Stops (flushing what is pending, for at most 10 s) if still running.
  ~LocalBackend() override;
  LocalBackend(const LocalBackend&) = delete;
  LocalBackend& operator=(const LocalBackend&) = delete;

  const std::string& name() const override { return name_; }
  // "hostname:pid:random": how this backend's claims are marked in the file.
  const std::string& owner() const { return owner_; }
  const LocalBackendOptions& options() const { return options_; }

  // Opens the file (creating it and its schema when missing) on the backend's
  // thread, recovers expired leases, and starts claiming for started sources.
  // Fails with the file's path in the message when it cannot be opened.
  Status Start() override;

  // `options.source` is the queue name in the file. Sources may be opened
  // before or after Start; a source claims nothing until its own Start.
  // The source must be destroyed before the backend.
  Result<std::unique_ptr<Source>> OpenSource(const SourceOptions& options) override;

  // Committed to the file before it returns (it joins the next group
  // commit). The job's priority is message.props.priority.
  // REQUIRES: Start succeeded and Stop has not finished.
  Status Enqueue(const std::string& source, Message message, Duration delay) override;

  // Enqueues all `jobs` in one transaction, committed before it returns.
  // REQUIRES: as for Enqueue.
  Result<std::vector<EnqueueResult>> EnqueueBatch(std::vector<NewJob> jobs);

  // Releases buffered jobs that were never handed out, applies every pending
  // settlement and enqueue, and closes the file. Past `deadline` it gives up:
  // what was not written is recovered by lease expiry later, never lost.
  void Stop(std::chrono::steady_clock::time_point deadline) override;

  BackendState State() const override;
  std::string ClaimOwner() const override { return owner_; }
  // Applied by Start, on the backend's thread, before the first claim.
  void AdoptPreviousRun(PreviousRun previous) override;
  // Keys in this backend's SQLite file (table dedup_keys), scoped by `scope`.
  std::unique_ptr<KeyStore> OpenDurableKeyStore(const std::string& scope) override;
  // A LocalInspector on a connection of its own to the file.
  Result<std::unique_ptr<Inspector>> OpenInspector(const InspectorOptions& options) override;

  // How many group commits so far wrote at least one enqueue. Read-only, for
  // tests: fewer than the Enqueue calls they carried means enqueuers shared
  // commits.
  uint64_t enqueue_commits() const { return enqueue_commits_.load(std::memory_order_relaxed); }

 private:
  class LocalSource;
  struct SourceState;
  struct SettleOp;
  struct EnqueueOp;
  struct ClaimPlan;
  using SourceList = std::vector<std::shared_ptr<SourceState>>;
  using TimePoint = std::chrono::steady_clock::time_point;

  static SettleOp ReleaseOp(const std::shared_ptr<SourceState>& source, const Delivery& d);
  // Release ops for jobs claimed and never handed out.
  static std::vector<SettleOp> ReleaseOps(const std::shared_ptr<SourceState>& source,
                                          const std::deque<std::unique_ptr<Delivery>>& unstarted);
  // Release ops for the source's buffered jobs (taken out of the buffer;
  // none once the source is stopped); with `stop`, the source also takes no
  // more.
  static std::vector<SettleOp> TakeUnstarted(const std::shared_ptr<SourceState>& source, bool stop);

  // Called by sources and by the backend's thread (never with mu_ held).
  void SubmitSettlements(std::vector<SettleOp> ops);
  void Kick();

  // The backend's thread.
  void Run(std::promise<Status>* started);
  // Takes pending work; REQUIRES: mu_ held.
  void TakePendingLocked(size_t max_settles, std::vector<SettleOp>* settles,
                         std::vector<EnqueueOp*>* enqueues);
  TimePoint NextWakeupLocked() const;
  bool WaitingForWork(const SourceList& sources) const;
  // Reads (no write lock): pauses, and due jobs for sources that went idle.
  void DetectNewWork(const SourceList& sources, TimePoint now);
  // One group commit. Sets `*more` when claims were cut short by batch_size.
  // Returns false when the transaction failed (settlements were put back).
  bool GroupCommit(const SourceList& sources, std::vector<SettleOp>& settles,
                   std::vector<EnqueueOp*>& enqueues, bool flush_only, TimePoint now, bool* more);
  void Deliver(ClaimPlan& plan, ClaimResult& claimed);
  void FinishEnqueues(std::vector<EnqueueOp*>& enqueues, const Status& status);
  // Stop's part on the backend's thread.
  void FlushForStop(const SourceList& sources);
  bool IsPaused(const std::string& queue) const;
  // Rereads the paused queues; releases the buffers of newly paused ones.
  Status RefreshPaused(const SourceList& sources);
  // Storage faults: one log line per change of state, the state in State()
  // (see storage_fault.h). RecordFailure classifies `status` by the store's
  // last error unless `fault` is given.
  void RecordFailure(const Status& status, std::optional<StorageFault> fault = std::nullopt);
  // `how` says what made it usable again (default: "is writable again").
  void RecordSuccess(const char* how = nullptr);
  // Corrupt or deleted: nothing is claimed or written until TryRecover
  // finds a usable file again (the same one passing its check again, or a
  // new file at the path).
  bool Blocked() const {
    return fault_ == StorageFault::kCorrupt || fault_ == StorageFault::kDeleted;
  }
  bool TryRecover();
  // Settlements that changed no row: says why (claimed again, gone, or a
  // corrupt file), and enters the corrupt state when the file fails its check.
  void ExplainLost(const std::vector<const SettleOp*>& lost);
  // Checks the file at open: a corrupt file starts in the corrupt state.
  void CheckAtOpen();
  // Beats before a call that reads the whole file (a check).
  void BeatForScan();
  // Whether the path still names the open file (every second), and keeps
  // the WAL small while the file system is short of space (every 5 s).
  void CheckFile(TimePoint now);
  // Gives back the unstarted jobs of the dead owner in previous_.
  void RecoverPreviousRun();

  const std::string name_;
  const LocalBackendOptions options_;
  const std::string owner_;

  mutable std::mutex mu_;
  std::condition_variable cv_;                // wakes the backend's thread
  std::condition_variable done_cv_;           // wakes Enqueue callers and Stop
  std::vector<SettleOp> pending_settles_;     // GUARDED_BY(mu_)
  std::vector<EnqueueOp*> pending_enqueues_;  // GUARDED_BY(mu_)
  SourceList sources_;                        // GUARDED_BY(mu_)
  bool kicked_ = false;                       // GUARDED_BY(mu_)
  bool running_ = false;                      // GUARDED_BY(mu_): Start succeeded, thread not done
  bool stop_requested_ = false;               // GUARDED_BY(mu_)
  bool abandon_ = false;                      // GUARDED_BY(mu_): Stop's deadline passed
  bool finished_ = false;                     // GUARDED_BY(mu_): the thread takes no more work
  TimePoint stop_deadline_{};                 // GUARDED_BY(mu_)
  LocalStore* interruptible_ = nullptr;       // GUARDED_BY(mu_): store_ while open
  BackendState state_;                        // GUARDED_BY(mu_)
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{};  // of thread_, readable without mu_
  std::atomic<uint64_t> enqueue_commits_{0};

  // Set before Start; read by the backend's thread.
  std::optional<PreviousRun> previous_;

  // Owned by the backend's thread.
  std::unique_ptr<LocalStore> store_;
  int64_t data_version_ = -1;
  std::vector<std::string> paused_queues_;
  TimePoint next_renew_{};
  TimePoint next_recover_{};
  TimePoint next_purge_{};
  TimePoint next_poll_{};
  TimePoint next_data_version_check_{};
  std::chrono::milliseconds data_version_interval_{1};
  std::chrono::milliseconds backoff_{0};
  StorageFault fault_ = StorageFault::kOk;
  TimePoint fault_since_{};
  int64_t fault_data_version_ = -1;  // data_version at the last corruption check
  TimePoint next_space_check_{};
  TimePoint next_file_check_{};
  TimePoint next_lost_check_{};
  Heartbeat* heartbeat_ = nullptr;  // the thread's own, while Run runs
};

// Builds the backend for a `type: local` entry. The path is used as given
// (the config parser resolves a relative one against daemon.state_dir).
class ExtensionRegistry;
Result<std::unique_ptr<Backend>> MakeLocalBackend(const BackendConfig& config);
// Sets MakeLocalBackend as the "local" type's factory.
void RegisterLocalBackendFactory(ExtensionRegistry& registry);

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_LOCAL_LOCAL_BACKEND_H_
