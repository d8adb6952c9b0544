// SqliteStatement: a borrowed, cached prepared statement, reset on scope exit.
//
// LocalStore keeps one sqlite3_stmt per SQL text for the life of its
// connection; a SqliteStatement is a short-lived handle to one of them that
// binds parameters, steps, reads columns, and on destruction resets the
// statement and clears its bindings so the next user starts clean.
//
// Not thread-safe: used only by the thread that owns the connection.
#ifndef FOXWORKER_BACKENDS_LOCAL_SQLITE_STATEMENT_H_
#define FOXWORKER_BACKENDS_LOCAL_SQLITE_STATEMENT_H_

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace foxworker {

class SqliteStatement {
 public:
  explicit SqliteStatement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~SqliteStatement() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;

  // Parameters are 1-based, as in SQLite. Text and blobs are bound without
  // copying (SQLITE_STATIC).
  // REQUIRES: bound memory stays valid until this handle is destroyed.
  void BindInt(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void BindNull(int i) { sqlite3_bind_null(stmt_, i); }
  void BindText(int i, std::string_view v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  }
  // Empty text binds NULL (used for optional columns such as unique_key).
  void BindTextOrNull(int i, std::string_view v) {
    if (v.empty()) {
      BindNull(i);
    } else {
      BindText(i, v);
    }
  }
  void BindBlob(int i, std::string_view v) {
    // A zero-length blob must not bind NULL: the payload column is NOT NULL.
    sqlite3_bind_blob(stmt_, i, v.empty() ? "" : v.data(), static_cast<int>(v.size()),
                      SQLITE_STATIC);
  }

  // Returns SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(stmt_); }

  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    int n = sqlite3_column_bytes(stmt_, col);
    return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p), n);
  }
  std::string Blob(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    int n = sqlite3_column_bytes(stmt_, col);
    return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), n);
  }

 private:
  sqlite3_stmt* stmt_;
};

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_LOCAL_SQLITE_STATEMENT_H_
