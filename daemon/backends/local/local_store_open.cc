// LocalStore's opening side: the file's pragmas, its schema and migrations.
#include <sqlite3.h>
#include <sys/stat.h>

#include <iterator>
#include <mutex>
#include <random>
#include <utility>

#include "daemon/backends/local/local_store.h"
#include "daemon/backends/local/sqlite_statement.h"
#include "daemon/base/clock.h"

namespace foxworker {
namespace {

// Version 1 of the schema. A later version appends a migration to
// kMigrations; a released one is never edited.
constexpr char kSchemaV1[] = R"sql(
CREATE TABLE jobs (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  queue            TEXT    NOT NULL,
  state            TEXT    NOT NULL
                   CHECK (state IN ('waiting', 'scheduled', 'running', 'done', 'dead')),
  priority         INTEGER NOT NULL DEFAULT 0,
  run_at           INTEGER NOT NULL,
  enqueued_at      INTEGER NOT NULL,
  attempts         INTEGER NOT NULL DEFAULT 0,
  payload          BLOB    NOT NULL,
  properties       TEXT,
  headers          TEXT,
  unique_key       TEXT,
  owner            TEXT,
  claim_token      INTEGER,
  lease_until      INTEGER,
  first_attempt_at INTEGER,
  last_error       TEXT,
  failed_at        INTEGER,
  finished_at      INTEGER
);
CREATE INDEX jobs_due ON jobs (queue, priority DESC, run_at)
  WHERE state IN ('waiting', 'scheduled');
CREATE INDEX jobs_running ON jobs (lease_until) WHERE state = 'running';
CREATE UNIQUE INDEX jobs_unique_key ON jobs (queue, unique_key)
  WHERE unique_key IS NOT NULL AND state IN ('waiting', 'scheduled', 'running');
CREATE INDEX jobs_dead ON jobs (queue, failed_at) WHERE state = 'dead';
CREATE INDEX jobs_done ON jobs (finished_at) WHERE state = 'done';
CREATE TABLE paused_queues (
  queue     TEXT PRIMARY KEY,
  paused_at INTEGER NOT NULL
) WITHOUT ROWID;
)sql";

// kMigrations[i] upgrades a file from user_version i to i + 1.
constexpr const char* kMigrations[] = {kSchemaV1};
static_assert(std::size(kMigrations) == LocalStore::kSchemaVersion);

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

Result<std::unique_ptr<LocalStore>> LocalStore::Open(LocalStoreOptions options) {
  // SQLite's memory statistics take a global mutex on every allocation; we
  // never read them. Only possible before SQLite initializes, so the first
  // store of the process decides (a later failure is harmless).
  static std::once_flag no_memstatus;
  std::call_once(no_memstatus, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });

  if (options.path.empty()) return Status::InvalidArgument("local store: no database path given");
  if (!options.clock) options.clock = WallMs;
  if (!options.create && !FileExists(options.path)) {
    return Status::NotFound("local store " + options.path +
                            ": no such database file (it is created when the daemon starts or"
                            " a job is enqueued)");
  }
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (options.create) flags |= SQLITE_OPEN_CREATE;
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(options.path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return Status::IoError("local store " + options.path + ": cannot open: " + msg +
                           " (does the directory exist and is it writable?)");
  }
  std::unique_ptr<LocalStore> store(new LocalStore(std::move(options), db));
  if (Status s = store->Configure(); !s.ok()) return s;
  if (Status s = store->MigrateSchema(); !s.ok()) return s;
  return store;
}

LocalStore::LocalStore(LocalStoreOptions options, sqlite3* db)
    : options_(std::move(options)), db_(db) {
  std::random_device rd;
  // Claim tokens from different connections must not collide: start each
  // connection at a random point of a 62-bit space (positive in SQLite).
  uint64_t r = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  next_claim_token_ = (r & ((uint64_t{1} << 62) - 1)) | 1;
}

LocalStore::~LocalStore() {
  if (InTransaction()) Rollback();
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  sqlite3_close_v2(db_);
}

Status LocalStore::Configure() {
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, static_cast<int>(options_.busy_timeout.count()));

  // journal_mode answers with the mode in effect; a file system without
  // shared memory support cannot do WAL.
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db_, "PRAGMA journal_mode = WAL", -1, &raw, nullptr);
  if (rc != SQLITE_OK) return Error("setting WAL mode", rc);
  std::string mode;
  {
    SqliteStatement stmt(raw);
    rc = stmt.Step();
    if (rc == SQLITE_ROW) mode = stmt.Text(0);
  }
  sqlite3_finalize(raw);
  if (rc != SQLITE_ROW) return Error("setting WAL mode", rc);
  if (mode != "wal") {
    return Status::IoError("local store " + options_.path +
                           ": the file cannot use WAL journaling (journal mode is \"" + mode +
                           "\"); put it on a local file system");
  }
  const char* sync = options_.durability == Durability::kFull ? "PRAGMA synchronous = FULL"
                                                              : "PRAGMA synchronous = NORMAL";
  if (Status s = Exec(sync); !s.ok()) return s;
  if (Status s = Exec("PRAGMA cache_size = -16384"); !s.ok()) return s;
  // After a burst the WAL file is truncated back to this size at checkpoints.
  if (Status s = Exec("PRAGMA journal_size_limit = 67108864"); !s.ok()) return s;
  return Exec("PRAGMA temp_store = MEMORY");
}

Status LocalStore::MigrateSchema() {
  auto read_int = [this](const char* pragma, int64_t* out) -> Status {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db_, pragma, -1, &raw, nullptr);
    if (rc != SQLITE_OK) return Error(pragma, rc);
    {
      SqliteStatement stmt(raw);
      rc = stmt.Step();
      if (rc == SQLITE_ROW) *out = stmt.Int(0);
    }
    sqlite3_finalize(raw);
    return rc == SQLITE_ROW ? Status::Ok() : Error(pragma, rc);
  };
  int64_t version = 0;
  if (Status s = read_int("PRAGMA user_version", &version); !s.ok()) return s;
  if (version == kSchemaVersion) return Status::Ok();

  // Another process may be creating or migrating the same file: decide
  // under the write lock.
  if (Status s = BeginWrite(); !s.ok()) return s;
  Status s = [&]() -> Status {
    int64_t app_id = 0, tables = 0;
    if (Status r = read_int("PRAGMA user_version", &version); !r.ok()) return r;
    if (Status r = read_int("PRAGMA application_id", &app_id); !r.ok()) return r;
    if (Status r = read_int("SELECT count(*) FROM sqlite_schema", &tables); !r.ok()) return r;
    if (version > kSchemaVersion) {
      return Status::InvalidArgument("local store " + options_.path +
                                     ": written by a newer foxworker (schema version " +
                                     std::to_string(version) + ", this build knows up to " +
                                     std::to_string(kSchemaVersion) + ")");
    }
    if (tables > 0 && app_id != kApplicationId) {
      return Status::InvalidArgument("local store " + options_.path +
                                     ": not a foxworker database (it holds other tables)");
    }
    for (int64_t v = version; v < kSchemaVersion; ++v) {
      if (Status r = Exec(kMigrations[v]); !r.ok()) return r;
    }
    std::string set = "PRAGMA application_id = " + std::to_string(kApplicationId) +
                      "; PRAGMA user_version = " + std::to_string(kSchemaVersion);
    return Exec(set.c_str());
  }();
  if (!s.ok()) {
    Rollback();
    return s;
  }
  return Commit();
}

}  // namespace foxworker
