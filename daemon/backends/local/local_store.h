// LocalStore: the SQLite file behind the `local` backend and foxworkerctl.
//
// A job lives in one row of the `jobs` table and moves through these states:
//
//   waiting ──claim──► running ──ack──► (deleted, or `done` while retained)
//   scheduled ─(due)─►    │  ├──retry──► scheduled (run_at moved) or waiting
//                         │  ├──dead───► dead ──dead retry──► waiting
//                         │  └──release► waiting (the attempt is given back)
//                         └──lease expired──► waiting (the attempt still counts)
//
// `waiting` and `scheduled` are both "pending": a pending job is due once its
// run_at has passed, whichever of the two it is stored as.
//
// Every write runs in a BEGIN IMMEDIATE transaction, so several stores, in
// this process or in others, can share one file: a claim takes a job for
// exactly one owner. A claim sets a fresh claim token on the job; settling
// (ack, retry, dead, release) must present it, so an owner whose lease
// expired cannot touch a job another owner claimed since.
//
// Times are Unix milliseconds from the store's clock (wall time by default),
// because leases are compared across processes.
//
// Not thread-safe: one LocalStore is one SQLite connection and must be used
// by one thread at a time.
#ifndef FOXWORKER_BACKENDS_LOCAL_LOCAL_STORE_H_
#define FOXWORKER_BACKENDS_LOCAL_LOCAL_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/backends/local/local_config.h"
#include "daemon/backends/local/storage_fault.h"
#include "daemon/core/message.h"
#include "daemon/base/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace foxworker {

class SqliteStatement;

enum class JobState { kWaiting, kScheduled, kRunning, kDone, kDead };

// "waiting", "scheduled", "running", "done", "dead": the stored spelling.
const char* JobStateName(JobState state);

struct LocalStoreOptions {
  std::string path;
  Durability durability = Durability::kFull;
  // Create the file and its schema when missing; otherwise opening a missing
  // file fails.
  bool create = true;
  // How long a write waits for another connection's transaction.
  Duration busy_timeout{5000};
  // Unix ms; defaults to the wall clock. Tests inject a fake one.
  std::function<int64_t()> clock;
  // Reading only (foxworkerctl's stats, dead list, dead show): the file is
  // opened with SQLITE_OPEN_READONLY, so read access to the file is enough
  // (and read access to its -wal and -shm when they exist; see
  // docs/backends/local.md). Implies create = false; nothing is configured
  // or migrated, and a file that would need a migration is refused. Every
  // write fails with SQLITE_READONLY.
  bool read_only = false;
};

// Who holds a job now (LocalStore::JobHolder).
struct JobHolderInfo {
  JobState state = JobState::kWaiting;
  std::string owner;  // empty when not running
  uint64_t claim_token = 0;
};

// Whether a path still names the file a store opened.
enum class FileIdentity { kSame, kMissing, kOther };

// A job to enqueue.
struct NewJob {
  std::string queue;
  std::string payload;
  Properties props;  // props.priority is ignored: see `priority`
  Headers headers;
  int64_t priority = 0;   // higher runs first
  int64_t run_at_ms = 0;  // 0 = now; in the future = scheduled
  // Non-empty: at most one pending or running job per queue has this key.
  std::string unique_key;
};

struct EnqueueResult {
  int64_t id = 0;
  // True when a job with the same queue and unique key was already pending or
  // running: nothing was written and `id` is that job's id.
  bool duplicate = false;
};

// A job handed to an owner by Claim.
struct ClaimedJob {
  int64_t id = 0;
  uint64_t claim_token = 0;
  int64_t priority = 0;
  uint32_t attempts = 0;  // including this one
  int64_t run_at_ms = 0;
  int64_t enqueued_at_ms = 0;
  std::string queue;
  std::string payload;
  Properties props;  // props.priority = priority clamped to 0..255
  Headers headers;
};

struct ClaimResult {
  std::vector<ClaimedJob> jobs;  // in claim order: priority DESC, run_at, id
  // Jobs that were due but dead-lettered instead of delivered because this
  // attempt would exceed max_attempts (earlier attempts crashed or hung).
  std::vector<int64_t> dead_lettered;
};

// Everything stored about one job (foxworkerctl dead show, tests).
struct JobRecord {
  int64_t id = 0;
  std::string queue;
  JobState state = JobState::kWaiting;
  int64_t priority = 0;
  uint32_t attempts = 0;
  int64_t run_at_ms = 0;
  int64_t enqueued_at_ms = 0;
  int64_t first_attempt_at_ms = 0;  // 0 = never attempted
  int64_t failed_at_ms = 0;         // 0 = not dead
  int64_t finished_at_ms = 0;       // 0 = not done
  int64_t lease_until_ms = 0;       // 0 = not running
  std::string owner;
  std::string unique_key;
  std::string last_error;
  std::string payload;
  Properties props;
  Headers headers;
};

struct QueueStats {
  std::string queue;
  int64_t waiting = 0;    // pending and due
  int64_t scheduled = 0;  // pending, run_at in the future
  int64_t running = 0;
  int64_t dead = 0;
  int64_t done = 0;  // acked and retained
  // How long the oldest due job has been due (now - run_at); 0 when none.
  int64_t oldest_waiting_age_ms = 0;
  bool paused = false;
};

class LocalStore {
 public:
  // Schema version this build writes (PRAGMA user_version). Files with a
  // newer version are refused; older ones are migrated on open.
  static constexpr int kSchemaVersion = 1;
  // PRAGMA application_id of a foxworker file ("FoxW").
  static constexpr int32_t kApplicationId = 0x466f7857;

  // Opens (or creates) the file: WAL journal, synchronous=FULL or NORMAL per
  // durability, busy timeout, schema created or migrated.
  static Result<std::unique_ptr<LocalStore>> Open(LocalStoreOptions options);

  ~LocalStore();
  LocalStore(const LocalStore&) = delete;
  LocalStore& operator=(const LocalStore&) = delete;

  const std::string& path() const { return options_.path; }
  int64_t NowMs() const { return options_.clock(); }

  // Explicit write transaction (BEGIN IMMEDIATE), for grouping many calls
  // into one commit. Every write method below joins an open transaction, and
  // otherwise runs in a transaction of its own.
  Status BeginWrite();
  Status Commit();
  void Rollback();
  bool InTransaction() const;

  // Makes a running statement of this connection fail soon. The only method
  // that may be called from another thread.
  void Interrupt();

  // ---- Storage faults ----
  // SQLite's extended result code and the errno (sqlite3_system_errno) of
  // the last call that failed, and what they mean; kOk before any failure.
  int last_error_code() const { return last_error_code_; }
  int last_system_errno() const { return last_system_errno_; }
  StorageFault last_fault() const {
    return ClassifyStorageError(last_error_code_, last_system_errno_);
  }
  // PRAGMA wal_checkpoint(TRUNCATE): copies the WAL into the file and
  // truncates the WAL to zero bytes. Fails (SQLITE_BUSY) while another
  // connection reads an older snapshot, or when the file must grow and
  // cannot. REQUIRES: no open transaction.
  Status CheckpointTruncate();
  // PRAGMA quick_check (with `full`, PRAGMA integrity_check, which also
  // checks that every index matches its table): "" when the file passes,
  // otherwise SQLite's first findings joined by "; " (also when the check
  // itself stopped at a damaged page). Reads every page: as long as a full
  // scan.
  Result<std::string> QuickCheck(bool full = false);
  // With `small`, a WAL kept small for a file system short of space: a
  // checkpoint every 64 pages (256 KiB) instead of every 1000, and the WAL
  // truncated to what the transaction needs whenever it starts over
  // (journal_size_limit 0) instead of at 64 MiB.
  Status SetSmallWal(bool small);
  bool small_wal() const { return small_wal_; }
  // Whether the path still names the file this connection opened (compared
  // by device and inode): kMissing when it was deleted, kOther when another
  // file took its place.
  FileIdentity CheckPath() const;
  // Rows changed by this connection since it opened (sqlite3_total_changes).
  int64_t TotalChanges() const;
  // Makes the open transaction write a page (page 1, rewriting the schema
  // version it already holds), so that its commit proves the file takes
  // writes even when nothing else changed. REQUIRES: an open transaction.
  Status ProbeWrite();
  // The job's state and holder; nullopt when no row has that id.
  Result<std::optional<JobHolderInfo>> JobHolder(int64_t id);

  // ---- Producing ----
  Result<EnqueueResult> Enqueue(const NewJob& job);
  // All jobs in one transaction; results in the order of `jobs`.
  Result<std::vector<EnqueueResult>> EnqueueBatch(const std::vector<NewJob>& jobs);

  // ---- Consuming ----
  // Claims up to `max` due jobs of `queue` for `owner` until now + lease, in
  // priority DESC, run_at, id order, incrementing each job's attempts. With
  // max_attempts > 0, a job whose new attempt count exceeds it is dead-
  // lettered instead (see ClaimResult::dead_lettered).
  Result<ClaimResult> Claim(std::string_view queue, std::string_view owner, int max, Duration lease,
                            int max_attempts);

  // Settling a claimed job. Each returns false (and changes nothing) when the
  // job no longer carries `claim_token`: it was re-claimed by another owner
  // after this owner's lease expired, or it is gone.
  //
  // Ack: deletes the job, or with retention > 0 keeps it as `done` until
  // PurgeDone removes it.
  Result<bool> Ack(int64_t id, uint64_t claim_token, Duration retention);
  // Retry: pending again, due at now + delay; the attempt count is kept.
  Result<bool> Retry(int64_t id, uint64_t claim_token, Duration delay, std::string_view error);
  // Dead: kept as `dead` with the reason and the time.
  Result<bool> Dead(int64_t id, uint64_t claim_token, std::string_view reason);
  // Release: waiting again with the attempt given back (it never started).
  Result<bool> Release(int64_t id, uint64_t claim_token);

  // Extends the lease of every job `owner` is running to now + lease.
  // Returns how many jobs it extended.
  Result<int64_t> RenewLeases(std::string_view owner, Duration lease);
  // Makes running jobs whose lease has expired waiting again (their attempt
  // counts). Returns how many.
  Result<int64_t> RecoverExpiredLeases();
  // What RecoverDeadOwner did, by job id.
  struct DeadOwnerRecovery {
    std::vector<int64_t> charged;   // were running: waiting again, attempt kept
    std::vector<int64_t> refunded;  // never started: waiting again, attempt given back
  };
  // Makes every job `owner` (a daemon known dead) still holds waiting again
  // at once, in one transaction: those `was_running(id)` says it was running
  // keep their attempt, the others get it back as with Release.
  Result<DeadOwnerRecovery> RecoverDeadOwner(std::string_view owner,
                                             const std::function<bool(int64_t)>& was_running);
  // Deletes `done` jobs finished at least `retention` ago, at most `limit`.
  Result<int64_t> PurgeDone(Duration retention, int limit = 10000);

  // Whether `queue` has a due job (a read; no write lock).
  Result<bool> HasDueJobs(std::string_view queue);
  // Changes whenever another connection commits to the file.
  Result<int64_t> DataVersion();

  // ---- Administration ----
  // One entry per queue that has jobs or is paused, sorted by name.
  Result<std::vector<QueueStats>> Stats();
  Result<std::optional<JobRecord>> GetJob(int64_t id);
  // Newest first; `queue` empty = all queues.
  Result<std::vector<JobRecord>> ListDead(std::string_view queue, int limit);
  // Dead jobs back to waiting, due now, attempts reset to 0. Returns the ids
  // that were changed; an id that is not dead is skipped, and so is a job
  // whose unique key is taken by a pending or running job meanwhile.
  Result<std::vector<int64_t>> RetryDead(const std::vector<int64_t>& ids);
  Result<int64_t> RetryAllDead(std::string_view queue);  // queue "" = all
  // Deletes dead jobs. Returns the ids that were deleted.
  Result<std::vector<int64_t>> PurgeDead(const std::vector<int64_t>& ids);
  Result<int64_t> PurgeAllDead(std::string_view queue);  // queue "" = all

  // ---- Inspection (daemon/core/inspect.h): one queue at a time ----
  struct QueueDepthCounts {
    int64_t waiting = 0;    // pending and due
    int64_t scheduled = 0;  // pending, run_at in the future
    int64_t running = 0;
    int64_t dead = 0;
    int64_t oldest_waiting_age_ms = -1;  // -1 when nothing is due
  };
  // Counts read through the partial indexes (jobs_due, jobs_dead).
  Result<QueueDepthCounts> QueueDepth(std::string_view queue);
  // Dead jobs of `queue` whose last_error contains `reason_lower` (already
  // lower-cased; ASCII case-insensitive; "" = all), newest failure first,
  // `offset` skipped, at most `limit`; `payload` is left empty and
  // `payload_bytes` set. `total` gets the count of all that match.
  struct DeadSummary {
    JobRecord job;  // without its payload
    size_t payload_bytes = 0;
  };
  Result<std::vector<DeadSummary>> ListDeadPage(std::string_view queue,
                                                std::string_view reason_lower, int64_t offset,
                                                int64_t limit, int64_t* total);
  // As RetryDead and PurgeDead, but only jobs of `queue`.
  Result<std::vector<int64_t>> RetryDeadOf(std::string_view queue, const std::vector<int64_t>& ids);
  Result<std::vector<int64_t>> PurgeDeadOf(std::string_view queue, const std::vector<int64_t>& ids);
  // Every dead job of `queue` whose reason matches (as in ListDeadPage).
  Result<int64_t> RetryDeadMatching(std::string_view queue, std::string_view reason_lower);
  Result<int64_t> PurgeDeadMatching(std::string_view queue, std::string_view reason_lower);
  // Pending jobs of `queue` due later than now, soonest first (payload empty).
  Result<std::vector<JobRecord>> ListScheduled(std::string_view queue, int64_t limit);

  // A paused queue keeps its jobs but the backend claims none of them.
  Status Pause(std::string_view queue);
  Status Resume(std::string_view queue);
  Result<std::vector<std::string>> PausedQueues();

 private:
  // Joins the caller's open transaction, or begins one that Finish commits
  // (and that the destructor rolls back when Finish was not reached).
  class WriteScope {
   public:
    explicit WriteScope(LocalStore* store) : store_(store) {}
    ~WriteScope() {
      if (owned_) store_->Rollback();
    }
    WriteScope(const WriteScope&) = delete;
    WriteScope& operator=(const WriteScope&) = delete;
    Status Begin() {
      if (store_->InTransaction()) return Status::Ok();
      Status s = store_->BeginWrite();
      owned_ = s.ok();
      return s;
    }
    Status Finish() {
      if (!owned_) return Status::Ok();
      owned_ = false;
      return store_->Commit();
    }

   private:
    LocalStore* store_;
    bool owned_ = false;
  };

  LocalStore(LocalStoreOptions options, sqlite3* db);
  // Opens `name` (the path, or a file: URI) with sqlite3_open_v2 `flags`,
  // then configures and migrates.
  static Result<std::unique_ptr<LocalStore>> OpenWith(LocalStoreOptions options,
                                                      const std::string& name, int flags);
  static Result<std::unique_ptr<LocalStore>> OpenReadOnly(const LocalStoreOptions& options,
                                                          bool immutable);
  Status Configure();
  Status ReadOnlyError() const;
  Status MigrateSchema();
  // The cached statement for `sql` (prepared on first use).
  // REQUIRES: `sql` is a string with static storage (the cache keys on its
  // address).
  Result<sqlite3_stmt*> Prepare(const char* sql);
  Status Exec(const char* sql);
  // "local store FILE: WHAT: sqlite's message", Unavailable when the file
  // was busy or the call interrupted, IoError otherwise.
  Status Error(std::string_view what, int rc) const;
  uint64_t NextClaimToken();
  // Runs the write statement `sql`, bound by `bind(SqliteStatement&)`, in a
  // WriteScope; returns the rows it changed. Errors say "WHAT job ID" (or
  // just WHAT when id < 0).
  Result<int64_t> Write(const char* sql, const char* what, int64_t id,
                        const std::function<void(SqliteStatement&)>& bind);
  // Write once per id of `ids`, all in one WriteScope, `bind(stmt, id)`
  // binding each; returns the ids whose statement changed a row.
  Result<std::vector<int64_t>> WriteEach(
      const char* sql, const char* what, const std::vector<int64_t>& ids,
      const std::function<void(SqliteStatement&, int64_t)>& bind);

  LocalStoreOptions options_;
  sqlite3* db_;
  // Of the file as opened.
  uint64_t file_dev_ = 0;
  uint64_t file_ino_ = 0;
  bool small_wal_ = false;
  mutable int last_error_code_ = 0;
  mutable int last_system_errno_ = 0;
  std::map<const char*, sqlite3_stmt*> statements_;  // keyed by the SQL literal
  uint64_t next_claim_token_;
};

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_LOCAL_LOCAL_STORE_H_
