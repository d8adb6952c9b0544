// LocalStore's administration side: statistics, dead letters, pausing. Used
// by foxworkerctl; nothing here is on the message path.
#include <sqlite3.h>

#include <algorithm>
#include <map>
#include <utility>

#include "daemon/backends/local/job_codec.h"
#include "daemon/backends/local/local_store.h"
#include "daemon/backends/local/sqlite_statement.h"

namespace foxworker {
namespace {

// A full scan: stats are for people and dashboards, not the message path.
constexpr char kStats[] =
    "SELECT queue,"
    " sum(state IN ('waiting', 'scheduled') AND run_at <= ?1),"
    " sum(state IN ('waiting', 'scheduled') AND run_at > ?1),"
    " sum(state = 'running'), sum(state = 'dead'), sum(state = 'done'),"
    " min(CASE WHEN state IN ('waiting', 'scheduled') AND run_at <= ?1 THEN run_at END)"
    " FROM jobs GROUP BY queue";

#define FOXW_JOB_COLUMNS                                                                    \
  "id, queue, state, priority, attempts, run_at, enqueued_at, first_attempt_at, failed_at," \
  " finished_at, lease_until, owner, unique_key, last_error, payload, properties, headers"

constexpr char kSelectJob[] = "SELECT " FOXW_JOB_COLUMNS " FROM jobs WHERE id = ?1";
constexpr char kListDead[] = "SELECT " FOXW_JOB_COLUMNS
                             " FROM jobs WHERE state = 'dead' AND (?1 = '' OR queue = ?1)"
                             " ORDER BY failed_at DESC, id DESC LIMIT ?2";

// The columns of FOXW_JOB_COLUMNS with an empty payload, then the payload's
// length (column 17): lists do not read payloads.
#define FOXW_SUMMARY_COLUMNS                                                                \
  "id, queue, state, priority, attempts, run_at, enqueued_at, first_attempt_at, failed_at," \
  " finished_at, lease_until, owner, unique_key, last_error, X'', properties, headers,"      \
  " length(payload)"

// ?2: the lower-cased reason substring, '' = any.
#define FOXW_DEAD_OF_QUEUE \
  " state = 'dead' AND queue = ?1 AND (?2 = '' OR instr(lower(coalesce(last_error, '')), ?2) > 0)"

// Through jobs_due (queue, priority, run_at WHERE pending): a covering scan of
// the queue's pending entries.
constexpr char kDepthPending[] =
    "SELECT coalesce(sum(run_at <= ?2), 0), coalesce(sum(run_at > ?2), 0),"
    " min(CASE WHEN run_at <= ?2 THEN run_at END)"
    " FROM jobs WHERE queue = ?1 AND state IN ('waiting', 'scheduled')";
constexpr char kDepthDead[] = "SELECT count(*) FROM jobs WHERE queue = ?1 AND state = 'dead'";
// Through jobs_running: running jobs are at most the daemons' prefetch.
constexpr char kDepthRunning[] =
    "SELECT count(*) FROM jobs WHERE state = 'running' AND queue = ?1";
constexpr char kCountDeadOf[] = "SELECT count(*) FROM jobs WHERE" FOXW_DEAD_OF_QUEUE;
constexpr char kListDeadOf[] = "SELECT " FOXW_SUMMARY_COLUMNS " FROM jobs WHERE" FOXW_DEAD_OF_QUEUE
                               " ORDER BY failed_at DESC, id DESC LIMIT ?4 OFFSET ?3";
constexpr char kListScheduled[] =
    "SELECT " FOXW_SUMMARY_COLUMNS
    " FROM jobs WHERE queue = ?1 AND state IN ('waiting', 'scheduled') AND run_at > ?2"
    " ORDER BY run_at, id LIMIT ?3";

#undef FOXW_SUMMARY_COLUMNS
#undef FOXW_JOB_COLUMNS

// Back to waiting, due now, as if never attempted. OR IGNORE skips a job
// whose unique key a pending or running job holds meanwhile.
#define FOXW_REVIVE                                                                           \
  "UPDATE OR IGNORE jobs SET state = 'waiting', attempts = 0, run_at = ?2, failed_at = NULL," \
  " first_attempt_at = NULL, owner = NULL, lease_until = NULL, claim_token = NULL"

constexpr char kRetryDeadOne[] = FOXW_REVIVE " WHERE id = ?1 AND state = 'dead'";
constexpr char kRetryDeadAll[] = FOXW_REVIVE " WHERE state = 'dead' AND (?1 = '' OR queue = ?1)";
constexpr char kRetryDeadOneOf[] = FOXW_REVIVE " WHERE id = ?3 AND state = 'dead' AND queue = ?1";
// ?2 is the time here, so the reason is ?3.
constexpr char kRetryDeadMatching[] =
    FOXW_REVIVE " WHERE state = 'dead' AND queue = ?1"
                " AND (?3 = '' OR instr(lower(coalesce(last_error, '')), ?3) > 0)";

#undef FOXW_REVIVE

constexpr char kPurgeDeadOne[] = "DELETE FROM jobs WHERE id = ?1 AND state = 'dead'";
constexpr char kPurgeDeadAll[] =
    "DELETE FROM jobs WHERE state = 'dead' AND (?1 = '' OR queue = ?1)";
constexpr char kPurgeDeadOneOf[] = "DELETE FROM jobs WHERE id = ?2 AND state = 'dead' AND queue = ?1";
constexpr char kPurgeDeadMatching[] = "DELETE FROM jobs WHERE" FOXW_DEAD_OF_QUEUE;

#undef FOXW_DEAD_OF_QUEUE

constexpr char kPause[] = "INSERT OR IGNORE INTO paused_queues (queue, paused_at) VALUES (?1, ?2)";
constexpr char kResume[] = "DELETE FROM paused_queues WHERE queue = ?1";
constexpr char kPausedQueues[] = "SELECT queue FROM paused_queues ORDER BY queue";

Result<JobState> ParseJobState(const std::string& s) {
  for (JobState st : {JobState::kWaiting, JobState::kScheduled, JobState::kRunning, JobState::kDone,
                      JobState::kDead}) {
    if (s == JobStateName(st)) return st;
  }
  return Status::InvalidArgument("unknown job state \"" + s + "\"");
}

// Reads a row of FOXW_JOB_COLUMNS.
Result<JobRecord> ReadJob(const SqliteStatement& stmt) {
  JobRecord job;
  job.id = stmt.Int(0);
  job.queue = stmt.Text(1);
  auto state = ParseJobState(stmt.Text(2));
  if (!state.ok()) return state.status();
  job.state = *state;
  job.priority = stmt.Int(3);
  job.attempts = static_cast<uint32_t>(stmt.Int(4));
  job.run_at_ms = stmt.Int(5);
  job.enqueued_at_ms = stmt.Int(6);
  job.first_attempt_at_ms = stmt.Int(7);  // NULL reads as 0
  job.failed_at_ms = stmt.Int(8);
  job.finished_at_ms = stmt.Int(9);
  job.lease_until_ms = stmt.Int(10);
  job.owner = stmt.Text(11);
  job.unique_key = stmt.Text(12);
  job.last_error = stmt.Text(13);
  job.payload = stmt.Blob(14);
  if (Status s = DecodeProperties(stmt.Text(15), &job.props); !s.ok()) return s;
  job.props.priority = static_cast<uint8_t>(std::clamp<int64_t>(job.priority, 0, 255));
  job.props.priority_set = true;
  job.props.sent_priority = job.priority;
  if (Status s = DecodeHeaders(stmt.Text(16), &job.headers); !s.ok()) return s;
  return job;
}

}  // namespace

Result<std::vector<QueueStats>> LocalStore::Stats() {
  auto paused = PausedQueues();
  if (!paused.ok()) return paused.status();
  auto prepared = Prepare(kStats);
  if (!prepared.ok()) return prepared.status();

  int64_t now = NowMs();
  std::map<std::string, QueueStats> by_queue;
  SqliteStatement stmt(*prepared);
  stmt.BindInt(1, now);
  int rc;
  while ((rc = stmt.Step()) == SQLITE_ROW) {
    QueueStats q;
    q.queue = stmt.Text(0);
    q.waiting = stmt.Int(1);
    q.scheduled = stmt.Int(2);
    q.running = stmt.Int(3);
    q.dead = stmt.Int(4);
    q.done = stmt.Int(5);
    if (!stmt.IsNull(6)) q.oldest_waiting_age_ms = std::max<int64_t>(now - stmt.Int(6), 0);
    by_queue[q.queue] = std::move(q);
  }
  if (rc != SQLITE_DONE) return Error("reading queue statistics", rc);
  for (const std::string& name : *paused) {
    QueueStats& q = by_queue[name];
    q.queue = name;
    q.paused = true;
  }
  std::vector<QueueStats> out;
  out.reserve(by_queue.size());
  for (auto& [name, q] : by_queue) out.push_back(std::move(q));
  return out;
}

Result<std::optional<JobRecord>> LocalStore::GetJob(int64_t id) {
  auto prepared = Prepare(kSelectJob);
  if (!prepared.ok()) return prepared.status();
  SqliteStatement stmt(*prepared);
  stmt.BindInt(1, id);
  int rc = stmt.Step();
  if (rc == SQLITE_DONE) return std::optional<JobRecord>();
  if (rc != SQLITE_ROW) return Error("reading job " + std::to_string(id), rc);
  auto job = ReadJob(stmt);
  if (!job.ok()) {
    return Status::InvalidArgument("local store " + path() + ": job " + std::to_string(id) + ": " +
                                   job.status().message());
  }
  return std::optional<JobRecord>(std::move(job).value());
}

Result<std::vector<JobRecord>> LocalStore::ListDead(std::string_view queue, int limit) {
  auto prepared = Prepare(kListDead);
  if (!prepared.ok()) return prepared.status();
  SqliteStatement stmt(*prepared);
  stmt.BindText(1, queue);
  stmt.BindInt(2, limit);
  std::vector<JobRecord> out;
  int rc;
  while ((rc = stmt.Step()) == SQLITE_ROW) {
    auto job = ReadJob(stmt);
    if (!job.ok()) {
      return Status::InvalidArgument("local store " + path() + ": job " +
                                     std::to_string(stmt.Int(0)) + ": " + job.status().message());
    }
    out.push_back(std::move(job).value());
  }
  if (rc != SQLITE_DONE) return Error("listing dead jobs", rc);
  return out;
}

Result<std::vector<int64_t>> LocalStore::WriteEach(
    const char* sql, const char* what, const std::vector<int64_t>& ids,
    const std::function<void(SqliteStatement&, int64_t)>& bind) {
  WriteScope scope(this);
  if (Status s = scope.Begin(); !s.ok()) return s;
  std::vector<int64_t> changed;
  for (int64_t id : ids) {
    auto rows = Write(sql, what, id, [&](SqliteStatement& stmt) { bind(stmt, id); });
    if (!rows.ok()) return rows.status();
    if (*rows > 0) changed.push_back(id);
  }
  if (Status s = scope.Finish(); !s.ok()) return s;
  return changed;
}

Result<std::vector<int64_t>> LocalStore::RetryDead(const std::vector<int64_t>& ids) {
  const int64_t now = NowMs();
  return WriteEach(kRetryDeadOne, "retrying dead", ids, [&](SqliteStatement& s, int64_t id) {
    s.BindInt(1, id);
    s.BindInt(2, now);
  });
}

Result<int64_t> LocalStore::RetryAllDead(std::string_view queue) {
  int64_t now = NowMs();
  return Write(kRetryDeadAll, "retrying dead jobs", -1, [&](SqliteStatement& s) {
    s.BindText(1, queue);
    s.BindInt(2, now);
  });
}

Result<std::vector<int64_t>> LocalStore::PurgeDead(const std::vector<int64_t>& ids) {
  return WriteEach(kPurgeDeadOne, "purging dead", ids,
                   [](SqliteStatement& s, int64_t id) { s.BindInt(1, id); });
}

Result<int64_t> LocalStore::PurgeAllDead(std::string_view queue) {
  return Write(kPurgeDeadAll, "purging dead jobs", -1,
               [&](SqliteStatement& s) { s.BindText(1, queue); });
}

Result<LocalStore::QueueDepthCounts> LocalStore::QueueDepth(std::string_view queue) {
  QueueDepthCounts out;
  int64_t now = NowMs();
  {
    auto prepared = Prepare(kDepthPending);
    if (!prepared.ok()) return prepared.status();
    SqliteStatement stmt(*prepared);
    stmt.BindText(1, queue);
    stmt.BindInt(2, now);
    int rc = stmt.Step();
    if (rc != SQLITE_ROW) return Error("counting pending jobs", rc);
    out.waiting = stmt.Int(0);
    out.scheduled = stmt.Int(1);
    if (!stmt.IsNull(2)) out.oldest_waiting_age_ms = std::max<int64_t>(now - stmt.Int(2), 0);
  }
  for (auto [sql, field] : {std::pair{kDepthDead, &out.dead}, std::pair{kDepthRunning, &out.running}}) {
    auto prepared = Prepare(sql);
    if (!prepared.ok()) return prepared.status();
    SqliteStatement stmt(*prepared);
    stmt.BindText(1, queue);
    int rc = stmt.Step();
    if (rc != SQLITE_ROW) return Error("counting jobs", rc);
    *field = stmt.Int(0);
  }
  return out;
}

Result<std::vector<LocalStore::DeadSummary>> LocalStore::ListDeadPage(
    std::string_view queue, std::string_view reason_lower, int64_t offset, int64_t limit,
    int64_t* total) {
  {
    auto prepared = Prepare(kCountDeadOf);
    if (!prepared.ok()) return prepared.status();
    SqliteStatement stmt(*prepared);
    stmt.BindText(1, queue);
    stmt.BindText(2, reason_lower);
    int rc = stmt.Step();
    if (rc != SQLITE_ROW) return Error("counting dead jobs", rc);
    if (total != nullptr) *total = stmt.Int(0);
  }
  auto prepared = Prepare(kListDeadOf);
  if (!prepared.ok()) return prepared.status();
  SqliteStatement stmt(*prepared);
  stmt.BindText(1, queue);
  stmt.BindText(2, reason_lower);
  stmt.BindInt(3, offset);
  stmt.BindInt(4, limit);
  std::vector<DeadSummary> out;
  int rc;
  while ((rc = stmt.Step()) == SQLITE_ROW) {
    auto job = ReadJob(stmt);
    if (!job.ok()) {
      return Status::InvalidArgument("local store " + path() + ": job " +
                                     std::to_string(stmt.Int(0)) + ": " + job.status().message());
    }
    DeadSummary d;
    d.job = std::move(job).value();
    d.payload_bytes = static_cast<size_t>(stmt.Int(17));
    out.push_back(std::move(d));
  }
  if (rc != SQLITE_DONE) return Error("listing dead jobs", rc);
  return out;
}

Result<std::vector<int64_t>> LocalStore::RetryDeadOf(std::string_view queue,
                                                     const std::vector<int64_t>& ids) {
  const int64_t now = NowMs();
  return WriteEach(kRetryDeadOneOf, "retrying dead", ids, [&](SqliteStatement& s, int64_t id) {
    s.BindText(1, queue);
    s.BindInt(2, now);
    s.BindInt(3, id);
  });
}

Result<std::vector<int64_t>> LocalStore::PurgeDeadOf(std::string_view queue,
                                                     const std::vector<int64_t>& ids) {
  return WriteEach(kPurgeDeadOneOf, "purging dead", ids, [&](SqliteStatement& s, int64_t id) {
    s.BindText(1, queue);
    s.BindInt(2, id);
  });
}

Result<int64_t> LocalStore::RetryDeadMatching(std::string_view queue,
                                              std::string_view reason_lower) {
  int64_t now = NowMs();
  return Write(kRetryDeadMatching, "retrying dead jobs", -1, [&](SqliteStatement& s) {
    s.BindText(1, queue);
    s.BindInt(2, now);
    s.BindText(3, reason_lower);
  });
}

Result<int64_t> LocalStore::PurgeDeadMatching(std::string_view queue,
                                              std::string_view reason_lower) {
  return Write(kPurgeDeadMatching, "purging dead jobs", -1, [&](SqliteStatement& s) {
    s.BindText(1, queue);
    s.BindText(2, reason_lower);
  });
}

Result<std::vector<JobRecord>> LocalStore::ListScheduled(std::string_view queue, int64_t limit) {
  auto prepared = Prepare(kListScheduled);
  if (!prepared.ok()) return prepared.status();
  SqliteStatement stmt(*prepared);
  stmt.BindText(1, queue);
  stmt.BindInt(2, NowMs());
  stmt.BindInt(3, limit);
  std::vector<JobRecord> out;
  int rc;
  while ((rc = stmt.Step()) == SQLITE_ROW) {
    auto job = ReadJob(stmt);
    if (!job.ok()) {
      return Status::InvalidArgument("local store " + path() + ": job " +
                                     std::to_string(stmt.Int(0)) + ": " + job.status().message());
    }
    out.push_back(std::move(job).value());
  }
  if (rc != SQLITE_DONE) return Error("listing scheduled jobs", rc);
  return out;
}

Status LocalStore::Pause(std::string_view queue) {
  if (queue.empty()) return Status::InvalidArgument("pause: no queue name given");
  int64_t now = NowMs();
  auto rows = Write(kPause, "pausing queue", -1, [&](SqliteStatement& s) {
    s.BindText(1, queue);
    s.BindInt(2, now);
  });
  return rows.ok() ? Status::Ok() : rows.status();
}

Status LocalStore::Resume(std::string_view queue) {
  auto rows =
      Write(kResume, "resuming queue", -1, [&](SqliteStatement& s) { s.BindText(1, queue); });
  return rows.ok() ? Status::Ok() : rows.status();
}

Result<std::vector<std::string>> LocalStore::PausedQueues() {
  auto prepared = Prepare(kPausedQueues);
  if (!prepared.ok()) return prepared.status();
  SqliteStatement stmt(*prepared);
  std::vector<std::string> out;
  int rc;
  while ((rc = stmt.Step()) == SQLITE_ROW) out.push_back(stmt.Text(0));
  if (rc != SQLITE_DONE) return Error("reading paused queues", rc);
  return out;
}

}  // namespace foxworker
