#include "daemon/backends/local/local_key_store.h"

#include <glog/logging.h>
#include <sqlite3.h>

namespace foxworker {

bool LocalKeyStore::EnsureOpenLocked() {
  if (db_ != nullptr) return true;
  if (failed_) return false;
  std::string error;
  if (sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    error = db_ ? sqlite3_errmsg(db_) : "out of memory";
  } else {
    sqlite3_busy_timeout(db_, 5000);
    // A lost key after a power cut means one more run of an at-least-once
    // message; not worth an fsync per message.
    const char* setup =
        "PRAGMA synchronous=NORMAL;"
        "CREATE TABLE IF NOT EXISTS dedup_keys(queue TEXT NOT NULL, key TEXT NOT NULL,"
        " expires_ms INTEGER NOT NULL, PRIMARY KEY(queue, key)) WITHOUT ROWID;";
    char* err = nullptr;
    if (sqlite3_exec(db_, setup, nullptr, nullptr, &err) != SQLITE_OK) {
      error = err ? err : "?";
      sqlite3_free(err);
    }
  }
  if (error.empty()) return true;
  LOG(ERROR) << "dedup for queue " << queue_ << ": cannot use " << path_ << ": " << error
             << "; duplicates will not be skipped";
  sqlite3_close(db_);
  db_ = nullptr;
  failed_ = true;
  return false;
}

LocalKeyStore::~LocalKeyStore() { sqlite3_close(db_); }

bool LocalKeyStore::Seen(const std::string& key, int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!EnsureOpenLocked()) return false;
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db_, "SELECT 1 FROM dedup_keys WHERE queue=?1 AND key=?2 AND expires_ms>?3",
                     -1, &st, nullptr);
  sqlite3_bind_text(st, 1, queue_.data(), static_cast<int>(queue_.size()), SQLITE_STATIC);
  sqlite3_bind_text(st, 2, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, now_ms);
  bool seen = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  return seen;
}

void LocalKeyStore::Record(const std::string& key, int64_t expires_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!EnsureOpenLocked()) return;
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db_,
                     "INSERT INTO dedup_keys(queue, key, expires_ms) VALUES(?1, ?2, ?3)"
                     " ON CONFLICT(queue, key) DO UPDATE SET expires_ms=excluded.expires_ms",
                     -1, &st, nullptr);
  sqlite3_bind_text(st, 1, queue_.data(), static_cast<int>(queue_.size()), SQLITE_STATIC);
  sqlite3_bind_text(st, 2, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, expires_ms);
  if (sqlite3_step(st) != SQLITE_DONE)
    LOG(WARNING) << "dedup: cannot record key for queue " << queue_ << ": " << sqlite3_errmsg(db_);
  sqlite3_finalize(st);
  if (++records_ % 1024 == 0) {
    sqlite3_stmt* purge = nullptr;
    sqlite3_prepare_v2(db_, "DELETE FROM dedup_keys WHERE queue=?1 AND expires_ms<=?2", -1, &purge,
                       nullptr);
    sqlite3_bind_text(purge, 1, queue_.data(), static_cast<int>(queue_.size()), SQLITE_STATIC);
    sqlite3_bind_int64(purge, 2, expires_ms - 1);  // anything older than what we just wrote
    sqlite3_step(purge);
    sqlite3_finalize(purge);
  }
}

}  // namespace foxworker
