// LocalStore on real database files, with a fake clock where time matters.
#include "daemon/backends/local/local_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cerrno>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "tests/backends/local_test_util.h"

namespace foxworker {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kLease{1000};

class LocalStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = OpenStore(dir_.File("jobs.db"), clock_.AsFunction());
    ASSERT_NE(store_, nullptr);
  }

  int64_t Enqueue(NewJob job) {
    auto r = store_->Enqueue(job);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_FALSE(r->duplicate);
    return r->id;
  }

  ClaimResult Claim(const std::string& queue, int max, const std::string& owner = "owner-a",
                    int max_attempts = 0) {
    auto r = store_->Claim(queue, owner, max, kLease, max_attempts);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : ClaimResult();
  }

  JobRecord Get(int64_t id) {
    auto r = store_->GetJob(id);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_TRUE(r->has_value()) << "job " << id << " is gone";
    return r->value_or(JobRecord());
  }

  bool Exists(int64_t id) {
    auto r = store_->GetJob(id);
    EXPECT_TRUE(r.ok());
    return r->has_value();
  }

  QueueStats StatsOf(const std::string& queue) {
    auto stats = store_->Stats();
    EXPECT_TRUE(stats.ok()) << stats.status().ToString();
    for (const QueueStats& q : *stats) {
      if (q.queue == queue) return q;
    }
    return QueueStats{queue};
  }

  TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<LocalStore> store_;
};

TEST_F(LocalStoreTest, EnqueueClaimAck) {
  NewJob job = Job("emails", std::string("bin\0ary", 7));
  job.props.content_type = "application/octet-stream";
  job.props.message_type = "signup";
  job.props.correlation_id = "corr-1";
  job.props.timestamp_ms = 1234;
  job.headers = {{"trace", "abc"}, {"tenant", "7"}};
  int64_t id = Enqueue(job);
  Enqueue(Job("other", "not mine"));

  ClaimResult claimed = Claim("emails", 10);
  ASSERT_EQ(claimed.jobs.size(), 1u);
  const ClaimedJob& c = claimed.jobs[0];
  EXPECT_EQ(c.id, id);
  EXPECT_EQ(c.queue, "emails");
  EXPECT_EQ(c.payload, std::string("bin\0ary", 7));
  EXPECT_EQ(c.props.content_type, "application/octet-stream");
  EXPECT_EQ(c.props.message_type, "signup");
  EXPECT_EQ(c.props.correlation_id, "corr-1");
  EXPECT_EQ(c.props.timestamp_ms, 1234);
  EXPECT_EQ(c.headers, (Headers{{"trace", "abc"}, {"tenant", "7"}}));
  EXPECT_EQ(c.attempts, 1u);
  EXPECT_EQ(c.enqueued_at_ms, clock_.Now());

  JobRecord running = Get(id);
  EXPECT_EQ(running.state, JobState::kRunning);
  EXPECT_EQ(running.owner, "owner-a");
  EXPECT_EQ(running.lease_until_ms, clock_.Now() + kLease.count());
  EXPECT_EQ(running.first_attempt_at_ms, clock_.Now());
  EXPECT_TRUE(Claim("emails", 10).jobs.empty()) << "a running job is not claimed twice";

  auto acked = store_->Ack(id, c.claim_token, milliseconds(0));
  ASSERT_TRUE(acked.ok()) << acked.status().ToString();
  EXPECT_TRUE(*acked);
  EXPECT_FALSE(Exists(id));
  EXPECT_EQ(StatsOf("emails").waiting + StatsOf("emails").running, 0);
  EXPECT_EQ(StatsOf("other").waiting, 1);
}

TEST_F(LocalStoreTest, ClaimsByPriorityThenRunAtThenId) {
  int64_t low = Enqueue(Job("q", "low", 0));
  clock_.Advance(1);
  int64_t high = Enqueue(Job("q", "high", 9));
  clock_.Advance(1);
  int64_t mid1 = Enqueue(Job("q", "mid1", 5));
  int64_t mid2 = Enqueue(Job("q", "mid2", 5));  // same run_at: id order
  NewJob early = Job("q", "mid-early", 5);
  early.run_at_ms = clock_.Now() - 100;  // due before the others of its priority
  int64_t mid0 = Enqueue(early);

  ClaimResult first = Claim("q", 3);
  ASSERT_EQ(first.jobs.size(), 3u);
  EXPECT_EQ(first.jobs[0].id, high);
  EXPECT_EQ(first.jobs[1].id, mid0);
  EXPECT_EQ(first.jobs[2].id, mid1);
  ClaimResult rest = Claim("q", 10);
  ASSERT_EQ(rest.jobs.size(), 2u);
  EXPECT_EQ(rest.jobs[0].id, mid2);
  EXPECT_EQ(rest.jobs[1].id, low);
  EXPECT_EQ(rest.jobs[1].props.priority, 0);
  EXPECT_EQ(first.jobs[0].props.priority, 9) << "props.priority mirrors the column";
}

TEST_F(LocalStoreTest, DelayedJobIsScheduledUntilDue) {
  NewJob job = Job("q", "later");
  job.run_at_ms = clock_.Now() + 5000;
  int64_t id = Enqueue(job);
  EXPECT_EQ(Get(id).state, JobState::kScheduled);
  EXPECT_EQ(StatsOf("q").scheduled, 1);
  EXPECT_EQ(StatsOf("q").waiting, 0);
  auto due = store_->HasDueJobs("q");
  ASSERT_TRUE(due.ok());
  EXPECT_FALSE(*due);
  EXPECT_TRUE(Claim("q", 10).jobs.empty());

  clock_.Advance(4999);
  EXPECT_TRUE(Claim("q", 10).jobs.empty());
  clock_.Advance(1);
  EXPECT_EQ(StatsOf("q").waiting, 1) << "a due scheduled job counts as waiting";
  EXPECT_TRUE(*store_->HasDueJobs("q"));
  clock_.Advance(250);
  EXPECT_EQ(StatsOf("q").oldest_waiting_age_ms, 250);
  ClaimResult claimed = Claim("q", 10);
  ASSERT_EQ(claimed.jobs.size(), 1u);
  EXPECT_EQ(claimed.jobs[0].id, id);
}

TEST_F(LocalStoreTest, UniqueKeyIsANoOpWhilePendingOrRunning) {
  NewJob job = Job("q", "first");
  job.unique_key = "invoice-42";
  int64_t id = Enqueue(job);

  job.payload = "second";
  auto dup = store_->Enqueue(job);
  ASSERT_TRUE(dup.ok());
  EXPECT_TRUE(dup->duplicate);
  EXPECT_EQ(dup->id, id);

  NewJob elsewhere = job;
  elsewhere.queue = "other";
  auto other = store_->Enqueue(elsewhere);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->duplicate) << "keys are per queue";

  ClaimResult claimed = Claim("q", 1);
  ASSERT_EQ(claimed.jobs.size(), 1u);
  auto while_running = store_->Enqueue(job);
  ASSERT_TRUE(while_running.ok());
  EXPECT_TRUE(while_running->duplicate);
  EXPECT_EQ(while_running->id, id);

  // In a batch, a key repeated inside the batch is a duplicate of the first.
  NewJob a = Job("batch", "a"), b = Job("batch", "b");
  a.unique_key = b.unique_key = "same";
  auto batch = store_->EnqueueBatch({a, b});
  ASSERT_TRUE(batch.ok());
  EXPECT_FALSE((*batch)[0].duplicate);
  EXPECT_TRUE((*batch)[1].duplicate);
  EXPECT_EQ((*batch)[1].id, (*batch)[0].id);

  ASSERT_TRUE(*store_->Dead(id, claimed.jobs[0].claim_token, "broken"));
  auto after_dead = store_->Enqueue(job);
  ASSERT_TRUE(after_dead.ok());
  EXPECT_FALSE(after_dead->duplicate) << "a dead job no longer holds its key";
  EXPECT_NE(after_dead->id, id);

  // Retrying the dead one now would clash with the new job: it is skipped.
  auto revived = store_->RetryDead({id});
  ASSERT_TRUE(revived.ok());
  EXPECT_TRUE(revived->empty());
  EXPECT_EQ(Get(id).state, JobState::kDead);
}

TEST_F(LocalStoreTest, ExpiredLeaseIsRecoveredAndTheOldOwnerCannotSettle) {
  int64_t id = Enqueue(Job("q", "work"));
  ClaimResult a = Claim("q", 1, "owner-a");
  ASSERT_EQ(a.jobs.size(), 1u);

  clock_.Advance(kLease.count() - 1);
  EXPECT_EQ(*store_->RecoverExpiredLeases(), 0);
  clock_.Advance(2);
  EXPECT_EQ(*store_->RecoverExpiredLeases(), 1);
  EXPECT_EQ(Get(id).state, JobState::kWaiting);
  EXPECT_EQ(Get(id).attempts, 1u) << "the crashed attempt still counts";

  ClaimResult b = Claim("q", 1, "owner-b");
  ASSERT_EQ(b.jobs.size(), 1u);
  EXPECT_EQ(b.jobs[0].attempts, 2u);
  EXPECT_NE(b.jobs[0].claim_token, a.jobs[0].claim_token);

  // Owner A wakes up late: none of its outcomes touch B's claim.
  EXPECT_FALSE(*store_->Ack(id, a.jobs[0].claim_token, milliseconds(0)));
  EXPECT_FALSE(*store_->Retry(id, a.jobs[0].claim_token, milliseconds(0), "late"));
  EXPECT_FALSE(*store_->Dead(id, a.jobs[0].claim_token, "late"));
  EXPECT_FALSE(*store_->Release(id, a.jobs[0].claim_token));
  EXPECT_EQ(Get(id).owner, "owner-b");
  EXPECT_TRUE(*store_->Ack(id, b.jobs[0].claim_token, milliseconds(0)));
  EXPECT_FALSE(Exists(id));
}

TEST_F(LocalStoreTest, LateAckOfARecoveredButUnclaimedJobStillCounts) {
  int64_t id = Enqueue(Job("q", "work"));
  ClaimResult a = Claim("q", 1, "owner-a");
  clock_.Advance(kLease.count() + 1);
  ASSERT_EQ(*store_->RecoverExpiredLeases(), 1);
  // Nobody claimed it again: the handler's success is still the truth.
  EXPECT_TRUE(*store_->Ack(id, a.jobs[0].claim_token, milliseconds(0)));
  EXPECT_FALSE(Exists(id));
}

TEST_F(LocalStoreTest, RenewedLeaseKeepsALongJob) {
  int64_t id = Enqueue(Job("q", "long"));
  ClaimResult a = Claim("q", 1, "owner-a");
  ASSERT_EQ(a.jobs.size(), 1u);
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(kLease.count() * 2 / 3);
    EXPECT_EQ(*store_->RenewLeases("owner-a", kLease), 1);
    EXPECT_EQ(*store_->RenewLeases("owner-b", kLease), 0);
    EXPECT_EQ(*store_->RecoverExpiredLeases(), 0);
    EXPECT_TRUE(Claim("q", 1, "owner-b").jobs.empty());
  }
  EXPECT_EQ(Get(id).lease_until_ms, clock_.Now() + kLease.count());
  EXPECT_TRUE(*store_->Ack(id, a.jobs[0].claim_token, milliseconds(0)));
}

TEST_F(LocalStoreTest, RetryMovesRunAtAndKeepsTheAttemptCount) {
  int64_t id = Enqueue(Job("q", "flaky"));
  ClaimResult first = Claim("q", 1);
  ASSERT_EQ(first.jobs.size(), 1u);
  ASSERT_TRUE(*store_->Retry(id, first.jobs[0].claim_token, milliseconds(5000), "timeout"));

  JobRecord r = Get(id);
  EXPECT_EQ(r.state, JobState::kScheduled);
  EXPECT_EQ(r.run_at_ms, clock_.Now() + 5000);
  EXPECT_EQ(r.attempts, 1u);
  EXPECT_EQ(r.last_error, "timeout");
  EXPECT_TRUE(r.owner.empty());
  EXPECT_TRUE(Claim("q", 1).jobs.empty());

  clock_.Advance(5000);
  ClaimResult second = Claim("q", 1);
  ASSERT_EQ(second.jobs.size(), 1u);
  EXPECT_EQ(second.jobs[0].attempts, 2u);
  EXPECT_EQ(Get(id).first_attempt_at_ms, clock_.Now() - 5000);

  // A retry without delay is due at once.
  ASSERT_TRUE(*store_->Retry(id, second.jobs[0].claim_token, milliseconds(0), "again"));
  EXPECT_EQ(Get(id).state, JobState::kWaiting);
  EXPECT_EQ(Claim("q", 1).jobs.size(), 1u);
}

TEST_F(LocalStoreTest, DeadLettersKeepReasonAttemptsAndTime) {
  int64_t id = Enqueue(Job("q", "poison"));
  ClaimResult c = Claim("q", 1);
  clock_.Advance(42);
  ASSERT_TRUE(*store_->Dead(id, c.jobs[0].claim_token, "invalid input: no email"));

  JobRecord r = Get(id);
  EXPECT_EQ(r.state, JobState::kDead);
  EXPECT_EQ(r.last_error, "invalid input: no email");
  EXPECT_EQ(r.attempts, 1u);
  EXPECT_EQ(r.failed_at_ms, clock_.Now());
  EXPECT_EQ(r.payload, "poison");
  EXPECT_EQ(StatsOf("q").dead, 1);
  EXPECT_TRUE(Claim("q", 1).jobs.empty());

  auto dead = store_->ListDead("q", 10);
  ASSERT_TRUE(dead.ok());
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].id, id);
  EXPECT_TRUE(store_->ListDead("other", 10)->empty());
  EXPECT_EQ(store_->ListDead("", 10)->size(), 1u);

  auto revived = store_->RetryDead({id, 9999});
  ASSERT_TRUE(revived.ok());
  EXPECT_EQ(*revived, std::vector<int64_t>{id});
  r = Get(id);
  EXPECT_EQ(r.state, JobState::kWaiting);
  EXPECT_EQ(r.attempts, 0u);
  EXPECT_EQ(r.failed_at_ms, 0);
  ClaimResult again = Claim("q", 1);
  ASSERT_EQ(again.jobs.size(), 1u);
  EXPECT_EQ(again.jobs[0].attempts, 1u);

  ASSERT_TRUE(*store_->Dead(id, again.jobs[0].claim_token, "still broken"));
  auto purged = store_->PurgeDead({id});
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(*purged, std::vector<int64_t>{id});
  EXPECT_FALSE(Exists(id));
}

TEST_F(LocalStoreTest, RetryAllAndPurgeAllDeadByQueue) {
  for (const char* q : {"a", "a", "b"}) {
    int64_t id = Enqueue(Job(q, "x"));
    ClaimResult c = Claim(q, 1);
    ASSERT_TRUE(*store_->Dead(id, c.jobs[0].claim_token, "no"));
  }
  EXPECT_EQ(*store_->RetryAllDead("a"), 2);
  EXPECT_EQ(StatsOf("a").waiting, 2);
  EXPECT_EQ(StatsOf("b").dead, 1);
  EXPECT_EQ(*store_->PurgeAllDead(""), 1);
  EXPECT_EQ(StatsOf("b").dead, 0);
}

TEST_F(LocalStoreTest, CrashedAttemptsDeadLetterAtClaim) {
  int64_t id = Enqueue(Job("q", "crashes the worker"));
  int64_t fine = Enqueue(Job("q", "fine"));
  const int kMaxAttempts = 3;
  // Three attempts that never settle: the worker died each time.
  for (int attempt = 1; attempt <= kMaxAttempts; ++attempt) {
    ClaimResult c = Claim("q", 1, "doomed-" + std::to_string(attempt), kMaxAttempts);
    ASSERT_EQ(c.jobs.size(), 1u);
    EXPECT_EQ(c.jobs[0].id, id);
    EXPECT_EQ(c.jobs[0].attempts, static_cast<uint32_t>(attempt));
    clock_.Advance(kLease.count() + 1);
    ASSERT_EQ(*store_->RecoverExpiredLeases(), 1);
  }
  ClaimResult c = Claim("q", 10, "survivor", kMaxAttempts);
  EXPECT_EQ(c.dead_lettered, std::vector<int64_t>{id});
  ASSERT_EQ(c.jobs.size(), 1u) << "the other job is delivered as usual";
  EXPECT_EQ(c.jobs[0].id, fine);

  JobRecord r = Get(id);
  EXPECT_EQ(r.state, JobState::kDead);
  EXPECT_EQ(r.attempts, 3u) << "attempts that really started";
  EXPECT_EQ(r.last_error,
            "attempt 4 exceeds max_attempts 3: earlier attempts crashed the worker or timed out");
  EXPECT_EQ(r.failed_at_ms, clock_.Now());
}

TEST_F(LocalStoreTest, ReleaseGivesTheAttemptBack) {
  int64_t id = Enqueue(Job("q", "unstarted"));
  ClaimResult c = Claim("q", 1);
  ASSERT_EQ(Get(id).attempts, 1u);
  ASSERT_TRUE(*store_->Release(id, c.jobs[0].claim_token));
  JobRecord r = Get(id);
  EXPECT_EQ(r.state, JobState::kWaiting);
  EXPECT_EQ(r.attempts, 0u);
  EXPECT_EQ(r.first_attempt_at_ms, 0);
  EXPECT_TRUE(r.owner.empty());
  ClaimResult again = Claim("q", 1);
  ASSERT_EQ(again.jobs.size(), 1u);
  EXPECT_EQ(again.jobs[0].attempts, 1u);
}

TEST_F(LocalStoreTest, RetentionKeepsAckedJobsUntilPurged) {
  int64_t id = Enqueue(Job("q", "keep me"));
  ClaimResult c = Claim("q", 1);
  ASSERT_TRUE(*store_->Ack(id, c.jobs[0].claim_token, milliseconds(60000)));
  JobRecord r = Get(id);
  EXPECT_EQ(r.state, JobState::kDone);
  EXPECT_EQ(r.finished_at_ms, clock_.Now());
  EXPECT_EQ(StatsOf("q").done, 1);
  EXPECT_FALSE(*store_->Ack(id, c.jobs[0].claim_token, milliseconds(60000))) << "acked once";

  clock_.Advance(59999);
  EXPECT_EQ(*store_->PurgeDone(milliseconds(60000)), 0);
  clock_.Advance(1);
  EXPECT_EQ(*store_->PurgeDone(milliseconds(60000)), 1);
  EXPECT_FALSE(Exists(id));
}

TEST_F(LocalStoreTest, PauseAndResume) {
  ASSERT_TRUE(store_->Pause("q").ok());
  ASSERT_TRUE(store_->Pause("q").ok()) << "pausing twice is fine";
  EXPECT_EQ(*store_->PausedQueues(), std::vector<std::string>{"q"});
  EXPECT_TRUE(StatsOf("q").paused) << "a paused queue shows up even without jobs";
  ASSERT_TRUE(store_->Resume("q").ok());
  EXPECT_TRUE(store_->PausedQueues()->empty());
  EXPECT_TRUE(store_->Stats()->empty());
}

TEST_F(LocalStoreTest, StatsCountEveryState) {
  Enqueue(Job("q", "waiting"));
  NewJob later = Job("q", "scheduled");
  later.run_at_ms = clock_.Now() + 10000;
  Enqueue(later);
  Enqueue(Job("q", "will run"));
  Enqueue(Job("q", "will die"));
  ClaimResult c = Claim("q", 2);
  ASSERT_EQ(c.jobs.size(), 2u);
  ASSERT_TRUE(*store_->Dead(c.jobs[1].id, c.jobs[1].claim_token, "x"));
  clock_.Advance(30);
  QueueStats s = StatsOf("q");
  EXPECT_EQ(s.waiting, 1);
  EXPECT_EQ(s.scheduled, 1);
  EXPECT_EQ(s.running, 1);
  EXPECT_EQ(s.dead, 1);
  EXPECT_EQ(s.oldest_waiting_age_ms, 30);
}

TEST_F(LocalStoreTest, TransactionGroupsWritesAndRollsBack) {
  ASSERT_TRUE(store_->BeginWrite().ok());
  Enqueue(Job("q", "a"));
  Enqueue(Job("q", "b"));
  store_->Rollback();
  EXPECT_TRUE(store_->Stats()->empty());

  ASSERT_TRUE(store_->BeginWrite().ok());
  int64_t id = Enqueue(Job("q", "c"));
  ClaimResult c = Claim("q", 5);
  ASSERT_EQ(c.jobs.size(), 1u);
  ASSERT_TRUE(*store_->Ack(id, c.jobs[0].claim_token, milliseconds(0)));
  ASSERT_TRUE(store_->Commit().ok());
  EXPECT_FALSE(store_->InTransaction());
  EXPECT_FALSE(Exists(id));
}

TEST_F(LocalStoreTest, TwoConnectionsNeverClaimTheSameJob) {
  auto other = OpenStore(dir_.File("jobs.db"), clock_.AsFunction());
  ASSERT_NE(other, nullptr);
  std::vector<NewJob> jobs;
  for (int i = 0; i < 100; ++i) jobs.push_back(Job("q", std::to_string(i)));
  ASSERT_TRUE(store_->EnqueueBatch(jobs).ok());
  std::set<int64_t> seen;
  for (int round = 0; round < 20; ++round) {
    LocalStore& s = round % 2 == 0 ? *store_ : *other;
    auto c = s.Claim("q", round % 2 == 0 ? "a" : "b", 7, kLease, 0);
    ASSERT_TRUE(c.ok());
    for (const ClaimedJob& j : c->jobs) EXPECT_TRUE(seen.insert(j.id).second) << j.id;
  }
  EXPECT_EQ(seen.size(), 100u);
}

// ---- Opening files ----

TEST(LocalStoreOpenTest, ReopensItsOwnFileAndKeepsJobs) {
  TempDir dir;
  int64_t id;
  {
    auto store = OpenStore(dir.File("a.db"), nullptr, Durability::kFull);
    ASSERT_NE(store, nullptr);
    id = store->Enqueue(Job("q", "survives"))->id;
  }
  auto store = OpenStore(dir.File("a.db"));
  ASSERT_NE(store, nullptr);
  auto job = store->GetJob(id);
  ASSERT_TRUE(job.ok() && job->has_value());
  EXPECT_EQ((*job)->payload, "survives");
}

TEST(LocalStoreOpenTest, MissingFileWithoutCreateNamesThePath) {
  TempDir dir;
  LocalStoreOptions options;
  options.path = dir.File("missing.db");
  options.create = false;
  auto store = LocalStore::Open(options);
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(store.status().IsNotFound());
  EXPECT_NE(store.status().message().find(options.path), std::string::npos)
      << store.status().message();
}

TEST(LocalStoreOpenTest, UnwritableDirectoryNamesThePath) {
  LocalStoreOptions options;
  options.path = "/nonexistent-dir/foxworker/jobs.db";
  auto store = LocalStore::Open(options);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find(options.path), std::string::npos)
      << store.status().message();
}

void RunSql(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
}

TEST(LocalStoreOpenTest, RefusesSomeoneElsesDatabase) {
  TempDir dir;
  RunSql(dir.File("app.db"), "CREATE TABLE users (id INTEGER PRIMARY KEY)");
  LocalStoreOptions options;
  options.path = dir.File("app.db");
  auto store = LocalStore::Open(options);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("not a foxworker database"), std::string::npos)
      << store.status().message();
}

TEST(LocalStoreOpenTest, RefusesAFileFromANewerVersion) {
  TempDir dir;
  ASSERT_NE(OpenStore(dir.File("new.db")), nullptr);
  RunSql(dir.File("new.db"), "PRAGMA user_version = 99");
  LocalStoreOptions options;
  options.path = dir.File("new.db");
  auto store = LocalStore::Open(options);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("newer foxworker (schema version 99"), std::string::npos)
      << store.status().message();
}

TEST(LocalStoreOpenTest, RefusesAFileThatIsNotSqlite) {
  TempDir dir;
  {
    FILE* f = fopen(dir.File("junk.db").c_str(), "w");
    ASSERT_NE(f, nullptr);
    fputs("this is not a database, just some text that is long enough to have a header", f);
    fclose(f);
  }
  LocalStoreOptions options;
  options.path = dir.File("junk.db");
  auto store = LocalStore::Open(options);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find(options.path), std::string::npos)
      << store.status().message();
}

TEST(StorageFaultTest, ClassifiesByCodeAndErrno) {
  EXPECT_EQ(ClassifyStorageError(SQLITE_OK, 0), StorageFault::kOk);
  EXPECT_EQ(ClassifyStorageError(SQLITE_FULL, 0), StorageFault::kDiskFull);
  EXPECT_EQ(ClassifyStorageError(SQLITE_IOERR_WRITE, ENOSPC), StorageFault::kDiskFull);
  EXPECT_EQ(ClassifyStorageError(SQLITE_IOERR_WRITE, EDQUOT), StorageFault::kDiskFull);
  EXPECT_EQ(ClassifyStorageError(SQLITE_IOERR_WRITE, EROFS), StorageFault::kReadOnly);
  EXPECT_EQ(ClassifyStorageError(SQLITE_READONLY, 0), StorageFault::kReadOnly);
  EXPECT_EQ(ClassifyStorageError(SQLITE_READONLY_DBMOVED, 0), StorageFault::kDeleted);
  EXPECT_EQ(ClassifyStorageError(SQLITE_CORRUPT, 0), StorageFault::kCorrupt);
  EXPECT_EQ(ClassifyStorageError(SQLITE_NOTADB, 0), StorageFault::kCorrupt);
  EXPECT_EQ(ClassifyStorageError(SQLITE_IOERR_FSYNC, EIO), StorageFault::kIoError);
  EXPECT_EQ(ClassifyStorageError(SQLITE_BUSY, 0), StorageFault::kBusy);
  EXPECT_EQ(ClassifyStorageError(SQLITE_MISUSE, 0), StorageFault::kOther);
  std::set<std::string> names;
  for (StorageFault f : kStorageFaults) names.insert(StorageFaultName(f));
  EXPECT_EQ(names.size(), std::size(kStorageFaults));
  EXPECT_STREQ(StorageFaultAdvice(StorageFault::kOk), "");
}

TEST(LocalStoreOpenTest, ReadOnlyReadsAndRefusesWrites) {
  TempDir dir;
  int64_t id;
  {
    auto store = OpenStore(dir.File("r.db"));
    ASSERT_NE(store, nullptr);
    id = store->Enqueue(Job("q", "kept"))->id;
  }
  LocalStoreOptions options;
  options.path = dir.File("r.db");
  options.read_only = true;
  auto store = LocalStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status().message();
  auto job = (*store)->GetJob(id);
  ASSERT_TRUE(job.ok() && job->has_value());
  EXPECT_EQ((*job)->payload, "kept");
  EXPECT_TRUE((*store)->Stats().ok());
  EXPECT_FALSE((*store)->Pause("q").ok());
  EXPECT_EQ((*store)->last_fault(), StorageFault::kReadOnly);
  // A missing file is not created.
  options.path = dir.File("none.db");
  EXPECT_TRUE(LocalStore::Open(options).status().IsNotFound());
}

TEST(LocalStoreOpenTest, QuickCheckAndPathIdentity) {
  TempDir dir;
  auto store = OpenStore(dir.File("c.db"));
  ASSERT_NE(store, nullptr);
  auto check = store->QuickCheck();
  ASSERT_TRUE(check.ok());
  EXPECT_EQ(*check, "");
  check = store->QuickCheck(/*full=*/true);
  ASSERT_TRUE(check.ok());
  EXPECT_EQ(*check, "");
  EXPECT_TRUE(store->CheckpointTruncate().ok());
  EXPECT_EQ(store->CheckPath(), FileIdentity::kSame);
  EXPECT_TRUE(store->SetSmallWal(true).ok());
  EXPECT_TRUE(store->small_wal());
  ASSERT_EQ(std::rename(dir.File("c.db").c_str(), dir.File("moved.db").c_str()), 0);
  EXPECT_EQ(store->CheckPath(), FileIdentity::kMissing);
  ASSERT_NE(OpenStore(dir.File("c.db")), nullptr);  // another file at the path
  EXPECT_EQ(store->CheckPath(), FileIdentity::kOther);
  // SQLite itself does not notice: in WAL mode a commit goes into the
  // (moved) WAL without complaint. Hence the backend's own CheckPath.
  EXPECT_TRUE(store->Enqueue(Job("q", "x")).ok());
}

TEST(LocalStoreOpenTest, JobHolderSaysWhoHoldsAJob) {
  TempDir dir;
  auto store = OpenStore(dir.File("h.db"));
  ASSERT_NE(store, nullptr);
  int64_t id = store->Enqueue(Job("q", "p"))->id;
  auto claimed = store->Claim("q", "owner-a", 1, kLease, 0);
  ASSERT_TRUE(claimed.ok() && claimed->jobs.size() == 1);
  auto holder = store->JobHolder(id);
  ASSERT_TRUE(holder.ok() && holder->has_value());
  EXPECT_EQ((*holder)->state, JobState::kRunning);
  EXPECT_EQ((*holder)->owner, "owner-a");
  EXPECT_EQ((*holder)->claim_token, claimed->jobs[0].claim_token);
  ASSERT_TRUE(store->Ack(id, claimed->jobs[0].claim_token, Duration(0)).ok());
  holder = store->JobHolder(id);
  ASSERT_TRUE(holder.ok());
  EXPECT_FALSE(holder->has_value());
}

}  // namespace
}  // namespace foxworker
