#include "daemon/backends/local/local_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <utility>

#include "daemon/backends/local/job_codec.h"
#include "daemon/backends/local/sqlite_statement.h"

namespace foxworker {
namespace {

// Settling is allowed while the job still carries the owner's claim token and
// is not finished: running, or pending again because its lease expired and
// nobody re-claimed it yet (then the late outcome is still the truth).
#define FOXW_SETTLEABLE \
  "id = ?1 AND claim_token = ?2 AND state IN ('running', 'waiting', 'scheduled')"

constexpr char kInsertJob[] =
    "INSERT OR IGNORE INTO jobs (queue, state, priority, run_at, enqueued_at, payload,"
    " properties, headers, unique_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
constexpr char kFindUnique[] =
    "SELECT id FROM jobs WHERE queue = ?1 AND unique_key = ?2"
    " AND state IN ('waiting', 'scheduled', 'running')";
constexpr char kClaim[] =
    "UPDATE jobs SET state = 'running', owner = ?1, claim_token = ?2, lease_until = ?3,"
    " attempts = attempts + 1, first_attempt_at = coalesce(first_attempt_at, ?4)"
    " WHERE id IN (SELECT id FROM jobs WHERE queue = ?5 AND state IN ('waiting', 'scheduled')"
    " AND run_at <= ?4 ORDER BY priority DESC, run_at, id LIMIT ?6)"
    " RETURNING id, priority, attempts, run_at, enqueued_at, payload, properties, headers";
constexpr char kDeadAtClaim[] =
    "UPDATE jobs SET state = 'dead', attempts = ?2, last_error = ?3, failed_at = ?4,"
    " owner = NULL, lease_until = NULL WHERE id = ?1";
constexpr char kAckDelete[] = "DELETE FROM jobs WHERE " FOXW_SETTLEABLE;
constexpr char kAckRetain[] =
    "UPDATE jobs SET state = 'done', finished_at = ?3, owner = NULL, lease_until = NULL"
    " WHERE " FOXW_SETTLEABLE;
constexpr char kRetry[] =
    "UPDATE jobs SET state = ?3, run_at = ?4, last_error = ?5, owner = NULL, lease_until = NULL"
    " WHERE " FOXW_SETTLEABLE;
constexpr char kDead[] =
    "UPDATE jobs SET state = 'dead', last_error = ?3, failed_at = ?4, owner = NULL,"
    " lease_until = NULL WHERE " FOXW_SETTLEABLE;
constexpr char kRelease[] =
    "UPDATE jobs SET state = 'waiting', attempts = max(attempts - 1, 0),"
    " first_attempt_at = CASE WHEN attempts <= 1 THEN NULL ELSE first_attempt_at END,"
    " owner = NULL, lease_until = NULL WHERE " FOXW_SETTLEABLE;
// Scans the running jobs of every owner (a small set: what the daemons hold),
// which is cheaper than keeping an index on owner for every claim and ack.
constexpr char kRenew[] =
    "UPDATE jobs INDEXED BY jobs_running SET lease_until = ?1"
    " WHERE state = 'running' AND owner = ?2";
constexpr char kRecover[] =
    "UPDATE jobs SET state = 'waiting', owner = NULL, lease_until = NULL"
    " WHERE state = 'running' AND lease_until < ?1";
// A dead owner's jobs (RecoverDeadOwner).
constexpr char kHeldBy[] =
    "SELECT id FROM jobs INDEXED BY jobs_running WHERE state = 'running' AND owner = ?1";
constexpr char kFreeDead[] =
    "UPDATE jobs SET state = 'waiting', owner = NULL, lease_until = NULL"
    " WHERE id = ?1 AND state = 'running' AND owner = ?2";
constexpr char kRefundDead[] =
    "UPDATE jobs SET state = 'waiting', attempts = max(attempts - 1, 0),"
    " first_attempt_at = CASE WHEN attempts <= 1 THEN NULL ELSE first_attempt_at END,"
    " owner = NULL, lease_until = NULL WHERE id = ?1 AND state = 'running' AND owner = ?2";
constexpr char kPurgeDone[] =
    "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state = 'done'"
    " AND finished_at <= ?1 LIMIT ?2)";
constexpr char kHasDue[] =
    "SELECT 1 FROM jobs WHERE queue = ?1 AND state IN ('waiting', 'scheduled')"
    " AND run_at <= ?2 LIMIT 1";

constexpr char kDataVersion[] = "PRAGMA data_version";
constexpr char kJobHolder[] = "SELECT state, owner, claim_token FROM jobs WHERE id = ?1";

#undef FOXW_SETTLEABLE

// Longest error text stored per job; handlers sometimes return whole stack
// traces.
constexpr size_t kMaxErrorBytes = 4096;

std::string_view TruncateError(std::string_view s) {
  if (s.size() <= kMaxErrorBytes) return s;
  size_t n = kMaxErrorBytes;
  // Do not cut a UTF-8 sequence in half.
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

Status StoreError(const std::string& path, std::string_view what, std::string_view sqlite_msg,
                  int rc) {
  std::string msg =
      "local store " + path + ": " + std::string(what) + ": " + std::string(sqlite_msg);
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Unavailable(msg + " (another process held the write lock too long)");
    case SQLITE_INTERRUPT:
      return Status::Unavailable(msg);
    default:
      return Status::IoError(msg);
  }
}

}  // namespace

const char* JobStateName(JobState state) {
  switch (state) {
    case JobState::kWaiting:
      return "waiting";
    case JobState::kScheduled:
      return "scheduled";
    case JobState::kRunning:
      return "running";
    case JobState::kDone:
      return "done";
    case JobState::kDead:
      return "dead";
  }
  return "unknown";
}

Status LocalStore::Error(std::string_view what, int rc) const {
  last_error_code_ = rc;
  last_system_errno_ = sqlite3_system_errno(db_);
  return StoreError(options_.path, what, sqlite3_errmsg(db_), rc);
}

Status LocalStore::Exec(const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return Status::Ok();
  // sqlite3_exec returns the primary code; the connection has the extended one.
  last_error_code_ = sqlite3_extended_errcode(db_);
  if ((last_error_code_ & 0xff) != (rc & 0xff)) last_error_code_ = rc;
  last_system_errno_ = sqlite3_system_errno(db_);
  std::string msg = err != nullptr ? err : sqlite3_errstr(rc);
  sqlite3_free(err);
  // Name the statement by its first line ("BEGIN IMMEDIATE", "CREATE TABLE jobs (").
  std::string_view text(sql);
  text.remove_prefix(std::min(text.find_first_not_of(" \n"), text.size()));
  return StoreError(options_.path, text.substr(0, text.find('\n')), msg, rc);
}

Result<sqlite3_stmt*> LocalStore::Prepare(const char* sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end()) return it->second;
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return Error(std::string("preparing \"") + sql + "\"", rc);
  statements_.emplace(sql, stmt);
  return stmt;
}

Status LocalStore::BeginWrite() {
  if (Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  return Status::Ok();
}

Status LocalStore::Commit() {
  Status s = Exec("COMMIT");
  if (!s.ok() && InTransaction()) Rollback();
  return s;
}

void LocalStore::Rollback() {
  if (InTransaction()) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

bool LocalStore::InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }

void LocalStore::Interrupt() { sqlite3_interrupt(db_); }

uint64_t LocalStore::NextClaimToken() {
  uint64_t t = next_claim_token_++;
  if (next_claim_token_ >= (uint64_t{1} << 62)) next_claim_token_ = 1;
  return t;
}

Result<EnqueueResult> LocalStore::Enqueue(const NewJob& job) {
  auto results = EnqueueBatch(std::vector<NewJob>{job});
  if (!results.ok()) return results.status();
  return results.value()[0];
}

Result<std::vector<EnqueueResult>> LocalStore::EnqueueBatch(const std::vector<NewJob>& jobs) {
  auto insert = Prepare(kInsertJob);
  if (!insert.ok()) return insert.status();
  auto find = Prepare(kFindUnique);
  if (!find.ok()) return find.status();
  WriteScope scope(this);
  if (Status s = scope.Begin(); !s.ok()) return s;

  int64_t now = NowMs();
  std::vector<EnqueueResult> results;
  results.reserve(jobs.size());
  std::string props, headers;
  for (const NewJob& job : jobs) {
    if (job.queue.empty()) return Status::InvalidArgument("local store: a job needs a queue");
    int64_t run_at = job.run_at_ms == 0 ? now : job.run_at_ms;
    props = EncodeProperties(job.props);
    headers = EncodeHeaders(job.headers);
    {
      SqliteStatement stmt(*insert);
      stmt.BindText(1, job.queue);
      stmt.BindText(2, JobStateName(run_at > now ? JobState::kScheduled : JobState::kWaiting));
      stmt.BindInt(3, job.priority);
      stmt.BindInt(4, run_at);
      stmt.BindInt(5, now);
      stmt.BindBlob(6, job.payload);
      stmt.BindTextOrNull(7, props);
      stmt.BindTextOrNull(8, headers);
      stmt.BindTextOrNull(9, job.unique_key);
      int rc = stmt.Step();
      if (rc != SQLITE_DONE) return Error("enqueueing on queue " + job.queue, rc);
    }
    if (sqlite3_changes(db_) == 1) {
      results.push_back({sqlite3_last_insert_rowid(db_), false});
      continue;
    }
    // Ignored: only the unique-key index can refuse a row.
    SqliteStatement stmt(*find);
    stmt.BindText(1, job.queue);
    stmt.BindText(2, job.unique_key);
    int rc = stmt.Step();
    if (rc != SQLITE_ROW) return Error("looking up unique key " + job.unique_key, rc);
    results.push_back({stmt.Int(0), true});
  }
  if (Status s = scope.Finish(); !s.ok()) return s;
  return results;
}

Result<ClaimResult> LocalStore::Claim(std::string_view queue, std::string_view owner, int max,
                                      Duration lease, int max_attempts) {
  ClaimResult result;
  if (max <= 0) return result;
  auto claim = Prepare(kClaim);
  if (!claim.ok()) return claim.status();
  auto dead = Prepare(kDeadAtClaim);
  if (!dead.ok()) return dead.status();
  WriteScope scope(this);
  if (Status s = scope.Begin(); !s.ok()) return s;

  int64_t now = NowMs();
  uint64_t token = NextClaimToken();
  // Jobs to dead-letter instead of delivering: id, attempts to record, reason.
  std::vector<std::tuple<int64_t, int64_t, std::string>> refused;
  {
    SqliteStatement stmt(*claim);
    stmt.BindText(1, owner);
    stmt.BindInt(2, static_cast<int64_t>(token));
    stmt.BindInt(3, now + lease.count());
    stmt.BindInt(4, now);
    stmt.BindText(5, queue);
    stmt.BindInt(6, max);
    int rc;
    while ((rc = stmt.Step()) == SQLITE_ROW) {
      ClaimedJob job;
      job.id = stmt.Int(0);
      job.claim_token = token;
      job.priority = stmt.Int(1);
      job.attempts = static_cast<uint32_t>(stmt.Int(2));
      job.run_at_ms = stmt.Int(3);
      job.enqueued_at_ms = stmt.Int(4);
      job.queue = std::string(queue);
      if (max_attempts > 0 && job.attempts > static_cast<uint32_t>(max_attempts)) {
        refused.emplace_back(job.id, job.attempts - 1,
                             "attempt " + std::to_string(job.attempts) + " exceeds max_attempts " +
                                 std::to_string(max_attempts) +
                                 ": earlier attempts crashed the worker or timed out");
        continue;
      }
      job.payload = stmt.Blob(5);
      Status decoded = DecodeProperties(stmt.Text(6), &job.props);
      if (decoded.ok()) decoded = DecodeHeaders(stmt.Text(7), &job.headers);
      if (!decoded.ok()) {
        refused.emplace_back(job.id, job.attempts, decoded.message());
        continue;
      }
      job.props.priority = static_cast<uint8_t>(std::clamp<int64_t>(job.priority, 0, 255));
      job.props.priority_set = true;  // every local job has one (0 by default)
      job.props.sent_priority = job.priority;
      result.jobs.push_back(std::move(job));
    }
    if (rc != SQLITE_DONE) return Error("claiming jobs of queue " + std::string(queue), rc);
  }
  for (const auto& [id, attempts, reason] : refused) {
    SqliteStatement stmt(*dead);
    stmt.BindInt(1, id);
    stmt.BindInt(2, attempts);
    stmt.BindText(3, reason);
    stmt.BindInt(4, now);
    int rc = stmt.Step();
    if (rc != SQLITE_DONE) return Error("dead-lettering job " + std::to_string(id), rc);
    result.dead_lettered.push_back(id);
  }
  if (Status s = scope.Finish(); !s.ok()) return s;
  // RETURNING yields rows in no promised order.
  std::sort(result.jobs.begin(), result.jobs.end(), [](const ClaimedJob& a, const ClaimedJob& b) {
    if (a.priority != b.priority) return a.priority > b.priority;
    if (a.run_at_ms != b.run_at_ms) return a.run_at_ms < b.run_at_ms;
    return a.id < b.id;
  });
  return result;
}

Result<int64_t> LocalStore::Write(const char* sql, const char* what, int64_t id,
                                  const std::function<void(SqliteStatement&)>& bind) {
  auto prepared = Prepare(sql);
  if (!prepared.ok()) return prepared.status();
  WriteScope scope(this);
  if (Status s = scope.Begin(); !s.ok()) return s;
  {
    SqliteStatement stmt(*prepared);
    bind(stmt);
    int rc = stmt.Step();
    if (rc != SQLITE_DONE) {
      return Error(id < 0 ? std::string(what) : std::string(what) + " job " + std::to_string(id),
                   rc);
    }
  }
  int64_t changed = sqlite3_changes64(db_);
  if (Status s = scope.Finish(); !s.ok()) return s;
  return changed;
}

namespace {
Result<bool> AnyChanged(Result<int64_t> rows) {
  if (!rows.ok()) return rows.status();
  return *rows > 0;
}
}  // namespace

Result<bool> LocalStore::Ack(int64_t id, uint64_t claim_token, Duration retention) {
  auto token = static_cast<int64_t>(claim_token);
  if (retention.count() <= 0) {
    return AnyChanged(Write(kAckDelete, "acking", id, [&](SqliteStatement& s) {
      s.BindInt(1, id);
      s.BindInt(2, token);
    }));
  }
  int64_t now = NowMs();
  return AnyChanged(Write(kAckRetain, "acking", id, [&](SqliteStatement& s) {
    s.BindInt(1, id);
    s.BindInt(2, token);
    s.BindInt(3, now);
  }));
}

Result<bool> LocalStore::Retry(int64_t id, uint64_t claim_token, Duration delay,
                               std::string_view error) {
  int64_t now = NowMs();
  bool later = delay.count() > 0;
  return AnyChanged(Write(kRetry, "retrying", id, [&](SqliteStatement& s) {
    s.BindInt(1, id);
    s.BindInt(2, static_cast<int64_t>(claim_token));
    s.BindText(3, JobStateName(later ? JobState::kScheduled : JobState::kWaiting));
    s.BindInt(4, now + std::max<int64_t>(delay.count(), 0));
    s.BindTextOrNull(5, TruncateError(error));
  }));
}

Result<bool> LocalStore::Dead(int64_t id, uint64_t claim_token, std::string_view reason) {
  int64_t now = NowMs();
  return AnyChanged(Write(kDead, "dead-lettering", id, [&](SqliteStatement& s) {
    s.BindInt(1, id);
    s.BindInt(2, static_cast<int64_t>(claim_token));
    s.BindText(3, TruncateError(reason));
    s.BindInt(4, now);
  }));
}

Result<bool> LocalStore::Release(int64_t id, uint64_t claim_token) {
  return AnyChanged(Write(kRelease, "releasing", id, [&](SqliteStatement& s) {
    s.BindInt(1, id);
    s.BindInt(2, static_cast<int64_t>(claim_token));
  }));
}

Result<int64_t> LocalStore::RenewLeases(std::string_view owner, Duration lease) {
  int64_t until = NowMs() + lease.count();
  return Write(kRenew, "renewing leases", -1, [&](SqliteStatement& s) {
    s.BindInt(1, until);
    s.BindText(2, owner);
  });
}

Result<int64_t> LocalStore::RecoverExpiredLeases() {
  int64_t now = NowMs();
  return Write(kRecover, "recovering expired leases", -1,
               [&](SqliteStatement& s) { s.BindInt(1, now); });
}

Result<LocalStore::DeadOwnerRecovery> LocalStore::RecoverDeadOwner(
    std::string_view owner, const std::function<bool(int64_t)>& was_running) {
  auto held = Prepare(kHeldBy);
  if (!held.ok()) return held.status();
  auto free_dead = Prepare(kFreeDead);
  if (!free_dead.ok()) return free_dead.status();
  auto refund = Prepare(kRefundDead);
  if (!refund.ok()) return refund.status();
  WriteScope scope(this);
  if (Status s = scope.Begin(); !s.ok()) return s;
  std::vector<int64_t> ids;
  {
    SqliteStatement stmt(*held);
    stmt.BindText(1, owner);
    int rc;
    while ((rc = stmt.Step()) == SQLITE_ROW) ids.push_back(stmt.Int(0));
    if (rc != SQLITE_DONE) return Error("listing the jobs of owner " + std::string(owner), rc);
  }
  DeadOwnerRecovery out;
  for (int64_t id : ids) {
    const bool ran = was_running(id);
    SqliteStatement stmt(ran ? *free_dead : *refund);
    stmt.BindInt(1, id);
    stmt.BindText(2, owner);
    int rc = stmt.Step();
    if (rc != SQLITE_DONE) return Error("recovering job " + std::to_string(id), rc);
    (ran ? out.charged : out.refunded).push_back(id);
  }
  if (Status s = scope.Finish(); !s.ok()) return s;
  return out;
}

Result<int64_t> LocalStore::PurgeDone(Duration retention, int limit) {
  int64_t cutoff = NowMs() - retention.count();
  return Write(kPurgeDone, "purging finished jobs", -1, [&](SqliteStatement& s) {
    s.BindInt(1, cutoff);
    s.BindInt(2, limit);
  });
}

Result<bool> LocalStore::HasDueJobs(std::string_view queue) {
  auto prepared = Prepare(kHasDue);
  if (!prepared.ok()) return prepared.status();
  SqliteStatement stmt(*prepared);
  stmt.BindText(1, queue);
  stmt.BindInt(2, NowMs());
  int rc = stmt.Step();
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return Error("looking for due jobs of queue " + std::string(queue), rc);
}

int64_t LocalStore::TotalChanges() const { return sqlite3_total_changes64(db_); }

Status LocalStore::ProbeWrite() {
  static const std::string sql = "PRAGMA user_version = " + std::to_string(kSchemaVersion);
  return Exec(sql.c_str());
}

Result<std::optional<JobHolderInfo>> LocalStore::JobHolder(int64_t id) {
  auto prepared = Prepare(kJobHolder);
  if (!prepared.ok()) return prepared.status();
  SqliteStatement stmt(*prepared);
  stmt.BindInt(1, id);
  int rc = stmt.Step();
  if (rc == SQLITE_DONE) return std::optional<JobHolderInfo>();
  if (rc != SQLITE_ROW) return Error("looking up job " + std::to_string(id), rc);
  JobHolderInfo info;
  const std::string state = stmt.Text(0);
  for (JobState st : {JobState::kWaiting, JobState::kScheduled, JobState::kRunning,
                      JobState::kDone, JobState::kDead}) {
    if (state == JobStateName(st)) info.state = st;
  }
  info.owner = stmt.Text(1);
  info.claim_token = static_cast<uint64_t>(stmt.Int(2));
  return std::optional<JobHolderInfo>(std::move(info));
}

Result<int64_t> LocalStore::DataVersion() {
  auto prepared = Prepare(kDataVersion);
  if (!prepared.ok()) return prepared.status();
  SqliteStatement stmt(*prepared);
  int rc = stmt.Step();
  if (rc != SQLITE_ROW) return Error("reading data_version", rc);
  return stmt.Int(0);
}

}  // namespace foxworker
