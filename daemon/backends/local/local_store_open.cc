// LocalStore's opening side: the file's pragmas, its schema and migrations.
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
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

// Whether this process may write the file and create files next to it
// (the -wal and -shm).
bool Writable(const std::string& path) {
  std::string dir = path.substr(0, path.find_last_of('/') == std::string::npos
                                       ? 0
                                       : path.find_last_of('/'));
  if (dir.empty()) dir = path.find('/') == 0 ? "/" : ".";
  return ::access(path.c_str(), W_OK) == 0 && ::access(dir.c_str(), W_OK) == 0;
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
  if (options.read_only) options.create = false;
  if (!options.create && !FileExists(options.path)) {
    return Status::NotFound("local store " + options.path +
                            ": no such database file (it is created when the daemon starts or"
                            " a job is enqueued)");
  }
  if (options.read_only) {
    auto store = OpenReadOnly(options, /*immutable=*/false);
    // A WAL file read by a user who may not create its -shm: SQLite needs
    // the -shm unless it is told the file cannot change. With no -wal there
    // is no open writer (a writer's WAL exists as long as its connection),
    // and a writer that starts meanwhile writes to a new WAL, not to the
    // file: read it as immutable.
    if (!store.ok() && !FileExists(options.path + "-wal")) {
      auto immutable = OpenReadOnly(options, /*immutable=*/true);
      if (immutable.ok()) return immutable;
    }
    return store;
  }
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (options.create) flags |= SQLITE_OPEN_CREATE;
  const std::string path = options.path;
  return OpenWith(std::move(options), path, flags);
}

Result<std::unique_ptr<LocalStore>> LocalStore::OpenReadOnly(const LocalStoreOptions& options,
                                                             bool immutable) {
  if (!immutable) return OpenWith(options, options.path, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX);
  // A URI: file:PATH?immutable=1, with the characters URIs reserve escaped.
  std::string uri = "file:";
  for (char c : options.path) {
    if (c == '%' || c == '?' || c == '#') {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", static_cast<unsigned char>(c));
      uri += hex;
    } else {
      uri += c;
    }
  }
  uri += "?immutable=1";
  return OpenWith(options, uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI);
}

Result<std::unique_ptr<LocalStore>> LocalStore::OpenWith(LocalStoreOptions options,
                                                         const std::string& name, int flags) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(name.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return Status::IoError("local store " + options.path + ": cannot open: " + msg +
                           (options.read_only
                                ? " (is it readable by this user?)"
                                : " (does the directory exist and is it writable?)"));
  }
  std::unique_ptr<LocalStore> store(new LocalStore(std::move(options), db));
  struct stat st;
  if (::stat(store->options_.path.c_str(), &st) == 0) {
    store->file_dev_ = static_cast<uint64_t>(st.st_dev);
    store->file_ino_ = static_cast<uint64_t>(st.st_ino);
  }
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

Status LocalStore::ReadOnlyError() const {
  return Status::IoError("local store " + options_.path +
                         ": cannot write the file (read-only for user id " +
                         std::to_string(::geteuid()) +
                         ", or on a read-only file system); writing needs write access to the"
                         " file and its directory, while reading (foxworkerctl stats, dead"
                         " list, dead show) needs only read access");
}

Status LocalStore::Configure() {
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, static_cast<int>(options_.busy_timeout.count()));
  if (!options_.read_only && ::access(options_.path.c_str(), W_OK) != 0 &&
      (errno == EACCES || errno == EPERM || errno == EROFS)) {
    return ReadOnlyError();
  }
  if (options_.read_only) {
    // Nothing to set: a reader changes nothing, and a WAL file stays WAL.
    // Reading the schema here turns an unreadable -wal or -shm into one
    // clear error now instead of in the middle of a command.
    return Exec("SELECT count(*) FROM sqlite_schema");
  }

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
  // SQLite opens a file it may not write read-only without saying so.
  if (mode != "wal" && (sqlite3_db_readonly(db_, "main") == 1 || !Writable(options_.path))) {
    return ReadOnlyError();
  }
  if (mode != "wal") {
    return Status::IoError("local store " + options_.path +
                           ": the file cannot use WAL journaling (journal mode is \"" + mode +
                           "\"); put it on a local file system");
  }
  const char* sync = options_.durability == Durability::kFull ? "PRAGMA synchronous = FULL"
                                                              : "PRAGMA synchronous = NORMAL";
  if (Status s = Exec(sync); !s.ok()) return s;
  if (Status s = Exec("PRAGMA cache_size = -16384"); !s.ok()) return s;
  // The WAL is checkpointed every 1000 pages (SQLite's default), and after
  // a burst it is truncated back to 64 MiB; SetSmallWal shrinks both on a
  // file system short of space.
  if (Status s = SetSmallWal(false); !s.ok()) return s;
  return Exec("PRAGMA temp_store = MEMORY");
}

Status LocalStore::SetSmallWal(bool small) {
  if (Status s = Exec(small ? "PRAGMA wal_autocheckpoint = 64" : "PRAGMA wal_autocheckpoint = 1000");
      !s.ok()) {
    return s;
  }
  if (Status s = Exec(small ? "PRAGMA journal_size_limit = 0"
                            : "PRAGMA journal_size_limit = 67108864");
      !s.ok()) {
    return s;
  }
  small_wal_ = small;
  return Status::Ok();
}

Status LocalStore::CheckpointTruncate() {
  int log = 0, done = 0;
  int rc = sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_TRUNCATE, &log, &done);
  if (rc != SQLITE_OK) return Error("checkpointing the WAL", rc);
  return Status::Ok();
}

Result<std::string> LocalStore::QuickCheck(bool full) {
  const char* what = full ? "PRAGMA integrity_check" : "PRAGMA quick_check";
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db_, full ? "PRAGMA integrity_check(8)" : "PRAGMA quick_check(8)",
                              -1, &raw, nullptr);
  if (rc != SQLITE_OK) {
    Status s = Error(what, rc);
    if (last_fault() == StorageFault::kCorrupt) return std::string(sqlite3_errmsg(db_));
    return s;
  }
  std::string findings;
  {
    SqliteStatement stmt(raw);
    while ((rc = stmt.Step()) == SQLITE_ROW) {
      std::string line = stmt.Text(0);
      if (line == "ok") continue;
      // Findings such as "*** in database main ***\nPage 5: ..." belong on
      // one log line.
      for (char& c : line) {
        if (c == '\n' || c == '\r') c = ' ';
      }
      findings += (findings.empty() ? "" : "; ") + line;
    }
  }
  sqlite3_finalize(raw);
  if (rc != SQLITE_DONE) {
    // A page so damaged that the check itself stops is a finding too.
    Status s = Error(what, rc);
    if (last_fault() == StorageFault::kCorrupt) return std::string(sqlite3_errmsg(db_));
    return s;
  }
  return findings;
}

FileIdentity LocalStore::CheckPath() const {
  struct stat st;
  if (::stat(options_.path.c_str(), &st) != 0) return FileIdentity::kMissing;
  if (static_cast<uint64_t>(st.st_dev) != file_dev_ ||
      static_cast<uint64_t>(st.st_ino) != file_ino_) {
    return FileIdentity::kOther;
  }
  return FileIdentity::kSame;
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
  if (options_.read_only) {
    return Status::InvalidArgument(
        "local store " + options_.path + ": schema version " + std::to_string(version) +
        (version > kSchemaVersion ? ", written by a newer foxworker"
                                  : ", not (yet) a foxworker database of this version: a"
                                    " writer (the daemon, or foxworkerctl as its user) creates"
                                    " or migrates it"));
  }

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
